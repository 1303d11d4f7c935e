//! Training jobs as the CLI and the window run them: read the data, pick and preprocess the
//! matrix the model expects, align it to the model's genes, split labelled cells (70/15/15,
//! seed 42, as the reusability study), run [`crate::model::train`] on a named thread and turn
//! the result into a cellscope model (weights, genes, preprocessing, provenance).

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use crossbeam_channel::{Receiver, Sender};

use super::{Handle, JobError, MISSING_LABELS, Progress};

use crate::analysis::metrics::{Classification, classification, encode};
use crate::analysis::split::split_70_15_15;
use crate::data::genes::{Coverage, GeneAlignment, GeneList, dataset_genes, genes_of};
use crate::data::h5ad::H5adReader;
use crate::data::preprocess::{InputScale, TargetSum, check_counts, log1p, normalize_total};
use crate::data::{AnnData, CsrMatrix};
use crate::model::embed::Preprocessing;
use crate::model::format::{Model, Provenance};
use crate::model::train::{
    Generic, Labelled, Objective, ObjectiveKind, Programmes, TrainEvent, TrainLayers, TrainOptions,
    TrainOutcome, argmax_rows, finetune as finetune_loop, pretrain as pretrain_loop, softmax_rows,
};
use crate::model::{BackendChoice, Engine};

/// Capacity of the training event channel: a slow consumer makes training wait rather than
/// letting events pile up.
pub const EVENT_CAPACITY: usize = 256;

/// The expression matrix of `adata` as the SSL models expect it (SSL_MODELS.md): cells x
/// dataset genes, `normalize_total` to the model's target then `log1p`. Uses `X`, or `raw/X`
/// when `X` holds negative values (scaled data such as pbmc68k_reduced) and `raw` exists.
/// Returns the matrix, the dataset genes of its columns and the judged input scale.
///
/// # Errors
/// [`JobError::Input`]: scaled values without `raw`, non-finite values; [`JobError::Data`]:
/// unreadable `raw`.
pub fn model_input(
    adata: &AnnData,
    pre: &Preprocessing,
) -> Result<(CsrMatrix, GeneList, InputScale), JobError> {
    let mut x = adata.x.to_csr();
    let mut genes = dataset_genes(adata);
    if x.data.iter().any(|&v| v < 0.0) {
        let Some(raw) = &adata.raw else {
            return Err(JobError::Input(format!(
                "{}: X holds negative values (scaled data) and there is no raw: the models need counts or log-normalised values in X or raw/X",
                adata.source.display()
            )));
        };
        let reader = H5adReader::open(&adata.source)?;
        x = reader.read_matrix(&raw.x.path)?.to_csr();
        genes = genes_of(&raw.var);
        if x.data.iter().any(|&v| v < 0.0) {
            return Err(JobError::Input(format!(
                "{}: both X and {} hold negative values; expected counts or log-normalised values",
                adata.source.display(),
                raw.x.path
            )));
        }
    }
    check_counts(&x).map_err(|m| JobError::Input(format!("{}: {m}", adata.source.display())))?;
    let scale = InputScale::detect(&x);
    scale.to_counts_like(&mut x);
    let target = pre.target_sum.map_or(TargetSum::Median, TargetSum::Fixed);
    normalize_total(&mut x, target);
    if pre.log1p {
        log1p(&mut x);
    }
    Ok((x, genes, scale))
}

/// `x` (columns = `data_genes`) aligned to `model_genes`: model genes missing from the data are
/// zero columns, data genes unknown to the model are dropped.
///
/// # Errors
/// [`JobError::Input`] when no gene is shared.
pub fn align(
    x: &CsrMatrix,
    data_genes: &GeneList,
    model_genes: &GeneList,
    source: &Path,
) -> Result<(CsrMatrix, Coverage), JobError> {
    let al = GeneAlignment::new(model_genes, data_genes, None);
    let cov = al.coverage();
    if cov.matched == 0 {
        return Err(JobError::Input(format!(
            "{}: the dataset shares no genes with the model ({} model genes, {} dataset genes)",
            source.display(),
            cov.n_model,
            cov.n_data
        )));
    }
    Ok((al.map_matrix(x), cov))
}

