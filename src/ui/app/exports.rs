//! The Export panel of the window: figure of a view (PNG/SVG), results into a new `.h5ad`,
//! selected cells to CSV, named annotations of the selection, and sessions (save / open).
//! Figures, write-back and CSV run on a `cellscope-export` thread (a 300 dpi figure of a
//! million points takes seconds); sessions are small JSON files written at once.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{CellscopeApp, ColorBy};
use crate::export::figure::{Figure, save_figure};
use crate::export::session::{FileRef, Session, SessionParams, VERSION};
use crate::export::tables::{CsvColumn, Results, write_results, write_selection_csv};
use crate::render::coloring::Ramp;

/// What the next save dialog is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ExportKind {
    Figure,
    Results,
    Csv,
    SaveSession,
    OpenSession,
}

/// Result of an export job, shown in the status line.
pub(super) type ExportOutcome = Arc<std::sync::Mutex<Option<Result<String, String>>>>;

impl CellscopeApp {
    /// Provenance of an export from the window: data, model and reference files with their
    /// SHA-256, pipeline parameters, representation and colouring.
    fn export_provenance(&self) -> serde_json::Value {
        let mut files: Vec<(&str, &Path)> = Vec::new();
        if let Some(d) = &self.data {
            files.push(("data", d.source.as_path()));
        }
        if let Some(m) = &self.model_path {
            files.push(("model", m.as_path()));
        }
        if let Some(r) = &self.reference {
            files.push(("reference", r.as_path()));
        }
        crate::export::provenance(
            &files,
            serde_json::json!({
                "n_neighbors": self.params.n_neighbors,
                "resolution": self.params.resolution,
                "spatial_domains": self.n_domains,
                "seed": self.params.seed,
                "representation": self.rep_name,
                "color_by": serde_json::to_value(&self.color_by).unwrap_or_default(),
            }),
        )
    }

    /// The view shown in figures and CSV coordinates: its index in `views`.
    fn export_view_index(&self) -> Option<usize> {
        let want = if self.export_spatial { 2 } else { 1 };
        self.views
            .iter()
            .position(|v| v.id == want)
            .or(if self.views.is_empty() { None } else { Some(0) })
    }

    /// Writes a figure of the chosen view to `path` (PNG or SVG by extension) on the export
    /// thread.
    pub fn export_figure(&mut self, path: PathBuf) {
        let Some(k) = self.export_view_index() else {
            self.errors.push("nothing to draw yet".into());
            return;
        };
        let view = &self.views[k];
        let positions = view.positions.clone();
        let order = self.point_data[k].order.clone();
        let colors = self.coloring.colors.clone();
        let legend: Vec<_> = self
            .coloring
            .legend
            .iter()
            .filter(|l| !self.hidden.contains(&l.name))
            .cloned()
            .collect();
        let colorbar = self.coloring.range.map(|(lo, hi)| {
            let ramp = if self.color_by == ColorBy::DomainConfidence {
                Ramp::Confidence
            } else {
                Ramp::Viridis
            };
            (lo, hi, ramp)
        });
        let title = format!("{} — {}", view.title, self.color_label());
        let scale_bar = view.units.clone();
        let y_down = view.y_down;
        let provenance = self.export_provenance();
        let size = self.figure_size;
        self.run_export("figure", move || {
            let fig = Figure {
                title,
                positions: &positions,
                colors: &colors,
                order: &order,
                legend: &legend,
                colorbar,
                scale_bar,
                y_down,
                provenance,
            };
            save_figure(&fig, &size, &path).map_err(|e| e.to_string())?;
            let (w, h) = size.pixels();
            Ok(format!("wrote {} ({w} x {h} px)", path.display()))
        });
    }

    /// What the colouring shows, in words (figure titles, CSV headers).
    fn color_label(&self) -> String {
        match &self.color_by {
            ColorBy::Leiden => "Leiden cluster".into(),
            ColorBy::Domain => "spatial domain".into(),
            ColorBy::DomainConfidence => "domain confidence".into(),
            ColorBy::Obs(k) => k.clone(),
            ColorBy::Gene(g) => g.clone(),
            ColorBy::Predicted { fade: false } => "predicted type".into(),
            ColorBy::Predicted { fade: true } => "predicted type × confidence".into(),
            ColorBy::Agreement(a, b) => format!("{a} vs {b}"),
        }
    }

