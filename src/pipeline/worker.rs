//! The background worker: one named thread that owns long jobs (opening data, the analysis
//! pipeline). Typed commands go in and typed events come out over bounded crossbeam channels;
//! every event wakes the UI through a callback; a shared flag cancels the running job.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam_channel::{Receiver, Sender, bounded};
use ndarray::Array2;

use super::analyze::{Analysis, AnalyzeParams, Step, analyze, representation};
use crate::analysis::Control;
use crate::data::anndata::AnnData;
use crate::model::hub::{Hub, HubError};

/// What the worker is asked to do.
#[derive(Debug)]
pub enum Command {
    /// Open a dataset (.h5ad, 10x .h5, Visium folder).
    Open(PathBuf),
    /// Load an image to show under the spatial view; `data_per_pixel` converts its pixels to
    /// the data's coordinate units.
    LoadImage(PathBuf, f64),
    /// Load a model (cellscope folder or PyTorch / safetensors checkpoint with its gene list
    /// beside it) and create its compute engine on this thread.
    LoadModel(PathBuf),
    /// Embed the dataset with the loaded model.
    Embed(Arc<AnnData>),
    /// Transfer labels from a labelled reference file to the open dataset (kNN vote, k = 5, on
    /// the shared genes; see [`super::transfer`]).
    Transfer {
        /// Labelled reference.
        reference: PathBuf,
        /// Its obs column of labels.
        label_key: String,
        /// The open dataset.
        query: Arc<AnnData>,
    },
    /// Run the pipeline on the open dataset.
    Analyze {
        /// The dataset (shared with the UI).
        data: Arc<AnnData>,
        /// obsm key or `None` for the default representation.
        use_rep: Option<String>,
        /// A representation computed here (e.g. the model's embedding); overrides `use_rep`.
        matrix: Option<Arc<Array2<f32>>>,
        /// Pipeline parameters.
        params: AnalyzeParams,
    },
    /// Pre-train a new model on the open dataset (it becomes the loaded model).
    Pretrain(Arc<AnnData>, super::train::PretrainJob),
    /// Fine-tune a classifier on the open dataset's labels, on the loaded model's backbone when
    /// the flag is set (else from random init); it becomes the loaded model, and its
    /// predictions for every cell are reported as [`Event::Transferred`].
    Finetune(Arc<AnnData>, super::train::FinetuneJob, bool),
    /// Run the pipeline twice, on side A and side B, and compare them.
    Compare {
        /// The dataset.
        data: Arc<AnnData>,
        /// Side A and side B.
        sides: [super::compare::SideSource; 2],
        /// Pipeline parameters for both.
        params: AnalyzeParams,
    },
    /// Save the loaded model as a cellscope folder (which must not exist).
    SaveModel(PathBuf),
    /// Stop the thread.
    Shutdown,
}

