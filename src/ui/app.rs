//! The explorer window: the layout (side panel, legend and metrics, the point views), the
//! drain of the worker's events, and what the panels ask for ([`Action`]), carried out here.
//! What is persisted between runs ([`Settings`]) is kept apart from the run-time state
//! ([`Explorer`], the panels' own state).

use std::path::PathBuf;

use egui::{Color32, RichText};

use super::explorer::Explorer;
use super::panels::{self, Action};
use crate::export::session::Session;
use crate::model::BackendChoice;
use crate::model::hub::Hub;
use crate::pipeline::jobs::analyze::AnalyzeJob;
use crate::pipeline::jobs::compare::SideSource;
use crate::pipeline::jobs::train::{FinetuneJob, PretrainJob};
use crate::pipeline::worker::{Command, Worker};

mod actions;
mod api;
mod detail;
mod events;
mod session;

pub use crate::pipeline::jobs::coloring::{ColorBy, LegendItem};

/// What the window keeps between runs (eframe's storage, key [`Settings::KEY`]).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Recently opened files, newest first.
    pub recent: Vec<PathBuf>,
    /// Compute backend for models loaded or trained in the window.
    pub backend: BackendChoice,
}

impl Settings {
    /// The storage key.
    pub const KEY: &'static str = "settings";

    fn remember(&mut self, p: PathBuf) {
        // The embedded default is not a "recent file".
        if p == super::default_dataset() {
            return;
        }
        self.recent.retain(|q| q != &p);
        self.recent.insert(0, p);
        self.recent.truncate(8);
    }
}

/// Each panel's own state.
#[derive(Default)]
struct Panels {
    data: panels::data::DataPanel,
    model: panels::model::ModelPanel,
    transfer: panels::transfer::TransferPanel,
    pipeline: panels::pipeline::PipelinePanel,
    color: panels::color::ColorPanel,
    training: panels::training::TrainingPanel,
    compare: panels::compare::ComparePanel,
    export: panels::export::ExportPanel,
    metrics: panels::metrics::MetricsPanel,
    benchmark: panels::benchmark::BenchmarkPanel,
}

/// The rectangle of view `k` of `n` side by side in `full` (8-point gaps).
pub fn column_rect(full: egui::Rect, k: usize, n: usize) -> egui::Rect {
    let n = n.max(1) as f32;
    let w = (full.width() - 8.0 * (n - 1.0)) / n;
    egui::Rect::from_min_size(
        full.min + egui::vec2(k as f32 * (w + 8.0), 0.0),
        egui::vec2(w, full.height()),
    )
}

/// The explorer.
pub struct CellscopeApp {
    worker: Worker,
    ctx: egui::Context,
    /// What is persisted between runs.
    pub settings: Settings,
    x: Explorer,
    panels: Panels,
    /// Run the pipeline as soon as a dataset opens.
    pub auto_analyze: bool,
    /// Embed with the model being loaded as soon as it is ready, then run the pipeline on the
    /// embedding (the embedded default).
    embed_when_ready: bool,
    /// Save a screenshot here once the pipeline has finished, then close (for scripted checks).
    pub screenshot_to: Option<PathBuf>,
    screenshot_frames: u32,
    /// A reopened session, applied once its pipeline has run.
    pending_session: Option<Session>,
    /// Finer windows of a pyramidal underlay for the zoomed-in spatial view.
    detail: detail::DetailState,
}

impl CellscopeApp {
    /// A new app; `ctx` wakes the UI when the worker reports. Opens `path` when given.
    /// `hf://` models come from the hub the environment names ([`Hub::from_env`]).
    pub fn new(ctx: &egui::Context, path: Option<PathBuf>) -> Self {
        Self::with_hub(ctx, path, Hub::from_env())
    }

    /// [`CellscopeApp::new`] with `hf://` models from `hub` (tests point it at a local server).
    pub fn with_hub(ctx: &egui::Context, path: Option<PathBuf>, hub: Hub) -> Self {
        let c = ctx.clone();
        let mut app = CellscopeApp {
            worker: Worker::with_hub(move || c.request_repaint(), hub),
            ctx: ctx.clone(),
            settings: Settings::default(),
            x: Explorer::default(),
            panels: Panels::default(),
            auto_analyze: true,
            embed_when_ready: false,
            screenshot_to: None,
            screenshot_frames: 0,
            pending_session: None,
            detail: Default::default(),
        };
        if let Some(p) = path {
            app.open(p);
        }
        app
    }

