//! Model A vs B in the window: both pipelines' spatial maps side by side with one shared
//! camera, a disagreement map, the A x B confusion matrix (its cells select those cells in
//! every view, see [`super::metrics`]) and a metrics table with one column per side.

use std::path::PathBuf;
use std::sync::Arc;

use egui::Color32;

use super::{Action, MODEL_FILES, Picked, model_path_of, pick_file, swatch, take};
use crate::pipeline::jobs::coloring::{LegendItem, categorical_coloring};
use crate::pipeline::jobs::compare::{Comparison, SideSource};
use crate::render::camera::Camera;
use crate::render::points::{PointData, pack};
use crate::ui::explorer::{Explorer, selection_bits};
use crate::ui::panels::pipeline::DomainChoice;
use crate::ui::view::PointView;

/// Mismatch colour of the disagreement map (scanpy's red).
pub const MISMATCH: Color32 = Color32::from_rgb(0xd6, 0x27, 0x28);
/// Match colour of the disagreement map.
pub const MATCH: Color32 = Color32::from_gray(215);

/// A finished comparison and its three views.
pub struct CompareState {
    /// The comparison.
    pub result: Arc<Comparison>,
    views: Vec<PointView>,
    colors: [Arc<Vec<u32>>; 3],
    data: Vec<PointData>,
    camera: Option<Camera>,
    /// A's classes and colours (views A and B share them).
    legend: Vec<LegendItem>,
}

/// The Compare panel's state.
#[derive(Default)]
pub struct ComparePanel {
    /// The last comparison.
    pub state: Option<CompareState>,
    /// Whether the A-vs-B views replace the usual ones.
    pub show: bool,
    /// Side B's model (`None`: the PCA baseline).
    b: Option<PathBuf>,
    /// Compare the sides' spatial domains (each by its own method) instead of their clusters.
    pub by_domains: bool,
    /// Each side's spatial-domain method when domains are compared.
    pub domains: [DomainChoice; 2],
    picked: Picked,
}

/// A comparison side as the panel names it: the model's file or folder name, or "PCA baseline"
/// without a model.
fn side_name(model: Option<&std::path::Path>) -> String {
    model
        .and_then(|p| p.file_name())
        .map_or("PCA baseline".to_string(), |f| {
            f.to_string_lossy().to_string()
        })
}

impl ComparePanel {
    /// Takes a model B chosen in the dialog since the last frame.
    pub fn poll(&mut self) {
        if let Some(p) = take(&self.picked) {
            self.b = Some(model_path_of(p));
        }
    }

    /// Whether the A-vs-B views are shown.
    pub fn showing(&self) -> bool {
        self.show && self.state.is_some()
    }

    /// The side-panel section: choose B, run, show or hide the comparison.
    pub fn show(&mut self, ui: &mut egui::Ui, x: &Explorer, busy: bool) -> Option<Action> {
        let mut action = None;
        let a_name = side_name(x.model_path.as_deref());
        ui.label(format!("A: {a_name} (the loaded model)"));
        ui.horizontal(|ui| {
            ui.label(format!("B: {}", side_name(self.b.as_deref())));
            if ui.small_button("Model B…").clicked() {
                pick_file(ui.ctx(), &self.picked, "model", MODEL_FILES);
            }
            if self.b.is_some() && ui.small_button("PCA").clicked() {
                self.b = None;
            }
        });
        let spatial = x
            .data
            .as_ref()
            .is_some_and(|d| d.default_spatial().is_some());
        if spatial {
            ui.checkbox(&mut self.by_domains, "compare spatial domains");
        }
        if spatial && self.by_domains {
            self.domains[0].show(ui, "A");
            self.domains[1].show(ui, "B");
        }
        ui.horizontal(|ui| {
            let can = x.data.is_some() && !busy;
            if ui.add_enabled(can, egui::Button::new("Compare")).clicked() {
                let side = |m: Option<PathBuf>| m.map_or(SideSource::Pca, SideSource::Model);
                let domains = (spatial && self.by_domains)
                    .then(|| [self.domains[0].params(), self.domains[1].params()]);
                action = Some(Action::Compare(
                    side(x.model_path.clone()),
                    side(self.b.clone()),
                    domains,
                ));
            }
            if self.state.is_some() {
                let mut show = self.show;
                if ui.checkbox(&mut show, "show A vs B").changed() {
                    action = Some(Action::ShowComparison(show));
                }
            }
        });
        action
    }