/// What the worker reports.
#[derive(Debug)]
pub enum Event {
    /// A job started.
    Started(String),
    /// Progress of the running pipeline step, `0..=1`.
    Progress(Step, f32),
    /// A dataset finished opening, with its `cellscope inspect` summary.
    Opened(Arc<AnnData>, String),
    /// The pipeline finished.
    Analyzed {
        /// Results.
        analysis: Box<Analysis>,
        /// The representation used (`n x d`) and its name.
        representation: Arc<Array2<f32>>,
        /// Description of the representation.
        name: String,
    },
    /// An underlay image, downscaled to at most [`MAX_IMAGE_SIDE`] pixels per side.
    Image {
        /// RGBA pixels.
        image: Arc<egui::ColorImage>,
        /// Data units per pixel of `image`.
        data_per_pixel: f64,
        /// Where it came from.
        path: PathBuf,
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
    /// Training progress (every step and every epoch).
    Training(crate::model::train::TrainEvent),
    /// Training finished (or was cancelled with a last good epoch); the model is loaded.
    Trained {
        /// What was trained, on which device, how it ended, test scores.
        summary: String,
    },
    /// The loaded model was saved.
    Saved(PathBuf),
    /// An A-vs-B comparison finished.
    Compared(Box<super::compare::Comparison>),
    /// The job was cancelled.
    Cancelled,
    /// The job failed; the message names the file and what was wrong.
    Failed(String),
}

/// Largest image side uploaded as a texture (GPUs guarantee 8,192; lavapipe's default is
/// 8,192 too); larger images are downscaled on the worker.
pub const MAX_IMAGE_SIDE: u32 = 4096;

/// Decodes and downscales an image; returns it with the factor applied (new px per old px).
fn load_image(path: &std::path::Path) -> Result<(egui::ColorImage, f64), String> {
    let img = image::ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .map_err(|e| format!("{}: cannot open image: {e}", path.display()))?;
    let mut reader = img;
    reader.no_limits();
    let img = reader
        .decode()
        .map_err(|e| format!("{}: cannot decode image: {e}", path.display()))?;
    let (w, h) = (img.width(), img.height());
    let f = (MAX_IMAGE_SIDE as f64 / w.max(h) as f64).min(1.0);
    let img = if f < 1.0 {
        img.resize(
            (w as f64 * f) as u32,
            (h as f64 * f) as u32,
            image::imageops::FilterType::Triangle,
        )
    } else {
        img
    };
    let rgba = img.to_rgba8();
    let size = [rgba.width() as usize, rgba.height() as usize];
    Ok((
        egui::ColorImage::from_rgba_unmultiplied(size, rgba.as_raw()),
        rgba.width() as f64 / w as f64,
    ))
}

/// The image shown under a dataset's spatial view by default: the Visium hires (else lowres)
/// image placed with its scale factor, or an H&E image beside an .h5ad named
/// `<stem>_HE.jpg` / `<stem>_HE.png` in the pixel frame of `obsm['spatial']`.
fn default_image(path: &std::path::Path) -> Option<(PathBuf, f64)> {
    if crate::data::detect(path).ok()? == crate::data::InputKind::Visium {
        let v = crate::data::tenx::read_visium(path).ok()?;
        let img = v
            .images
            .iter()
            .find(|i| i.name == "hires")
            .or(v.images.first())?;
        return Some((img.path.clone(), 1.0 / img.scale));
    }
    let stem = path.file_stem()?.to_string_lossy().to_string();
    ["jpg", "jpeg", "png"]
        .iter()
        .map(|e| path.with_file_name(format!("{stem}_HE.{e}")))
        .find(|p| p.exists())
        .map(|p| (p, 1.0))
}

/// Handle to the worker thread.
pub struct Worker {
    tx: Sender<Command>,
    /// Events from the worker (drain each frame).
    pub events: Receiver<Event>,
    cancel: Arc<AtomicBool>,
    busy: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Worker {
    /// Starts the worker thread ("cellscope-worker"); `wake` is called after every event (the
    /// UI passes `egui::Context::request_repaint`). `hf://` models come from the hub the
    /// environment names ([`Hub::from_env`]).
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
        let (etx, events) = bounded::<Event>(256);
        let cancel = Arc::new(AtomicBool::new(false));
        let busy = Arc::new(AtomicBool::new(false));
        let (c2, b2) = (cancel.clone(), busy.clone());
        let thread = std::thread::Builder::new()
            .name("cellscope-worker".into())
            .spawn(move || run(rx, etx, c2, b2, Arc::new(wake), &hub))
            .expect("spawn the worker thread");
        Worker {
            tx,
            events,
            cancel,
            busy,
            thread: Some(thread),
        }
    }

