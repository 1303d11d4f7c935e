//! The background worker: the threads the window's jobs run on. One named thread
//! (`cellscope-worker`) takes typed [`Command`]s in order and runs the matching function of
//! [`super::jobs`], holding the loaded model between jobs; a second (`cellscope-views`)
//! computes what the views and the dashboard show (colourings, metrics), newest request of each
//! kind first, so that picking a gene never waits behind a pipeline run; images decode on threads of their own (`cellscope-image`). Typed [`Event`]s
//! come back over one bounded channel, each followed by a call to `wake` (the UI's
//! `request_repaint`); a shared flag cancels the running job. The worker computes nothing
//! itself: it owns the threads, the channels and the dispatch.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded};
use ndarray::Array2;

use super::jobs::analyze::{Analysis, AnalyzeJob, AnalyzeParams};
use super::jobs::coloring::{ColorBy, ColorInputs, Coloring};
use super::jobs::compare::{Comparison, SideSource};
use super::jobs::dashboard::{Dashboard, DashboardInputs};
use super::jobs::train::{FinetuneJob, PretrainJob, Trained};
use super::jobs::{Handle, JobError, Progress};
use crate::data::anndata::AnnData;
use crate::model::hub::Hub;
use crate::model::{BackendChoice, Engine, Model};

/// What the worker is asked to do.
#[derive(Debug)]
pub enum Command {
    /// Open a dataset (.h5ad, 10x .h5, Visium folder).
    Open(PathBuf),
    /// Load an image to show under the spatial view, placed and contrast-stretched as asked.
    LoadImage(super::jobs::open::ImageRequest),
    /// Read a finer window of a pyramidal underlay for a zoomed-in view; the number is the
    /// data units per pixel below which it is worth reading (the whole image's texture).
    LoadDetail(super::jobs::detail::DetailRequest, f64),
    /// Load a model (cellscope folder, PyTorch / safetensors checkpoint with its gene list
    /// beside it, or an `hf://` file) and create its engine on the backend.
    LoadModel(PathBuf, BackendChoice),
    /// Embed the dataset with the loaded model.
    Embed(Arc<AnnData>),
    /// Transfer labels from a labelled reference file to the open dataset (kNN vote, k = 5, on
    /// the shared genes; see [`super::jobs::transfer`]).
    Transfer {
        /// Labelled reference.
        reference: PathBuf,
        /// Its obs column of labels.
        label_key: String,
        /// The open dataset.
        query: Arc<AnnData>,
    },
    /// Run the pipeline on the open dataset.
    Analyze(Arc<AnnData>, AnalyzeJob),
    /// Pre-train a new model on the open dataset (it becomes the loaded model).
    Pretrain(Arc<AnnData>, PretrainJob),
    /// Fine-tune a classifier on the open dataset's labels, on the loaded model's backbone when
    /// the flag is set (else from random init); it becomes the loaded model, and its
    /// predictions for every cell are reported as [`Event::Transferred`].
    Finetune(Arc<AnnData>, FinetuneJob, bool),
    /// Run the pipeline twice, on side A and side B, and compare them.
    Compare {
        /// The dataset.
        data: Arc<AnnData>,
        /// Side A and side B.
        sides: [SideSource; 2],
        /// Pipeline parameters for both.
        params: AnalyzeParams,
        /// Each side's spatial-domain method, when domains are compared.
        domains: Option<[super::jobs::compare::SideDomains; 2]>,
    },
    /// Compare methods on the open dataset as scSSL-Bench does ([`super::jobs::benchmark`]).
    Benchmark(Arc<AnnData>, Box<super::jobs::benchmark::BenchmarkJob>),
    /// Save the loaded model as a cellscope folder (which must not exist).
    SaveModel(PathBuf),
    /// Stop the threads.
    Shutdown,
    /// A job that panics: for tests that a panicking job is reported as
    /// [`JobError::Panicked`] and the worker goes on.
    #[doc(hidden)]
    InjectPanic,
}

impl Command {
    /// The command's name, for messages.
    fn name(&self) -> &'static str {
        match self {
            Self::Open(_) => "opening",
            Self::LoadImage(..) => "loading an image",
            Self::LoadDetail(..) => "reading a window of the image",
            Self::LoadModel(..) => "loading a model",
            Self::Embed(_) => "embedding",
            Self::Transfer { .. } => "label transfer",
            Self::Analyze(..) => "the pipeline",
            Self::Pretrain(..) => "pre-training",
            Self::Finetune(..) => "fine-tuning",
            Self::Compare { .. } => "the comparison",
            Self::Benchmark(..) => "the benchmark",
            Self::SaveModel(_) => "saving the model",
            Self::Shutdown => "shutdown",
            Self::InjectPanic => "an injected test job",
        }
    }
}

