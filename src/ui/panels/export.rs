//! The Export panel: a figure of a view (PNG/SVG), the results into a new `.h5ad`, the
//! selected cells to CSV, named annotations of the selection, and sessions (save / open; the
//! app builds and applies them, [`crate::ui::app`]). Figures, write-back and CSV run on a
//! `cellscope-export` thread (a 300 dpi figure of a million points takes seconds).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Action, Picked, save_file, take};
use crate::export::ExportError;
use crate::export::figure::{Figure, FigureSize, save_figure};
use crate::export::tables::{CsvColumn, Results, keys, write_results, write_selection_csv};
use crate::pipeline::jobs::coloring::{ColorBy, Ramp};
use crate::ui::explorer::Explorer;

/// What the next save dialog is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExportKind {
    Figure,
    Results,
    Csv,
    SaveSession,
    OpenSession,
}

/// Result of an export job, shown in the status line.
type Outcome = Arc<std::sync::Mutex<Option<Result<String, ExportError>>>>;

/// Where an export goes and what it records: the window's context (to wake it), what it
/// shows, the output path, the provenance.
pub struct Target<'a> {
    /// The window's context.
    pub ctx: &'a egui::Context,
    /// What the window shows.
    pub x: &'a Explorer,
    /// The file to write.
    pub path: PathBuf,
    /// Provenance recorded in the file.
    pub provenance: serde_json::Value,
}

/// The Export panel's state.
pub struct ExportPanel {
    /// Figures and CSV coordinates of the spatial view (else the embedding).
    pub spatial: bool,
    /// Figure size and resolution.
    pub figure_size: FigureSize,
    /// Name given to the next annotation.
    pub annotation_name: String,
    kind: Option<ExportKind>,
    picked: Picked,
    outcome: Outcome,
}

impl Default for ExportPanel {
    fn default() -> Self {
        ExportPanel {
            spatial: true,
            figure_size: FigureSize::default(),
            annotation_name: "region 1".into(),
            kind: None,
            picked: Picked::default(),
            outcome: Outcome::default(),
        }
    }
}

/// Starts `job` on the `cellscope-export` thread; its message lands in `slot`.
fn run_export(
    ctx: &egui::Context,
    slot: &Outcome,
    what: &str,
    job: impl FnOnce() -> Result<String, ExportError> + Send + 'static,
) -> Action {
    let (slot, ctx) = (slot.clone(), ctx.clone());
    let spawned = std::thread::Builder::new()
        .name("cellscope-export".into())
        .spawn(move || {
            let r = job();
            if let Ok(mut s) = slot.lock() {
                *s = Some(r);
            }
            ctx.request_repaint();
        });
    match spawned {
        Ok(_) => Action::Status(format!("exporting the {what} …")),
        Err(e) => Action::Error(format!("cannot start the export thread: {e}")),
    }
}

impl ExportPanel {
    /// Acts on a file chosen in an export dialog and on finished export jobs; `provenance`
    /// is what every export records.
    pub fn poll(
        &mut self,
        ctx: &egui::Context,
        x: &Explorer,
        provenance: &dyn Fn() -> serde_json::Value,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        if let Some(p) = take(&self.picked) {
            let target = |path| Target {
                ctx,
                x,
                path,
                provenance: provenance(),
            };
            let a = match self.kind.take() {
                Some(ExportKind::Figure) => self.figure(target(p)),
                Some(ExportKind::Results) => results(&self.outcome, target(p)),
                Some(ExportKind::Csv) => self.csv(target(p)),
                Some(ExportKind::SaveSession) => Some(Action::SaveSession(p)),
                Some(ExportKind::OpenSession) => Some(Action::OpenSession(p)),
                None => None,
            };
            out.extend(a);
        }
        let done = self.outcome.lock().ok().and_then(|mut s| s.take());
        match done {
            Some(Ok(msg)) => out.push(Action::Status(msg)),
            Some(Err(e)) => out.push(Action::Error(e.to_string())),
            None => {}
        }
        out
    }

    /// The view shown in figures and CSV coordinates: its index in `x.views`.
    fn view_index(&self, x: &Explorer) -> Option<usize> {
        let want = if self.spatial { 2 } else { 1 };
        let first = (!x.views.is_empty()).then_some(0);
        x.views.iter().position(|v| v.id == want).or(first)
    }