    /// Asks the worker to open a dataset.
    pub fn open(&mut self, path: PathBuf) {
        self.x.status = format!("Opening {} …", path.display());
        if !self.worker.send(Command::Open(path)) {
            self.x.errors.push("the worker is busy; try again".into());
        }
    }

    /// Loads `model` and, once it is ready, embeds the open dataset with it and runs the
    /// pipeline on the embedding instead of the PCA baseline (the embedded default).
    pub fn open_with_model(&mut self, model: PathBuf) {
        self.embed_when_ready = true;
        self.load_model(model);
    }

    /// Asks the worker to load a model (its gene list beside it) on the chosen backend.
    pub fn load_model(&mut self, path: PathBuf) {
        self.x.status = format!("Loading {} …", path.display());
        self.x.model_path = Some(path.clone());
        self.worker
            .send(Command::LoadModel(path, self.settings.backend));
    }

    /// Asks the worker to embed the open dataset with the loaded model (then the pipeline runs
    /// on the embedding).
    pub fn embed(&mut self) {
        if let Some(d) = &self.x.data {
            self.worker.send(Command::Embed(d.clone()));
        }
    }

    /// Sets the labelled reference used by [`Self::transfer`] and its label column.
    pub fn set_reference(&mut self, path: PathBuf, label_key: &str) {
        self.panels.transfer.reference = Some(path);
        self.panels.transfer.label_key = label_key.to_string();
    }

    /// Transfers labels from the reference to the open dataset on the worker.
    pub fn transfer(&mut self) {
        if let Some(a) = self.panels.transfer.action() {
            self.apply(a);
        }
    }

    /// Pre-trains a model on the open dataset (as the panel's button does).
    pub fn pretrain(&mut self, job: PretrainJob) {
        self.apply(Action::Pretrain(job));
    }

    /// Fine-tunes on the open dataset's `job.label_key` (on the loaded model when
    /// `use_loaded`), as the panel's button does.
    pub fn finetune(&mut self, job: FinetuneJob, use_loaded: bool) {
        self.apply(Action::Finetune(job, use_loaded));
    }

    /// Runs the pipeline on sides A and B on the worker and compares them (their spatial
    /// domains by each side's method, when `domains` is given).
    pub fn compare(
        &mut self,
        a: SideSource,
        b: SideSource,
        domains: Option<[crate::pipeline::jobs::compare::SideDomains; 2]>,
    ) {
        self.apply(Action::Compare(a, b, domains));
    }

    /// Colours the cells by `c` (computed on the worker's views thread).
    pub fn set_color_by(&mut self, c: ColorBy) {
        self.x.set_color_by(c);
    }

    /// Selects exactly the cells `idx` (as a box or lasso selection would).
    pub fn select_cells(&mut self, idx: &[usize]) {
        self.x.select(idx);
    }

    /// Names the current selection (an annotation written back as
    /// `obs['cellscope_annotation']`).
    pub fn annotate_selection(&mut self, name: &str) {
        let cells = self.x.selected();
        if !cells.is_empty() && !name.trim().is_empty() {
            self.x.annotations.push((name.trim().to_string(), cells));
        }
    }

    /// Writes a figure of the export panel's view to `path` on the export thread.
    pub fn export_figure(&mut self, path: PathBuf) {
        let a = self.panels.export.figure(self.target(path));
        self.apply_all(a);
    }

    /// Writes the results with the dataset into a new `.h5ad` on the export thread.
    pub fn export_results(&mut self, path: PathBuf) {
        let a = self.panels.export.export_results(self.target(path));
        self.apply_all(a);
    }

    /// Writes the selected cells to CSV on the export thread.
    pub fn export_selection_csv(&mut self, path: PathBuf) {
        let a = self.panels.export.csv(self.target(path));
        self.apply_all(a);
    }