/// Which job started (the window's status line and progress bars key on it).
#[derive(Debug, Clone, PartialEq)]
pub enum JobKind {
    /// Opening a dataset.
    Open(PathBuf),
    /// Loading a model.
    LoadModel(PathBuf),
    /// Embedding the open dataset.
    Embed,
    /// Transferring labels from a reference.
    Transfer(PathBuf),
    /// The analysis pipeline.
    Analyze,
    /// Pre-training with an objective.
    Pretrain(crate::model::train::ObjectiveKind),
    /// Fine-tuning on an obs column.
    Finetune(String),
    /// Model A vs B.
    Compare,
    /// The scSSL-Bench comparison.
    Benchmark,
}

impl std::fmt::Display for JobKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JobKind::Open(p) => write!(f, "opening {}", p.display()),
            JobKind::LoadModel(p) => write!(f, "loading {}", p.display()),
            JobKind::Embed => f.write_str("embedding"),
            JobKind::Transfer(p) => write!(f, "transferring labels from {}", p.display()),
            JobKind::Analyze => f.write_str("analysis"),
            JobKind::Pretrain(o) => write!(f, "pre-training ({o})"),
            JobKind::Finetune(k) => write!(f, "fine-tuning on '{k}'"),
            JobKind::Compare => f.write_str("comparing A vs B"),
            JobKind::Benchmark => f.write_str("benchmarking methods"),
        }
    }
}

/// What the worker reports.
#[derive(Debug)]
pub enum Event {
    /// A job started.
    Started(JobKind),
    /// Progress of the running job (steps, downloads, embedding, training).
    Progress(Progress),
    /// A dataset finished opening, with its `cellscope inspect` summary.
    Opened(Arc<AnnData>, String),
    /// The images the opened dataset offers for the underlay (sent after [`Event::Opened`]).
    Images(Vec<(String, PathBuf, super::jobs::open::Placement)>),
    /// The opened dataset's cell outlines (sent after [`Event::Opened`]).
    Outlines(Arc<crate::data::vendor::outlines::Outlines>),
    /// The pipeline finished.
    Analyzed {
        /// Results.
        analysis: Arc<Analysis>,
        /// The representation used (`n x d`).
        representation: Arc<Array2<f32>>,
        /// Description of the representation.
        name: String,
    },
    /// An underlay image, downscaled to at most [`super::jobs::open::MAX_IMAGE_SIDE`] pixels
    /// per side.
    Image {
        /// RGBA pixels.
        image: Arc<egui::ColorImage>,
        /// Where `image` lies in the data's coordinates.
        placement: super::jobs::open::Placement,
        /// What was asked for (file, its placement, contrast).
        request: super::jobs::open::ImageRequest,
        /// The grey values shown black and white (a grey image).
        grey_range: Option<[u16; 2]>,
        /// Whether finer pyramid levels can be read for a zoomed-in view.
        pyramid: bool,
    },
    /// A finer window of the underlay was read ([`Command::LoadDetail`]).
    Detail {
        /// RGBA pixels.
        image: Arc<egui::ColorImage>,
        /// Where `image` lies in the data's coordinates.
        placement: super::jobs::open::Placement,
        /// The pyramid level read.
        level: usize,
        /// What was asked for.
        request: super::jobs::detail::DetailRequest,
    },
    /// A model is ready.
    ModelLoaded {
        /// Kind, widths and parameter count.
        summary: String,
        /// Compute device and backend in use.
        device: String,
        /// The model's gene list length.
        n_genes: usize,
    },
    /// The dataset was embedded by the loaded model.
    Embedded {
        /// `n x d` embedding (`obsm['X_cellscope']`).
        values: Arc<Array2<f32>>,
        /// Gene coverage report.
        coverage: String,
        /// Throughput.
        cells_per_sec: f64,
    },
    /// Labels were transferred to the open dataset.
    Transferred {
        /// Predicted reference label per cell.
        predicted: Vec<String>,
        /// Vote fraction per cell.
        confidence: Vec<f32>,
    },
    /// Training finished (or was cancelled with a last good epoch); the model is loaded.
    Trained {
        /// What was trained, on which device, how it ended, test scores.
        summary: String,
    },
    /// The loaded model was saved.
    Saved(PathBuf),
    /// An A-vs-B comparison finished.
    Compared(Arc<Comparison>),
    /// The benchmark finished.
    Benchmarked(Arc<super::jobs::benchmark::BenchmarkResult>),
    /// A colouring asked for with [`Worker::color`] is ready.
    Colored {
        /// The request's number (older ones are stale).
        request: u64,
        /// The colouring.
        coloring: Arc<Coloring>,
    },
    /// A dashboard asked for with [`Worker::dashboard`] is ready.
    Dashboard {
        /// The request's number (older ones are stale).
        request: u64,
        /// The numbers.
        dashboard: Arc<Dashboard>,
    },
    /// The job was cancelled.
    Cancelled,
    /// The job failed; the error names the file and what was wrong.
    Failed(JobError),
}

