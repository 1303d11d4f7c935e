//! Imputing genes a spatial panel did not measure from a scRNA-seq reference, SpaGE-style
//! (Abdelaal et al. 2020, as the reusability study ran it in
//! `Xenium_SpaGE_imputation_hold_out.ipynb`; SEED_METHODS.md): both datasets z-scored per
//! shared gene (each with its own mean and standard deviation), the reference's PCA of the
//! shared genes as the common space (cellscope projects both on the reference's components
//! rather than SpaGE's PRECISE principal vectors), the `k` nearest reference cells of each query
//! cell by cosine distance, and SpaGE's weights `w = 1 - d / sum(d)` over the neighbours with
//! `d < 1`, divided by their count minus one. A predicted gene is the weighted sum of the
//! neighbours' expression.

use ndarray::{Array2, ArrayView2, Axis};
use rayon::prelude::*;

use super::ParamError;

/// Parameters of [`impute`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImputeParams {
    /// Principal components of the shared genes (SpaGE's `n_pv`, 30; at most the shared genes).
    pub n_components: usize,
    /// Reference neighbours per query cell (SpaGE's default 50).
    pub k: usize,
}

impl Default for ImputeParams {
    fn default() -> Self {
        ImputeParams {
            n_components: 30,
            k: 50,
        }
    }
}

/// Predicts `targets` (`n_ref x t`, the reference's expression of the genes to impute) for
/// every query cell from the shared genes (`reference_shared` `n_ref x s`, `query_shared`
/// `n_query x s`, same gene order, log-normalised). Returns `n_query x t`.
///
/// # Errors
/// [`ParamError`]: `k` or `n_components` of 0, fewer than two shared genes, mismatched shapes.
pub fn impute(
    reference_shared: ArrayView2<f32>,
    query_shared: ArrayView2<f32>,
    targets: ArrayView2<f32>,
    p: ImputeParams,
) -> Result<Array2<f32>, ParamError> {
    let s = reference_shared.ncols();
    ParamError::unless(p.k >= 1, "k", p.k, "at least 1")?;
    ParamError::unless(
        p.n_components >= 1,
        "n_components",
        p.n_components,
        "at least 1",
    )?;
    ParamError::unless(s >= 2, "shared genes", s, "at least 2")?;
    ParamError::unless(
        query_shared.ncols() == s,
        "query genes",
        query_shared.ncols(),
        "the reference's shared genes",
    )?;
    ParamError::unless(
        targets.nrows() == reference_shared.nrows(),
        "reference cells",
        targets.nrows(),
        "one row per reference cell",
    )?;
    // scanpy's scale (ddof 1) where SpaGE uses scipy's zscore (ddof 0): a factor common to all
    // of a dataset's genes, which neither the PCA's axes nor cosine distances see.
    let (mut rz, mut qz) = (reference_shared.to_owned(), query_shared.to_owned());
    super::pca::scale(&mut rz, None);
    super::pca::scale(&mut qz, None);
    let pca = super::pca::pca(rz.view(), p.n_components.min(s), 0);
    let unit = |m: Array2<f32>| {
        let mut m = m;
        m.axis_iter_mut(Axis(0)).for_each(|mut r| {
            let norm = r.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>().sqrt();
            if norm > 0.0 {
                r.mapv_inplace(|v| (f64::from(v) / norm) as f32);
            }
        });
        m
    };
    let rp = unit(pca.transform(rz.view()));
    let qp = unit(pca.transform(qz.view()));
    let k = p.k.min(rp.nrows());
    let t = targets.ncols();
    let rows: Vec<Vec<f32>> = (0..qp.nrows())
        .into_par_iter()
        .map(|i| {
            let q = qp.row(i);
            let mut d: Vec<(f64, usize)> = rp
                .axis_iter(Axis(0))
                .enumerate()
                .map(|(j, r)| (1.0 - f64::from(q.dot(&r)), j))
                .collect();
            d.select_nth_unstable_by(k - 1, |a, b| a.0.total_cmp(&b.0));
            let near: Vec<(f64, usize)> = d[..k].iter().copied().filter(|x| x.0 < 1.0).collect();
            let sum: f64 = near.iter().map(|x| x.0).sum();
            let mut row = vec![0f32; t];
            let mut add = |w: f64, j: usize| {
                for (o, &v) in row.iter_mut().zip(targets.row(j)) {
                    *o += (w * f64::from(v)) as f32;
                }
            };
            if near.len() < 2 || sum <= 0.0 {
                // One neighbour (or identical ones): their plain mean.
                for &(_, j) in &near {
                    add(1.0 / near.len() as f64, j);
                }
            } else {
                let m = (near.len() - 1) as f64;
                for &(dist, j) in &near {
                    add((1.0 - dist / sum) / m, j);
                }
            }
            row
        })
        .collect();
    let out = Array2::from_shape_vec((qp.nrows(), t), rows.concat())
        .unwrap_or_else(|_| Array2::zeros((qp.nrows(), t)));
    Ok(out)
}

/// Pearson correlation of two equally long vectors (0 when either is constant; see
/// [`super::prediction::pearson`]).
pub fn pearson(a: &[f32], b: &[f32]) -> f64 {
    let wide = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<f64>>();
    super::prediction::pearson(&wide(a), &wide(b)).unwrap_or(0.0)
}