    /// An export of what the window shows to `path`.
    fn target(&self, path: PathBuf) -> panels::export::Target<'_> {
        panels::export::Target {
            ctx: &self.ctx,
            x: &self.x,
            path,
            provenance: self.provenance(),
        }
    }

    /// The compute backend for models loaded or trained from now on.
    pub fn set_backend(&mut self, b: BackendChoice) {
        self.settings.backend = b;
    }

    fn run_pipeline(&mut self) {
        let Some(d) = &self.x.data else { return };
        let params = self
            .panels
            .pipeline
            .params_for(d.default_spatial().is_some());
        self.x.analysis = None;
        self.x.results_gen += 1;
        let matrix = (self.x.embedding.as_ref())
            .map(|e| (e.0.clone(), "model embedding (X_cellscope)".to_string()));
        let job = AnalyzeJob {
            use_rep: None,
            matrix,
            params,
            label_key: None,
            graph_domains: self.panels.pipeline.graph_domains(),
        };
        self.worker.send(Command::Analyze(d.clone(), job));
    }

    /// Provenance of an export from the window (see [`provenance`]).
    fn provenance(&self) -> serde_json::Value {
        provenance(&self.x, &self.panels.transfer, &self.panels.pipeline)
    }

    /// The side panel: sections that fold away, the main ones (data, colour, pipeline) open.
    fn side_panel(&mut self, ui: &mut egui::Ui) {
        let busy = self.worker.busy();
        let p = &mut self.panels;
        let x = &mut self.x;
        ui.heading("cellscope");
        ui.separator();
        let mut actions = p.data.show(ui, x, &self.settings.recent);
        let section = |title: &str, open: bool| {
            egui::CollapsingHeader::new(RichText::new(title).strong()).default_open(open)
        };
        let colour = section("Colour by", true).show(ui, |ui| p.color.show(ui, x));
        actions.extend(colour.body_returned.flatten());
        let pipe =
            section("Pipeline", true).show(ui, |ui| p.pipeline.show(ui, x.data.is_some(), busy));
        actions.extend(pipe.body_returned.flatten());
        let model = section("Model", true).show(ui, |ui| {
            p.model.show(ui, x, &mut self.settings.backend, busy)
        });
        actions.extend(model.body_returned.unwrap_or_default());
        let transfer = section("Label transfer", false).show(ui, |ui| p.transfer.show(ui, x, busy));
        actions.extend(transfer.body_returned.flatten());
        // A running training keeps its section open.
        let training_open = busy && p.training.history.last().is_some();
        let training = section("Training", false)
            .open(training_open.then_some(true))
            .show(ui, |ui| {
                let loaded = x.model.is_some();
                let mut a = p.training.show(ui, x.data.as_deref(), loaded, busy);
                if training_open && ui.button("Cancel training").clicked() {
                    a = Some(Action::Cancel);
                }
                a
            });
        actions.extend(training.body_returned.flatten());
        let compare = section("Compare A vs B", false)
            .open(p.compare.show.then_some(true))
            .show(ui, |ui| p.compare.show(ui, x, busy));
        actions.extend(compare.body_returned.flatten());
        let bench = section("Benchmark (scSSL-Bench)", false)
            .show(ui, |ui| p.benchmark.show(ui, x.data.as_deref(), busy));
        actions.extend(bench.body_returned.flatten());
        let export = section("Export", false).show(ui, |ui| p.export.show(ui, x));
        actions.extend(export.body_returned.flatten());
        self.apply_all(actions);
    }

    /// The right panel: the legend, then the metrics.
    fn right_panel(&mut self, ui: &mut egui::Ui) {
        let mut actions = panels::legend::show(ui, &self.x, &self.panels.compare);
        ui.separator();
        egui::ScrollArea::vertical()
            .id_salt("metrics")
            .show(ui, |ui| {
                let m = &self.panels.metrics;
                actions.extend(m.show(ui, &self.x, &self.panels.compare));
            });
        self.apply_all(actions);
    }

    /// The point views (or the A-vs-B views) in the central panel.
    fn central_panel(&mut self, ui: &mut egui::Ui, format: Option<eframe::wgpu::TextureFormat>) {
        let full = ui.available_rect_before_wrap();
        let (hovered, selected) = if self.panels.compare.showing() {
            self.panels.compare.views(ui, full, format, &self.x)
        } else {
            let x = &mut self.x;
            let n = x.views.len();
            let (mut hovered, mut selected) = (None, None);
            let dim = x.n_selected > 0;
            for (k, v) in x.views.iter_mut().enumerate() {
                let rect = column_rect(full, k, n);
                let r = v.show(
                    ui,
                    rect,
                    &x.point_data[k.min(1)],
                    dim,
                    format,
                    crate::ui::view::Backdrop::of(
                        v.y_down,
                        x.underlay.as_ref(),
                        x.outlines.as_deref(),
                        x.fill_outlines,
                    ),
                );
                hovered = hovered.or(r.hovered);
                selected = selected.or(r.selected);
            }
            if x.views.is_empty() {
                ui.centered_and_justified(|ui| ui.label("Open a dataset to see it here."));
            }
            (hovered, selected)
        };
        self.x.hovered = hovered;
        if let Some(sel) = selected {
            self.x.select(&sel);
        }
    }

    fn errors_panel(&mut self, ui: &mut egui::Ui) {
        if self.x.errors.is_empty() {
            return;
        }
        egui::Panel::bottom("errors").show(ui, |ui| {
            for e in &self.x.errors {
                ui.colored_label(Color32::from_rgb(180, 0, 0), format!("error: {e}"));
            }
            if ui.button("Dismiss").clicked() {
                self.x.errors.clear();
            }
        });
    }

    /// One frame of UI into the root `ui` (also driven by the kittest harness).
    pub fn frame(&mut self, ui: &mut egui::Ui, format: Option<eframe::wgpu::TextureFormat>) {
        let ctx = ui.ctx().clone();
        self.drain_events(&ctx);
        self.poll(&ctx);
        self.x.request_coloring(&self.worker);
        self.panels
            .metrics
            .update(&self.x, &self.panels.compare, &self.worker);
        if self.x.dirty {
            self.x.refresh_points();
            let (sel, generation) = (&self.x.selection, self.x.generation);
            self.panels.compare.refresh(sel, generation);
        }
        egui::Panel::left("side")
            .resizable(true)
            .default_size(260.0)
            .show(ui, |ui| {
                egui::ScrollArea::vertical().show(ui, |ui| self.side_panel(ui));
            });
        egui::Panel::right("legend")
            .resizable(true)
            .default_size(280.0)
            .show(ui, |ui| self.right_panel(ui));
        self.errors_panel(ui);
        egui::CentralPanel::default().show(ui, |ui| self.central_panel(ui, format));
        if let Some(a) = self.panels.benchmark.window(&ctx) {
            self.apply_all(vec![a]);
        }
        self.request_detail(&ctx);
        if let Some(i) = self.x.hovered {
            let text = self.x.hover_text(i);
            egui::Tooltip::always_open(
                ctx.clone(),
                egui::LayerId::background(),
                egui::Id::unique("hover"),
                egui::PopupAnchor::Pointer,
            )
            .show(|ui| ui.label(text));
        }
        self.maybe_screenshot(&ctx);
    }

    fn maybe_screenshot(&mut self, ctx: &egui::Context) {
        let Some(path) = self.screenshot_to.clone() else {
            return;
        };
        let ready = self.x.analysis.is_some() && !self.views_pending();
        if ready || !self.x.errors.is_empty() {
            self.screenshot_frames += 1;
            if self.screenshot_frames == 5 {
                // For scripted checks: what the window shows.
                println!("representation: {}", self.x.rep_name);
                for e in &self.x.errors {
                    println!("error: {e}");
                }
                ctx.send_viewport_cmd(egui::ViewportCommand::Screenshot(screenshot_to(
                    ctx.clone(),
                    path,
                )));
            }
        }
        ctx.request_repaint();
    }
}