    /// Takes a finished comparison: builds its views (on the spatial coordinates, else the
    /// embedding) and shows them.
    pub fn take(&mut self, c: Arc<Comparison>, x: &Explorer) {
        let Some(base) = x.views.iter().find(|v| v.id == 2).or(x.views.first()) else {
            return;
        };
        let a = categorical_coloring(&c.a_labels, None, None);
        let colour_of = |name: &String| {
            a.legend
                .iter()
                .find(|l| &l.name == name)
                .map_or(Color32::GRAY, |l| l.color)
        };
        let packed = |v: Vec<Color32>| Arc::new(v.into_iter().map(pack).collect::<Vec<_>>());
        let disagree = c.disagree.iter().map(|&d| if d { MISMATCH } else { MATCH });
        let colors = [
            packed(a.colors.clone()),
            packed(c.b_mapped.iter().map(colour_of).collect()),
            packed(disagree.collect()),
        ];
        let n_dis = c.n_disagree();
        let pct = 100.0 * n_dis as f64 / c.disagree.len().max(1) as f64;
        let titles = [
            format!("A: {}", c.sides[0].name),
            format!("B: {} (classes mapped to A)", c.sides[1].name),
            format!("A ≠ B: {n_dis} cells ({pct:.1} %)"),
        ];
        let views = titles
            .iter()
            .enumerate()
            .map(|(k, t)| {
                let mut v = PointView::new(
                    11 + k as u64,
                    t,
                    Vec::new(),
                    base.y_down,
                    base.units.clone(),
                );
                v.positions = base.positions.clone();
                v
            })
            .collect();
        self.state = Some(CompareState {
            result: c,
            views,
            colors,
            data: Vec::new(),
            camera: None,
            legend: a.legend,
        });
        self.show = true;
    }

    /// Rebuilds the comparison views' point data (the selection changed); `generation` is the
    /// upload generation to use.
    pub fn refresh(&mut self, selection: &[bool], generation: u64) {
        let Some(cs) = &mut self.state else { return };
        let n = cs.result.disagree.len();
        let sel = |i: usize| selection.get(i).copied().unwrap_or(false);
        let mut order: Vec<u32> = (0..n).filter(|&i| !sel(i)).map(|i| i as u32).collect();
        order.extend((0..n).filter(|&i| sel(i)).map(|i| i as u32));
        let mut flags = selection.to_vec();
        flags.resize(n, false);
        let (order, bits) = (Arc::new(order), Arc::new(selection_bits(&flags)));
        cs.data = cs
            .views
            .iter()
            .zip(&cs.colors)
            .map(|(v, c)| PointData {
                positions: v.positions.clone(),
                colors: c.clone(),
                order: order.clone(),
                selected: bits.clone(),
                generation,
            })
            .collect();
    }

    /// Draws the three comparison views in `full` with one shared camera; returns the hovered
    /// cell and a finished selection.
    pub fn views(
        &mut self,
        ui: &mut egui::Ui,
        full: egui::Rect,
        format: Option<eframe::wgpu::TextureFormat>,
        x: &Explorer,
    ) -> (Option<usize>, Option<Vec<usize>>) {
        let dim = x.n_selected > 0;
        let Some(cs) = &mut self.state else {
            return (None, None);
        };
        let n = cs.views.len();
        let (mut hovered, mut selected) = (None, None);
        let before = cs.camera;
        let mut moved = None;
        for (k, v) in cs.views.iter_mut().enumerate() {
            if before.is_some() {
                v.camera = before;
            }
            let rect = crate::ui::app::column_rect(full, k, n);
            if let Some(d) = cs.data.get(k) {
                let r = v.show(
                    ui,
                    rect,
                    d,
                    dim,
                    format,
                    crate::ui::view::Backdrop::of(
                        v.y_down,
                        x.underlay.as_ref(),
                        x.outlines.as_deref(),
                        x.fill_outlines,
                    ),
                );
                hovered = hovered.or(r.hovered);
                selected = selected.or(r.selected);
            }
            if v.camera != before && moved.is_none() {
                moved = v.camera;
            }
        }
        if let Some(c) = moved {
            cs.camera = Some(c);
            ui.ctx().request_repaint();
        }
        (hovered, selected)
    }

    /// The legend while comparing: A's classes, whose colours both maps use.
    pub fn legend(&self, ui: &mut egui::Ui) {
        let Some(cs) = &self.state else { return };
        ui.label("classes of A (B mapped to them)");
        for item in &cs.legend {
            swatch(ui, item.color, format!("{}  ({})", item.name, item.count));
        }
        let n = cs.result.n_disagree();
        swatch(ui, MISMATCH, format!("A ≠ B  ({n})"));
    }

    /// The cameras of the three comparison views (all equal after a frame: synchronised).
    pub fn cameras(&self) -> Vec<Option<Camera>> {
        self.state
            .as_ref()
            .map(|c| c.views.iter().map(|v| v.camera).collect())
            .unwrap_or_default()
    }

    /// Geometry of comparison view `k` (rect, camera, positions), for tests.
    pub fn view_geometry(&self, k: usize) -> Option<(egui::Rect, Camera, &[[f32; 2]])> {
        let v = self.state.as_ref()?.views.get(k)?;
        Some((v.last_rect?, v.camera?, v.positions.as_slice()))
    }
}
