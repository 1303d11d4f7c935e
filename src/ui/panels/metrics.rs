//! The Metrics panel: ARI / NMI of the Leiden clusters and spatial domains against a
//! ground-truth obs column, macro/micro/weighted F1 of predicted types with a bar per class,
//! Leiden cluster sizes and the ground truth x cluster confusion matrix (its cells select those
//! cells), plus the A-vs-B table and confusion matrix while comparing. The numbers come from
//! the worker ([`crate::pipeline::jobs::dashboard`]), asked for once per change of results or
//! ground-truth column.

use std::sync::Arc;

use egui::{Color32, RichText};

use super::Action;
use super::compare::ComparePanel;
use crate::pipeline::jobs::analyze::Analysis;
use crate::pipeline::jobs::dashboard::{Confusion, Dashboard, DashboardInputs};
use crate::pipeline::worker::Worker;
use crate::render::colors::viridis;
use crate::ui::explorer::Explorer;

/// The Metrics panel's state: the dashboard shown and what it was asked for.
#[derive(Default)]
pub struct MetricsPanel {
    /// The numbers shown (those of `asked` once they arrive).
    dashboard: Option<Arc<Dashboard>>,
    /// `(results generation, ground-truth column)` last asked for, and the request's number.
    asked: Option<((u64, Option<String>), u64)>,
    /// The number of the request `dashboard` answers.
    shown: u64,
}

impl MetricsPanel {
    /// Asks the worker for the dashboard when the results or the ground truth changed.
    pub fn update(&mut self, x: &Explorer, compare: &ComparePanel, worker: &Worker) {
        let Some(data) = x.data.clone() else { return };
        let key = (x.results_gen, x.truth_key.clone());
        if self.asked.as_ref().is_some_and(|(k, _)| *k == key) {
            return;
        }
        let n = self.asked.as_ref().map_or(1, |(_, n)| n + 1);
        let inputs = DashboardInputs {
            data,
            truth_key: x.truth_key.clone(),
            analysis: x.analysis.clone(),
            prediction: x.prediction.clone(),
            comparison: compare.state.as_ref().map(|c| c.result.clone()),
        };
        if worker.dashboard(n, inputs) {
            self.asked = Some((key, n));
        }
    }

    /// Takes a dashboard from the worker when it answers the newest request.
    pub fn take(&mut self, request: u64, d: Arc<Dashboard>) {
        if self.asked.as_ref().is_some_and(|(_, n)| *n == request) {
            self.dashboard = Some(d);
            self.shown = request;
        }
    }

    /// Whether the dashboard shown answers the newest request (true before any).
    pub fn up_to_date(&self) -> bool {
        self.asked.as_ref().is_none_or(|(_, n)| *n == self.shown)
    }

    /// Draws the panel (the A-vs-B part first while comparing).
    pub fn show(&self, ui: &mut egui::Ui, x: &Explorer, compare: &ComparePanel) -> Vec<Action> {
        let mut out = Vec::new();
        if compare.showing() {
            out.extend(self.compare_metrics(ui, compare));
            ui.separator();
        }
        ui.label(RichText::new("Metrics").strong());
        let (Some(d), Some(a)) = (&x.data, &x.analysis) else {
            ui.label("run the pipeline to see metrics");
            return out;
        };
        ui.label(format!("representation: {}", x.rep_name));
        ui.collapsing("timings", |ui| ui.label(seconds(a)));
        ui.label(format!(
            "Leiden: {} clusters, modularity {:.3}",
            a.leiden.iter().max().map_or(0, |m| m + 1),
            a.modularity
        ));
        let mut truth = x.truth_key.clone();
        egui::ComboBox::from_label("ground truth")
            .selected_text(truth.clone().unwrap_or("none".into()))
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut truth, None, "none");
                for name in d.obs.column_names() {
                    ui.selectable_value(&mut truth, Some(name.to_string()), name);
                }
            });
        if truth != x.truth_key {
            out.push(Action::SetTruth(truth));
        }
        if let Some(m) = &self.dashboard {
            out.extend(scores(ui, m, a, x.truth_key.as_deref().unwrap_or_default()));
        }
        out
    }

    /// The right panel while comparing: metrics per side and the A x B confusion matrix.
    fn compare_metrics(&self, ui: &mut egui::Ui, compare: &ComparePanel) -> Option<Action> {
        let (Some(cs), Some(m)) = (&compare.state, &self.dashboard) else {
            return None;
        };
        let c = &cs.result;
        ui.label(RichText::new("A vs B").strong());
        let n = c.disagree.len();
        let nd = c.n_disagree();
        let both = c.sides[0].predicted.is_some() && c.sides[1].predicted.is_some();
        ui.label(format!(
            "disagreement: {nd} of {n} cells ({:.1} %); labels: {}",
            100.0 * nd as f64 / n.max(1) as f64,
            if both {
                "predicted types"
            } else {
                "Leiden clusters (B mapped to A by overlap)"
            }
        ));
        side_table(ui, c, &m.sides);
        if m.sides.is_empty() {
            ui.label("choose a ground-truth column (Metrics) for ARI / NMI / F1");
        }
        ui.label("A (rows) × B (columns); click a cell to select those cells");
        let cm = m.ab_confusion.as_ref()?;
        let rc = confusion_heatmap(ui, cm)?;
        Some(Action::Select(cm.cells(&c.a_labels, &m.b_codes, rc)))
    }
}

/// Scores against the ground truth, F1 bars, the confusion matrix and the cluster sizes.
fn scores(ui: &mut egui::Ui, m: &Dashboard, a: &Analysis, key: &str) -> Option<Action> {
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
        ui.label(
            "ground truth (rows) × Leiden cluster (columns); click a cell to select those cells",
        );
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
    clicked.map(Action::Select)
}

/// One metric of a side, when it has it.
type MetricOf = fn(&crate::pipeline::jobs::compare::SideMetrics) -> Option<f64>;

/// One column per side: clusters, modularity and, with a ground truth, ARI, NMI, macro-F1 and
/// accuracy.
fn side_table(
    ui: &mut egui::Ui,
    c: &crate::pipeline::jobs::compare::Comparison,
    metrics: &[crate::pipeline::jobs::compare::SideMetrics],
) {
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
        if metrics.is_empty() {
            return;
        }
        let rows: [(&str, MetricOf); 6] = [
            ("ARI (Leiden)", |m| Some(m.leiden_ari)),
            ("NMI (Leiden)", |m| Some(m.leiden_nmi)),
            ("ARI (domains)", |m| m.domain_ari),
            ("NMI (domains)", |m| m.domain_nmi),
            ("macro-F1", |m| m.macro_f1),
            ("accuracy", |m| m.accuracy),
        ];
        for (name, get) in &rows {
            if metrics.iter().all(|m| get(m).is_none()) {
                continue;
            }
            ui.label(*name);
            for m in metrics {
                ui.label(get(m).map_or("-".into(), |v| format!("{v:.3}")));
            }
            ui.end_row();
        }
    });
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
