//! The Label-transfer panel: a labelled reference file and its label column; labels are
//! carried to the open dataset on the worker (kNN vote on the shared genes, as `cellscope
//! transfer`).

use std::path::PathBuf;

use super::{Action, Picked, pick_file, take};
use crate::ui::explorer::Explorer;

/// The Label-transfer panel's state.
pub struct TransferPanel {
    picked: Picked,
    /// The labelled reference.
    pub reference: Option<PathBuf>,
    /// Its obs column of labels.
    pub label_key: String,
}

impl Default for TransferPanel {
    fn default() -> Self {
        TransferPanel {
            picked: Picked::default(),
            reference: None,
            label_key: "cell_type".into(),
        }
    }
}

impl TransferPanel {
    /// Takes a reference chosen in the dialog since the last frame.
    pub fn poll(&mut self) {
        if let Some(p) = take(&self.picked) {
            self.reference = Some(p);
        }
    }

    /// The transfer the panel's settings ask for, when a reference is chosen.
    pub fn action(&self) -> Option<Action> {
        let r = self.reference.clone()?;
        Some(Action::Transfer(r, self.label_key.trim().to_string()))
    }

    /// Draws the panel; `busy`: whether the worker runs a job.
    pub fn show(&mut self, ui: &mut egui::Ui, x: &Explorer, busy: bool) -> Option<Action> {
        ui.horizontal(|ui| {
            if ui.button("Reference…").clicked() {
                pick_file(ui.ctx(), &self.picked, "single-cell data", &["h5ad", "h5"]);
            }
            let label = ui.label("labels");
            ui.text_edit_singleline(&mut self.label_key)
                .labelled_by(label.id);
        });
        if let Some(r) = &self.reference {
            let name = r.file_name().map(|f| f.to_string_lossy());
            ui.label(format!("reference: {}", name.unwrap_or_default()));
        }
        let can = self.reference.is_some() && x.data.is_some() && !busy;
        let clicked = ui
            .add_enabled(can, egui::Button::new("Transfer labels"))
            .clicked();
        if clicked { self.action() } else { None }
    }
}