/// Provenance of an export from the window: data, model and reference files with their
/// SHA-256, pipeline parameters, representation and colouring.
fn provenance(
    x: &Explorer,
    transfer: &panels::transfer::TransferPanel,
    pipeline: &panels::pipeline::PipelinePanel,
) -> serde_json::Value {
    let p = pipeline;
    crate::export::provenance(
        &panels::export::provenance_files(x, transfer.reference.as_deref()),
        serde_json::json!({
            "n_neighbors": p.params.n_neighbors,
            "resolution": p.params.resolution,
            "spatial_domains": p.n_domains,
            "domain_method": p.domains.describe(),
            "seed": p.params.seed,
            "representation": x.rep_name,
            "color_by": serde_json::to_value(&x.color_by).unwrap_or_default(),
        }),
    )
}

/// Saves the screenshot a viewport command takes to `path` (atomically), then closes the
/// window.
fn screenshot_to(c: egui::Context, path: PathBuf) -> egui::ScreenshotCallback {
    egui::ScreenshotCallback::new(move |img| {
        let [w, h] = img.size;
        let bytes: Vec<u8> = img.pixels.iter().flat_map(|c| c.to_array()).collect();
        if let Some(buf) = image::RgbaImage::from_raw(w as u32, h as u32, bytes) {
            let tmp = path.with_extension("part.png");
            if buf.save(&tmp).is_ok() {
                let _ = std::fs::rename(&tmp, &path);
            }
        }
        c.send_viewport_cmd(egui::ViewportCommand::Close);
        c.request_repaint();
    })
}

impl eframe::App for CellscopeApp {
    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, Settings::KEY, &self.settings);
    }

    fn ui(&mut self, ui: &mut egui::Ui, frame: &mut eframe::Frame) {
        let format = frame.wgpu_render_state().map(|r| r.target_format);
        self.frame(ui, format);
    }
}