/// A model's gene list from a file: a CSV / TSV / parquet gene list, or the genes (`var`) of an
/// `.h5ad` dataset (e.g. train on the genes of the dataset the model will be used on).
///
/// # Errors
/// Unreadable file or empty list.
pub fn read_gene_list(path: &Path) -> Result<GeneList, JobError> {
    if path.extension().is_some_and(|e| e == "h5ad") {
        let var = H5adReader::open(path)?.read_var()?;
        return Ok(genes_of(&var));
    }
    Ok(GeneList::read_csv(path)?)
}

/// A pre-training job (on unlabelled data).
#[derive(Debug, Clone)]
pub struct PretrainJob {
    /// The objective (with the paper's settings, [`Objective::new`]).
    pub objective: ObjectiveKind,
    /// GMT file for the gene-programme objectives.
    pub gmt: Option<PathBuf>,
    /// Encoder, projection width and augmentations of SimCLR / VICReg (ignored by the others).
    pub generic: Generic,
    /// The model's genes (default: the dataset's own).
    pub genes: Option<PathBuf>,
    /// Hyper-parameters.
    pub opts: TrainOptions,
    /// Backend.
    pub backend: BackendChoice,
}

/// A fine-tuning job (on labelled data).
#[derive(Debug, Clone)]
pub struct FinetuneJob {
    /// obs column with the labels.
    pub label_key: String,
    /// Genes of a from-scratch model (default: the dataset's own).
    pub genes: Option<PathBuf>,
    /// What trains.
    pub layers: TrainLayers,
    /// Hyper-parameters.
    pub opts: TrainOptions,
    /// Backend.
    pub backend: BackendChoice,
    /// Seed of the 70/15/15 split (42 in the reusability study).
    pub split_seed: u32,
}

/// A finished job: the model, the run's outcome, test scores (fine-tuning).
#[derive(Debug, Clone)]
pub struct Trained {
    /// The trained model (not yet saved).
    pub model: Model,
    /// Loss curves, device, cancellation.
    pub outcome: TrainOutcome,
    /// Scores on the 15% test cells (fine-tuning), class names indexing its codes.
    pub test: Option<(Classification, Vec<String>)>,
    /// Gene coverage of the training data.
    pub coverage: Coverage,
}

impl Trained {
    /// How the run ended, in one line: epochs, device, cancellation or early stop, the epoch
    /// kept and, for fine-tuning, the test scores.
    pub fn summary(&self) -> String {
        let o = &self.outcome;
        let flags = [
            (o.cancelled, ", cancelled"),
            (o.early_stopped, ", early stop"),
            (o.diverged, ", stopped at a non-finite loss"),
        ];
        let mut s = format!("{} epoch(s) on {}", o.history.len(), o.device);
        flags.iter().filter(|f| f.0).for_each(|f| s.push_str(f.1));
        s.push_str(&format!("; kept epoch {}", o.best_epoch + 1));
        if let Some((c, _)) = &self.test {
            s.push_str(&format!(
                "; test macro-F1 {:.3}, accuracy {:.3}",
                c.macro_f1, c.accuracy
            ));
        }
        s
    }
}

