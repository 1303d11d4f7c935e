//! The Metrics panel of the window: ARI / NMI of the Leiden clusters and spatial domains
//! against a ground-truth obs column, macro/micro/weighted F1 of predicted types with a bar per
//! class, Leiden cluster sizes and the ground truth x cluster confusion matrix (its cells select
//! those cells), plus the A-vs-B table and confusion matrix while comparing.
//!
//! The numbers take O(cells) work on string labels, so they are computed once per change of
//! results or ground-truth column ([`MetricsCache`]), not every frame.

use std::sync::Arc;

use egui::{Color32, RichText};

use super::CellscopeApp;
use crate::analysis::metrics::{Classification, ClusterScores};
use crate::analysis::transfer::score_predictions;
use crate::pipeline::analyze::{Analysis, MISSING_LABELS, score_clusters};
use crate::pipeline::compare::{SideMetrics, side_metrics};
use crate::render::coloring::encode_in_order;
use crate::ui::colors::viridis;

/// What the metrics panels show for one results generation and ground-truth column.
pub(super) struct MetricsCache {
    /// `(results generation, ground-truth column)` the numbers belong to.
    key: (u64, Option<String>),
    /// The ground-truth column as strings (one per cell), when chosen.
    truth: Option<Arc<Vec<String>>>,
    /// Against the truth: Leiden scores and labelled cells, domain scores.
    clusters: Option<(ClusterScores, usize, Option<ClusterScores>)>,
    /// Predicted types against the truth: scores, the class names they index, cells scored.
    predicted: Option<(Classification, Vec<String>, usize)>,
    /// Ground truth (rows) x Leiden cluster (columns).
    truth_confusion: Option<Confusion>,
    /// Cells per Leiden cluster.
    cluster_sizes: Vec<usize>,
    /// While comparing: each side against the truth, and A (rows) x B (columns).
    sides: Vec<SideMetrics>,
    ab_confusion: Option<Confusion>,
}

/// A row-normalised contingency table of string labels (rows, missing labels left out) against
/// integer codes (columns), as [`confusion_heatmap`] draws it.
pub(super) struct Confusion {
    names: Vec<String>,
    counts: Vec<Vec<usize>>,
}

impl Confusion {
    /// `None` when there is nothing to draw or too much (over 60 rows or 80 columns).
    fn new(rows: &[String], cols: &[u32]) -> Option<Self> {
        let keep: Vec<usize> = (0..rows.len())
            .filter(|&i| !MISSING_LABELS.contains(&rows[i].as_str()))
            .collect();
        let labels: Vec<&String> = keep.iter().map(|&i| &rows[i]).collect();
        let (codes, names) = encode_in_order(&labels, None);
        let k = cols.iter().max().map_or(0, |m| *m as usize + 1);
        if names.is_empty() || k == 0 || names.len() > 60 || k > 80 {
            return None;
        }
        let mut counts = vec![vec![0usize; k]; names.len()];
        for (j, &i) in keep.iter().enumerate() {
            counts[codes[j] as usize][cols[i] as usize] += 1;
        }
        Some(Self { names, counts })
    }

    /// The cells of table cell `(r, c)`.
    fn cells(&self, rows: &[String], cols: &[u32], (r, c): (usize, usize)) -> Vec<usize> {
        (0..rows.len())
            .filter(|&i| rows[i] == self.names[r] && cols[i] as usize == c)
            .collect()
    }
}

impl CellscopeApp {
    /// Brings `self.metrics` up to date: recomputed when the results or the ground-truth column
    /// changed since the last call.
    fn metrics_cache(&mut self) {
        let key = (self.results_gen, self.truth_key.clone());
        if self.metrics.as_ref().is_none_or(|m| m.key != key) {
            self.metrics = Some(self.compute_metrics(key));
        }
    }

    fn compute_metrics(&self, key: (u64, Option<String>)) -> MetricsCache {
        let truth: Option<Arc<Vec<String>>> = key.1.as_ref().and_then(|k| {
            let col = self.data.as_ref()?.obs.column(k)?;
            Some(Arc::new(
                (0..col.len()).map(|i| col.value_string(i)).collect(),
            ))
        });
        let leiden = self.analysis.as_ref().map(|a| a.leiden.as_slice());
        let clusters = truth.as_ref().zip(self.analysis.as_ref()).map(|(t, a)| {
            let (s, n) = score_clusters(t, &a.leiden);
            let dom = a.domains.as_ref().map(|(d, _)| score_clusters(t, d).0);
            (s, n, dom)
        });
        let predicted = truth
            .as_ref()
            .zip(self.prediction.as_ref())
            .map(|(t, (p, _))| score_predictions(p, t, None, &MISSING_LABELS));
        let truth_confusion = truth
            .as_ref()
            .zip(leiden)
            .and_then(|(t, l)| Confusion::new(t, l));
        let mut cluster_sizes = Vec::new();
        for &c in leiden.unwrap_or_default() {
            let c = c as usize;
            if c >= cluster_sizes.len() {
                cluster_sizes.resize(c + 1, 0);
            }
            cluster_sizes[c] += 1;
        }
        let (sides, ab_confusion) = match &self.compare {
            Some(cs) => {
                let c = &cs.result;
                let sides = truth
                    .as_ref()
                    .map(|t| c.sides.iter().map(|s| side_metrics(s, t)).collect())
                    .unwrap_or_default();
                let (b_codes, _) = encode_in_order(&c.b_labels, None);
                (sides, Confusion::new(&c.a_labels, &b_codes))
            }
            None => (Vec::new(), None),
        };
        MetricsCache {
            key,
            truth,
            clusters,
            predicted,
            truth_confusion,
            cluster_sizes,
            sides,
            ab_confusion,
        }
    }

