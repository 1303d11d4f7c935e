//! Predicting cell types with a fine-tuned classifier, scored against a label column when one
//! is given.

use super::train::{Prediction, predict};
use super::{Handle, JobError, MISSING_LABELS, Step, obs_labels};
use crate::analysis::metrics::Classification;
use crate::analysis::transfer::LabelMap;
use crate::data::anndata::AnnData;
use crate::data::genes::Coverage;
use crate::model::Model;

/// The result of [`run`].
#[derive(Debug, Clone)]
pub struct PredictOutput {
    /// Predicted class name per cell.
    pub labels: Vec<String>,
    /// Codes, probabilities (`n_obs x n_types`, row-major) and confidence per cell.
    pub prediction: Prediction,
    /// Gene coverage of the dataset against the model's genes.
    pub coverage: Coverage,
    /// Scores against the label column and the cells scored, when one was given.
    pub scores: Option<(Classification, usize)>,
}

impl PredictOutput {
    /// The class probabilities as an `n_obs x n_types` matrix
    /// (`obsm['cellscope_probabilities']`).
    pub fn probabilities(&self) -> ndarray::Array2<f32> {
        let n = self.labels.len();
        let k = self.prediction.probabilities.len() / n.max(1);
        ndarray::Array2::from_shape_vec((n, k.max(1)), self.prediction.probabilities.clone())
            .unwrap_or_else(|_| ndarray::Array2::zeros((n, 1)))
    }
}

/// The prediction job: every cell of `adata` through `model`'s classifier (preprocessed and
/// aligned as the model expects), scored against obs column `label_key` (missing labels left
/// out; `label_map` relates the model's classes to the column's names) when given.
///
/// # Errors
/// [`JobError::Input`]: a model without a classifier head, no shared genes, a missing label
/// column; [`JobError::Data`].
pub fn run(
    model: &Model,
    adata: &AnnData,
    label_key: Option<&str>,
    label_map: Option<&LabelMap>,
    h: &mut Handle<'_>,
) -> Result<PredictOutput, JobError> {
    let truth = label_key.map(|k| obs_labels(adata, k)).transpose()?;
    h.step(Step::Predict, 0.0);
    let (prediction, coverage) = predict(model, adata)?;
    let labels = prediction.labels(model);
    h.step(Step::Predict, 1.0);
    let scores = truth.map(|t| {
        let (c, _, n) =
            crate::analysis::transfer::score_predictions(&labels, &t, label_map, &MISSING_LABELS);
        (c, n)
    });
    Ok(PredictOutput {
        labels,
        prediction,
        coverage,
        scores,
    })
}