/// A request to the views thread, with its number.
enum ViewRequest {
    /// What to colour by, and the inputs.
    Color(u64, ColorBy, ColorInputs),
    /// The dashboard's inputs.
    Dashboard(u64, DashboardInputs),
}

/// Handle to the worker threads.
pub struct Worker {
    tx: Sender<Command>,
    view_tx: Sender<ViewRequest>,
    /// Events from the worker (drain each frame).
    pub events: Receiver<Event>,
    cancel: Arc<AtomicBool>,
    busy: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// Sends events to the UI and wakes it; cloned into every thread the worker starts.
#[derive(Clone)]
struct Outbox {
    tx: Sender<Event>,
    wake: Arc<dyn Fn() + Send + Sync>,
}

impl Outbox {
    /// Results are never dropped; progress may be, when the UI is behind (training events are
    /// kept: the curves need every one).
    fn send(&self, e: Event) {
        let _ = match e {
            Event::Progress(
                p @ (Progress::Step(..)
                | Progress::Fit { .. }
                | Progress::Embed(_)
                | Progress::Download { .. }),
            ) => self.tx.try_send(Event::Progress(p)).map_err(|_| ()),
            e => self.tx.send(e).map_err(|_| ()),
        };
        (self.wake)();
    }

    fn fail(&self, e: JobError) {
        self.send(match e {
            JobError::Cancelled => Event::Cancelled,
            e => Event::Failed(e),
        });
    }
}

impl Worker {
    /// Starts the worker threads; `wake` is called after every event (the UI passes
    /// `egui::Context::request_repaint`). `hf://` models come from the hub the environment
    /// names ([`Hub::from_env`]).
    ///
    /// # Panics
    /// When the OS refuses to create a thread.
    pub fn start(wake: impl Fn() + Send + Sync + 'static) -> Self {
        Self::with_hub(wake, Hub::from_env())
    }

    /// [`Worker::start`] with `hf://` models from `hub` (tests point it at a local server).
    ///
    /// # Panics
    /// When the OS refuses to create a thread.
    pub fn with_hub(wake: impl Fn() + Send + Sync + 'static, hub: Hub) -> Self {
        let (tx, rx) = bounded::<Command>(16);
        let (view_tx, view_rx) = bounded::<ViewRequest>(64);
        let (etx, events) = bounded::<Event>(256);
        let out = Outbox {
            tx: etx,
            wake: Arc::new(wake),
        };
        let cancel = Arc::new(AtomicBool::new(false));
        let busy = Arc::new(AtomicBool::new(false));
        let (out2, c2, b2) = (out.clone(), cancel.clone(), busy.clone());
        let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(f)
                .expect("spawn a worker thread")
        };
        let threads = vec![
            spawn(
                "cellscope-worker",
                Box::new(move || {
                    let mut state = State {
                        out: out2,
                        cancel: c2,
                        hub,
                        model: None,
                    };
                    state.run(&rx, &b2);
                }),
            ),
            spawn(
                "cellscope-views",
                Box::new(move || view_loop(&view_rx, &out)),
            ),
        ];
        Worker {
            tx,
            view_tx,
            events,
            cancel,
            busy,
            threads,
        }
    }

    /// Queues a command (returns false when the queue is full or the worker has stopped).
    pub fn send(&self, c: Command) -> bool {
        if !matches!(
            c,
            Command::LoadImage(..)
                | Command::LoadDetail(..)
                | Command::SaveModel(_)
                | Command::Shutdown
        ) {
            self.cancel.store(false, Ordering::Relaxed);
        }
        self.tx.try_send(c).is_ok()
    }

