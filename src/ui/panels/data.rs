//! The Data panel: open a dataset or an instrument's folder (dialogs, drag and drop, recent
//! files), load an image under the spatial view with its opacity (or pick one of the run's
//! mosaics), and the `cellscope inspect` summary of the open one.

use crate::pipeline::jobs::open::Contrast;
use egui::RichText;

use super::{Action, Picked, pick_file, pick_folder, take};
use crate::ui::explorer::Explorer;

/// The Data panel's state.
#[derive(Default)]
pub struct DataPanel {
    picked: Picked,
    picked_image: Picked,
    /// The contrast limits being edited (percent), kept while a value is dragged.
    contrast: Option<[f64; 2]>,
}

impl DataPanel {
    /// Files chosen in this panel's dialogs since the last frame.
    pub fn poll(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        if let Some(p) = take(&self.picked) {
            out.push(Action::Open(p));
        }
        if let Some(p) = take(&self.picked_image) {
            out.push(Action::LoadImage(p));
        }
        out
    }

    /// Draws the panel; `recent` are the recently opened files, newest first.
    pub fn show(
        &mut self,
        ui: &mut egui::Ui,
        x: &mut Explorer,
        recent: &[std::path::PathBuf],
    ) -> Vec<Action> {
        let mut out = Vec::new();
        ui.label(RichText::new("Data").strong());
        ui.horizontal(|ui| {
            if ui.button("Open…").clicked() {
                let kinds = &["h5ad", "h5", "gem", "gz"];
                pick_file(ui.ctx(), &self.picked, "single-cell data", kinds);
            }
            if ui
                .button("Folder…")
                .on_hover_text(
                    "an instrument's output folder (Xenium, MERSCOPE, CosMx, Slide-seq) or a \
                     Visium folder",
                )
                .clicked()
            {
                pick_folder(ui.ctx(), &self.picked);
            }
            if ui
                .add_enabled(x.data.is_some(), egui::Button::new("Image…"))
                .clicked()
            {
                let images = &["jpg", "jpeg", "png", "tif", "tiff"];
                pick_file(ui.ctx(), &self.picked_image, "image", images);
            }
            if let Some(u) = &mut x.underlay {
                let label = ui.label("opacity");
                ui.add(egui::Slider::new(&mut u.opacity, 0.0..=1.0))
                    .labelled_by(label.id);
            }
        });
        if x.underlay.is_some()
            && let Some(v) = x.views.iter_mut().find(|v| v.y_down)
        {
            spot_controls(ui, v);
        }
        if x.outlines.is_some() {
            ui.checkbox(&mut x.fill_outlines, "fill cell outlines")
                .on_hover_text("outlines are drawn once cells are large enough on screen");
        }
        match x.underlay.as_ref().filter(|u| u.grey_range.is_some()) {
            Some(u) => self.contrast_limits(ui, u.request.contrast, &mut out),
            None => self.contrast = None,
        }
        ui.label(&x.status);
        if x.images.len() > 1 {
            let current = x.underlay.as_ref().map(|u| u.request.path.clone());
            let shown = x
                .images
                .iter()
                .find(|(_, p, _)| Some(p) == current.as_ref());
            let text = shown.map_or("…", |(n, _, _)| n.as_str());
            egui::ComboBox::from_label("stain")
                .selected_text(text)
                .show_ui(ui, |ui| {
                    for (name, path, placement) in &x.images {
                        let on = Some(path) == current.as_ref();
                        if ui.selectable_label(on, name).clicked() && !on {
                            out.push(Action::LoadPlacedImage(path.clone(), *placement));
                        }
                    }
                });
        } else if let Some(u) = &x.underlay {
            let name = u.request.path.file_name().map(|f| f.to_string_lossy());
            ui.label(format!("image: {}", name.unwrap_or_default()));
        }
        if let Some(d) = &x.data {
            ui.label(format!("{} cells × {} genes", d.n_obs(), d.n_vars()));
        }
        if !x.summary.is_empty() {
            ui.collapsing("summary (inspect)", |ui| {
                ui.label(RichText::new(&x.summary).monospace().size(10.0))
            });
        }
        if !recent.is_empty() {
            ui.collapsing("recent files", |ui| {
                for p in recent {
                    let name = p.file_name().map(|f| f.to_string_lossy().to_string());
                    if ui
                        .small_button(name.unwrap_or_default())
                        .on_hover_text(p.display().to_string())
                        .clicked()
                    {
                        out.push(Action::Open(p.clone()));
                    }
                }
            });
        }
        out
    }
}

impl DataPanel {
    /// The contrast limits of a fluorescence image (percentiles of its non-zero pixels shown
    /// black and white); the image is decoded again when a value is let go, not while it is
    /// dragged.
    fn contrast_limits(&mut self, ui: &mut egui::Ui, c: Contrast, out: &mut Vec<Action>) {
        let [low, high] = self.contrast.get_or_insert([c.low * 100.0, c.high * 100.0]);
        ui.horizontal(|ui| {
            ui.label("contrast")
                .on_hover_text("percentiles of the image's non-zero pixels shown black and white");
            let speed = 0.1;
            let l = ui.label("black");
            let a = ui
                .add(
                    egui::DragValue::new(low)
                        .range(0.0..=50.0)
                        .speed(speed)
                        .suffix(" %"),
                )
                .labelled_by(l.id);
            let l = ui.label("white");
            let b = ui
                .add(
                    egui::DragValue::new(high)
                        .range(50.0..=100.0)
                        .speed(speed)
                        .suffix(" %"),
                )
                .labelled_by(l.id);
            let done = |r: &egui::Response| r.drag_stopped() || (r.changed() && !r.dragged());
            if (done(&a) || done(&b)) && *low < *high {
                out.push(Action::SetContrast(Contrast {
                    low: *low / 100.0,
                    high: *high / 100.0,
                }));
            }
        });
    }
}

/// Spots over the image: at their physical size (half the centre spacing, the ST arrays' 100 µm
/// spots 200 µm apart; Visium's 55 µm, 100 µm apart), as outlines, with an opacity, so the
/// tissue shows around and under them.
fn spot_controls(ui: &mut egui::Ui, v: &mut crate::ui::view::PointView) {
    ui.horizontal(|ui| {
        let spacing = v.spot_spacing();
        let mut physical = v.spots.diameter.is_some();
        let r = ui
            .add_enabled(
                spacing.is_some(),
                egui::Checkbox::new(&mut physical, "spots at physical size"),
            )
            .on_hover_text(
                "diameter half the spots' centre spacing (ST: 100 µm spots 200 µm apart; \
                 Visium: 55 µm, 100 µm apart), scaled with the zoom",
            );
        if r.changed() {
            v.spots.diameter = if physical {
                spacing.map(|s| 0.5 * s)
            } else {
                None
            };
        }
        ui.checkbox(&mut v.spots.outline, "outlines");
        let label = ui.label("spot opacity");
        ui.add(egui::Slider::new(&mut v.spots.opacity, 0.0..=1.0))
            .labelled_by(label.id);
    });
}
