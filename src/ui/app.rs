//! The explorer window: data and pipeline panels, two linked point views (embedding and
//! spatial), colouring, legend, hover details, selection and the metrics dashboard.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use egui::{Color32, RichText};
use ndarray::Array2;

use super::colors::viridis;
use super::view::PointView;
use crate::data::anndata::AnnData;
use crate::data::dataframe::Column;
use crate::model::hub::Hub;
use crate::pipeline::analyze::{Analysis, AnalyzeParams, Step};
use crate::pipeline::worker::{Command, Event, Worker};
use crate::render::points::{PointData, pack};

mod compare;
mod exports;
mod metrics;

/// What the points are coloured by.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum ColorBy {
    /// Leiden clusters from the pipeline.
    Leiden,
    /// Spatial domains from the pipeline.
    Domain,
    /// Spatial-domain posterior confidence (fades to grey).
    DomainConfidence,
    /// An obs column (categorical, or numeric on viridis).
    Obs(String),
    /// A gene's expression (viridis, clipped at the 99th percentile).
    Gene(String),
    /// Cell types predicted by label transfer; with `fade`, faded to grey by (1 - confidence).
    Predicted {
        /// Fade low-confidence cells.
        fade: bool,
    },
    /// Agreement of two obs labelings of the same classes (e.g. predicted vs annotated):
    /// match / mismatch.
    Agreement(String, String),
}

pub use crate::render::coloring::LegendItem;
use crate::render::coloring::{
    Coloring, Ramp, categorical_coloring, continuous_coloring, gene_values,
};

/// The pretrained ssl_in_scg models on the HuggingFace hub (Richter et al. 2024; SSL_MODELS.md),
/// offered in the model panel; the repository's `var.parquet` comes with them as the gene list.
const HUB_MODELS: [&str; 3] = [
    "hf://TillR/sc_pretrained/Pretrained Models/RandomMask.ckpt",
    "hf://TillR/sc_pretrained/Pretrained Models/GPMask.ckpt",
    "hf://TillR/sc_pretrained/Pretrained Models/BarlowTwins.ckpt",
];

/// The last `/`-separated component of a path or hub name.
fn file_name(s: &str) -> &str {
    s.rsplit('/').next().unwrap_or(s)
}

/// The pipeline's steps in order, one progress bar each.
const STEPS: [Step; 5] = [
    Step::Embed,
    Step::Neighbors,
    Step::Umap,
    Step::Leiden,
    Step::SpatialDomains,
];

fn step_name(s: Step) -> &'static str {
    match s {
        Step::Embed => "embed",
        Step::Neighbors => "neighbours",
        Step::Umap => "UMAP",
        Step::Leiden => "Leiden",
        Step::SpatialDomains => "spatial domains",
    }
}

/// A file chosen in a dialog running on its own thread, taken by the next frame.
type Picked = Arc<std::sync::Mutex<Option<PathBuf>>>;

/// Opens a file dialog (rfd) on its own named thread so the UI never blocks; the choice lands in
/// `slot` and the UI is woken.
fn pick_file_in_background(
    ctx: &egui::Context,
    slot: &Picked,
    filter: &'static str,
    extensions: &'static [&'static str],
) {
    let (slot, ctx) = (slot.clone(), ctx.clone());
    let _ = std::thread::Builder::new()
        .name("cellscope-file-dialog".into())
        .spawn(move || {
            let picked = rfd::FileDialog::new()
                .add_filter(filter, extensions)
                .pick_file();
            if let Ok(mut s) = slot.lock() {
                *s = picked;
            }
            ctx.request_repaint();
        });
}

/// Asks (rfd, own thread) for a file to save to (`open`: an existing file to open); the path
/// lands in `slot` and the UI is woken.
fn save_file_in_background(ctx: &egui::Context, slot: &Picked, name: &str, open: bool) {
    let (slot, ctx, name) = (slot.clone(), ctx.clone(), name.to_string());
    let _ = std::thread::Builder::new()
        .name("cellscope-file-dialog".into())
        .spawn(move || {
            let d = rfd::FileDialog::new();
            let picked = if open {
                d.pick_file()
            } else {
                d.set_file_name(name).save_file()
            };
            if let Ok(mut s) = slot.lock() {
                *s = picked;
            }
            ctx.request_repaint();
        });
}

/// The model a picked file stands for: a cellscope model folder is chosen through its
/// `config.json`; any other file is the model itself.
fn model_path_of(p: PathBuf) -> PathBuf {
    match p.parent() {
        Some(dir) if p.file_name().is_some_and(|n| n == "config.json") => dir.to_path_buf(),
        _ => p,
    }
}

/// The rectangle of view `k` of `n` side by side in `full` (8-point gaps).
fn column_rect(full: egui::Rect, k: usize, n: usize) -> egui::Rect {
    let n = n.max(1) as f32;
    let w = (full.width() - 8.0 * (n - 1.0)) / n;
    egui::Rect::from_min_size(
        full.min + egui::vec2(k as f32 * (w + 8.0), 0.0),
        egui::vec2(w, full.height()),
    )
}

/// Takes the file a dialog left in `slot`, if any.
fn take(slot: &Picked) -> Option<PathBuf> {
    slot.lock().ok().and_then(|mut g| g.take())
}

