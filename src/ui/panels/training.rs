//! The Training panel: pre-train a self-supervised model on the open dataset or fine-tune a
//! classifier on one of its obs columns, with live curves (training loss per step, validation
//! loss and validation macro-F1 per epoch) fed by the worker's training events.

use egui::{Color32, Stroke, pos2};

use crate::data::anndata::AnnData;
use crate::model::bench::EncoderKind;
use crate::model::train::{
    Augmentations, EventKind, Generic, ObjectiveKind, TrainEvent, TrainLayers, TrainOptions,
};
use crate::pipeline::jobs::train::{FinetuneJob, PretrainJob};

use super::Action;

/// Objectives offered in the window: all of them (the gene-programme ones with a GMT file
/// chosen in the panel).
const OBJECTIVES: [ObjectiveKind; 8] = ObjectiveKind::ALL;

/// The panel's state.
#[derive(Debug)]
pub struct TrainingPanel {
    objective: ObjectiveKind,
    /// Gene programmes (GMT) for gp-mask, isolated and gp-to-tf.
    gmt: Option<std::path::PathBuf>,
    /// SimCLR / VICReg: the encoder trained.
    encoder: EncoderKind,
    /// SimCLR / VICReg: the augmentations as typed (`mask:0.5,noise:0.2`).
    augment: String,
    epochs: usize,
    batch_size: usize,
    label_key: Option<String>,
    layers: TrainLayers,
    /// Fine-tune the loaded model (else the supervised baseline from random init).
    from_loaded: bool,
    /// Events of the current or last run.
    pub history: Vec<TrainEvent>,
    /// How the last run ended.
    pub summary: Option<String>,
    picked_save: super::Picked,
    picked_gmt: super::Picked,
}

impl Default for TrainingPanel {
    fn default() -> Self {
        TrainingPanel {
            objective: OBJECTIVES[0],
            gmt: None,
            encoder: EncoderKind::Bench,
            augment: Augmentations::default().to_string(),
            epochs: 20,
            batch_size: 256,
            label_key: None,
            layers: TrainLayers::All,
            from_loaded: true,
            history: Vec::new(),
            summary: None,
            picked_save: super::Picked::default(),
            picked_gmt: super::Picked::default(),
        }
    }
}

impl TrainingPanel {
    /// Records a training event.
    pub fn push(&mut self, e: TrainEvent) {
        self.history.push(e);
    }

    /// A folder chosen to save the model in since the last frame (a GMT file chosen since then
    /// is kept for the next pre-training).
    pub fn poll(&mut self) -> Option<Action> {
        if let Some(g) = super::take(&self.picked_gmt) {
            self.gmt = Some(g);
        }
        super::take(&self.picked_save).map(Action::SaveModel)
    }

    /// Where the GMT file dialog puts its choice (a test stands in for the dialog by writing
    /// a path here).
    #[doc(hidden)]
    pub fn gmt_dialog_slot(&self) -> super::Picked {
        self.picked_gmt.clone()
    }

    /// SimCLR / VICReg: the encoder and the augmentations (scSSL-Bench's); returns the
    /// augmentations when they read (always `Some` for the other objectives), showing why not.
    fn generic_rows(&mut self, ui: &mut egui::Ui) -> Option<Augmentations> {
        if !self.objective.is_generic() {
            return Some(Augmentations::default());
        }
        ui.horizontal(|ui| {
            let label = ui.label("encoder");
            egui::ComboBox::from_id_salt("encoder")
                .selected_text(self.encoder.name())
                .show_ui(ui, |ui| {
                    for e in [EncoderKind::Bench, EncoderKind::Backbone] {
                        ui.selectable_value(&mut self.encoder, e, e.name());
                    }
                })
                .response
                .labelled_by(label.id);
        });
        let parsed = self.augment.parse::<Augmentations>();
        ui.horizontal(|ui| {
            let label = ui.label("augment");
            ui.add(egui::TextEdit::singleline(&mut self.augment).desired_width(160.0))
                .labelled_by(label.id)
                .on_hover_text(
                    "NAME:FRACTION[@PROBABILITY], comma-separated: mask (fraction kept), noise, \
                     swap, crossover; or none",
                );
        });
        match parsed {
            Ok(a) => Some(a),
            Err(e) => {
                ui.colored_label(Color32::LIGHT_RED, e.to_string());
                None
            }
        }
    }

    /// Forgets the last run (a new one starts).
    pub fn reset(&mut self) {
        self.history.clear();
        self.summary = None;
    }