/// Runs `job` on a thread named `cellscope-train`, forwarding its events to `h` as
/// [`Progress::Train`] until it ends (training keeps its own thread so that the caller's
/// thread stays free to report; the event channel is bounded, so a slow caller slows training
/// rather than piling events up).
///
/// # Errors
/// The job's error; [`JobError::Input`] when the thread cannot start or panics.
pub fn on_training_thread<T: Send + 'static>(
    h: &mut Handle<'_>,
    job: impl FnOnce(&Sender<TrainEvent>, &AtomicBool) -> Result<T, JobError> + Send + 'static,
) -> Result<T, JobError> {
    let (tx, rx): (Sender<TrainEvent>, Receiver<TrainEvent>) =
        crossbeam_channel::bounded(EVENT_CAPACITY);
    let cancel = h.cancel_flag().clone();
    let handle = std::thread::Builder::new()
        .name("cellscope-train".into())
        .spawn(move || job(&tx, &cancel))
        .map_err(|e| JobError::Input(format!("cannot start the training thread: {e}")))?;
    for e in rx {
        h.report(Progress::Train(e));
    }
    handle
        .join()
        .map_err(|p| JobError::panicked("training", p.as_ref()))?
}

/// The pre-training job: [`run_pretrain`] on its own thread, events reported to `h`.
///
/// # Errors
/// As [`run_pretrain`].
pub fn pretrain(
    adata: std::sync::Arc<AnnData>,
    job: PretrainJob,
    h: &mut Handle<'_>,
) -> Result<Trained, JobError> {
    on_training_thread(h, move |tx, cancel| run_pretrain(&adata, &job, tx, cancel))
}

/// The fine-tuning job: [`run_finetune`] on its own thread, events reported to `h`; on the
/// backbone of `init` when given, else from random init.
///
/// # Errors
/// As [`run_finetune`].
pub fn finetune(
    adata: std::sync::Arc<AnnData>,
    job: FinetuneJob,
    init: Option<Model>,
    h: &mut Handle<'_>,
) -> Result<Trained, JobError> {
    on_training_thread(h, move |tx, cancel| {
        run_finetune(&adata, &job, init.as_ref(), tx, cancel)
    })
}

fn provenance(
    source: &Path,
    objective: &str,
    opts: &TrainOptions,
    extra: serde_json::Value,
) -> Provenance {
    let mut hyper = serde_json::to_value(opts).unwrap_or_default();
    if let (Some(h), serde_json::Value::Object(e)) = (hyper.as_object_mut(), extra) {
        h.extend(e);
    }
    Provenance {
        source: format!(
            "trained in cellscope on {} ({})",
            source.display(),
            crate::model::format::sha256_file(source).unwrap_or_else(|_| "folder".into())
        ),
        objective: Some(objective.into()),
        seed: Some(opts.seed),
        hyper_parameters: Some(hyper),
        ..Provenance::default()
    }
}

/// Pre-trains a new model on `adata`.
///
/// # Errors
/// Unusable values, unreadable gene list or GMT; bad options; cancelled before an epoch
/// finished.
pub fn run_pretrain(
    adata: &AnnData,
    job: &PretrainJob,
    events: &Sender<TrainEvent>,
    cancel: &AtomicBool,
) -> Result<Trained, JobError> {
    let pre = Preprocessing::default();
    let (x, data_genes, _) = model_input(adata, &pre)?;
    let model_genes = match &job.genes {
        Some(p) => read_gene_list(p)?,
        None => data_genes.clone(),
    };
    let (x, coverage) = align(&x, &data_genes, &model_genes, &adata.source)?;
    let programmes = job
        .gmt
        .as_ref()
        .map(|g| Programmes::read_gmt(g, &model_genes))
        .transpose()?;
    let n_programmes = programmes.as_ref().map(|p| p.names.len());
    let objective = Objective::new(job.objective, programmes)?.with_generic(job.generic.clone());
    let outcome = pretrain_loop(&x, &objective, &job.opts, job.backend, events, cancel)?;
    let generic = job.objective.is_generic().then(|| {
        serde_json::json!({
            "encoder": job.generic.encoder.name(),
            "head_width": job.generic.head_width,
            "augment": job.generic.augment.to_string(),
        })
    });
    let extra = serde_json::json!({
        "generic": generic,
        "gmt": job.gmt.as_ref().map(|p| p.display().to_string()),
        "gmt_sha256": job.gmt.as_ref().and_then(|p| crate::model::format::sha256_file(p).ok()),
        "programmes_matched": n_programmes,
        "device": outcome.device,
        "epochs_done": outcome.history.len(),
    });
    Ok(Trained {
        model: Model {
            weights: outcome.weights.clone(),
            genes: model_genes,
            preprocessing: pre,
            class_names: None,
            provenance: provenance(&adata.source, job.objective.name(), &job.opts, extra),
            path: PathBuf::new(),
        },
        outcome,
        test: None,
        coverage,
    })
}