    /// Asks for the colouring `by` of `inputs`; the answer comes back as [`Event::Colored`]
    /// with `request`. When several requests wait, only the newest is computed.
    pub fn color(&self, request: u64, by: ColorBy, inputs: ColorInputs) -> bool {
        let r = ViewRequest::Color(request, by, inputs);
        self.view_tx.try_send(r).is_ok()
    }

    /// Asks for the metrics dashboard of `inputs`; the answer comes back as
    /// [`Event::Dashboard`] with `request`. When several requests wait, only the newest is
    /// computed.
    pub fn dashboard(&self, request: u64, inputs: DashboardInputs) -> bool {
        let r = ViewRequest::Dashboard(request, inputs);
        self.view_tx.try_send(r).is_ok()
    }

    /// Asks the running job to stop at its next check.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    /// Whether a job is running.
    pub fn busy(&self) -> bool {
        self.busy.load(Ordering::Relaxed)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.cancel();
        let _ = self.tx.send(Command::Shutdown);
        // Closing the view channel ends the views thread.
        let (dead, _) = bounded(0);
        drop(std::mem::replace(&mut self.view_tx, dead));
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// The views thread: of the requests waiting, the newest colouring and the newest dashboard
/// are computed; older ones are skipped.
fn view_loop(rx: &Receiver<ViewRequest>, out: &Outbox) {
    while let Ok(first) = rx.recv() {
        let (mut color, mut dash) = (None, None);
        for r in std::iter::once(first).chain(rx.try_iter()) {
            match r {
                ViewRequest::Color(n, by, x) => color = Some((n, by, x)),
                ViewRequest::Dashboard(n, x) => dash = Some((n, x)),
            }
        }
        // A colouring or dashboard that panics (a bug) is reported; the thread goes on.
        let caught = |job: &str, f: &mut dyn FnMut()| {
            if let Err(p) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
                out.send(Event::Failed(JobError::panicked(job, p.as_ref())));
            }
        };
        if let Some((request, by, inputs)) = color {
            caught("colouring", &mut || {
                let coloring = Arc::new(super::jobs::coloring::color(&by, &inputs));
                out.send(Event::Colored { request, coloring });
            });
        }
        if let Some((request, inputs)) = dash {
            caught("metrics dashboard", &mut || {
                let dashboard = Arc::new(super::jobs::dashboard::dashboard(&inputs));
                out.send(Event::Dashboard { request, dashboard });
            });
        }
    }
}

/// What the worker thread holds between jobs.
struct State {
    out: Outbox,
    cancel: Arc<AtomicBool>,
    hub: Hub,
    model: Option<(Model, Engine)>,
}

impl State {
    fn run(&mut self, rx: &Receiver<Command>, busy: &AtomicBool) {
        while let Ok(cmd) = rx.recv() {
            if matches!(cmd, Command::Shutdown) {
                break;
            }
            busy.store(true, Ordering::Relaxed);
            let name = cmd.name();
            // A job that panics (a bug) is reported like any failure; the worker goes on.
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.dispatch(cmd)));
            match r {
                Ok(Ok(())) => {}
                Ok(Err(e)) => self.out.fail(e),
                Err(p) => self.out.fail(JobError::panicked(name, p.as_ref())),
            }
            busy.store(false, Ordering::Relaxed);
        }
    }

    /// Runs `job` with a handle whose progress goes to the UI (step progress at most every
    /// 30 ms, except a step's start and end).
    fn with_handle<T>(&self, job: impl FnOnce(&mut Handle<'_>) -> T) -> T {
        let out = self.out.clone();
        let mut last: Option<Instant> = None;
        let mut report = move |p: Progress| {
            if let (Progress::Step(_, f), Some(t)) = (&p, last)
                && *f > 0.0
                && *f < 1.0
                && t.elapsed() < Duration::from_millis(30)
            {
                return;
            }
            last = Some(Instant::now());
            out.send(Event::Progress(p));
        };
        let mut h = Handle::new(&mut report, self.cancel.clone());
        job(&mut h)
    }

    fn dispatch(&mut self, cmd: Command) -> Result<(), JobError> {
        match cmd {
            Command::Shutdown => Ok(()),
            Command::InjectPanic => panic!("injected panic"),
            Command::Open(path) => self.open(path),
            Command::LoadDetail(request, coarsest) => {
                detail_in_background(request, coarsest, &self.out);
                Ok(())
            }
            Command::LoadImage(request) => {
                load_in_background(request, &self.out);
                Ok(())
            }
            Command::LoadModel(path, backend) => self.load_model(path, backend),
            Command::Embed(data) => self.embed(&data),
            Command::Transfer {
                reference,
                label_key,
                query,
            } => self.transfer(reference, &label_key, &query),
            Command::Analyze(data, job) => self.analyze(&data, &job),
            Command::Pretrain(data, job) => {
                self.out
                    .send(Event::Started(JobKind::Pretrain(job.objective)));
                let backend = job.backend;
                let r = self.with_handle(|h| super::jobs::train::pretrain(data, job, h));
                self.finish_training(r.map(|t| (t, None)), backend)
            }
            Command::Finetune(data, job, use_loaded) => self.finetune(data, job, use_loaded),
            Command::Compare {
                data,
                sides,
                params,
                domains,
            } => {
                self.out.send(Event::Started(JobKind::Compare));
                let c = self.with_handle(|h| {
                    super::jobs::compare::run(&data, &sides, &params, domains.as_ref(), h)
                })?;
                self.out.send(Event::Compared(Arc::new(c)));
                Ok(())
            }
            Command::Benchmark(data, job) => {
                self.out.send(Event::Started(JobKind::Benchmark));
                let r = self.with_handle(|h| super::jobs::benchmark::run(&data, &job, h))?;
                self.out.send(Event::Benchmarked(Arc::new(r)));
                Ok(())
            }
            Command::SaveModel(path) => {
                let (m, _) = self.model.as_ref().ok_or_else(|| {
                    JobError::Input("no model to save: load or train one first".into())
                })?;
                crate::model::save_model(m, &path)?;
                self.out.send(Event::Saved(path));
                Ok(())
            }
        }
    }

    fn open(&mut self, path: PathBuf) -> Result<(), JobError> {
        self.out.send(Event::Started(JobKind::Open(path.clone())));
        let o = self.with_handle(|h| super::jobs::open::open(&path, h))?;
        self.out.send(Event::Opened(Arc::new(o.data), o.summary));
        if !o.images.is_empty() {
            self.out.send(Event::Images(o.images));
        }
        if let Some(outlines) = o.outlines {
            self.out.send(Event::Outlines(Arc::new(outlines)));
        }
        if let Some((img, placement)) = o.image {
            let request = super::jobs::open::ImageRequest::new(img, placement);
            load_in_background(request, &self.out);
        }
        Ok(())
    }

    fn load_model(&mut self, path: PathBuf, backend: BackendChoice) -> Result<(), JobError> {
        self.out
            .send(Event::Started(JobKind::LoadModel(path.clone())));
        let l =
            self.with_handle(|h| super::jobs::model::load(&path, None, backend, &self.hub, h))?;
        self.set_model(l.model, l.engine);
        Ok(())
    }

    fn set_model(&mut self, model: Model, engine: Engine) {
        self.out.send(Event::ModelLoaded {
            summary: model.weights.to_string(),
            device: engine.description().to_string(),
            n_genes: model.genes.len(),
        });
        self.model = Some((model, engine));
    }

    fn embed(&mut self, data: &AnnData) -> Result<(), JobError> {
        let (m, engine) = self
            .model
            .as_ref()
            .ok_or_else(|| JobError::Input("load a model before embedding".into()))?;
        self.out.send(Event::Started(JobKind::Embed));
        let input = super::jobs::embed::EmbedInput::Data(data);
        let e = self
            .with_handle(|h| super::jobs::embed::embed(m, engine, input, &Default::default(), h))?;
        self.out.send(Event::Embedded {
            values: Arc::new(e.values),
            coverage: e.coverage.to_string(),
            cells_per_sec: e.cells_per_sec,
        });
        Ok(())
    }

    fn transfer(
        &mut self,
        reference: PathBuf,
        label_key: &str,
        query: &AnnData,
    ) -> Result<(), JobError> {
        use super::jobs::transfer::{TransferJob, TransferRep, run};
        self.out
            .send(Event::Started(JobKind::Transfer(reference.clone())));
        let refd = crate::data::open(&reference)?;
        let job = TransferJob {
            label_key,
            representation: TransferRep::SharedGenes,
            label_map: None,
            query_label_key: None,
            k: 5,
        };
        let t = self.with_handle(|h| run(&refd, query, &job, h))?.transfer;
        self.out.send(Event::Transferred {
            predicted: t.predicted,
            confidence: t.confidence,
        });
        Ok(())
    }

    fn analyze(&mut self, data: &AnnData, job: &AnalyzeJob) -> Result<(), JobError> {
        self.out.send(Event::Started(JobKind::Analyze));
        let o = self.with_handle(|h| super::jobs::analyze::run(data, job, h))?;
        self.out.send(Event::Analyzed {
            analysis: Arc::new(o.analysis),
            representation: o.representation,
            name: o.name,
        });
        Ok(())
    }

    fn finetune(
        &mut self,
        data: Arc<AnnData>,
        job: FinetuneJob,
        use_loaded: bool,
    ) -> Result<(), JobError> {
        self.out
            .send(Event::Started(JobKind::Finetune(job.label_key.clone())));
        let backend = job.backend;
        let init = if use_loaded {
            self.model.as_ref().map(|(m, _)| m.clone())
        } else {
            None
        };
        let r = self.with_handle(|h| {
            let t = super::jobs::train::finetune(data.clone(), job, init, h)?;
            let (p, _) = super::jobs::train::predict(&t.model, &data)?;
            let labels = p.labels(&t.model);
            Ok((t, Some((labels, p.confidence))))
        });
        self.finish_training(r, backend)
    }

    /// Makes a trained model the loaded one, with its engine on the backend it was trained
    /// on, and reports it (the old one stays on failure).
    fn finish_training(
        &mut self,
        r: Result<(Trained, Predictions), JobError>,
        backend: BackendChoice,
    ) -> Result<(), JobError> {
        let (t, pred) = r?;
        let engine = super::jobs::model::engine(&t.model, backend)?;
        let summary = t.summary();
        self.set_model(t.model, engine);
        if let Some((predicted, confidence)) = pred {
            self.out.send(Event::Transferred {
                predicted,
                confidence,
            });
        }
        self.out.send(Event::Trained { summary });
        Ok(())
    }
}