    /// Writes the results (embedding, UMAP, clusters, domains, predictions, annotations) with
    /// the dataset into a new `.h5ad` on the export thread.
    pub fn export_results(&mut self, path: PathBuf) {
        let Some(d) = self.data.clone() else { return };
        let analysis = self
            .analysis
            .as_ref()
            .map(|a| (a.umap.clone(), a.leiden.clone(), a.domains.clone()));
        let embedding = self.embedding.as_ref().map(|e| e.0.clone());
        let prediction = self.prediction.clone();
        let annotations = self.annotations.clone();
        let provenance = self.export_provenance();
        self.run_export("results", move || {
            let r = Results {
                embedding: embedding.as_deref(),
                umap: analysis.as_ref().map(|a| &a.0),
                leiden: analysis.as_ref().map(|a| a.1.as_slice()),
                domains: analysis
                    .as_ref()
                    .and_then(|a| a.2.as_ref())
                    .map(|(d, c)| (d.as_slice(), c.as_slice())),
                predicted: prediction
                    .as_ref()
                    .map(|(p, c)| (p.as_slice(), c.as_slice())),
                annotations: &annotations,
                provenance,
            };
            write_results(&d, &r, &path).map_err(|e| e.to_string())?;
            Ok(format!("wrote {}", path.display()))
        });
    }

    /// The CSV columns of every cell: coordinates of both views, obs columns, clusters,
    /// domains, predictions, annotation, and the coloured values.
    fn csv_columns(&self) -> Vec<CsvColumn> {
        let mut cols = Vec::new();
        for v in &self.views {
            let name = if v.id == 2 { "spatial" } else { "embedding" };
            for (k, axis) in ["x", "y"].iter().enumerate() {
                cols.push(CsvColumn {
                    name: format!("{name}_{axis}"),
                    values: v.positions.iter().map(|p| p[k].to_string()).collect(),
                });
            }
        }
        if let Some(d) = &self.data {
            for name in d.obs.column_names() {
                if let Some(c) = d.obs.column(name) {
                    cols.push(CsvColumn {
                        name: name.to_string(),
                        values: (0..c.len()).map(|i| c.value_string(i)).collect(),
                    });
                }
            }
        }
        if let Some(a) = &self.analysis {
            cols.push(CsvColumn {
                name: "leiden".into(),
                values: a.leiden.iter().map(u32::to_string).collect(),
            });
            if let Some((dom, conf)) = &a.domains {
                cols.push(CsvColumn {
                    name: "spatial_domain".into(),
                    values: dom.iter().map(u32::to_string).collect(),
                });
                cols.push(CsvColumn {
                    name: "spatial_domain_confidence".into(),
                    values: conf.iter().map(f32::to_string).collect(),
                });
            }
        }
        if let Some((p, c)) = &self.prediction {
            cols.push(CsvColumn {
                name: "cellscope_prediction".into(),
                values: p.clone(),
            });
            cols.push(CsvColumn {
                name: "cellscope_confidence".into(),
                values: c.iter().map(f32::to_string).collect(),
            });
        }
        if !self.annotations.is_empty() {
            let n = self.selection.len();
            let mut v = vec![String::new(); n];
            for (name, cells) in &self.annotations {
                for &i in cells {
                    if let Some(s) = v.get_mut(i) {
                        s.clone_from(name);
                    }
                }
            }
            cols.push(CsvColumn {
                name: "cellscope_annotation".into(),
                values: v,
            });
        }
        if let Some(values) = &self.coloring.values {
            cols.push(CsvColumn {
                name: format!("shown: {}", self.color_label()),
                values: values.iter().map(f32::to_string).collect(),
            });
        }
        cols
    }

    /// Writes the selected cells to CSV on the export thread.
    pub fn export_selection_csv(&mut self, path: PathBuf) {
        let Some(d) = &self.data else { return };
        let ids = d.obs_names().to_vec();
        let selected: Vec<usize> = (0..self.selection.len())
            .filter(|&i| self.selection[i])
            .collect();
        let columns = self.csv_columns();
        let provenance = self.export_provenance();
        self.run_export("selection", move || {
            write_selection_csv(&ids, &selected, &columns, &provenance, &path)
                .map_err(|e| e.to_string())?;
            Ok(format!(
                "wrote {} cells to {}",
                selected.len(),
                path.display()
            ))
        });
    }

