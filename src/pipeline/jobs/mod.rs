//! The jobs: each capability of cellscope as one function from typed parameters and a
//! [`Handle`] (progress out, cancel in) to a typed result or a [`JobError`]. The window's worker
//! ([`super::worker`]) and every CLI subcommand call these same functions; neither computes
//! anything of its own.
//!
//! | job | function | result |
//! |---|---|---|
//! | open a dataset | [`open::open`] | [`open::Opened`] |
//! | load a model (local or `hf://`) | [`model::load`] | [`model::Loaded`] |
//! | embed | [`embed::embed`] | [`crate::model::embed::Embedding`] |
//! | analyse (kNN, UMAP, Leiden, domains, metrics) | [`analyze::run`] | [`analyze::AnalyzeOutput`] |
//! | transfer labels | [`transfer::run`] | [`transfer::TransferOutput`] |
//! | pre-train, fine-tune | [`train::pretrain`], [`train::finetune`] | [`train::Trained`] |
//! | predict | [`predict::run`] | [`predict::PredictOutput`] |
//! | compare A vs B | [`compare::run`] | [`compare::Comparison`] |
//! | colour cells | [`coloring::color`] | [`coloring::Coloring`] |
//! | write results, figures | [`export::write_results`], [`export::plot`] | files |
//! | image features of a slide's patches | [`histology::features`] | [`histology::Features`] |

pub mod analyze;
pub mod benchmark;
pub mod coloring;
pub mod compare;
pub mod dashboard;
pub mod detail;
pub mod domains;
pub mod embed;
pub mod evaluate;
pub mod export;
pub mod histology;
pub mod impute;
pub mod integration;
pub mod model;
pub mod open;
pub mod predict;
pub mod train;
pub mod transfer;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

use crate::data::anndata::AnnData;

/// The steps a job reports progress on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Step {
    /// Reading a dataset or an image.
    Open,
    /// Downloading a model from the hub.
    Download,
    /// Loading a model and creating its engine.
    LoadModel,
    /// Embedding with a model.
    Embed,
    /// kNN search.
    Neighbors,
    /// UMAP optimisation.
    Umap,
    /// Leiden clustering.
    Leiden,
    /// Spatial domains.
    SpatialDomains,
    /// Label transfer from a reference.
    Transfer,
    /// Training (pre-training or fine-tuning).
    Train,
    /// Predicting cell types with a classifier.
    Predict,
    /// Colouring cells (categories, genes, confidence).
    Color,
    /// Writing outputs.
    Write,
    /// Scoring an embedding (integration metrics).
    Metrics,
}

impl Step {
    /// The analysis pipeline's steps, in order (one progress bar each in the window).
    pub const PIPELINE: [Step; 5] = [
        Step::Embed,
        Step::Neighbors,
        Step::Umap,
        Step::Leiden,
        Step::SpatialDomains,
    ];

    /// The step in words, for progress bars and status lines.
    pub fn name(self) -> &'static str {
        match self {
            Step::Open => "opening",
            Step::Download => "downloading",
            Step::LoadModel => "loading the model",
            Step::Embed => "embedding",
            Step::Neighbors => "kNN graph",
            Step::Umap => "UMAP",
            Step::Leiden => "Leiden",
            Step::SpatialDomains => "spatial domains",
            Step::Transfer => "label transfer",
            Step::Train => "training",
            Step::Predict => "predicting",
            Step::Color => "colouring",
            Step::Write => "writing",
            Step::Metrics => "scoring",
        }
    }
}

/// What a running job reports.
#[derive(Debug, Clone)]
pub enum Progress {
    /// A step started (`0.0`), advanced or finished (`1.0`): fraction done, `0..=1`.
    Step(Step, f32),
    /// Bytes of a hub download: file name, bytes done, total when announced. `done == 0` with
    /// no total means the hub is being asked (a freshness check or the wait for its answer).
    Download {
        /// The `hf://` name.
        name: String,
        /// Bytes received.
        done: u64,
        /// Bytes announced.
        total: Option<u64>,
    },
    /// Cells embedded so far.
    Embed(crate::model::embed::EmbedProgress),
    /// A training step or epoch.
    Train(crate::model::train::TrainEvent),
    /// An epoch of a network trained inside a step (STAGATE, GraphST).
    Fit {
        /// The step it belongs to.
        step: Step,
        /// Epochs done.
        epoch: usize,
        /// Epochs in all.
        epochs: usize,
        /// The epoch's loss.
        loss: f64,
    },
}

/// The status line of a [`Progress::Fit`] report: `"spatial domains: epoch 3/100, loss 0.1234"`.
pub fn fit_message(step: Step, epoch: usize, epochs: usize, loss: f64) -> String {
    format!("{}: epoch {epoch}/{epochs}, loss {loss:.4}", step.name())
}

/// A running job's link to its caller: progress goes out through a callback, cancellation comes
/// in through a shared flag (set from the UI's Cancel button or the CLI's Ctrl-C handler).
pub struct Handle<'a> {
    report: &'a mut dyn FnMut(Progress),
    cancel: Arc<AtomicBool>,
}

