//! Evaluating a model as Richter et al. 2024 and the reusability study did: the held-out cells'
//! reconstruction (masked autoencoders) as variance-weighted explained variance, and the
//! zero-shot kNN classifier (k = 5) on the embedding, both on the study's 70/15/15 split
//! (scikit-learn's `train_test_split`, [`crate::analysis::split`]).

use ndarray::ArrayView2;
use serde::Serialize;

use super::analyze::{ZeroShotKnn, zero_shot_knn};
use super::train::model_aligned_input;
use super::{Handle, JobError, Step, obs_labels};
use crate::analysis::metrics::{classification, explained_variance_weighted};
use crate::analysis::split::split_70_15_15;
use crate::data::anndata::AnnData;
use crate::data::genes::Coverage;
use crate::model::{Engine, Model};

/// What [`run`] scores.
#[derive(Debug, Clone)]
pub struct EvaluateJob {
    /// obs column of cell types for the zero-shot kNN classifier (missing labels left out).
    pub label_key: Option<String>,
    /// obs column of batches: the test cells' scores are also reported per batch.
    pub batch_key: Option<String>,
    /// `random_state` of the split (42 in the reusability study).
    pub split_seed: u32,
}

impl Default for EvaluateJob {
    fn default() -> Self {
        EvaluateJob {
            label_key: None,
            batch_key: None,
            split_seed: 42,
        }
    }
}

/// Reconstruction of the held-out cells.
#[derive(Debug, Clone, Serialize)]
pub struct Reconstruction {
    /// `explained_variance_score(y, yhat, multioutput='variance_weighted')` over the test
    /// cells' preprocessed model input (the metric of ssl_in_scg's `test_explained_var_weighted`).
    pub explained_variance_weighted: f64,
    /// Mean squared error over the test cells and genes.
    pub mse: f64,
    /// Test cells.
    pub n_cells: usize,
}

/// Zero-shot kNN scores.
#[derive(Debug, Clone, Serialize)]
pub struct ZeroShot {
    /// The obs column scored.
    pub label_key: String,
    /// Macro-F1 (mean of per-class F1) on the test cells.
    pub macro_f1: f64,
    /// Accuracy (micro-F1) on the test cells.
    pub accuracy: f64,
    /// Labelled training and test cells.
    pub n_train: usize,
    /// Test cells.
    pub n_test: usize,
    /// Per batch of the test cells: batch, macro-F1, accuracy, cells.
    pub per_batch: Vec<(String, f64, f64, usize)>,
}

/// The result of [`run`].
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    /// Gene coverage of the dataset against the model's genes.
    pub coverage: Coverage,
    /// Cells in the train, validation and test parts of the split of all cells.
    pub split: (usize, usize, usize),
    /// Held-out reconstruction, for a model with a decoder.
    pub reconstruction: Option<Reconstruction>,
    /// Zero-shot kNN scores, when a label column was given.
    pub zero_shot: Option<ZeroShot>,
}

/// Embeds `adata` with `model` (preprocessed and aligned as the model expects) and scores it.
/// The reconstruction is of the test cells' full input (no mask), the networks in eval mode.
///
/// # Errors
/// [`JobError::Input`]: a missing obs column, no shared genes, values that are not counts;
/// [`JobError::Cancelled`].
pub fn run(
    model: &Model,
    engine: &Engine,
    adata: &AnnData,
    job: &EvaluateJob,
    h: &mut Handle<'_>,
) -> Result<Evaluation, JobError> {
    let truth = job
        .label_key
        .as_deref()
        .map(|k| obs_labels(adata, k))
        .transpose()?;
    let batches = job
        .batch_key
        .as_deref()
        .map(|k| obs_labels(adata, k))
        .transpose()?;
    h.step(Step::Embed, 0.0);
    let (x, coverage) = model_aligned_input(model, adata)?;
    h.check()?;
    let emb = engine.embed(&x);
    let d = emb.len() / x.n_rows.max(1);
    let rep = ArrayView2::from_shape((x.n_rows, d), &emb)
        .map_err(|e| JobError::Input(format!("embedding shape: {e}")))?;
    h.step(Step::Embed, 1.0);
    let (train, val, test) = split_70_15_15(x.n_rows, job.split_seed);
    let reconstruction = reconstruct(model, &x, rep, &test);
    let zero_shot = match (&job.label_key, truth) {
        (Some(key), Some(t)) => {
            let z = zero_shot_knn(rep, &t, job.split_seed);
            Some(zero_shot_scores(key, &z, batches.as_deref()))
        }
        _ => None,
    };
    Ok(Evaluation {
        coverage,
        split: (train.len(), val.len(), test.len()),
        reconstruction,
        zero_shot,
    })
}

/// The test cells' reconstruction scores, for a model with a decoder.
fn reconstruct(
    model: &Model,
    x: &crate::data::CsrMatrix,
    rep: ArrayView2<f32>,
    test: &[usize],
) -> Option<Reconstruction> {
    let emb: Vec<f32> = rep.select(ndarray::Axis(0), test).iter().copied().collect();
    let recon = crate::model::infer::dense::decode(&model.weights, &emb, test.len())?;
    let truth = crate::model::train::dense_rows(x, test);
    let g = x.n_cols;
    let t = ArrayView2::from_shape((test.len(), g), &truth).ok()?;
    let p = ArrayView2::from_shape((test.len(), g), &recon).ok()?;
    let mse = truth
        .iter()
        .zip(&recon)
        .map(|(&a, &b)| f64::from(a - b).powi(2))
        .sum::<f64>()
        / truth.len().max(1) as f64;
    Some(Reconstruction {
        explained_variance_weighted: explained_variance_weighted(t, p),
        mse,
        n_cells: test.len(),
    })
}

fn zero_shot_scores(key: &str, z: &ZeroShotKnn, batches: Option<&[String]>) -> ZeroShot {
    let per_batch = batches.map_or_else(Vec::new, |b| {
        let mut names: Vec<&String> = z.test.iter().map(|&i| &b[i]).collect();
        names.sort();
        names.dedup();
        names
            .into_iter()
            .map(|name| {
                let idx: Vec<usize> = (0..z.test.len())
                    .filter(|&j| &b[z.test[j]] == name)
                    .collect();
                let t: Vec<u32> = idx.iter().map(|&j| z.truth[j]).collect();
                let p: Vec<u32> = idx.iter().map(|&j| z.pred[j]).collect();
                let c = classification(&t, &p);
                (name.clone(), c.macro_f1, c.accuracy, idx.len())
            })
            .collect()
    });
    ZeroShot {
        label_key: key.to_string(),
        macro_f1: z.scores.macro_f1,
        accuracy: z.scores.accuracy,
        n_train: z.train.len(),
        n_test: z.test.len(),
        per_batch,
    }
}
