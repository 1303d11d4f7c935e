//! Reference → query label transfer between two datasets (kNN vote, k = 5, see
//! [`crate::analysis::transfer`]).
//!
//! Default representation (no model, no `--use-rep`): log-normalised expression of the genes both
//! datasets share (matched by `var_names`), projected on the reference's principal components
//! (30, unscaled), the query projected with the reference's means and loadings — scanpy's
//! `tl.ingest` approach.

use ndarray::{Array2, ArrayView2};

use super::analyze::log_normalized;
use super::{Handle, JobError, MISSING_LABELS, Step, obs_labels};
use crate::analysis::metrics::Classification;
use crate::analysis::pca::pca;
use crate::analysis::transfer::{LabelMap, knn_classify};
use crate::data::anndata::AnnData;

/// Principal components of the default shared-gene representation.
pub const INGEST_PCS: usize = 30;

/// Shared-gene representations of reference and query: `(reference n x d, query m x d,
/// number of shared genes)`.
///
/// # Errors
/// [`JobError::Input`] when the two datasets share no gene names.
pub fn shared_gene_representation(
    reference: &AnnData,
    query: &AnnData,
    seed: u64,
) -> Result<(Array2<f32>, Array2<f32>, usize), JobError> {
    let qpos: std::collections::HashMap<&str, usize> = query
        .var_names()
        .iter()
        .enumerate()
        .map(|(i, g)| (g.as_str(), i))
        .collect();
    let (rc, qc): (Vec<usize>, Vec<usize>) = reference
        .var_names()
        .iter()
        .enumerate()
        .filter_map(|(i, g)| qpos.get(g.as_str()).map(|&j| (i, j)))
        .unzip();
    if rc.is_empty() {
        return Err(JobError::Input(format!(
            "{} and {} share no gene names (var_names); pass --use-rep with a shared embedding or --model",
            reference.source.display(),
            query.source.display()
        )));
    }
    let r = log_normalized(&reference.x.to_csr()).dense_columns(&rc);
    let q = log_normalized(&query.x.to_csr()).dense_columns(&qc);
    let fit = pca(r.view(), INGEST_PCS.min(rc.len()), seed);
    let qp = fit.transform(q.view());
    Ok((fit.scores, qp, rc.len()))
}

/// Result of [`transfer_labels`].
#[derive(Debug, Clone)]
pub struct Transfer {
    /// Predicted reference label per query cell.
    pub predicted: Vec<String>,
    /// Fraction of the k votes won by the prediction.
    pub confidence: Vec<f32>,
    /// Reference cells used (those with a label, mapped when a map is given).
    pub reference_cells: usize,
}

/// kNN label transfer from reference rows (`reference_rep`, labels `reference_labels`) to query
/// rows. With a label map, reference cells whose class has no query counterpart are left out
/// (the map states which classes the query can contain); missing labels are always left out.
pub fn transfer_labels(
    reference_rep: ArrayView2<f32>,
    reference_labels: &[String],
    query_rep: ArrayView2<f32>,
    map: Option<&LabelMap>,
    k: usize,
) -> Transfer {
    let keep: Vec<usize> = (0..reference_labels.len())
        .filter(|&i| {
            let l = reference_labels[i].as_str();
            !MISSING_LABELS.contains(&l) && map.is_none_or(|m| m.is_mapped(l))
        })
        .collect();
    let labels: Vec<&String> = keep.iter().map(|&i| &reference_labels[i]).collect();
    let (codes, names) = crate::analysis::metrics::encode(&labels);
    let r = reference_rep.select(ndarray::Axis(0), &keep);
    let (pred, confidence) = knn_classify(r.view(), &codes, names.len(), query_rep, k);
    Transfer {
        predicted: pred.iter().map(|&c| names[c as usize].clone()).collect(),
        confidence,
        reference_cells: keep.len(),
    }
}

/// The representation reference and query are compared in.
pub enum TransferRep<'a> {
    /// Log-normalised expression of the shared genes on the reference's 30 PCs (scanpy's
    /// `ingest` approach; [`shared_gene_representation`]).
    SharedGenes,
    /// An obsm key present in both datasets with the same width.
    Obsm(&'a str),
    /// Both datasets embedded by a model on its engine.
    Model(&'a crate::model::Model, &'a crate::model::Engine),
}

/// What [`run`] transfers.
pub struct TransferJob<'a> {
    /// Reference obs column holding the labels.
    pub label_key: &'a str,
    /// Where the neighbours are searched.
    pub representation: TransferRep<'a>,
    /// (reference label, query label) pairs relating two label sets.
    pub label_map: Option<&'a LabelMap>,
    /// Query obs column with true labels, to score the transfer.
    pub query_label_key: Option<&'a str>,
    /// Neighbours that vote (5 in the reusability study).
    pub k: usize,
}

