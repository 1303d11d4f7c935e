//! Reference → query label transfer between two datasets (kNN vote, k = 5, see
//! [`crate::analysis::transfer`]).
//!
//! Default representation (no model, no `--use-rep`): log-normalised expression of the genes both
//! datasets share (matched by `var_names`), projected on the reference's principal components
//! (30, unscaled), the query projected with the reference's means and loadings — scanpy's
//! `tl.ingest` approach.

use ndarray::{Array2, ArrayView2};

use super::analyze::log_normalized;
use crate::analysis::pca::pca;
use crate::analysis::transfer::{LabelMap, knn_classify};
use crate::data::anndata::AnnData;
use crate::data::matrix::CsrMatrix;

/// Principal components of the default shared-gene representation.
pub const INGEST_PCS: usize = 30;

/// Dense columns `cols` (indices into `x`'s columns) of a CSR matrix, in that order.
fn dense_columns(x: &CsrMatrix, cols: &[usize]) -> Array2<f32> {
    let mut pos = vec![usize::MAX; x.n_cols];
    cols.iter().enumerate().for_each(|(k, &j)| pos[j] = k);
    let mut out = Array2::<f32>::zeros((x.n_rows, cols.len()));
    for i in 0..x.n_rows {
        let (idx, val) = x.row(i);
        for (&j, &v) in idx.iter().zip(val) {
            if pos[j as usize] != usize::MAX {
                out[(i, pos[j as usize])] = v;
            }
        }
    }
    out
}

/// Shared-gene representations of reference and query: `(reference n x d, query m x d,
/// number of shared genes)`.
///
/// # Errors
/// When the two datasets share no gene names.
pub fn shared_gene_representation(
    reference: &AnnData,
    query: &AnnData,
    seed: u64,
) -> Result<(Array2<f32>, Array2<f32>, usize), String> {
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
        return Err(format!(
            "{} and {} share no gene names (var_names); pass --use-rep with a shared embedding or --model",
            reference.source.display(),
            query.source.display()
        ));
    }
    let r = dense_columns(&log_normalized(&reference.x.to_csr()), &rc);
    let q = dense_columns(&log_normalized(&query.x.to_csr()), &qc);
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
            !super::analyze::MISSING_LABELS.contains(&l) && map.is_none_or(|m| m.is_mapped(l))
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
