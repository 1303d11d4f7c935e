//! The Colour-by panel: predicted types, Leiden clusters, spatial domains and their
//! confidence, any obs column, the agreement of two obs columns, or a gene (search with
//! completion).

use crate::pipeline::jobs::coloring::ColorBy;
use crate::ui::explorer::Explorer;

use super::Action;

/// The Colour-by panel's state.
#[derive(Default)]
pub struct ColorPanel {
    /// The gene search text.
    pub gene_query: String,
    /// The second column of an agreement colouring.
    agree_b: Option<String>,
}

/// The colourings on offer for what is computed so far: predicted types, Leiden clusters,
/// spatial domains and their confidence, every obs column.
fn options(x: &Explorer) -> Vec<(ColorBy, String)> {
    let mut o = Vec::new();
    if x.prediction.is_some() {
        o.push((ColorBy::Predicted { fade: false }, "predicted type".into()));
        let faded = "predicted type × confidence".into();
        o.push((ColorBy::Predicted { fade: true }, faded));
    }
    if let Some(a) = &x.analysis {
        o.push((ColorBy::Leiden, "Leiden cluster".into()));
        if a.domains.is_some() {
            o.push((ColorBy::Domain, "spatial domain".into()));
            o.push((ColorBy::DomainConfidence, "domain confidence".into()));
        }
    }
    if let Some(d) = &x.data {
        for name in d.obs.column_names() {
            o.push((ColorBy::Obs(name.to_string()), format!("obs: {name}")));
        }
    }
    o
}

impl ColorPanel {
    /// Draws the panel; returns the new colouring or an error (no such gene).
    pub fn show(&mut self, ui: &mut egui::Ui, x: &Explorer) -> Option<Action> {
        let mut choice = x.color_by.clone();
        let options = options(x);
        let current = (options.iter())
            .find(|(c, _)| *c == choice)
            .map_or_else(|| x.color_label(), |(_, l)| l.clone());
        ui.horizontal(|ui| {
            let label = ui.label("colour by");
            egui::ComboBox::from_id_salt("color_by")
                .width(170.0)
                .selected_text(current)
                .show_ui(ui, |ui| {
                    for (c, l) in options {
                        ui.selectable_value(&mut choice, c, l);
                    }
                })
                .response
                .labelled_by(label.id);
        });
        let mut error = None;
        if let Some(d) = &x.data {
            error = self.gene_search(ui, &[d.var_names(), &d.imputed_genes], &mut choice);
            let names: Vec<String> = d.obs.column_names().iter().map(|s| s.to_string()).collect();
            self.agreement(ui, &names, &mut choice);
        }
        match error {
            Some(e) => Some(Action::Error(e)),
            None => (choice != x.color_by).then_some(Action::SetColor(choice)),
        }
    }

    /// The gene field: Enter colours by the gene named (case-insensitive; measured genes, then
    /// imputed ones), and up to six completions are offered as buttons. Returns an error for an
    /// unknown gene.
    fn gene_search(
        &mut self,
        ui: &mut egui::Ui,
        lists: &[&[String]],
        choice: &mut ColorBy,
    ) -> Option<String> {
        let genes = || lists.iter().flat_map(|l| l.iter());
        let mut error = None;
        ui.horizontal(|ui| {
            let label = ui.label("gene");
            let r = ui
                .text_edit_singleline(&mut self.gene_query)
                .labelled_by(label.id);
            if r.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter)) {
                let q = self.gene_query.trim();
                match genes().find(|g| g.eq_ignore_ascii_case(q)) {
                    Some(g) => *choice = ColorBy::Gene(g.clone()),
                    None => error = Some(format!("no gene named '{q}'")),
                }
            }
        });
        if !self.gene_query.is_empty() {
            let q = self.gene_query.to_ascii_lowercase();
            let hits = genes()
                .filter(|g| g.to_ascii_lowercase().starts_with(&q))
                .take(6);
            for g in hits {
                if ui.small_button(g.as_str()).clicked() {
                    *choice = ColorBy::Gene(g.clone());
                }
            }
        }
        error
    }

    /// "agreement of" the current obs column with another one (match / mismatch).
    fn agreement(&mut self, ui: &mut egui::Ui, names: &[String], choice: &mut ColorBy) {
        ui.horizontal(|ui| {
            let label = ui.label("agreement of");
            let current = match &*choice {
                ColorBy::Obs(k) | ColorBy::Agreement(k, _) => Some(k.clone()),
                _ => None,
            };
            egui::ComboBox::from_id_salt("agree_b")
                .selected_text(self.agree_b.clone().unwrap_or("…".into()))
                .show_ui(ui, |ui| {
                    for n in names {
                        ui.selectable_value(&mut self.agree_b, Some(n.clone()), n);
                    }
                })
                .response
                .labelled_by(label.id);
            if let (Some(a), Some(b)) = (current, self.agree_b.clone())
                && a != b
                && ui.button("compare").clicked()
            {
                *choice = ColorBy::Agreement(a, b);
            }
        });
    }
}