/// Scores of a transfer against the query's own labels.
#[derive(Debug, Clone)]
pub struct TransferScores {
    /// Accuracy, F1 (macro, micro, weighted) and per-class precision, recall, F1, support.
    pub scores: Classification,
    /// Class names indexed by `scores.classes`.
    pub classes: Vec<String>,
    /// Cells scored (missing labels left out).
    pub cells: usize,
}

/// The result of [`run`].
#[derive(Debug, Clone)]
pub struct TransferOutput {
    /// Predictions and vote fractions per query cell.
    pub transfer: Transfer,
    /// Description of the representation.
    pub representation: String,
    /// Scores against `query_label_key`, when given.
    pub scores: Option<TransferScores>,
}

impl TransferOutput {
    /// Parameters and metrics as JSON (`uns['cellscope_transfer']`, `--metrics-json`).
    pub fn report(&self, k: usize, query_cells: usize) -> serde_json::Value {
        let mut m = serde_json::json!({"representation": self.representation, "k": k,
            "reference_cells": self.transfer.reference_cells, "query_cells": query_cells});
        if let Some(s) = &self.scores {
            m["scores"] = serde_json::json!(s.scores);
            m["classes"] = serde_json::json!(s.classes);
            m["scored_cells"] = serde_json::json!(s.cells);
        }
        m
    }
}

/// Embeds `a` with `model` for a transfer (no progress of its own: the transfer reports one
/// step).
fn embed_for_transfer(
    model: &crate::model::Model,
    engine: &crate::model::Engine,
    a: &AnnData,
    h: &mut Handle<'_>,
) -> Result<Array2<f32>, JobError> {
    let input = super::embed::EmbedInput::Data(a);
    let p = super::embed::EmbedParams::default();
    Ok(super::embed::embed(model, engine, input, &p, h)?.values)
}

/// The representations of both datasets and their description.
fn representations(
    r: &AnnData,
    q: &AnnData,
    rep: &TransferRep<'_>,
    h: &mut Handle<'_>,
) -> Result<(Array2<f32>, Array2<f32>, String), JobError> {
    match rep {
        TransferRep::Model(m, e) => Ok((
            embed_for_transfer(m, e, r, h)?,
            embed_for_transfer(m, e, q, h)?,
            format!("model {}", m.path.display()),
        )),
        TransferRep::Obsm(key) => {
            let get = |a: &AnnData| {
                a.obsm
                    .get(*key)
                    .map(|m| m.mapv(|v| v as f32))
                    .ok_or_else(|| {
                        JobError::Input(format!("{}: obsm has no '{key}'", a.source.display()))
                    })
            };
            let (rr, qr) = (get(r)?, get(q)?);
            if rr.ncols() != qr.ncols() {
                return Err(JobError::Input(format!(
                    "obsm['{key}'] has {} columns in the reference but {} in the query",
                    rr.ncols(),
                    qr.ncols()
                )));
            }
            Ok((rr, qr, format!("obsm['{key}']")))
        }
        TransferRep::SharedGenes => {
            let (rr, qr, shared) = shared_gene_representation(r, q, 0)?;
            let name = format!(
                "log-normalised expression of {shared} shared genes, reference PCA ({})",
                rr.ncols()
            );
            Ok((rr, qr, name))
        }
    }
}

/// The label-transfer job: labels of `reference` carried to every cell of `query` by a kNN
/// vote in the chosen representation, scored against the query's own labels when asked.
///
/// # Errors
/// [`JobError::Input`] for a missing obs column or obsm key, no shared genes, or `k = 0`;
/// embedding errors; [`JobError::Cancelled`].
pub fn run(
    reference: &AnnData,
    query: &AnnData,
    job: &TransferJob<'_>,
    h: &mut Handle<'_>,
) -> Result<TransferOutput, JobError> {
    crate::analysis::ParamError::unless(job.k >= 1, "k", job.k, "at least 1")?;
    let labels = obs_labels(reference, job.label_key)?;
    let truth = job
        .query_label_key
        .map(|k| obs_labels(query, k))
        .transpose()?;
    h.step(Step::Transfer, 0.0);
    let (rr, qr, representation) = representations(reference, query, &job.representation, h)?;
    h.check()?;
    super::check_finite(rr.view(), &reference.source, &representation)?;
    super::check_finite(qr.view(), &query.source, &representation)?;
    let transfer = transfer_labels(rr.view(), &labels, qr.view(), job.label_map, job.k);
    h.step(Step::Transfer, 1.0);
    let scores = truth.map(|t| {
        let (scores, classes, cells) = crate::analysis::transfer::score_predictions(
            &transfer.predicted,
            &t,
            job.label_map,
            &MISSING_LABELS,
        );
        TransferScores {
            scores,
            classes,
            cells,
        }
    });
    Ok(TransferOutput {
        transfer,
        representation,
        scores,
    })
}