    /// Writes a figure of the chosen view to `path` (PNG or SVG by extension).
    pub fn figure(&self, t: Target<'_>) -> Option<Action> {
        let Target {
            ctx,
            x,
            path,
            provenance,
        } = t;
        let Some(k) = self.view_index(x) else {
            return Some(Action::Error("nothing to draw yet".into()));
        };
        let view = &x.views[k];
        let (positions, order) = (view.positions.clone(), x.point_data[k].order.clone());
        let coloring = x.coloring.clone();
        let legend: Vec<_> = (coloring.legend.iter())
            .filter(|l| !x.hidden.contains(&l.name))
            .cloned()
            .collect();
        let ramp = if x.color_by == ColorBy::DomainConfidence {
            Ramp::Confidence
        } else {
            Ramp::Viridis
        };
        let colorbar = coloring.range.map(|(lo, hi)| (lo, hi, ramp));
        let title = format!("{} — {}", view.title, x.color_label());
        let (scale_bar, y_down, size) = (view.units.clone(), view.y_down, self.figure_size);
        Some(run_export(ctx, &self.outcome, "figure", move || {
            let fig = Figure {
                title,
                positions: &positions,
                colors: &coloring.colors,
                order: &order,
                legend: &legend,
                colorbar,
                scale_bar,
                y_down,
                provenance,
            };
            save_figure(&fig, &size, &path)?;
            let (w, h) = size.pixels();
            Ok(format!("wrote {} ({w} x {h} px)", path.display()))
        }))
    }

    /// Writes the selected cells to CSV.
    pub fn csv(&self, t: Target<'_>) -> Option<Action> {
        let Target {
            ctx,
            x,
            path,
            provenance,
        } = t;
        let d = x.data.as_ref()?;
        let ids = d.obs_names().to_vec();
        let selected = x.selected();
        let columns = csv_columns(x);
        Some(run_export(ctx, &self.outcome, "selection", move || {
            write_selection_csv(&ids, &selected, &columns, &provenance, &path)?;
            let n = selected.len();
            Ok(format!("wrote {n} cells to {}", path.display()))
        }))
    }

    /// Draws the panel.
    pub fn show(&mut self, ui: &mut egui::Ui, x: &Explorer) -> Option<Action> {
        let has_data = x.data.is_some();
        let mut action = None;
        ui.horizontal(|ui| {
            ui.radio_value(&mut self.spatial, false, "embedding");
            ui.radio_value(&mut self.spatial, true, "spatial");
        });
        self.size_fields(ui);
        let mut ask = None;
        ui.horizontal_wrapped(|ui| {
            let figure = ui.add_enabled(has_data, egui::Button::new("Figure…"));
            if figure
                .on_hover_text("PNG or SVG, by the file name's extension")
                .clicked()
            {
                ask = Some((ExportKind::Figure, "cellscope_figure.png"));
            }
            let results = egui::Button::new("Results (.h5ad)…");
            if ui.add_enabled(has_data, results).clicked() {
                ask = Some((ExportKind::Results, "cellscope_results.h5ad"));
            }
            let csv = egui::Button::new("Selection (CSV)…");
            if ui.add_enabled(x.n_selected > 0, csv).clicked() {
                ask = Some((ExportKind::Csv, "cellscope_selection.csv"));
            }
        });
        ui.horizontal(|ui| {
            let label = ui.label("annotation");
            ui.add(egui::TextEdit::singleline(&mut self.annotation_name).desired_width(90.0))
                .labelled_by(label.id);
            let annotate = egui::Button::new("Annotate selection");
            if ui.add_enabled(x.n_selected > 0, annotate).clicked() {
                action = Some(Action::Annotate(self.annotation_name.clone()));
            }
        });
        if !x.annotations.is_empty() {
            let names: Vec<String> = (x.annotations.iter())
                .map(|(n, c)| format!("{n} ({})", c.len()))
                .collect();
            ui.label(names.join(", "));
        }
        ui.horizontal(|ui| {
            let save = egui::Button::new("Save session…");
            if ui.add_enabled(has_data, save).clicked() {
                ask = Some((ExportKind::SaveSession, "cellscope_session.json"));
            }
            if ui.button("Open session…").clicked() {
                ask = Some((ExportKind::OpenSession, ""));
            }
        });
        if let Some((kind, name)) = ask {
            self.kind = Some(kind);
            let open = kind == ExportKind::OpenSession;
            save_file(ui.ctx(), &self.picked, name, open);
        }
        action
    }