type Predictions = Option<(Vec<String>, Vec<f32>)>;

/// Decodes an image on its own thread (a 9k x 10k H&E takes seconds) so the pipeline does not
/// wait; the result comes back as [`Event::Image`].
fn load_in_background(request: super::jobs::open::ImageRequest, out: &Outbox) {
    let out2 = out.clone();
    let spawned = std::thread::Builder::new()
        .name("cellscope-image".into())
        .spawn(move || {
            let load = || super::jobs::open::load_image(&request);
            let loaded = std::panic::catch_unwind(load)
                .unwrap_or_else(|p| Err(JobError::panicked("loading an image", p.as_ref())));
            let e = match loaded {
                Ok(u) => {
                    let size = [u.image.width() as usize, u.image.height() as usize];
                    Event::Image {
                        image: Arc::new(egui::ColorImage::from_rgba_unmultiplied(
                            size,
                            u.image.as_raw(),
                        )),
                        placement: u.placement,
                        request: u.request,
                        grey_range: u.grey_range,
                        pyramid: u.pyramid,
                    }
                }
                Err(e) => Event::Failed(e),
            };
            out2.send(e);
        });
    if let Err(e) = spawned {
        out.fail(JobError::Input(format!(
            "cannot start the image thread: {e}"
        )));
    }
}