    /// Draws the panel. `model_loaded`: whether a model is loaded; `busy`: whether the worker
    /// runs a job.
    pub fn show(
        &mut self,
        ui: &mut egui::Ui,
        data: Option<&AnnData>,
        model_loaded: bool,
        busy: bool,
    ) -> Option<Action> {
        let mut action = None;
        ui.add(egui::Slider::new(&mut self.epochs, 1..=200).text("epochs"));
        ui.add(
            egui::Slider::new(&mut self.batch_size, 32..=8192)
                .logarithmic(true)
                .text("batch"),
        );
        ui.horizontal(|ui| {
            let label = ui.label("objective");
            egui::ComboBox::from_id_salt("objective")
                .selected_text(self.objective.name())
                .show_ui(ui, |ui| {
                    for o in OBJECTIVES {
                        ui.selectable_value(&mut self.objective, o, o.name());
                    }
                })
                .response
                .labelled_by(label.id);
        });
        let needs_gmt = self.objective.needs_programmes();
        if needs_gmt {
            self.gmt_row(ui);
        }
        let augment = self.generic_rows(ui);
        ui.horizontal(|ui| {
            let ready = (!needs_gmt || self.gmt.is_some()) && augment.is_some();
            if ui
                .add_enabled(
                    !busy && data.is_some() && ready,
                    egui::Button::new("Pre-train"),
                )
                .on_hover_text("self-supervised pre-training on the open dataset (no labels)")
                .on_disabled_hover_text(
                    "this objective needs a GMT file of gene programmes, or readable augmentations",
                )
                .clicked()
            {
                action = Some(Action::Pretrain(PretrainJob {
                    objective: self.objective,
                    gmt: needs_gmt.then(|| self.gmt.clone()).flatten(),
                    generic: Generic {
                        encoder: self.encoder,
                        augment: augment.clone().unwrap_or_default(),
                        ..Generic::default()
                    },
                    genes: None,
                    opts: TrainOptions {
                        epochs: self.epochs,
                        batch_size: self.batch_size,
                        ..TrainOptions::pretrain_for(self.objective)
                    },
                    // The app sets the window's backend choice.
                    backend: crate::model::BackendChoice::Auto,
                }));
            }
        });
        if let Some(d) = data {
            ui.horizontal(|ui| {
                let label = ui.label("labels");
                egui::ComboBox::from_id_salt("train_labels")
                    .selected_text(self.label_key.clone().unwrap_or("…".into()))
                    .show_ui(ui, |ui| {
                        for n in d.obs.column_names() {
                            ui.selectable_value(&mut self.label_key, Some(n.to_string()), n);
                        }
                    })
                    .response
                    .labelled_by(label.id);
                let label = ui.label("train");
                egui::ComboBox::from_id_salt("train_layers")
                    .selected_text(layers_name(self.layers))
                    .show_ui(ui, |ui| {
                        for l in [TrainLayers::Head, TrainLayers::Last(2), TrainLayers::All] {
                            ui.selectable_value(&mut self.layers, l, layers_name(l));
                        }
                    })
                    .response
                    .labelled_by(label.id);
            });
        }
        ui.checkbox(&mut self.from_loaded, "from the loaded model")
            .on_hover_text("unchecked: the supervised baseline, same network from random init");
        ui.horizontal(|ui| {
            let can = !busy && data.is_some() && self.label_key.is_some();
            if ui
                .add_enabled(can, egui::Button::new("Fine-tune"))
                .clicked()
                && let Some(key) = &self.label_key
            {
                let loaded = self.from_loaded && model_loaded;
                action = Some(Action::Finetune(
                    FinetuneJob {
                        label_key: key.clone(),
                        layers: if loaded {
                            self.layers
                        } else {
                            TrainLayers::All
                        },
                        genes: None,
                        opts: TrainOptions {
                            epochs: self.epochs,
                            batch_size: self.batch_size.min(1024),
                            ..TrainOptions::finetune_default()
                        },
                        backend: crate::model::BackendChoice::Auto,
                        split_seed: 42,
                    },
                    loaded,
                ));
            }
            if ui
                .add_enabled(!busy && model_loaded, egui::Button::new("Save model…"))
                .clicked()
            {
                super::save_file(ui.ctx(), &self.picked_save, "cellscope_model", false);
            }
        });
        self.curves(ui);
        if let Some(s) = &self.summary {
            ui.label(s.as_str());
        }
        action
    }