    fn size_fields(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            let s = &mut self.figure_size;
            ui.add(
                egui::DragValue::new(&mut s.width_in)
                    .range(1.0..=20.0)
                    .suffix(" in"),
            );
            ui.label("×");
            ui.add(
                egui::DragValue::new(&mut s.height_in)
                    .range(1.0..=20.0)
                    .suffix(" in"),
            );
            ui.add(
                egui::DragValue::new(&mut s.dpi)
                    .range(72..=1200)
                    .suffix(" dpi"),
            );
        });
    }

    /// Starts a results export (the panel's button does this through a dialog).
    pub fn export_results(&self, t: Target<'_>) -> Option<Action> {
        results(&self.outcome, t)
    }
}

/// Writes the results (embedding, UMAP, clusters, domains, predictions, annotations) with the
/// dataset into a new `.h5ad`.
fn results(slot: &Outcome, t: Target<'_>) -> Option<Action> {
    let Target {
        ctx,
        x,
        path,
        provenance,
    } = t;
    let d = x.data.clone()?;
    let analysis = x.analysis.clone();
    let embedding = x.embedding.as_ref().map(|e| e.0.clone());
    let prediction = x.prediction.clone();
    let annotations = x.annotations.clone();
    Some(run_export(ctx, slot, "results", move || {
        let r = Results {
            embedding: embedding.as_deref(),
            umap: analysis.as_ref().map(|a| &a.umap),
            leiden: analysis.as_ref().map(|a| a.leiden.as_slice()),
            domains: (analysis.as_ref())
                .and_then(|a| a.domains.as_ref())
                .map(|(d, c)| (d.as_slice(), c.as_slice())),
            predicted: (prediction.as_deref()).map(|(p, c)| (p.as_slice(), c.as_slice())),
            annotations: &annotations,
            provenance,
            ..Default::default()
        };
        write_results(&d, &r, &path)?;
        Ok(format!("wrote {}", path.display()))
    }))
}

fn column(name: impl Into<String>, values: Vec<String>) -> CsvColumn {
    CsvColumn {
        name: name.into(),
        values,
    }
}

fn strings<T: ToString>(v: &[T]) -> Vec<String> {
    v.iter().map(T::to_string).collect()
}

/// The CSV columns of every cell: coordinates of both views, obs columns, clusters, domains,
/// predictions, annotation, and the coloured values.
pub fn csv_columns(x: &Explorer) -> Vec<CsvColumn> {
    let mut cols = Vec::new();
    for v in &x.views {
        let name = if v.id == 2 { "spatial" } else { "embedding" };
        for (k, axis) in ["x", "y"].iter().enumerate() {
            let values = v.positions.iter().map(|p| p[k].to_string()).collect();
            cols.push(column(format!("{name}_{axis}"), values));
        }
    }
    if let Some(d) = &x.data {
        for name in d.obs.column_names() {
            if let Some(c) = d.obs.column(name) {
                cols.push(column(
                    name,
                    (0..c.len()).map(|i| c.value_string(i)).collect(),
                ));
            }
        }
    }
    if let Some(a) = &x.analysis {
        cols.push(column(keys::LEIDEN, strings(&a.leiden)));
        if let Some((dom, conf)) = &a.domains {
            cols.push(column(keys::DOMAIN, strings(dom)));
            cols.push(column(keys::DOMAIN_CONFIDENCE, strings(conf)));
        }
    }
    if let Some((p, c)) = x.prediction.as_deref() {
        cols.push(column(keys::PREDICTION, p.clone()));
        cols.push(column(keys::CONFIDENCE, strings(c)));
    }
    if !x.annotations.is_empty() {
        let mut v = vec![String::new(); x.selection.len()];
        for (name, cells) in &x.annotations {
            for &i in cells {
                if let Some(s) = v.get_mut(i) {
                    s.clone_from(name);
                }
            }
        }
        cols.push(column(keys::ANNOTATION, v));
    }
    if let Some(values) = &x.coloring.values {
        cols.push(column(
            format!("shown: {}", x.color_label()),
            strings(values),
        ));
    }
    cols
}

/// The files an export from the window records: data, model and reference.
pub fn provenance_files<'a>(
    x: &'a Explorer,
    reference: Option<&'a Path>,
) -> Vec<(&'static str, &'a Path)> {
    let mut files: Vec<(&str, &Path)> = Vec::new();
    if let Some(d) = &x.data {
        files.push(("data", d.source.as_path()));
    }
    if let Some(m) = &x.model_path {
        files.push(("model", m.as_path()));
    }
    if let Some(r) = reference {
        files.push(("reference", r));
    }
    files
}