/// The explorer's state.
pub struct CellscopeApp {
    worker: Worker,
    data: Option<Arc<AnnData>>,
    analysis: Option<Box<Analysis>>,
    rep_name: String,
    color_by: ColorBy,
    hidden: BTreeSet<String>,
    selection: Vec<bool>,
    n_selected: usize,
    views: Vec<PointView>,
    point_data: [PointData; 2],
    generation: u64,
    coloring: Coloring,
    dirty: bool,
    progress: Option<(Step, f32)>,
    /// Counts the events that may change results (analysis, predictions, data, comparison);
    /// the metrics panels recompute when it moves.
    results_gen: u64,
    metrics: Option<metrics::MetricsCache>,
    /// Fraction done of each pipeline step ([`STEPS`] order) in the current or last run.
    step_fraction: [f32; STEPS.len()],
    status: String,
    errors: Vec<String>,
    params: AnalyzeParams,
    n_domains: usize,
    truth_key: Option<String>,
    gene_query: String,
    hovered: Option<usize>,
    /// Run the pipeline as soon as a dataset opens.
    pub auto_analyze: bool,
    /// Embed with the model being loaded as soon as it is ready, then run the pipeline on the
    /// embedding (the embedded default).
    embed_when_ready: bool,
    /// Save a screenshot here once the pipeline has finished, then close (for scripted checks).
    pub screenshot_to: Option<PathBuf>,
    screenshot_frames: u32,
    picked: Picked,
    picked_image: Picked,
    underlay: Option<super::view::Underlay>,
    pending_selection: Option<Vec<usize>>,
    agree_b: Option<String>,
    picked_model: Picked,
    /// `hf://` name of a model on the HuggingFace hub, edited in the model panel.
    hub_model: String,
    picked_reference: Picked,
    summary: String,
    /// Recently opened files, newest first (persisted by eframe between runs).
    pub recent: Vec<PathBuf>,
    reference: Option<PathBuf>,
    reference_key: String,
    prediction: Option<(Vec<String>, Vec<f32>)>,
    model_info: Option<(String, String, usize)>,
    embedding: Option<(Arc<Array2<f32>>, String)>,
    training: super::training::TrainingPanel,
    picked_save: Picked,
    /// The loaded model's file or folder (`None` for one trained here and not saved).
    model_path: Option<PathBuf>,
    export_spatial: bool,
    figure_size: crate::export::figure::FigureSize,
    annotations: Vec<(String, Vec<usize>)>,
    annotation_name: String,
    pending_session: Option<crate::export::session::Session>,
    export_kind: Option<exports::ExportKind>,
    picked_export: Picked,
    export_outcome: exports::ExportOutcome,
    ctx: egui::Context,
    compare: Option<compare::CompareState>,
    show_compare: bool,
    compare_b: Option<PathBuf>,
    picked_compare: Picked,
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
        let worker = Worker::with_hub(move || c.request_repaint(), hub);
        let mut app = CellscopeApp {
            worker,
            data: None,
            analysis: None,
            rep_name: String::new(),
            color_by: ColorBy::Leiden,
            hidden: BTreeSet::new(),
            selection: Vec::new(),
            n_selected: 0,
            views: Vec::new(),
            point_data: Default::default(),
            generation: 0,
            coloring: Coloring::default(),
            dirty: true,
            progress: None,
            results_gen: 0,
            metrics: None,
            step_fraction: [0.0; STEPS.len()],
            status: "No data. Open an .h5ad, a 10x .h5 or a Visium folder (or drop it here)."
                .into(),
            errors: Vec::new(),
            params: AnalyzeParams::default(),
            n_domains: 7,
            truth_key: None,
            gene_query: String::new(),
            hovered: None,
            auto_analyze: true,
            embed_when_ready: false,
            screenshot_to: None,
            screenshot_frames: 0,
            picked: Arc::default(),
            picked_image: Arc::default(),
            underlay: None,
            pending_selection: None,
            agree_b: None,
            picked_model: Arc::default(),
            hub_model: HUB_MODELS[0].to_string(),
            picked_reference: Arc::default(),
            summary: String::new(),
            recent: Vec::new(),
            reference: None,
            reference_key: "cell_type".into(),
            prediction: None,
            model_info: None,
            embedding: None,
            training: Default::default(),
            picked_save: Arc::default(),
            model_path: None,
            export_spatial: true,
            figure_size: Default::default(),
            annotations: Vec::new(),
            annotation_name: "region 1".into(),
            pending_session: None,
            export_kind: None,
            picked_export: Arc::default(),
            export_outcome: Arc::default(),
            ctx: ctx.clone(),
            compare: None,
            show_compare: false,
            compare_b: None,
            picked_compare: Arc::default(),
        };
        if let Some(p) = path {
            app.open(p);
        }
        app
    }

    /// Asks the worker to open a dataset.
    pub fn open(&mut self, path: PathBuf) {
        self.status = format!("Opening {} …", path.display());
        if !self.worker.send(Command::Open(path)) {
            self.errors.push("the worker is busy; try again".into());
        }
    }

    fn remember(&mut self, p: PathBuf) {
        // The embedded default is not a "recent file".
        if p == super::default_dataset() {
            return;
        }
        self.recent.retain(|q| q != &p);
        self.recent.insert(0, p);
        self.recent.truncate(8);
    }

    /// Loads `model` and, once it is ready, embeds the open dataset with it and runs the
    /// pipeline on the embedding instead of the PCA baseline (the embedded default).
    pub fn open_with_model(&mut self, model: PathBuf) {
        self.embed_when_ready = true;
        self.load_model(model);
    }

    /// Asks the worker to load a model (its gene list beside it).
    pub fn load_model(&mut self, path: PathBuf) {
        self.status = format!("Loading {} …", path.display());
        self.model_path = Some(path.clone());
        self.worker.send(Command::LoadModel(path));
    }

    /// Asks the worker to embed the open dataset with the loaded model (then the pipeline runs
    /// on the embedding).
    pub fn embed(&mut self) {
        if let Some(d) = &self.data {
            self.worker.send(Command::Embed(d.clone()));
        }
    }

    /// Sets the labelled reference used by [`Self::transfer`] and its label column.
    pub fn set_reference(&mut self, path: PathBuf, label_key: &str) {
        self.reference = Some(path);
        self.reference_key = label_key.to_string();
    }

    /// Transfers labels from the reference to the open dataset on the worker.
    pub fn transfer(&mut self) {
        if let (Some(r), Some(d)) = (&self.reference, &self.data) {
            self.worker.send(Command::Transfer {
                reference: r.clone(),
                label_key: self.reference_key.trim().to_string(),
                query: d.clone(),
            });
        }
    }

    /// The Training panel's state (events of the last run, its summary).
    pub fn training(&self) -> &super::training::TrainingPanel {
        &self.training
    }

    /// Pre-trains a model on the open dataset (as the panel's button does).
    pub fn pretrain(&mut self, job: crate::pipeline::train::PretrainJob) {
        self.training.reset();
        if let Some(d) = &self.data {
            self.worker.send(Command::Pretrain(d.clone(), job));
        }
    }

    /// Fine-tunes on the open dataset's `job.label_key` (on the loaded model when
    /// `use_loaded`), as the panel's button does.
    pub fn finetune(&mut self, job: crate::pipeline::train::FinetuneJob, use_loaded: bool) {
        self.training.reset();
        if let Some(d) = &self.data {
            self.worker
                .send(Command::Finetune(d.clone(), job, use_loaded));
        }
    }

    /// Predicted labels and confidences of the last transfer.
    pub fn prediction(&self) -> Option<&(Vec<String>, Vec<f32>)> {
        self.prediction.as_ref()
    }

    /// Description of the loaded model and its device, when one is loaded.
    pub fn model_info(&self) -> Option<&(String, String, usize)> {
        self.model_info.as_ref()
    }

    /// Whether the worker is running a job (the Cancel button is enabled).
    pub fn busy(&self) -> bool {
        self.worker.busy()
    }

    /// Name of the representation the last pipeline ran on.
    pub fn representation_name(&self) -> &str {
        &self.rep_name
    }

    /// Whether the pipeline has produced results.
    pub fn analyzed(&self) -> bool {
        self.analysis.is_some()
    }

    /// The `cellscope inspect` summary of the open dataset.
    pub fn summary(&self) -> &str {
        &self.summary
    }

    /// Number of cells selected.
    pub fn n_selected(&self) -> usize {
        self.n_selected
    }

    /// Leiden clusters of the last pipeline run.
    pub fn leiden(&self) -> Option<&[u32]> {
        self.analysis.as_ref().map(|a| a.leiden.as_slice())
    }

    /// The open dataset.
    pub fn data(&self) -> Option<&AnnData> {
        self.data.as_deref()
    }

    /// Selected cells (one flag per cell).
    pub fn selection(&self) -> &[bool] {
        &self.selection
    }

    /// The legend entries of the current categorical colouring.
    pub fn legend_items(&self) -> &[LegendItem] {
        &self.coloring.legend
    }

    /// Screen rectangle and camera of view `k` (0: embedding, 1: spatial) as last drawn.
    pub fn view_geometry(
        &self,
        k: usize,
    ) -> Option<(egui::Rect, crate::render::camera::Camera, &[[f32; 2]])> {
        let v = self.views.get(k)?;
        Some((v.last_rect?, v.camera?, v.positions.as_slice()))
    }

    /// Opacity of the image under the spatial view, when one is loaded.
    pub fn underlay_opacity(&mut self) -> Option<&mut f32> {
        self.underlay.as_mut().map(|u| &mut u.opacity)
    }

    /// Current colouring.
    pub fn set_color_by(&mut self, c: ColorBy) {
        self.color_by = c;
        self.hidden.clear();
        self.dirty = true;
    }

    fn run_pipeline(&mut self) {
        let Some(d) = &self.data else { return };
        let mut params = self.params.clone();
        params.spatial_domains = d.default_spatial().map(|_| self.n_domains);
        self.analysis = None;
        self.results_gen += 1;
        let matrix = self.embedding.as_ref().map(|e| e.0.clone());
        self.worker.send(Command::Analyze {
            data: d.clone(),
            use_rep: None,
            matrix,
            params,
        });
    }

    fn drain_events(&mut self, ctx: &egui::Context) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(4);
        while std::time::Instant::now() < deadline {
            let Ok(e) = self.worker.events.try_recv() else {
                break;
            };
            self.results_gen += 1;
            match e {
                Event::Started(s) => {
                    match s.as_str() {
                        "embedding" => self.step_fraction = [0.0; STEPS.len()],
                        "analysis" => self.step_fraction[1..].iter_mut().for_each(|v| *v = 0.0),
                        _ => {}
                    }
                    self.status = format!("{s} …");
                }
                Event::Progress(s, f) => {
                    let k = STEPS.iter().position(|x| *x == s).unwrap_or(0);
                    // Pipeline steps before this one are done (embedding is a job of its own).
                    if k > 0 {
                        self.step_fraction[1..k].iter_mut().for_each(|v| *v = 1.0);
                    }
                    self.step_fraction[k] = f;
                    self.progress = Some((s, f));
                }
                Event::Opened(a, summary) => {
                    self.summary = summary;
                    self.remember(a.source.clone());
                    self.underlay = None;
                    self.prediction = None;
                    self.embedding = None;
                    self.status = format!(
                        "{}: {} cells x {} genes",
                        a.source.display(),
                        a.n_obs(),
                        a.n_vars()
                    );
                    self.selection = vec![false; a.n_obs()];
                    self.n_selected = 0;
                    self.truth_key = [
                        "layer",
                        "label",
                        "cluster",
                        "cell_type",
                        "bulk_labels",
                        "Cell_class",
                    ]
                    .iter()
                    .find(|k| a.obs.column(k).is_some())
                    .map(|k| k.to_string());
                    self.data = Some(a);
                    self.analysis = None;
                    self.compare = None;
                    self.show_compare = false;
                    self.build_views();
                    self.color_by = match &self.truth_key {
                        Some(k) => ColorBy::Obs(k.clone()),
                        None => ColorBy::Leiden,
                    };
                    if self.auto_analyze && !self.embed_when_ready {
                        self.run_pipeline();
                    }
                }
                Event::Analyzed { analysis, name, .. } => {
                    self.step_fraction[1..4].iter_mut().for_each(|v| *v = 1.0);
                    if analysis.domains.is_some() {
                        self.step_fraction[4] = 1.0;
                    }
                    self.status = format!("pipeline done on {name}");
                    self.rep_name = name;
                    self.analysis = Some(analysis);
                    self.progress = None;
                    self.color_by = if self.analysis.as_ref().is_some_and(|a| a.domains.is_some()) {
                        ColorBy::Domain
                    } else {
                        ColorBy::Leiden
                    };
                    self.build_views();
                    self.apply_session();
                }
                Event::Image {
                    image,
                    data_per_pixel,
                    path,
                } => {
                    let [w, h] = image.size;
                    let texture = ctx.load_texture(
                        "underlay",
                        (*image).clone(),
                        egui::TextureOptions::LINEAR,
                    );
                    let opacity = self.underlay.as_ref().map_or(0.8, |u| u.opacity);
                    self.underlay = Some(super::view::Underlay {
                        texture,
                        size: [w as f64 * data_per_pixel, h as f64 * data_per_pixel],
                        opacity,
                        path,
                    });
                }
                Event::ModelLoaded {
                    summary,
                    device,
                    n_genes,
                } => {
                    self.status = "model loaded".into();
                    self.model_info = Some((summary, device, n_genes));
                    self.embedding = None;
                    if std::mem::take(&mut self.embed_when_ready) {
                        self.embed();
                    }
                }
                Event::Embedded {
                    values,
                    coverage,
                    cells_per_sec,
                } => {
                    self.status = format!(
                        "embedded at {cells_per_sec:.0} cells/s; running the pipeline on it"
                    );
                    self.embedding = Some((values, coverage));
                    self.progress = None;
                    self.run_pipeline();
                }
                Event::Transferred {
                    predicted,
                    confidence,
                } => {
                    self.status = "labels transferred".into();
                    self.prediction = Some((predicted, confidence));
                    self.color_by = ColorBy::Predicted { fade: false };
                    self.hidden.clear();
                }
                Event::Training(e) => {
                    self.status = format!(
                        "training: epoch {}/{}, loss {:.4}",
                        e.epoch + 1,
                        e.epochs,
                        e.train_loss
                    );
                    self.training.push(e);
                }
                Event::Trained { summary } => {
                    self.model_path = None;
                    self.status = format!("training done: {summary}");
                    self.training.summary = Some(summary);
                }
                Event::Compared(c) => {
                    self.status = format!(
                        "A vs B: {} of {} cells disagree",
                        c.n_disagree(),
                        c.disagree.len()
                    );
                    self.progress = None;
                    self.take_comparison(c);
                }
                Event::Saved(p) => {
                    self.status = format!("saved the model to {}", p.display());
                    self.model_path = Some(p);
                }
                Event::Cancelled => {
                    self.status = "cancelled".into();
                    self.progress = None;
                }
                Event::Failed(msg) => {
                    if std::mem::take(&mut self.embed_when_ready) && self.auto_analyze {
                        // The default model did not load: the pipeline runs on PCA instead.
                        self.run_pipeline();
                    }
                    self.errors.push(msg);
                    self.progress = None;
                    self.status = "failed (see the message)".into();
                }
            }
            self.dirty = true;
        }
    }

    fn build_views(&mut self) {
        let Some(d) = &self.data else { return };
        let mut views = Vec::new();
        let emb: Option<(Vec<[f32; 2]>, String)> = match &self.analysis {
            Some(a) => Some((rows2(&a.umap), "UMAP (cellscope)".into())),
            None => ["X_umap", "X_tsne", "X_pca"].iter().find_map(|k| {
                d.obsm
                    .get(*k)
                    .filter(|m| m.ncols() >= 2)
                    .map(|m| (rows2(&m.mapv(|v| v as f32)), format!("obsm['{k}']")))
            }),
        };
        if let Some((p, t)) = emb {
            views.push(PointView::new(
                1,
                &format!("Embedding: {t}"),
                p,
                false,
                None,
            ));
        }
        if let Some(src) = d.default_spatial()
            && let Ok(c) = d.spatial_coords(&src)
        {
            views.push(PointView::new(
                2,
                "Spatial",
                rows2(&c.mapv(|v| v as f32)),
                true,
                Some("units".into()),
            ));
        }
        self.views = views;
        self.dirty = true;
    }

    fn labels_for(&self, c: &ColorBy) -> Option<Vec<String>> {
        let d = self.data.as_ref()?;
        match c {
            ColorBy::Leiden => Some(
                self.analysis
                    .as_ref()?
                    .leiden
                    .iter()
                    .map(|v| v.to_string())
                    .collect(),
            ),
            ColorBy::Domain => Some(
                self.analysis
                    .as_ref()?
                    .domains
                    .as_ref()?
                    .0
                    .iter()
                    .map(|v| v.to_string())
                    .collect(),
            ),
            ColorBy::Predicted { .. } => self.prediction.as_ref().map(|p| p.0.clone()),
            ColorBy::Agreement(x, y) => {
                let (cx, cy) = (d.obs.column(x)?, d.obs.column(y)?);
                Some(
                    (0..cx.len())
                        .map(|i| {
                            if cx.value_string(i) == cy.value_string(i) {
                                "match"
                            } else {
                                "mismatch"
                            }
                            .to_string()
                        })
                        .collect(),
                )
            }
            ColorBy::Obs(k) => {
                let col = d.obs.column(k)?;
                if col.is_numeric() && !matches!(col, Column::Bool(_)) {
                    None
                } else {
                    Some((0..col.len()).map(|i| col.value_string(i)).collect())
                }
            }
            _ => None,
        }
    }

    fn compute_coloring(&self) -> Coloring {
        let Some(d) = &self.data else {
            return Coloring::default();
        };
        let n = d.n_obs();
        if let Some(labels) = self.labels_for(&self.color_by) {
            let (categories, uns) = match &self.color_by {
                ColorBy::Obs(k) => (
                    match d.obs.column(k) {
                        Some(Column::Categorical { categories, .. }) => Some(categories.as_slice()),
                        _ => None,
                    },
                    d.uns_colors.get(k).map(|v| v.as_slice()),
                ),
                _ => (None, None),
            };
            let mut c = categorical_coloring(&labels, categories, uns);
            if let (ColorBy::Predicted { fade: true }, Some((_, conf))) =
                (&self.color_by, &self.prediction)
            {
                for (c, &f) in c.colors.iter_mut().zip(conf) {
                    *c = Color32::from_gray(200).lerp_to_gamma(*c, f.clamp(0.0, 1.0));
                }
            }
            return c;
        }
        let values: Option<Vec<f32>> = match &self.color_by {
            ColorBy::Obs(k) => d
                .obs
                .column(k)
                .map(|c| (0..n).map(|i| c.value_f64(i) as f32).collect()),
            ColorBy::Gene(g) => gene_values(d, g),
            ColorBy::DomainConfidence => self
                .analysis
                .as_ref()
                .and_then(|a| a.domains.as_ref())
                .map(|d| d.1.clone()),
            _ => None,
        };
        match values {
            Some(v) => continuous_coloring(
                v,
                if self.color_by == ColorBy::DomainConfidence {
                    Ramp::Confidence
                } else {
                    Ramp::Viridis
                },
            ),
            None => Coloring {
                colors: vec![Color32::from_gray(120); n],
                ..Default::default()
            },
        }
    }

    fn refresh_points(&mut self) {
        if !self.dirty {
            return;
        }
        self.dirty = false;
        self.coloring = self.compute_coloring();
        let n = self.data.as_ref().map_or(0, |d| d.n_obs());
        let hidden_codes: Vec<bool> = self
            .coloring
            .legend
            .iter()
            .map(|l| self.hidden.contains(&l.name))
            .collect();
        let visible = |i: usize| match &self.coloring.codes {
            Some(c) => !hidden_codes.get(c[i] as usize).copied().unwrap_or(false),
            None => true,
        };
        let mut order: Vec<u32> = (0..n)
            .filter(|&i| visible(i) && !self.selection.get(i).copied().unwrap_or(false))
            .map(|i| i as u32)
            .collect();
        order.extend(
            (0..n)
                .filter(|&i| visible(i) && self.selection.get(i).copied().unwrap_or(false))
                .map(|i| i as u32),
        );
        let mut bits = vec![0u32; n.div_ceil(32).max(1)];
        for (i, &s) in self.selection.iter().enumerate() {
            if s {
                bits[i / 32] |= 1 << (i % 32);
            }
        }
        let colors = Arc::new(
            self.coloring
                .colors
                .iter()
                .map(|&c| pack(c))
                .collect::<Vec<_>>(),
        );
        let order = Arc::new(order);
        let bits = Arc::new(bits);
        self.generation += 1;
        for (k, v) in self.views.iter().enumerate().take(2) {
            self.point_data[k] = PointData {
                positions: v.positions.clone(),
                colors: colors.clone(),
                order: order.clone(),
                selected: bits.clone(),
                generation: self.generation,
            };
        }
        self.refresh_compare();
    }

    /// Selects exactly the cells `idx` (as a box or lasso selection would).
    pub fn select_cells(&mut self, idx: &[usize]) {
        self.select(idx);
    }

    fn select(&mut self, idx: &[usize]) {
        self.selection.iter_mut().for_each(|s| *s = false);
        for &i in idx {
            if let Some(s) = self.selection.get_mut(i) {
                *s = true;
            }
        }
        self.n_selected = self.selection.iter().filter(|&&s| s).count();
        self.dirty = true;
    }

    fn side_panel(&mut self, ui: &mut egui::Ui) {
        ui.heading("cellscope");
        ui.separator();
        ui.label(RichText::new("Data").strong());
        if ui.button("Open…").clicked() {
            pick_file_in_background(ui.ctx(), &self.picked, "single-cell data", &["h5ad", "h5"]);
        }
        ui.label(&self.status);
        ui.horizontal(|ui| {
            if ui
                .add_enabled(self.data.is_some(), egui::Button::new("Image…"))
                .clicked()
            {
                pick_file_in_background(
                    ui.ctx(),
                    &self.picked_image,
                    "image",
                    &["jpg", "jpeg", "png", "tif", "tiff"],
                );
            }
            if let Some(u) = &mut self.underlay {
                let label = ui.label("opacity");
                ui.add(egui::Slider::new(&mut u.opacity, 0.0..=1.0))
                    .labelled_by(label.id);
            }
        });
        if let Some(u) = &self.underlay {
            ui.label(format!(
                "image: {}",
                u.path
                    .file_name()
                    .map(|f| f.to_string_lossy())
                    .unwrap_or_default()
            ));
        }
        if let Some(d) = &self.data {
            ui.label(format!("{} cells × {} genes", d.n_obs(), d.n_vars()));
        }
        if !self.summary.is_empty() {
            ui.collapsing("summary (inspect)", |ui| {
                ui.label(RichText::new(&self.summary).monospace().size(10.0))
            });
        }
        if !self.recent.is_empty() {
            let mut open = None;
            ui.collapsing("recent files", |ui| {
                for p in &self.recent {
                    let name = p
                        .file_name()
                        .map(|f| f.to_string_lossy().to_string())
                        .unwrap_or_default();
                    if ui
                        .small_button(name)
                        .on_hover_text(p.display().to_string())
                        .clicked()
                    {
                        open = Some(p.clone());
                    }
                }
            });
            if let Some(p) = open {
                self.open(p);
            }
        }
        ui.separator();
        ui.label(RichText::new("Model").strong());
        ui.horizontal(|ui| {
            if ui.button("Model…").clicked() {
                pick_file_in_background(
                    ui.ctx(),
                    &self.picked_model,
                    "model",
                    &["ckpt", "pt", "pth", "safetensors", "json"],
                );
            }
            let can_embed = self.model_info.is_some() && self.data.is_some() && !self.worker.busy();
            if ui
                .add_enabled(can_embed, egui::Button::new("Embed"))
                .clicked()
                && let Some(d) = &self.data
            {
                self.worker.send(Command::Embed(d.clone()));
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
                .add_enabled(!self.worker.busy(), egui::Button::new("Fetch"))
                .on_hover_text(
                    "Download from the HuggingFace hub into the cache (once) and load; \
                     Cancel stops the download",
                )
                .clicked()
            {
                self.load_model(PathBuf::from(self.hub_model.clone()));
            }
        });
        ui.add(
            egui::TextEdit::singleline(&mut self.hub_model)
                .hint_text("hf://OWNER/NAME[@REVISION]/PATH")
                .desired_width(240.0),
        );
        match &self.model_info {
            Some((summary, device, n)) => {
                ui.label(summary.as_str());
                ui.label(format!("{n} input genes; device: {device}"));
            }
            None => {
                ui.label("no model: the pipeline runs on the PCA baseline");
            }
        }
        if let Some((e, coverage)) = &self.embedding {
            ui.label(format!(
                "embedding {} x {}; genes: {coverage}",
                e.nrows(),
                e.ncols()
            ));
        }
        ui.separator();
        let busy = self.worker.busy();
        // Training, comparison and exports fold away so the pipeline and colours stay in view;
        // a running training keeps its section open.
        let training_open = busy && self.training.history.last().is_some();
        let action = egui::CollapsingHeader::new(RichText::new("Training").strong())
            .open(training_open.then_some(true))
            .show(ui, |ui| {
                let a =
                    self.training
                        .show(ui, self.data.as_deref(), self.model_info.is_some(), busy);
                if training_open && ui.button("Cancel training").clicked() {
                    self.worker.cancel();
                }
                a
            })
            .body_returned
            .flatten();
        match action {
            Some(super::training::TrainAction::Pretrain(job)) => self.pretrain(job),
            Some(super::training::TrainAction::Finetune(job, loaded)) => {
                self.finetune(job, loaded);
            }
            Some(super::training::TrainAction::Save) => {
                save_file_in_background(ui.ctx(), &self.picked_save, "cellscope_model", false);
            }
            None => {}
        }
        egui::CollapsingHeader::new(RichText::new("Compare A vs B").strong())
            .open(self.show_compare.then_some(true))
            .show(ui, |ui| self.compare_panel(ui));
        egui::CollapsingHeader::new(RichText::new("Export").strong())
            .show(ui, |ui| self.export_panel(ui));
        ui.separator();
        ui.label(RichText::new("Label transfer").strong());
        ui.horizontal(|ui| {
            if ui.button("Reference…").clicked() {
                pick_file_in_background(
                    ui.ctx(),
                    &self.picked_reference,
                    "single-cell data",
                    &["h5ad", "h5"],
                );
            }
            let label = ui.label("labels");
            ui.text_edit_singleline(&mut self.reference_key)
                .labelled_by(label.id);
        });
        if let Some(r) = &self.reference {
            ui.label(format!(
                "reference: {}",
                r.file_name()
                    .map(|f| f.to_string_lossy())
                    .unwrap_or_default()
            ));
        }
        let can = self.reference.is_some() && self.data.is_some() && !self.worker.busy();
        if ui
            .add_enabled(can, egui::Button::new("Transfer labels"))
            .clicked()
        {
            self.transfer();
        }
        ui.separator();
        ui.label(RichText::new("Pipeline").strong());
        ui.add(egui::Slider::new(&mut self.params.n_neighbors, 5..=50).text("neighbours"));
        ui.add(egui::Slider::new(&mut self.params.resolution, 0.1..=3.0).text("resolution"));
        ui.add(egui::Slider::new(&mut self.n_domains, 2..=20).text("spatial domains"));
        ui.horizontal(|ui| {
            let busy = self.worker.busy();
            if ui
                .add_enabled(!busy && self.data.is_some(), egui::Button::new("Run"))
                .clicked()
            {
                self.run_pipeline();
            }
            if ui.add_enabled(busy, egui::Button::new("Cancel")).clicked() {
                self.worker.cancel();
            }
        });
        if self.progress.is_some() || self.step_fraction.iter().any(|&v| v > 0.0) {
            egui::Grid::new("step_progress").show(ui, |ui| {
                for (k, s) in STEPS.iter().enumerate() {
                    let f = self.step_fraction[k];
                    ui.label(step_name(*s));
                    ui.add(
                        egui::ProgressBar::new(f)
                            .desired_width(110.0)
                            .desired_height(8.0),
                    );
                    ui.label(format!("{:.0} %", f * 100.0));
                    ui.end_row();
                }
            });
        }
        ui.separator();
        ui.label(RichText::new("Colour by").strong());
        let mut choice = self.color_by.clone();
        if self.prediction.is_some() {
            ui.radio_value(
                &mut choice,
                ColorBy::Predicted { fade: false },
                "predicted type",
            );
            ui.radio_value(
                &mut choice,
                ColorBy::Predicted { fade: true },
                "predicted type × confidence",
            );
        }
        if self.analysis.is_some() {
            ui.radio_value(&mut choice, ColorBy::Leiden, "Leiden cluster");
            if self.analysis.as_ref().is_some_and(|a| a.domains.is_some()) {
                ui.radio_value(&mut choice, ColorBy::Domain, "spatial domain");
                ui.radio_value(&mut choice, ColorBy::DomainConfidence, "domain confidence");
            }
        }
        if let Some(d) = &self.data {
            for name in d.obs.column_names() {
                ui.radio_value(
                    &mut choice,
                    ColorBy::Obs(name.to_string()),
                    format!("obs: {name}"),
                );
            }
            ui.horizontal(|ui| {
                let label = ui.label("gene");
                let r = ui
                    .text_edit_singleline(&mut self.gene_query)
                    .labelled_by(label.id);
                if r.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter)) {
                    if let Some(g) = d
                        .var_names()
                        .iter()
                        .find(|g| g.eq_ignore_ascii_case(self.gene_query.trim()))
                    {
                        choice = ColorBy::Gene(g.clone());
                    } else {
                        self.errors
                            .push(format!("no gene named '{}'", self.gene_query.trim()));
                    }
                }
            });
            let names: Vec<String> = d.obs.column_names().iter().map(|s| s.to_string()).collect();
            ui.horizontal(|ui| {
                let label = ui.label("agreement of");
                let current = match &choice {
                    ColorBy::Obs(k) => Some(k.clone()),
                    ColorBy::Agreement(a, _) => Some(a.clone()),
                    _ => None,
                };
                egui::ComboBox::from_id_salt("agree_b")
                    .selected_text(self.agree_b.clone().unwrap_or("…".into()))
                    .show_ui(ui, |ui| {
                        for n in &names {
                            ui.selectable_value(&mut self.agree_b, Some(n.clone()), n);
                        }
                    })
                    .response
                    .labelled_by(label.id);
                if let (Some(a), Some(b)) = (current, self.agree_b.clone())
                    && a != b
                    && ui.button("compare").clicked()
                {
                    choice = ColorBy::Agreement(a, b);
                }
            });
            if !self.gene_query.is_empty() {
                let q = self.gene_query.to_ascii_lowercase();
                let hits: Vec<&String> = d
                    .var_names()
                    .iter()
                    .filter(|g| g.to_ascii_lowercase().starts_with(&q))
                    .take(6)
                    .collect();
                for g in hits {
                    if ui.small_button(g.as_str()).clicked() {
                        choice = ColorBy::Gene(g.clone());
                    }
                }
            }
        }
        if choice != self.color_by {
            self.set_color_by(choice);
        }
        if let Some((lo, hi)) = self.coloring.range {
            colour_bar(ui, lo, hi, self.color_by == ColorBy::DomainConfidence);
        }
    }

    fn legend(&mut self, ui: &mut egui::Ui) {
        ui.label(RichText::new("Legend").strong());
        ui.label(format!("selected: {}", self.n_selected));
        if self.n_selected > 0 && ui.button("Clear selection").clicked() {
            self.select(&[]);
        }
        if self.showing_comparison() {
            self.compare_legend(ui);
            return;
        }
        // Some(None): show all (double click); Some(Some(name)): toggle that category.
        let mut clicked: Option<Option<String>> = None;
        egui::ScrollArea::vertical()
            .id_salt("legend")
            .max_height(320.0)
            .show(ui, |ui| {
                for item in &self.coloring.legend {
                    let hidden = self.hidden.contains(&item.name);
                    let text = format!("{}  ({})", item.name, item.count);
                    let resp = ui.horizontal(|ui| {
                        let (r, _) =
                            ui.allocate_exact_size(egui::vec2(12.0, 12.0), egui::Sense::hover());
                        ui.painter().circle_filled(
                            r.center(),
                            5.0,
                            if hidden {
                                Color32::from_gray(220)
                            } else {
                                item.color
                            },
                        );
                        ui.selectable_label(!hidden, text)
                    });
                    let r = resp.inner;
                    if r.double_clicked() {
                        clicked = Some(None);
                    } else if r.clicked() {
                        clicked = Some(Some(item.name.clone()));
                    }
                }
            });
        match clicked {
            Some(None) => self.hidden.clear(),
            Some(Some(name)) => {
                if !self.hidden.remove(&name) {
                    self.hidden.insert(name);
                }
            }
            None => return,
        }
        self.dirty = true;
    }

    fn hover_text(&self, i: usize) -> String {
        let Some(d) = &self.data else {
            return String::new();
        };
        let mut s = format!("{}\n", d.obs_names()[i]);
        for name in d.obs.column_names().into_iter().take(8) {
            if let Some(c) = d.obs.column(name) {
                s.push_str(&format!("{name}: {}\n", c.value_string(i)));
            }
        }
        if let Some((p, c)) = &self.prediction {
            s.push_str(&format!(
                "predicted: {} ({:.0} % of votes)\n",
                p[i],
                c[i] * 100.0
            ));
        }
        if let Some(a) = &self.analysis {
            s.push_str(&format!("leiden: {}\n", a.leiden[i]));
            if let Some((dom, conf)) = &a.domains {
                s.push_str(&format!("spatial domain: {} ({:.2})\n", dom[i], conf[i]));
            }
        }
        if let ColorBy::Gene(g) = &self.color_by
            && let Some(v) = &self.coloring.values
        {
            s.push_str(&format!("{g}: {:.3}\n", v[i]));
        }
        s
    }

    /// One frame of UI into the root `ui` (also driven by the kittest harness).
    pub fn frame(&mut self, ui: &mut egui::Ui, format: Option<eframe::wgpu::TextureFormat>) {
        let ctx = ui.ctx().clone();
        self.drain_events(&ctx);
        if let Some(p) = take(&self.picked) {
            self.open(p);
        }
        if let Some(p) = take(&self.picked_model) {
            self.load_model(model_path_of(p));
        }
        self.poll_exports();
        if let Some(p) = take(&self.picked_compare) {
            self.compare_b = Some(model_path_of(p));
        }
        if let Some(p) = take(&self.picked_save) {
            self.worker.send(Command::SaveModel(p));
        }
        if let Some(p) = take(&self.picked_reference) {
            self.reference = Some(p);
        }
        if let Some(p) = take(&self.picked_image) {
            // An image chosen by hand is taken to be in the pixel frame of obsm['spatial'].
            self.worker.send(Command::LoadImage(p, 1.0));
        }
        if let Some(f) = ctx.input(|i| i.raw.dropped_files.first().map(|f| f.path().to_path_buf()))
        {
            self.open(f);
        }
        if let Some(sel) = self.pending_selection.take() {
            self.select(&sel);
        }
        self.refresh_points();
        egui::Panel::left("side")
            .resizable(true)
            .default_size(260.0)
            .show(ui, |ui| {
                egui::ScrollArea::vertical().show(ui, |ui| self.side_panel(ui));
            });
        egui::Panel::right("legend")
            .resizable(true)
            .default_size(280.0)
            .show(ui, |ui| {
                self.legend(ui);
                ui.separator();
                egui::ScrollArea::vertical()
                    .id_salt("metrics")
                    .show(ui, |ui| self.metrics_panel(ui));
            });
        if !self.errors.is_empty() {
            egui::Panel::bottom("errors").show(ui, |ui| {
                let mut dismiss = false;
                for e in &self.errors {
                    ui.colored_label(Color32::from_rgb(180, 0, 0), format!("error: {e}"));
                }
                if ui.button("Dismiss").clicked() {
                    dismiss = true;
                }
                if dismiss {
                    self.errors.clear();
                }
            });
        }
        egui::CentralPanel::default().show(ui, |ui| {
            let full = ui.available_rect_before_wrap();
            if self.showing_comparison() {
                let (hovered, selected) = self.compare_views(ui, full, format);
                self.hovered = hovered;
                if let Some(sel) = selected {
                    self.select(&sel);
                }
                return;
            }
            let n = self.views.len();
            let mut hovered = None;
            let mut selected = None;
            let dim = self.n_selected > 0;
            for (k, v) in self.views.iter_mut().enumerate() {
                let rect = column_rect(full, k, n);
                let underlay = if v.y_down {
                    self.underlay.as_ref()
                } else {
                    None
                };
                let r = v.show(ui, rect, &self.point_data[k.min(1)], dim, format, underlay);
                hovered = hovered.or(r.hovered);
                selected = selected.or(r.selected);
            }
            if self.views.is_empty() {
                ui.centered_and_justified(|ui| ui.label("Open a dataset to see it here."));
            }
            self.hovered = hovered;
            if let Some(sel) = selected {
                self.select(&sel);
            }
        });
        if let Some(i) = self.hovered {
            let text = self.hover_text(i);
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
        if self.analysis.is_some() || !self.errors.is_empty() {
            self.screenshot_frames += 1;
            if self.screenshot_frames == 5 {
                // For scripted checks: what the window shows.
                println!("representation: {}", self.rep_name);
                for e in &self.errors {
                    println!("error: {e}");
                }
                let c = ctx.clone();
                ctx.send_viewport_cmd(egui::ViewportCommand::Screenshot(
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
                    }),
                ));
            }
        }
        ctx.request_repaint();
    }
}