    pub(super) fn metrics_panel(&mut self, ui: &mut egui::Ui) {
        if self.showing_comparison() {
            self.compare_metrics(ui);
            ui.separator();
        }
        ui.label(RichText::new("Metrics").strong());
        let (Some(d), Some(a)) = (&self.data, &self.analysis) else {
            ui.label("run the pipeline to see metrics");
            return;
        };
        ui.label(format!("representation: {}", self.rep_name));
        ui.collapsing("timings", |ui| ui.label(seconds(a)));
        ui.label(format!(
            "Leiden: {} clusters, modularity {:.3}",
            a.leiden.iter().max().map_or(0, |m| m + 1),
            a.modularity
        ));
        let mut truth = self.truth_key.clone();
        egui::ComboBox::from_label("ground truth")
            .selected_text(truth.clone().unwrap_or("none".into()))
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut truth, None, "none");
                for name in d.obs.column_names() {
                    ui.selectable_value(&mut truth, Some(name.to_string()), name);
                }
            });
        self.truth_key = truth;
        self.metrics_cache();
        let (Some(a), Some(m)) = (&self.analysis, &self.metrics) else {
            return;
        };
        let key = self.truth_key.as_deref().unwrap_or_default();
        let mut clicked = None;
        if let Some((leiden, n, domains)) = &m.clusters {
            egui::Grid::new("metrics").striped(true).show(ui, |ui| {
                ui.label("");
                ui.label("ARI");
                ui.label("NMI");
                ui.end_row();
                for (name, s) in [("Leiden", Some(leiden)), ("domains", domains.as_ref())] {
                    if let Some(s) = s {
                        ui.label(name);
                        ui.label(format!("{:.3}", s.ari));
                        ui.label(format!("{:.3}", s.nmi));
                        ui.end_row();
                    }
                }
            });
            ui.label(format!("{n} labelled cells"));
            if let Some((c, names, n)) = &m.predicted {
                ui.label(format!(
                    "predicted vs {key} ({n} cells): macro-F1 {:.3}, micro-F1 {:.3}, weighted F1 {:.3}",
                    c.macro_f1, c.micro_f1, c.weighted_f1
                ));
                let bars: Vec<(String, f64)> = c
                    .classes
                    .iter()
                    .zip(&c.f1)
                    .map(|(&k, &f)| (names[k as usize].clone(), f))
                    .collect();
                bar_chart(ui, "F1 per class", &bars, 1.0);
            }
            ui.label("ground truth (rows) × Leiden cluster (columns); click a cell to select those cells");
            if let (Some(cm), Some(t)) = (&m.truth_confusion, &m.truth) {
                clicked = confusion_heatmap(ui, cm).map(|rc| cm.cells(t, &a.leiden, rc));
            }
        }
        let max = m.cluster_sizes.iter().copied().max().unwrap_or(1) as f64;
        let bars: Vec<(String, f64)> = m
            .cluster_sizes
            .iter()
            .enumerate()
            .map(|(k, &n)| (format!("{k} ({n})"), n as f64))
            .collect();
        bar_chart(ui, "Leiden cluster sizes", &bars, max);
        if clicked.is_some() {
            self.pending_selection = clicked;
        }
    }

    /// The right panel while comparing: metrics per side and the A x B confusion matrix.
    pub(super) fn compare_metrics(&mut self, ui: &mut egui::Ui) {
        self.metrics_cache();
        let (Some(cs), Some(m)) = (&self.compare, &self.metrics) else {
            return;
        };
        let c = &cs.result;
        ui.label(RichText::new("A vs B").strong());
        let n = c.disagree.len();
        let nd = c.n_disagree();
        ui.label(format!(
            "disagreement: {nd} of {n} cells ({:.1} %); labels: {}",
            100.0 * nd as f64 / n.max(1) as f64,
            if c.sides[0].predicted.is_some() && c.sides[1].predicted.is_some() {
                "predicted types"
            } else {
                "Leiden clusters (B mapped to A by overlap)"
            }
        ));
        let metrics = &m.sides;
        egui::Grid::new("ab_metrics").striped(true).show(ui, |ui| {
            ui.label("");
            ui.label("A");
            ui.label("B");
            ui.end_row();
            ui.label("Leiden clusters");
            for s in &c.sides {
                ui.label((s.analysis.leiden.iter().max().map_or(0, |m| m + 1)).to_string());
            }
            ui.end_row();
            ui.label("modularity");
            for s in &c.sides {
                ui.label(format!("{:.3}", s.analysis.modularity));
            }
            ui.end_row();
            if !metrics.is_empty() {
                ui.label("ARI (Leiden)");
                for m in metrics {
                    ui.label(format!("{:.3}", m.leiden_ari));
                }
                ui.end_row();
                ui.label("NMI (Leiden)");
                for m in metrics {
                    ui.label(format!("{:.3}", m.leiden_nmi));
                }
                ui.end_row();
                if metrics.iter().any(|m| m.macro_f1.is_some()) {
                    ui.label("macro-F1");
                    for m in metrics {
                        ui.label(m.macro_f1.map_or("-".into(), |v| format!("{v:.3}")));
                    }
                    ui.end_row();
                    ui.label("accuracy");
                    for m in metrics {
                        ui.label(m.accuracy.map_or("-".into(), |v| format!("{v:.3}")));
                    }
                    ui.end_row();
                }
            }
        });
        if metrics.is_empty() {
            ui.label("choose a ground-truth column (Metrics) for ARI / NMI / F1");
        }
        ui.label("A (rows) × B (columns); click a cell to select those cells");
        let clicked = m.ab_confusion.as_ref().and_then(|cm| {
            let rc = confusion_heatmap(ui, cm)?;
            Some(cm.cells(&c.a_labels, &encode_in_order(&c.b_labels, None).0, rc))
        });
        if clicked.is_some() {
            self.pending_selection = clicked;
        }
    }
}

