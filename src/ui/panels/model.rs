//! The Model panel: load a checkpoint or fetch a pretrained ssl_in_scg model from the
//! HuggingFace hub, choose the compute backend, embed the open dataset; shows the model's kind,
//! widths, gene count and the device in use.

use std::path::PathBuf;

use super::{Action, MODEL_FILES, Picked, model_path_of, pick_file, take};
use crate::model::BackendChoice;
use crate::ui::explorer::Explorer;

/// The pretrained ssl_in_scg models on the HuggingFace hub (Richter et al. 2024; SSL_MODELS.md),
/// offered in the model panel; the repository's `var.parquet` comes with them as the gene list.
pub const HUB_MODELS: [&str; 3] = [
    "hf://TillR/sc_pretrained/Pretrained Models/RandomMask.ckpt",
    "hf://TillR/sc_pretrained/Pretrained Models/GPMask.ckpt",
    "hf://TillR/sc_pretrained/Pretrained Models/BarlowTwins.ckpt",
];

/// The last `/`-separated component of a path or hub name.
fn file_name(s: &str) -> &str {
    s.rsplit('/').next().unwrap_or(s)
}

/// The Model panel's state.
pub struct ModelPanel {
    picked: Picked,
    /// `hf://` name of a model on the HuggingFace hub, edited in the panel.
    pub hub_model: String,
}

impl Default for ModelPanel {
    fn default() -> Self {
        ModelPanel {
            picked: Picked::default(),
            hub_model: HUB_MODELS[0].to_string(),
        }
    }
}

impl ModelPanel {
    /// A model chosen in the dialog since the last frame.
    pub fn poll(&mut self) -> Option<Action> {
        take(&self.picked).map(|p| Action::LoadModel(model_path_of(p)))
    }

    /// Draws the panel; `backend` is the window's backend choice (persisted), `busy` whether
    /// the worker runs a job.
    pub fn show(
        &mut self,
        ui: &mut egui::Ui,
        x: &Explorer,
        backend: &mut BackendChoice,
        busy: bool,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        ui.horizontal(|ui| {
            if ui.button("Model…").clicked() {
                pick_file(ui.ctx(), &self.picked, "model", MODEL_FILES);
            }
            let can_embed = x.model.is_some() && x.data.is_some() && !busy;
            if ui
                .add_enabled(can_embed, egui::Button::new("Embed"))
                .clicked()
            {
                out.push(Action::Embed);
            }
        });
        ui.horizontal(|ui| {
            let label = ui.label("hub");
            egui::ComboBox::from_id_salt("hub_model")
                .width(150.0)
                .selected_text(file_name(&self.hub_model))
                .show_ui(ui, |ui| {
                    for m in HUB_MODELS {
                        ui.selectable_value(&mut self.hub_model, m.to_string(), file_name(m))
                            .on_hover_text(m);
                    }
                })
                .response
                .labelled_by(label.id);
            if ui
                .add_enabled(!busy, egui::Button::new("Fetch"))
                .on_hover_text(
                    "Download from the HuggingFace hub into the cache (once) and load; \
                     Cancel stops the download",
                )
                .clicked()
            {
                out.push(Action::LoadModel(PathBuf::from(self.hub_model.clone())));
            }
        });
        ui.add(
            egui::TextEdit::singleline(&mut self.hub_model)
                .hint_text("hf://OWNER/NAME[@REVISION]/PATH")
                .desired_width(240.0),
        );
        backend_picker(ui, backend);
        match &x.model {
            Some(m) => {
                ui.label(m.summary.as_str());
                ui.label(format!("{} input genes; device: {}", m.n_genes, m.device));
            }
            None => {
                ui.label("no model: the pipeline runs on the PCA baseline");
            }
        }
        if let Some((e, coverage)) = &x.embedding {
            ui.label(format!(
                "embedding {} x {}; genes: {coverage}",
                e.nrows(),
                e.ncols()
            ));
        }
        out
    }
}

/// The backend choice: auto, CPU or GPU (wgpu).
fn backend_picker(ui: &mut egui::Ui, backend: &mut BackendChoice) {
    ui.horizontal(|ui| {
        let label = ui.label("backend");
        egui::ComboBox::from_id_salt("backend")
            .selected_text(backend.name())
            .show_ui(ui, |ui| {
                for b in BackendChoice::ALL {
                    ui.selectable_value(backend, b, b.name());
                }
            })
            .response
            .labelled_by(label.id)
            .on_hover_text(
                "auto: a hardware GPU when there is one, else the CPU; applies to models \
                 loaded or trained from now on",
            );
    });
}
