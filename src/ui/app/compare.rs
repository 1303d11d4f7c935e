//! Model A vs B in the window: both pipelines' spatial maps side by side with one shared
//! camera, a disagreement map, the A x B confusion matrix (its cells select those cells in
//! every view) and a metrics table with one column per side.

use std::sync::Arc;

use egui::Color32;

use super::{CellscopeApp, Command, PointView};
use crate::pipeline::compare::{Comparison, SideSource};
use crate::render::camera::Camera;
use crate::render::coloring::categorical_coloring;
use crate::render::points::{PointData, pack};

/// Mismatch colour of the disagreement map (scanpy's red).
pub const MISMATCH: Color32 = Color32::from_rgb(0xd6, 0x27, 0x28);
/// Match colour of the disagreement map.
pub const MATCH: Color32 = Color32::from_gray(215);

/// A finished comparison and its three views.
pub(super) struct CompareState {
    pub result: Box<Comparison>,
    views: Vec<PointView>,
    colors: [Arc<Vec<u32>>; 3],
    data: Vec<PointData>,
    camera: Option<Camera>,
    /// A's classes and colours (views A and B share them).
    pub legend: Vec<crate::render::coloring::LegendItem>,
}

impl CellscopeApp {
    /// Runs the pipeline on sides A and B on the worker and compares them.
    pub fn compare(&mut self, a: SideSource, b: SideSource) {
        let Some(d) = &self.data else { return };
        let mut params = self.params.clone();
        params.spatial_domains = d.default_spatial().map(|_| self.n_domains);
        self.worker.send(Command::Compare {
            data: d.clone(),
            sides: [a, b],
            params,
        });
    }

    /// The last A-vs-B comparison.
    pub fn comparison(&self) -> Option<&Comparison> {
        self.compare.as_ref().map(|c| c.result.as_ref())
    }

    /// Whether the A-vs-B views are shown.
    pub fn showing_comparison(&self) -> bool {
        self.show_compare && self.compare.is_some()
    }

    /// Takes a finished comparison: builds its views (on the spatial coordinates, else the
    /// embedding) and shows them.
    pub(super) fn take_comparison(&mut self, c: Box<Comparison>) {
        let Some(base) = self.views.iter().find(|v| v.id == 2).or(self.views.first()) else {
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
        let colors = [
            packed(a.colors.clone()),
            packed(c.b_mapped.iter().map(colour_of).collect()),
            packed(
                c.disagree
                    .iter()
                    .map(|&d| if d { MISMATCH } else { MATCH })
                    .collect(),
            ),
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
        self.compare = Some(CompareState {
            result: c,
            views,
            colors,
            data: Vec::new(),
            camera: None,
            legend: a.legend.clone(),
        });
        self.show_compare = true;
        self.dirty = true;
    }

    /// Rebuilds the comparison views' point data (selection changes).
    pub(super) fn refresh_compare(&mut self) {
        let Some(cs) = &mut self.compare else { return };
        let n = cs.result.disagree.len();
        let sel = |i: usize| self.selection.get(i).copied().unwrap_or(false);
        let mut order: Vec<u32> = (0..n).filter(|&i| !sel(i)).map(|i| i as u32).collect();
        order.extend((0..n).filter(|&i| sel(i)).map(|i| i as u32));
        let mut bits = vec![0u32; n.div_ceil(32).max(1)];
        (0..n)
            .filter(|&i| sel(i))
            .for_each(|i| bits[i / 32] |= 1 << (i % 32));
        let (order, bits) = (Arc::new(order), Arc::new(bits));
        self.generation += 1;
        cs.data = cs
            .views
            .iter()
            .zip(&cs.colors)
            .map(|(v, c)| PointData {
                positions: v.positions.clone(),
                colors: c.clone(),
                order: order.clone(),
                selected: bits.clone(),
                generation: self.generation,
            })
            .collect();
    }

    /// Draws the three comparison views in `full` with one shared camera; returns the hovered
    /// cell and a finished selection.
    pub(super) fn compare_views(
        &mut self,
        ui: &mut egui::Ui,
        full: egui::Rect,
        format: Option<eframe::wgpu::TextureFormat>,
    ) -> (Option<usize>, Option<Vec<usize>>) {
        let dim = self.n_selected > 0;
        let Some(cs) = &mut self.compare else {
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
            let rect = super::column_rect(full, k, n);
            let underlay = if v.y_down {
                self.underlay.as_ref()
            } else {
                None
            };
            if let Some(d) = cs.data.get(k) {
                let r = v.show(ui, rect, d, dim, format, underlay);
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

    /// The cameras of the three comparison views (all equal after a frame: synchronised).
    pub fn comparison_cameras(&self) -> Vec<Option<Camera>> {
        self.compare
            .as_ref()
            .map(|c| c.views.iter().map(|v| v.camera).collect())
            .unwrap_or_default()
    }

    /// Geometry of comparison view `k` (rect, camera, positions), for tests.
    pub fn comparison_view_geometry(&self, k: usize) -> Option<(egui::Rect, Camera, &[[f32; 2]])> {
        let v = self.compare.as_ref()?.views.get(k)?;
        Some((v.last_rect?, v.camera?, v.positions.as_slice()))
    }

    /// The side-panel section: choose B, run, show or hide the comparison.
    pub(super) fn compare_panel(&mut self, ui: &mut egui::Ui) {
        let a_name = side_name(self.model_path.as_deref());
        ui.label(format!("A: {a_name} (the loaded model)"));
        ui.horizontal(|ui| {
            let b_name = side_name(self.compare_b.as_deref());
            ui.label(format!("B: {b_name}"));
            if ui.small_button("Model B…").clicked() {
                super::pick_file_in_background(
                    ui.ctx(),
                    &self.picked_compare,
                    "model",
                    &["ckpt", "pt", "pth", "safetensors", "json"],
                );
            }
            if self.compare_b.is_some() && ui.small_button("PCA").clicked() {
                self.compare_b = None;
            }
        });
        ui.horizontal(|ui| {
            let can = self.data.is_some() && !self.worker.busy();
            if ui.add_enabled(can, egui::Button::new("Compare")).clicked() {
                let a = self
                    .model_path
                    .clone()
                    .map_or(SideSource::Pca, SideSource::Model);
                let b = self
                    .compare_b
                    .clone()
                    .map_or(SideSource::Pca, SideSource::Model);
                self.compare(a, b);
            }
            if self.compare.is_some() {
                ui.checkbox(&mut self.show_compare, "show A vs B");
            }
        });
    }

    /// The legend while comparing: A's classes, whose colours both maps use.
    pub(super) fn compare_legend(&self, ui: &mut egui::Ui) {
        let Some(cs) = &self.compare else { return };
        ui.label("classes of A (B mapped to them)");
        for item in &cs.legend {
            ui.horizontal(|ui| {
                let (r, _) = ui.allocate_exact_size(egui::vec2(12.0, 12.0), egui::Sense::hover());
                ui.painter().circle_filled(r.center(), 5.0, item.color);
                ui.label(format!("{}  ({})", item.name, item.count));
            });
        }
        ui.horizontal(|ui| {
            let (r, _) = ui.allocate_exact_size(egui::vec2(12.0, 12.0), egui::Sense::hover());
            ui.painter().circle_filled(r.center(), 5.0, MISMATCH);
            ui.label(format!("A ≠ B  ({})", cs.result.n_disagree()));
        });
    }
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