impl eframe::App for CellscopeApp {
    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, "recent_files", &self.recent);
    }

    fn ui(&mut self, ui: &mut egui::Ui, frame: &mut eframe::Frame) {
        let format = frame.wgpu_render_state().map(|r| r.target_format);
        self.frame(ui, format);
    }
}

fn rows2(m: &Array2<f32>) -> Vec<[f32; 2]> {
    m.outer_iter().map(|r| [r[0], r[1]]).collect()
}

/// The colour ramp of the current continuous colouring, `lo` to `hi` (viridis, or grey to red
/// for confidence), with its range.
fn colour_bar(ui: &mut egui::Ui, lo: f32, hi: f32, confidence: bool) {
    let (rect, _) = ui.allocate_exact_size(egui::vec2(200.0, 12.0), egui::Sense::hover());
    let steps = 50;
    for s in 0..steps {
        let t = s as f32 / (steps - 1) as f32;
        let c = if confidence {
            Color32::from_gray(200).lerp_to_gamma(Color32::from_rgb(200, 30, 30), t)
        } else {
            viridis(t)
        };
        let x0 = rect.left() + rect.width() * s as f32 / steps as f32;
        ui.painter().rect_filled(
            egui::Rect::from_min_max(
                egui::pos2(x0, rect.top()),
                egui::pos2(x0 + rect.width() / steps as f32 + 0.5, rect.bottom()),
            ),
            0.0,
            c,
        );
    }
    ui.label(format!("{lo:.2} … {hi:.2} (99th percentile)"));
}