/// Seconds per pipeline step, on one line.
fn seconds(a: &Analysis) -> String {
    a.seconds
        .iter()
        .map(|(s, t)| format!("{s:?} {t:.1}s"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Horizontal bars `(label, value)` scaled to `max`, drawn with the painter; values are printed
/// beside the bars when `max <= 1` (scores).
fn bar_chart(ui: &mut egui::Ui, title: &str, bars: &[(String, f64)], max: f64) {
    ui.label(title);
    let row = 14.0;
    let width = ui.available_width().max(120.0);
    let (rect, _) = ui.allocate_exact_size(
        egui::vec2(width, row * bars.len() as f32),
        egui::Sense::hover(),
    );
    let p = ui.painter_at(rect);
    let label_w = (width * 0.45).min(130.0);
    for (i, (name, v)) in bars.iter().enumerate() {
        let y = rect.top() + i as f32 * row;
        p.text(
            egui::pos2(rect.left(), y + row / 2.0),
            egui::Align2::LEFT_CENTER,
            short_label(name, 20),
            egui::FontId::proportional(10.0),
            ui.visuals().text_color(),
        );
        let w = ((v / max.max(1e-12)) as f32).clamp(0.0, 1.0) * (width - label_w - 36.0);
        let bar = egui::Rect::from_min_size(
            egui::pos2(rect.left() + label_w, y + 2.0),
            egui::vec2(w, row - 4.0),
        );
        p.rect_filled(bar, 1.0, Color32::from_rgb(31, 119, 180));
        if max <= 1.0 {
            p.text(
                egui::pos2(bar.right() + 3.0, y + row / 2.0),
                egui::Align2::LEFT_CENTER,
                format!("{v:.2}"),
                egui::FontId::proportional(10.0),
                ui.visuals().text_color(),
            );
        }
    }
}

/// `s` cut to `max` characters with an ellipsis, for labels in a fixed-width column.
fn short_label(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(max - 1).collect::<String>())
    }
}

/// Draws a [`Confusion`] as a heatmap (rows normalised, viridis); returns the clicked table
/// cell `(row, column)`.
fn confusion_heatmap(ui: &mut egui::Ui, cm: &Confusion) -> Option<(usize, usize)> {
    let k = cm.counts.first().map_or(0, Vec::len);
    let cell = (220.0 / k as f32).clamp(4.0, 18.0);
    let label_w = 90.0;
    let (rect, resp) = ui.allocate_exact_size(
        egui::vec2(label_w + cell * k as f32, cell * cm.names.len() as f32),
        egui::Sense::click(),
    );
    resp.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Table, true, "confusion matrix"));
    let painter = ui.painter_at(rect);
    let mut clicked = None;
    for (r, row) in cm.counts.iter().enumerate() {
        let total = row.iter().sum::<usize>().max(1) as f32;
        let y = rect.top() + r as f32 * cell;
        painter.text(
            egui::pos2(rect.left(), y + cell / 2.0),
            egui::Align2::LEFT_CENTER,
            short_label(&cm.names[r], 14),
            egui::FontId::proportional(cell.min(11.0)),
            ui.visuals().text_color(),
        );
        for (c, &v) in row.iter().enumerate() {
            let cr = egui::Rect::from_min_size(
                egui::pos2(rect.left() + label_w + c as f32 * cell, y),
                egui::vec2(cell - 1.0, cell - 1.0),
            );
            painter.rect_filled(cr, 0.0, viridis(v as f32 / total));
            if resp.clicked() && resp.interact_pointer_pos().is_some_and(|p| cr.contains(p)) {
                clicked = Some((r, c));
            }
        }
    }
    clicked
}