/// Class codes of an obs column, missing labels (`NA`, `nan`, empty, `Ambiguous`) as
/// `u32::MAX`, and the class names.
///
/// # Errors
/// [`JobError::Input`]: no such column.
pub fn label_codes(adata: &AnnData, key: &str) -> Result<(Vec<u32>, Vec<String>), JobError> {
    let values = super::obs_labels(adata, key)?;
    let present: Vec<&String> = values
        .iter()
        .filter(|v| !MISSING_LABELS.contains(&v.as_str()))
        .collect();
    let (_, names) = encode(&present);
    let index: std::collections::HashMap<&str, u32> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i as u32))
        .collect();
    let codes = values
        .iter()
        .map(|v| index.get(v.as_str()).copied().unwrap_or(u32::MAX))
        .collect();
    Ok((codes, names))
}

/// Fine-tunes a classifier on `adata` (70% train, 15% validation, 15% test) and scores it on
/// the test cells: on the backbone of `init` (a pre-trained model), or from random init (the
/// supervised baseline) when `init` is `None`.
///
/// # Errors
/// Unusable values, unreadable model; no such label column; fewer than two classes; cancelled
/// before an epoch finished.
pub fn run_finetune(
    adata: &AnnData,
    job: &FinetuneJob,
    init: Option<&Model>,
    events: &Sender<TrainEvent>,
    cancel: &AtomicBool,
) -> Result<Trained, JobError> {
    let (codes, names) = label_codes(adata, &job.label_key)?;
    let pre = init.map_or_else(Preprocessing::default, |m| m.preprocessing);
    let (x, data_genes, _) = model_input(adata, &pre)?;
    let model_genes = match (init, &job.genes) {
        (Some(m), _) => m.genes.clone(),
        (None, Some(p)) => read_gene_list(p)?,
        (None, None) => data_genes.clone(),
    };
    let (x, coverage) = align(&x, &data_genes, &model_genes, &adata.source)?;
    // The study's split of all cells (scikit-learn's, `analysis::split`), unlabelled cells then
    // left out of each part.
    let (tr, va, te) = split_70_15_15(codes.len(), job.split_seed);
    let pick = |v: Vec<usize>| {
        v.into_iter()
            .filter(|&i| codes[i] != u32::MAX)
            .collect::<Vec<_>>()
    };
    let (train, val, test) = (pick(tr), pick(va), pick(te));
    let score = |t: &[u32], p: &[u32]| classification(t, p).macro_f1;
    let outcome = finetune_loop(
        &x,
        &Labelled {
            codes: &codes,
            class_names: &names,
            train: &train,
            val: &val,
        },
        init.map(|m| &m.weights),
        job.layers,
        &job.opts,
        job.backend,
        &score,
        events,
        cancel,
    )?;
    let objective = match init {
        Some(m) => format!(
            "fine-tuning ({:?}) of {}",
            job.layers,
            if m.path.as_os_str().is_empty() {
                m.provenance.source.clone()
            } else {
                m.path.display().to_string()
            }
        ),
        None => "supervised from random init".to_string(),
    };
    let extra = serde_json::json!({
        "label_key": job.label_key,
        "train_layers": format!("{:?}", job.layers),
        "split_seed": job.split_seed,
        "pretrained": init.map(|m| m.path.display().to_string()),
        "pretrained_weights_sha256": init.map(|m| m.provenance.weights_sha256.clone()),
        "device": outcome.device,
        "best_epoch": outcome.best_epoch,
        "early_stopped": outcome.early_stopped,
    });
    let model = Model {
        weights: outcome.weights.clone(),
        genes: model_genes,
        preprocessing: pre,
        class_names: Some(names.clone()),
        provenance: provenance(&adata.source, &objective, &job.opts, extra),
        path: PathBuf::new(),
    };
    let test = if test.is_empty() {
        None
    } else {
        let p = predict_matrix(&model, &x.select_rows(&test))?;
        let truth: Vec<u32> = test.iter().map(|&i| codes[i]).collect();
        Some((classification(&truth, &p.codes), names))
    };
    Ok(Trained {
        model,
        outcome,
        test,
        coverage,
    })
}