/// Reads a window of a pyramidal underlay on its own thread ([`super::jobs::detail`]); the
/// result comes back as [`Event::Detail`], nothing when no level is finer than the texture, a
/// failure as [`Event::Failed`].
fn detail_in_background(request: super::jobs::detail::DetailRequest, coarsest: f64, out: &Outbox) {
    let out2 = out.clone();
    let spawned = std::thread::Builder::new()
        .name("cellscope-image".into())
        .spawn(move || {
            let load = || super::jobs::detail::load_detail(&request, coarsest);
            let loaded = std::panic::catch_unwind(load)
                .unwrap_or_else(|p| Err(JobError::panicked("reading an image window", p.as_ref())));
            match loaded {
                Ok(Some(d)) => {
                    let size = [d.image.width() as usize, d.image.height() as usize];
                    out2.send(Event::Detail {
                        image: Arc::new(egui::ColorImage::from_rgba_unmultiplied(
                            size,
                            d.image.as_raw(),
                        )),
                        placement: d.placement,
                        level: d.level,
                        request,
                    });
                }
                Ok(None) => {}
                Err(e) => out2.send(Event::Failed(e)),
            }
        });
    if let Err(e) = spawned {
        out.fail(JobError::Input(format!(
            "cannot start the image thread: {e}"
        )));
    }
}
