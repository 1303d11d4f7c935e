//! The Benchmark panel: scSSL-Bench's comparison on the open dataset (PCA and the
//! self-supervised objectives with the same seed, HVGs and epochs, plus the loaded model's
//! embedding when there is one), scored with the scib-metrics set; the results table with a
//! row per method (best total first) whose name shows that method's UMAP in the embedding
//! view. The work runs on the worker ([`crate::pipeline::jobs::benchmark`]).

use std::sync::Arc;

use egui::{Color32, RichText};

use super::Action;
use crate::data::anndata::AnnData;
use crate::model::train::ObjectiveKind;
use crate::pipeline::jobs::benchmark::{BenchmarkJob, BenchmarkResult, COLUMNS, Method};
use crate::render::colors::viridis;

/// Short column titles of the table, in [`COLUMNS`] order.
const SHORT: [&str; 13] = [
    "iso", "NMI", "ARI", "sil", "cLISI", "sil-b", "iLISI", "kBET", "gc", "PCR", "bio", "batch",
    "total",
];

/// The panel's state.
pub struct BenchmarkPanel {
    batch_key: Option<String>,
    label_key: Option<String>,
    epochs: usize,
    /// Which methods run (PCA, then the objectives without gene programmes).
    methods: Vec<(Method, bool)>,
    /// The last results.
    pub result: Option<Arc<BenchmarkResult>>,
    /// The row whose UMAP the embedding view shows.
    pub shown: Option<usize>,
    /// Whether the results window is open.
    window_open: bool,
}

impl Default for BenchmarkPanel {
    fn default() -> Self {
        let mut methods = vec![(Method::Pca, true)];
        methods.extend(
            ObjectiveKind::ALL
                .into_iter()
                .filter(|k| !k.needs_programmes())
                .map(|k| (Method::Ssl(k), true)),
        );
        BenchmarkPanel {
            batch_key: None,
            label_key: None,
            epochs: 20,
            methods,
            result: None,
            shown: None,
            window_open: false,
        }
    }
}

impl BenchmarkPanel {
    /// Keeps the results of a finished benchmark.
    pub fn take(&mut self, r: Arc<BenchmarkResult>) {
        self.result = Some(r);
        self.shown = None;
        self.window_open = true;
    }

    /// Draws the panel: keys, epochs and methods, the run button, then the table.
    pub fn show(
        &mut self,
        ui: &mut egui::Ui,
        data: Option<&AnnData>,
        busy: bool,
    ) -> Option<Action> {
        let Some(d) = data else {
            ui.label("open a dataset first");
            return None;
        };
        let columns: Vec<String> = d
            .obs
            .column_names()
            .into_iter()
            .map(str::to_string)
            .collect();
        for (label, key) in [
            ("batch column", &mut self.batch_key),
            ("label column", &mut self.label_key),
        ] {
            egui::ComboBox::from_label(label)
                .selected_text(key.clone().unwrap_or("…".into()))
                .show_ui(ui, |ui| {
                    for c in &columns {
                        ui.selectable_value(key, Some(c.clone()), c);
                    }
                });
        }
        ui.add(egui::Slider::new(&mut self.epochs, 1..=200).text("epochs"));
        ui.horizontal_wrapped(|ui| {
            for (m, on) in &mut self.methods {
                ui.checkbox(on, m.name());
            }
        });
        let mut action = None;
        let ready = self.batch_key.is_some() && self.label_key.is_some();
        if ui
            .add_enabled(!busy && ready, egui::Button::new("Run benchmark"))
            .on_disabled_hover_text("choose the batch and label columns")
            .clicked()
            && let (Some(b), Some(l)) = (&self.batch_key, &self.label_key)
        {
            action = Some(Action::Benchmark(Box::new(BenchmarkJob {
                label_key: l.clone(),
                batch_key: b.clone(),
                methods: self.methods.iter().filter(|m| m.1).map(|m| m.0).collect(),
                epochs: self.epochs,
                batch_size: Some(256),
                seed: 0,
                n_top_genes: 2000,
                // The app sets the window's backend and adds the loaded model's embedding.
                backend: crate::model::BackendChoice::Auto,
                given: Vec::new(),
            })));
        }
        if let Some(r) = &self.result {
            ui.checkbox(
                &mut self.window_open,
                format!("results window ({} methods)", r.rows.len()),
            );
        }
        action
    }

    /// The results window (floating over the views while the results are open): the table,
    /// best total first; a method's name shows its UMAP.
    pub fn window(&mut self, ctx: &egui::Context) -> Option<Action> {
        let r = self.result.clone()?;
        let mut open = self.window_open;
        let mut action = None;
        egui::Window::new("Benchmark results")
            .open(&mut open)
            .default_pos(egui::pos2(340.0, 420.0))
            .default_width(680.0)
            .resizable(true)
            .show(ctx, |ui| {
                ui.label(format!(
                    "{} genes; scib-metrics' scores (higher is better), total = 0.4 batch + 0.6 bio",
                    r.n_genes
                ));
                action = self.table(ui, &r);
            });
        self.window_open = open;
        action
    }

    /// The results table, best total first; a method's name shows its UMAP.
    fn table(&mut self, ui: &mut egui::Ui, r: &BenchmarkResult) -> Option<Action> {
        let mut order: Vec<usize> = (0..r.rows.len()).collect();
        order.sort_by(|&a, &b| r.rows[b].scores.total.total_cmp(&r.rows[a].scores.total));
        let mut action = None;
        egui::ScrollArea::both()
            .id_salt("bench_table")
            .show(ui, |ui| {
                egui::Grid::new("bench_grid").striped(true).show(ui, |ui| {
                    ui.label(RichText::new("method").strong());
                    for (s, full) in SHORT.iter().zip(COLUMNS) {
                        ui.label(RichText::new(*s).strong()).on_hover_text(full);
                    }
                    ui.end_row();
                    for &i in &order {
                        let row = &r.rows[i];
                        let selected = self.shown == Some(i);
                        if ui
                            .selectable_label(selected, &row.name)
                            .on_hover_text("show this method's UMAP in the embedding view")
                            .clicked()
                        {
                            self.shown = Some(i);
                            action = Some(Action::ShowBenchmarkUmap(i));
                        }
                        for v in row.values() {
                            match v {
                                Some(v) => {
                                    let c = viridis(v.clamp(0.0, 1.0) as f32);
                                    let text = if v < 0.55 {
                                        Color32::WHITE
                                    } else {
                                        Color32::BLACK
                                    };
                                    ui.label(
                                        RichText::new(format!("{v:.2}"))
                                            .background_color(c)
                                            .color(text)
                                            .monospace(),
                                    );
                                }
                                None => {
                                    ui.label("n/a");
                                }
                            }
                        }
                        ui.end_row();
                    }
                });
            });
        action
    }
}