    /// Queues a command (returns false when the queue is full or the worker has stopped).
    pub fn send(&self, c: Command) -> bool {
        if !matches!(
            c,
            Command::LoadImage(..) | Command::SaveModel(_) | Command::Shutdown
        ) {
            self.cancel.store(false, Ordering::Relaxed);
        }
        self.tx.try_send(c).is_ok()
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
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(
    rx: Receiver<Command>,
    tx: Sender<Event>,
    cancel: Arc<AtomicBool>,
    busy: Arc<AtomicBool>,
    wake: Arc<dyn Fn() + Send + Sync>,
    hub: &Hub,
) {
    // Large images (a 9k x 10k H&E) decode on their own thread so the pipeline does not wait.
    let load_in_background = |path: PathBuf, dpp: f64| {
        let (tx2, wake2) = (tx.clone(), wake.clone());
        let spawned = std::thread::Builder::new()
            .name("cellscope-image".into())
            .spawn(move || {
                let e = match load_image(&path) {
                    Ok((image, f)) => Event::Image {
                        image: Arc::new(image),
                        data_per_pixel: dpp / f,
                        path,
                    },
                    Err(e) => Event::Failed(e),
                };
                let _ = tx2.send(e);
                wake2();
            });
        if let Err(e) = spawned {
            let _ = tx.send(Event::Failed(format!("cannot start the image thread: {e}")));
        }
    };
    let send = |e: Event| {
        // Progress may be dropped when the UI is behind; results never are.
        match e {
            Event::Progress(..) => {
                let _ = tx.try_send(e);
            }
            e => {
                let _ = tx.send(e);
            }
        }
        wake();
    };
    let mut model: Option<(crate::model::Model, crate::model::Engine)> = None;
    while let Ok(cmd) = rx.recv() {
        busy.store(true, Ordering::Relaxed);
        match cmd {
            Command::Shutdown => break,
            Command::Open(path) => {
                send(Event::Started(format!("opening {}", path.display())));
                match crate::data::open(&path) {
                    Ok(a) => {
                        let summary = crate::data::summary::Summary::of_path(&path)
                            .map(|s| s.to_string())
                            .unwrap_or_default();
                        send(Event::Opened(Arc::new(a), summary));
                        if let Some((img, dpp)) = default_image(&path) {
                            load_in_background(img, dpp);
                        }
                    }
                    Err(e) => send(Event::Failed(e.to_string())),
                }
            }
            Command::LoadImage(path, dpp) => load_in_background(path, dpp),
            Command::LoadModel(path) => {
                send(Event::Started(format!("loading {}", path.display())));
                // An hf:// name is downloaded into the cache first (status line in percent;
                // Cancel stops it and keeps nothing).
                let mut shown = None;
                let resolved = hub.resolve_model(&path, None, &mut |name, done, total| {
                    let pct = total.map(|t| done * 100 / t.max(1));
                    let key = (name.to_string(), pct, done == 0);
                    if shown.as_ref() != Some(&key) {
                        shown = Some(key);
                        send(Event::Started(match (pct, total) {
                            (Some(p), Some(t)) => {
                                format!("downloading {name}: {p}% of {:.1} MB", t as f64 / 1e6)
                            }
                            // Nothing received yet: a freshness check or the request's wait.
                            _ if done == 0 => format!("asking the hub for {name}"),
                            _ => format!("downloading {name}"),
                        }));
                    }
                    !cancel.load(Ordering::Relaxed)
                });
                if let Err(HubError::Cancelled) = resolved {
                    send(Event::Cancelled);
                    busy.store(false, Ordering::Relaxed);
                    continue;
                }
                let loaded = resolved
                    .map_err(|e| e.to_string())
                    .and_then(|(p, genes)| {
                        crate::model::load_model(&p, genes.as_deref()).map_err(|e| e.to_string())
                    })
                    .and_then(|m| {
                        let engine = crate::model::Engine::new(
                            &m.weights,
                            crate::model::BackendChoice::Auto,
                        )
                        .map_err(|e| e.to_string())?;
                        Ok((m, engine))
                    });
                match loaded {
                    Ok((m, e)) => {
                        send(Event::ModelLoaded {
                            summary: m.weights.to_string(),
                            device: e.description().to_string(),
                            n_genes: m.genes.len(),
                        });
                        model = Some((m, e));
                    }
                    Err(e) => send(Event::Failed(e)),
                }
            }
            Command::Embed(data) => {
                let Some((m, engine)) = &model else {
                    send(Event::Failed("load a model before embedding".into()));
                    busy.store(false, Ordering::Relaxed);
                    continue;
                };
                send(Event::Started("embedding".into()));
                let r = crate::model::embed::Embedder::for_model(m, engine).embed_anndata(
                    &data,
                    &mut |p| {
                        send(Event::Progress(
                            Step::Embed,
                            p.done as f32 / p.total.max(1) as f32,
                        ))
                    },
                    &cancel,
                );
                match r {
                    Ok(e) => send(Event::Embedded {
                        values: Arc::new(e.values),
                        coverage: e.coverage.to_string(),
                        cells_per_sec: e.cells_per_sec,
                    }),
                    Err(crate::model::embed::EmbedError::Cancelled { .. }) => {
                        send(Event::Cancelled)
                    }
                    Err(e) => send(Event::Failed(e.to_string())),
                }
            }
            Command::Transfer {
                reference,
                label_key,
                query,
            } => {
                send(Event::Started(format!(
                    "transferring labels from {}",
                    reference.display()
                )));
                let r = (|| -> Result<Event, String> {
                    let refd = crate::data::open(&reference).map_err(|e| e.to_string())?;
                    let col = refd.obs.column(&label_key).ok_or_else(|| {
                        format!(
                            "{}: obs has no column '{label_key}' (it has: {})",
                            reference.display(),
                            refd.obs.column_names().join(", ")
                        )
                    })?;
                    let labels: Vec<String> = (0..col.len()).map(|i| col.value_string(i)).collect();
                    let (rr, qr, _) =
                        super::transfer::shared_gene_representation(&refd, &query, 0)?;
                    let t =
                        super::transfer::transfer_labels(rr.view(), &labels, qr.view(), None, 5);
                    Ok(Event::Transferred {
                        predicted: t.predicted,
                        confidence: t.confidence,
                    })
                })();
                send(r.unwrap_or_else(Event::Failed));
            }
            Command::Analyze {
                data,
                use_rep,
                matrix,
                params,
            } => {
                send(Event::Started("analysis".into()));
                let control = Control::with_cancel(cancel.clone());
                let result = (|| -> Result<Event, String> {
                    let (rep, name) = match matrix {
                        Some(m) => ((*m).clone(), "model embedding (X_cellscope)".to_string()),
                        None => representation(&data, use_rep.as_deref(), params.seed)?,
                    };
                    let coords = data.spatial_f32().map_err(|e| e.to_string())?;
                    let mut last = std::time::Instant::now();
                    let res = analyze(
                        rep.view(),
                        coords.as_ref().map(|c| c.view()),
                        &params,
                        &control,
                        &mut |s, f| {
                            if last.elapsed().as_millis() >= 30 || f >= 1.0 {
                                last = std::time::Instant::now();
                                send(Event::Progress(s, f));
                            }
                        },
                    );
                    match res {
                        Ok(a) => Ok(Event::Analyzed {
                            analysis: Box::new(a),
                            representation: Arc::new(rep),
                            name,
                        }),
                        Err(_) => Ok(Event::Cancelled),
                    }
                })();
                send(result.unwrap_or_else(Event::Failed));
            }
            Command::Pretrain(data, job) => {
                send(Event::Started(format!("pre-training ({})", job.objective)));
                let c = cancel.clone();
                let r = train_job(&send, move |tx| {
                    super::train::run_pretrain(&data, &job, tx, &c).map(|t| (t, None))
                });
                model = finish_training(r, model, &send);
            }
            Command::Finetune(data, job, use_loaded) => {
                send(Event::Started(format!(
                    "fine-tuning on '{}'",
                    job.label_key
                )));
                let c = cancel.clone();
                let init = if use_loaded {
                    model.as_ref().map(|(m, _)| m.clone())
                } else {
                    None
                };
                let r = train_job(&send, move |tx| {
                    let t = super::train::run_finetune(&data, &job, init.as_ref(), tx, &c)?;
                    let (p, _) = super::train::predict(&t.model, &data)?;
                    let labels = p.labels(&t.model);
                    Ok((t, Some((labels, p.confidence))))
                });
                model = finish_training(r, model, &send);
            }
            Command::Compare {
                data,
                sides,
                params,
            } => {
                send(Event::Started("comparing A vs B".into()));
                let mut last = std::time::Instant::now();
                let mut progress = |s: Step, f: f32| {
                    if last.elapsed().as_millis() >= 30 || f >= 1.0 {
                        last = std::time::Instant::now();
                        send(Event::Progress(s, f));
                    }
                };
                let r = super::compare::run_side(&data, &sides[0], &params, &cancel, &mut progress)
                    .and_then(|a| {
                        let b = super::compare::run_side(
                            &data,
                            &sides[1],
                            &params,
                            &cancel,
                            &mut progress,
                        )?;
                        Ok(super::compare::Comparison::new(a, b))
                    });
                match r {
                    Ok(c) => send(Event::Compared(Box::new(c))),
                    Err(e) if e == "cancelled" => send(Event::Cancelled),
                    Err(e) => send(Event::Failed(e)),
                }
            }
            Command::SaveModel(path) => match &model {
                Some((m, _)) => match crate::model::save_model(m, &path) {
                    Ok(()) => send(Event::Saved(path)),
                    Err(e) => send(Event::Failed(e.to_string())),
                },
                None => send(Event::Failed(
                    "no model to save: load or train one first".into(),
                )),
            },
        }
        busy.store(false, Ordering::Relaxed);
    }
}

type Predictions = Option<(Vec<String>, Vec<f32>)>;

/// Runs a training job on its own thread ("cellscope-train"), forwarding its events.
fn train_job(
    send: &dyn Fn(Event),
    job: impl FnOnce(
        &Sender<crate::model::train::TrainEvent>,
    ) -> anyhow::Result<(super::train::Trained, Predictions)>
    + Send
    + 'static,
) -> Result<(super::train::Trained, Predictions), String> {
    let (handle, rx) = super::train::spawn(job);
    for e in rx {
        send(Event::Training(e));
    }
    match handle.join() {
        Ok(r) => r.map_err(|e| format!("{e:#}")),
        Err(_) => Err("the training thread panicked".into()),
    }
}

/// Reports a finished training job and makes its model the loaded one (keeps the old one on
/// failure).
fn finish_training(
    r: Result<(super::train::Trained, Predictions), String>,
    old: Option<(crate::model::Model, crate::model::Engine)>,
    send: &dyn Fn(Event),
) -> Option<(crate::model::Model, crate::model::Engine)> {
    let (t, pred) = match r {
        Ok(v) => v,
        Err(e) if e.contains("cancelled before") => {
            send(Event::Cancelled);
            return old;
        }
        Err(e) => {
            send(Event::Failed(e));
            return old;
        }
    };
    let engine =
        match crate::model::Engine::new(&t.model.weights, crate::model::BackendChoice::Auto) {
            Ok(e) => e,
            Err(e) => {
                send(Event::Failed(e));
                return old;
            }
        };
    let o = &t.outcome;
    let mut summary = format!(
        "{} epoch(s) on {}{}{}{}; kept epoch {}",
        o.history.len(),
        o.device,
        if o.cancelled { ", cancelled" } else { "" },
        if o.early_stopped { ", early stop" } else { "" },
        if o.diverged {
            ", stopped at a non-finite loss"
        } else {
            ""
        },
        o.best_epoch + 1
    );
    if let Some((c, _)) = &t.test {
        summary.push_str(&format!(
            "; test macro-F1 {:.3}, accuracy {:.3}",
            c.macro_f1, c.accuracy
        ));
    }
    send(Event::ModelLoaded {
        summary: t.model.weights.to_string(),
        device: engine.description().to_string(),
        n_genes: t.model.genes.len(),
    });
    if let Some((predicted, confidence)) = pred {
        send(Event::Transferred {
            predicted,
            confidence,
        });
    }
    send(Event::Trained { summary });
    Some((t.model, engine))
}