/// Predictions of a classifier.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// Predicted class code per cell (index into the model's class names).
    pub codes: Vec<u32>,
    /// Softmax probabilities, row-major `[n_cells, n_types]`.
    pub probabilities: Vec<f32>,
    /// Probability of the predicted class (the per-cell confidence).
    pub confidence: Vec<f32>,
}

impl Prediction {
    /// The predicted class names (`class_<k>` when the model names no classes).
    pub fn labels(&self, model: &Model) -> Vec<String> {
        let names = model.class_names.as_deref().unwrap_or_default();
        self.codes
            .iter()
            .map(|&c| {
                names
                    .get(c as usize)
                    .cloned()
                    .unwrap_or_else(|| format!("class_{c}"))
            })
            .collect()
    }
}

/// Predicts classes for `x` (already preprocessed and aligned to the model's genes), on the
/// CPU path, in batches of 4,096.
///
/// # Errors
/// [`JobError::Input`]: a model without a classifier head.
pub fn predict_matrix(model: &Model, x: &CsrMatrix) -> Result<Prediction, JobError> {
    let no_head = || {
        JobError::Input(format!(
            "{}: the model has no classifier head (fine-tune it first)",
            model.path.display()
        ))
    };
    let k = model
        .weights
        .head
        .as_ref()
        .map(|h| h.n_out)
        .ok_or_else(no_head)?;
    let engine = Engine::new(&model.weights, BackendChoice::Cpu).map_err(JobError::from)?;
    let mut probs = Vec::with_capacity(x.n_rows * k);
    let mut r0 = 0;
    while r0 < x.n_rows {
        let r1 = (r0 + 4096).min(x.n_rows);
        probs.extend(engine.logits(&x.slice_rows(r0, r1)).ok_or_else(no_head)?);
        r0 = r1;
    }
    softmax_rows(&mut probs, k);
    let codes = argmax_rows(&probs, k);
    let confidence = codes
        .iter()
        .enumerate()
        .map(|(i, &c)| probs[i * k + c as usize])
        .collect();
    Ok(Prediction {
        codes,
        probabilities: probs,
        confidence,
    })
}

/// Predicts classes for every cell of `adata` with a fine-tuned model.
///
/// # Errors
/// As [`model_input`], [`align`] and [`predict_matrix`].
pub fn predict(model: &Model, adata: &AnnData) -> Result<(Prediction, Coverage), JobError> {
    let (x, cov) = model_aligned_input(model, adata)?;
    Ok((predict_matrix(model, &x)?, cov))
}

/// `adata` as `model` sees it: preprocessed with the model's preprocessing
/// ([`model_input`]) and aligned to its genes ([`align`]), `n_obs x model genes`, with the
/// gene coverage.
///
/// # Errors
/// As [`model_input`] and [`align`].
pub fn model_aligned_input(
    model: &Model,
    adata: &AnnData,
) -> Result<(CsrMatrix, Coverage), JobError> {
    let (x, genes, _) = model_input(adata, &model.preprocessing)?;
    align(&x, &genes, &model.genes, &adata.source)
}