    fn run_export(
        &mut self,
        what: &str,
        job: impl FnOnce() -> Result<String, String> + Send + 'static,
    ) {
        self.status = format!("exporting the {what} …");
        let slot = self.export_outcome.clone();
        let ctx = self.ctx.clone();
        let spawned = std::thread::Builder::new()
            .name("cellscope-export".into())
            .spawn(move || {
                let r = job();
                if let Ok(mut s) = slot.lock() {
                    *s = Some(r);
                }
                ctx.request_repaint();
            });
        if let Err(e) = spawned {
            self.errors
                .push(format!("cannot start the export thread: {e}"));
        }
    }

    /// Names the current selection (an annotation written back as
    /// `obs['cellscope_annotation']`).
    pub fn annotate_selection(&mut self, name: &str) {
        let cells: Vec<usize> = (0..self.selection.len())
            .filter(|&i| self.selection[i])
            .collect();
        if !cells.is_empty() && !name.trim().is_empty() {
            self.annotations.push((name.trim().to_string(), cells));
        }
    }

    /// The user's named selections.
    pub fn annotations(&self) -> &[(String, Vec<usize>)] {
        &self.annotations
    }

    /// The session describing what the window shows now.
    pub fn session(&self) -> Option<Session> {
        let d = self.data.as_ref()?;
        Some(Session {
            format: crate::export::session::FORMAT.into(),
            version: VERSION,
            data: FileRef::of(&d.source),
            model: self.model_path.as_deref().map(FileRef::of),
            reference: self
                .reference
                .as_deref()
                .map(|r| (FileRef::of(r), self.reference_key.clone())),
            params: SessionParams {
                n_neighbors: self.params.n_neighbors,
                resolution: self.params.resolution,
                n_domains: self.n_domains,
                seed: self.params.seed,
            },
            color_by: serde_json::to_value(&self.color_by).unwrap_or_default(),
            hidden: self.hidden.iter().cloned().collect(),
            truth_key: self.truth_key.clone(),
            cameras: [1, 2]
                .iter()
                .map(|id| {
                    self.views
                        .iter()
                        .find(|v| v.id == *id)
                        .and_then(|v| v.camera)
                })
                .collect(),
            selection: (0..self.selection.len())
                .filter(|&i| self.selection[i])
                .collect(),
            annotations: self.annotations.clone(),
            provenance: self.export_provenance(),
        })
    }

    /// Saves the session to `path`.
    ///
    /// # Errors
    /// No dataset open; the file cannot be written.
    pub fn save_session(&self, path: &Path) -> Result<(), String> {
        let s = self.session().ok_or("open a dataset first")?;
        s.save(path).map_err(|e| e.to_string())
    }

    /// Reopens a session: opens its data (and model, then embeds), runs the pipeline with its
    /// parameters, and restores colours, hidden categories, cameras, selection and annotations
    /// once the pipeline has finished.
    ///
    /// # Errors
    /// An unreadable or invalid session file.
    pub fn open_session(&mut self, path: &Path) -> Result<(), String> {
        let s = Session::load(path).map_err(|e| e.to_string())?;
        for f in std::iter::once(&s.data).chain(s.model.as_ref()) {
            if !f.unchanged() {
                self.errors.push(format!(
                    "{}: the file changed since the session was saved (SHA-256 differs)",
                    f.path.display()
                ));
            }
        }
        self.params.n_neighbors = s.params.n_neighbors;
        self.params.resolution = s.params.resolution;
        self.params.seed = s.params.seed;
        self.n_domains = s.params.n_domains;
        if let Some((r, key)) = &s.reference {
            self.reference = Some(r.path.clone());
            self.reference_key.clone_from(key);
        }
        self.open(s.data.path.clone());
        if let Some(m) = &s.model {
            self.open_with_model(m.path.clone());
        }
        self.pending_session = Some(s);
        Ok(())
    }