impl<'a> Handle<'a> {
    /// A handle reporting to `report`, cancelled when `cancel` is set.
    pub fn new(report: &'a mut dyn FnMut(Progress), cancel: Arc<AtomicBool>) -> Self {
        Handle { report, cancel }
    }

    /// Reports progress.
    pub fn report(&mut self, p: Progress) {
        (self.report)(p);
    }

    /// Reports a step's fraction done.
    pub fn step(&mut self, step: Step, fraction: f32) {
        (self.report)(Progress::Step(step, fraction));
    }

    /// Whether the caller asked to stop.
    pub fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    /// The shared cancel flag (for computations that take one, and threads the job starts).
    pub fn cancel_flag(&self) -> &Arc<AtomicBool> {
        &self.cancel
    }

    /// `Err(JobError::Cancelled)` when the caller asked to stop.
    ///
    /// # Errors
    /// [`JobError::Cancelled`].
    pub fn check(&self) -> Result<(), JobError> {
        if self.cancelled() {
            Err(JobError::Cancelled)
        } else {
            Ok(())
        }
    }

    /// A handle that reports nothing and is never cancelled (tests, nested calls).
    pub fn quiet(report: &'a mut dyn FnMut(Progress)) -> Self {
        Handle::new(report, Arc::new(AtomicBool::new(false)))
    }
}

/// Why a job failed. Every variant's message names the file and the element concerned and
/// what was expected.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The caller cancelled the job.
    #[error("cancelled")]
    Cancelled,
    /// Reading or writing data failed.
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    /// A model file could not be used.
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    /// A hub download failed.
    #[error(transparent)]
    Hub(#[from] crate::model::hub::HubError),
    /// Embedding failed.
    #[error(transparent)]
    Embed(crate::model::embed::EmbedError),
    /// Training failed.
    #[error(transparent)]
    Train(crate::model::train::TrainError),
    /// An analysis parameter is out of range.
    #[error(transparent)]
    Params(#[from] crate::analysis::ParamError),
    /// Writing an export failed.
    #[error(transparent)]
    Export(#[from] crate::export::ExportError),
    /// No compute engine for the model on the backend asked for.
    #[error(transparent)]
    Device(#[from] crate::model::engine::EngineError),
    /// An input that does not fit the job: a missing obs column or obsm key, no shared genes,
    /// an output path that is the input. The message names the file and the element.
    #[error("{0}")]
    Input(String),
    /// A bug: the job panicked. The message is the panic's; the worker lives on and what the
    /// user had (dataset, model, views) is kept.
    #[error("internal error in {job} (please report it): {message}")]
    Panicked {
        /// The job (its command).
        job: String,
        /// The panic message.
        message: String,
    },
}

impl JobError {
    /// The error for a panic caught around `job` (its payload is a `&str` or a `String` for
    /// `panic!` with a message).
    pub fn panicked(job: &str, payload: &(dyn std::any::Any + Send)) -> Self {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".into());
        Self::Panicked {
            job: job.into(),
            message,
        }
    }
}

impl From<crate::model::embed::EmbedError> for JobError {
    fn from(e: crate::model::embed::EmbedError) -> Self {
        match e {
            crate::model::embed::EmbedError::Cancelled { .. } => JobError::Cancelled,
            e => JobError::Embed(e),
        }
    }
}

impl From<crate::model::train::TrainError> for JobError {
    fn from(e: crate::model::train::TrainError) -> Self {
        match e {
            crate::model::train::TrainError::Cancelled => JobError::Cancelled,
            e => JobError::Train(e),
        }
    }
}

impl From<crate::analysis::Cancelled> for JobError {
    fn from(_: crate::analysis::Cancelled) -> Self {
        JobError::Cancelled
    }
}

/// `Err` naming the file, the element and the first row with a non-finite value (NaN, ±inf)
/// in `m`, which neighbour searches, UMAP and clustering cannot use.
///
/// # Errors
/// [`JobError::Input`].
pub fn check_finite(
    m: ndarray::ArrayView2<f32>,
    file: &std::path::Path,
    element: &str,
) -> Result<(), JobError> {
    match m
        .outer_iter()
        .position(|r| r.iter().any(|v| !v.is_finite()))
    {
        None => Ok(()),
        Some(row) => Err(JobError::Input(format!(
            "{}: {element}: row {row} holds a non-finite value (NaN or infinity); \
             remove or fix those cells first",
            file.display()
        ))),
    }
}

/// Labels treated as missing ground truth (left out of every metric): `NA`, `nan`, empty,
/// `Ambiguous`.
pub const MISSING_LABELS: [&str; 4] = ["NA", "nan", "", "Ambiguous"];

/// The values of obs column `key` as strings (categories' names, numbers as written).
///
/// # Errors
/// [`JobError::Input`] naming the file and the columns it has.
pub fn obs_labels(a: &AnnData, key: &str) -> Result<Vec<String>, JobError> {
    let c = a.obs.column(key).ok_or_else(|| {
        JobError::Input(format!(
            "{}: obs has no column '{key}' (it has: {})",
            a.source.display(),
            a.obs.column_names().join(", ")
        ))
    })?;
    Ok((0..c.len()).map(|i| c.value_string(i)).collect())
}
