//! The legend: what the cells are coloured by, each category's colour and count (click hides a
//! category, double-click shows all) or the colour bar of a continuous colouring, the
//! selection's size; while comparing, A's classes and the disagreement colour.

use egui::{Color32, RichText};

use super::Action;
use super::compare::ComparePanel;
use crate::pipeline::jobs::coloring::{ColorBy, Ramp};
use crate::ui::explorer::Explorer;

/// Draws the legend.
pub fn show(ui: &mut egui::Ui, x: &Explorer, compare: &ComparePanel) -> Vec<Action> {
    let mut out = Vec::new();
    ui.label(RichText::new("Legend").strong());
    ui.label(format!("selected: {}", x.n_selected));
    if x.n_selected > 0 && ui.button("Clear selection").clicked() {
        out.push(Action::Select(Vec::new()));
    }
    if compare.showing() {
        compare.legend(ui);
        return out;
    }
    if x.data.is_some() {
        ui.label(format!("colour: {}", x.color_label()));
    }
    if let Some((lo, hi)) = x.coloring.range {
        colour_bar(ui, lo, hi, x.color_by == ColorBy::DomainConfidence);
    }
    egui::ScrollArea::vertical()
        .id_salt("legend")
        .max_height(320.0)
        .show(ui, |ui| {
            for item in &x.coloring.legend {
                let hidden = x.hidden.contains(&item.name);
                let text = format!("{}  ({})", item.name, item.count);
                let grey = Color32::from_gray(220);
                let r = ui.horizontal(|ui| {
                    let (r, _) =
                        ui.allocate_exact_size(egui::vec2(12.0, 12.0), egui::Sense::hover());
                    let c = if hidden { grey } else { item.color };
                    ui.painter().circle_filled(r.center(), 5.0, c);
                    ui.selectable_label(!hidden, text)
                });
                if r.inner.double_clicked() {
                    out.push(Action::ToggleHidden(None));
                } else if r.inner.clicked() {
                    out.push(Action::ToggleHidden(Some(item.name.clone())));
                }
            }
        });
    out
}

/// The colour ramp of the current continuous colouring, `lo` to `hi` (viridis, or grey to red
/// for confidence), with its range.
fn colour_bar(ui: &mut egui::Ui, lo: f32, hi: f32, confidence: bool) {
    let ramp = if confidence {
        Ramp::Confidence
    } else {
        Ramp::Viridis
    };
    let (rect, _) = ui.allocate_exact_size(egui::vec2(200.0, 12.0), egui::Sense::hover());
    let steps = 50;
    for s in 0..steps {
        let t = s as f32 / (steps - 1) as f32;
        let x0 = rect.left() + rect.width() * s as f32 / steps as f32;
        ui.painter().rect_filled(
            egui::Rect::from_min_max(
                egui::pos2(x0, rect.top()),
                egui::pos2(x0 + rect.width() / steps as f32 + 0.5, rect.bottom()),
            ),
            0.0,
            ramp.at(t),
        );
    }
    ui.label(format!("{lo:.2} … {hi:.2} (99th percentile)"));
}