    /// Applies a reopened session's view state (after its pipeline has run).
    pub(super) fn apply_session(&mut self) {
        let Some(s) = self.pending_session.take() else {
            return;
        };
        if let Ok(c) = serde_json::from_value::<ColorBy>(s.color_by.clone()) {
            self.color_by = c;
        }
        self.hidden = s.hidden.iter().cloned().collect();
        self.truth_key = s.truth_key.clone();
        for (id, cam) in [1u64, 2].iter().zip(&s.cameras) {
            if let (Some(v), Some(c)) = (self.views.iter_mut().find(|v| v.id == *id), cam) {
                v.camera = Some(*c);
            }
        }
        self.annotations = s.annotations.clone();
        self.select(&s.selection);
        self.dirty = true;
    }

    /// The Export panel.
    pub(super) fn export_panel(&mut self, ui: &mut egui::Ui) {
        let has_data = self.data.is_some();
        ui.horizontal(|ui| {
            ui.radio_value(&mut self.export_spatial, false, "embedding");
            ui.radio_value(&mut self.export_spatial, true, "spatial");
        });
        ui.horizontal(|ui| {
            ui.add(
                egui::DragValue::new(&mut self.figure_size.width_in)
                    .range(1.0..=20.0)
                    .suffix(" in"),
            );
            ui.label("×");
            ui.add(
                egui::DragValue::new(&mut self.figure_size.height_in)
                    .range(1.0..=20.0)
                    .suffix(" in"),
            );
            ui.add(
                egui::DragValue::new(&mut self.figure_size.dpi)
                    .range(72..=1200)
                    .suffix(" dpi"),
            );
        });
        let mut ask = None;
        ui.horizontal_wrapped(|ui| {
            if ui
                .add_enabled(has_data, egui::Button::new("Figure…"))
                .on_hover_text("PNG or SVG, by the file name's extension")
                .clicked()
            {
                ask = Some((ExportKind::Figure, "cellscope_figure.png"));
            }
            if ui
                .add_enabled(has_data, egui::Button::new("Results (.h5ad)…"))
                .clicked()
            {
                ask = Some((ExportKind::Results, "cellscope_results.h5ad"));
            }
            if ui
                .add_enabled(self.n_selected > 0, egui::Button::new("Selection (CSV)…"))
                .clicked()
            {
                ask = Some((ExportKind::Csv, "cellscope_selection.csv"));
            }
        });
        ui.horizontal(|ui| {
            let label = ui.label("annotation");
            ui.add(egui::TextEdit::singleline(&mut self.annotation_name).desired_width(90.0))
                .labelled_by(label.id);
            if ui
                .add_enabled(self.n_selected > 0, egui::Button::new("Annotate selection"))
                .clicked()
            {
                let name = self.annotation_name.clone();
                self.annotate_selection(&name);
            }
        });
        if !self.annotations.is_empty() {
            let names: Vec<String> = self
                .annotations
                .iter()
                .map(|(n, c)| format!("{n} ({})", c.len()))
                .collect();
            ui.label(names.join(", "));
        }
        ui.horizontal(|ui| {
            if ui
                .add_enabled(has_data, egui::Button::new("Save session…"))
                .clicked()
            {
                ask = Some((ExportKind::SaveSession, "cellscope_session.json"));
            }
            if ui.button("Open session…").clicked() {
                ask = Some((ExportKind::OpenSession, ""));
            }
        });
        if let Some((kind, name)) = ask {
            self.export_kind = Some(kind);
            super::save_file_in_background(
                ui.ctx(),
                &self.picked_export,
                name,
                kind == ExportKind::OpenSession,
            );
        }
    }

    /// Acts on a file chosen in an export dialog and on finished export jobs.
    pub(super) fn poll_exports(&mut self) {
        if let Some(p) = super::take(&self.picked_export) {
            match self.export_kind.take() {
                Some(ExportKind::Figure) => self.export_figure(p),
                Some(ExportKind::Results) => self.export_results(p),
                Some(ExportKind::Csv) => self.export_selection_csv(p),
                Some(ExportKind::SaveSession) => match self.save_session(&p) {
                    Ok(()) => self.status = format!("saved the session to {}", p.display()),
                    Err(e) => self.errors.push(e),
                },
                Some(ExportKind::OpenSession) => {
                    if let Err(e) = self.open_session(&p) {
                        self.errors.push(e);
                    }
                }
                None => {}
            }
        }
        let done = self.export_outcome.lock().ok().and_then(|mut s| s.take());
        match done {
            Some(Ok(msg)) => self.status = msg,
            Some(Err(e)) => self.errors.push(e),
            None => {}
        }
    }
}