    /// The GMT file row: the chosen file's name and a button to choose one.
    fn gmt_row(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            let name = self.gmt.as_ref().and_then(|p| p.file_name()).map_or_else(
                || "no GMT file".to_string(),
                |n| n.to_string_lossy().into_owned(),
            );
            ui.label(format!("programmes: {name}"));
            if ui
                .button("GMT…")
                .on_hover_text(if self.objective == ObjectiveKind::GpToTf {
                    "transcription-factor target sets (MSigDB C3 TFT, <FACTOR>_TARGET_GENES)"
                } else {
                    "gene programmes (MSigDB-style GMT, e.g. C8 cell-type signatures)"
                })
                .clicked()
            {
                super::pick_file(ui.ctx(), &self.picked_gmt, "gene sets", &["gmt", "txt"]);
            }
        });
    }

    /// Loss per step (grey), validation loss per epoch (orange) and validation macro-F1 (blue,
    /// 0..1 scale on the right).
    fn curves(&self, ui: &mut egui::Ui) {
        let steps: Vec<&TrainEvent> = self
            .history
            .iter()
            .filter(|e| e.kind == EventKind::Step)
            .collect();
        let epochs: Vec<&TrainEvent> = self
            .history
            .iter()
            .filter(|e| e.kind == EventKind::Epoch)
            .collect();
        let Some(last) = self.history.last() else {
            return;
        };
        let latest = epochs.last().map_or_else(String::new, |e| {
            let mut s = format!("epoch {}/{}", e.epoch + 1, e.epochs);
            if let Some(v) = e.val_loss {
                s.push_str(&format!("  val loss {v:.4}"));
            }
            if let Some(f) = e.val_macro_f1 {
                s.push_str(&format!("  val macro-F1 {f:.3}"));
            }
            s
        });
        ui.label(format!(
            "step {} · loss {:.4} · {:.0} cells/s",
            last.step, last.train_loss, last.cells_per_sec
        ));
        if !latest.is_empty() {
            ui.label(latest);
        }
        let total = (last.epochs * last.steps_per_epoch).max(1);
        ui.add(egui::ProgressBar::new(last.step as f32 / total as f32).desired_height(6.0));
        let width = ui.available_width().max(120.0);
        let (rect, _) = ui.allocate_exact_size(egui::vec2(width, 110.0), egui::Sense::hover());
        let p = ui.painter_at(rect);
        p.rect_filled(rect, 2.0, ui.visuals().extreme_bg_color);
        let losses = steps
            .iter()
            .map(|e| e.train_loss)
            .chain(epochs.iter().filter_map(|e| e.val_loss));
        let (lo, hi) = losses
            .filter(|v| v.is_finite())
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                (a.min(v), b.max(v))
            });
        if !lo.is_finite() {
            return;
        }
        let span = (hi - lo).max(1e-12);
        let x = |step: usize| rect.left() + rect.width() * step as f32 / total as f32;
        let y = |v: f64| rect.bottom() - 4.0 - (rect.height() - 8.0) * ((v - lo) / span) as f32;
        let line = |pts: Vec<egui::Pos2>, c: Color32| {
            if pts.len() >= 2 {
                p.add(egui::Shape::line(pts, Stroke::new(1.5, c)));
            } else if let Some(&q) = pts.first() {
                p.circle_filled(q, 2.5, c);
            }
        };
        line(
            steps
                .iter()
                .map(|e| pos2(x(e.step), y(e.train_loss)))
                .collect(),
            Color32::GRAY,
        );
        line(
            epochs
                .iter()
                .filter_map(|e| e.val_loss.map(|v| pos2(x(e.step), y(v))))
                .collect(),
            Color32::from_rgb(255, 127, 14),
        );
        let yf = |f: f64| rect.bottom() - 4.0 - (rect.height() - 8.0) * f as f32;
        line(
            epochs
                .iter()
                .filter_map(|e| e.val_macro_f1.map(|f| pos2(x(e.step), yf(f))))
                .collect(),
            Color32::from_rgb(31, 119, 180),
        );
        let font = egui::FontId::proportional(10.0);
        p.text(
            rect.left_top() + egui::vec2(3.0, 2.0),
            egui::Align2::LEFT_TOP,
            format!("loss {hi:.3}"),
            font.clone(),
            ui.visuals().text_color(),
        );
        p.text(
            rect.left_bottom() + egui::vec2(3.0, -2.0),
            egui::Align2::LEFT_BOTTOM,
            format!("{lo:.3}"),
            font.clone(),
            ui.visuals().text_color(),
        );
        if epochs.iter().any(|e| e.val_macro_f1.is_some()) {
            p.text(
                rect.right_top() + egui::vec2(-3.0, 2.0),
                egui::Align2::RIGHT_TOP,
                "macro-F1 1.0",
                font,
                Color32::from_rgb(31, 119, 180),
            );
        }
        ui.horizontal(|ui| {
            ui.colored_label(Color32::GRAY, "— train loss");
            ui.colored_label(Color32::from_rgb(255, 127, 14), "— val loss");
            if epochs.iter().any(|e| e.val_macro_f1.is_some()) {
                ui.colored_label(Color32::from_rgb(31, 119, 180), "— val macro-F1");
            }
        });
    }
}

fn layers_name(l: TrainLayers) -> String {
    match l {
        TrainLayers::Head => "head only".into(),
        TrainLayers::Last(k) => format!("last {k} + head"),
        TrainLayers::All => "all layers".into(),
    }
}
