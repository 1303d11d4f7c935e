//! Principal component analysis and scaling, as scanpy's `pp.scale` and `pp.pca`.
//!
//! PCA centres the columns and takes the top singular vectors: exactly (eigendecomposition of
//! `A^T A` or `A A^T`, `faer`) when either side is at most 1,000, else by randomized SVD (Halko,
//! Martinsson & Tropp 2011; `max(k, 10)` oversamples, 7 power iterations with QR re-orthonormalisation, as
//! `sklearn.utils.extmath.randomized_svd`). Signs follow sklearn's `svd_flip` on the scores: the
//! largest-magnitude entry of each score column is positive.

use faer::{Mat, Side};
use ndarray::{Array1, Array2, ArrayView2, Axis};
use rayon::prelude::*;

use super::Rng;

/// Largest side solved exactly (eigendecomposition of the smaller of `A^T A` and `A A^T`).
const EXACT_MAX: usize = 1000;

/// A fitted PCA.
#[derive(Debug, Clone)]
pub struct Pca {
    /// Scores `n x k` (scanpy `obsm['X_pca']`).
    pub scores: Array2<f32>,
    /// Loadings `k x p` (rows are components; scanpy `varm['PCs']` transposed).
    pub components: Array2<f32>,
    /// Column means used for centring, length `p`.
    pub mean: Array1<f32>,
    /// Variance along each component (ddof = 1), length `k`.
    pub explained_variance: Vec<f64>,
    /// Fraction of the total variance, length `k`.
    pub explained_variance_ratio: Vec<f64>,
}

impl Pca {
    /// Projects new rows (`m x p`, same columns) onto the components: `(y - mean) V^T`, as
    /// `sklearn.decomposition.PCA.transform` (and scanpy's `tl.ingest`).
    pub fn transform(&self, y: ArrayView2<f32>) -> Array2<f32> {
        let centred = &y - &self.mean.view().insert_axis(Axis(0));
        centred.dot(&self.components.t())
    }
}

/// PCA of `x` (`n x p`) to `k` components (`k` is capped at `min(n, p)`); `seed` drives the
/// randomized solver's test matrix.
pub fn pca(x: ArrayView2<f32>, k: usize, seed: u64) -> Pca {
    let (n, p) = x.dim();
    let k = k.min(n).min(p).max(1);
    let mean = x.mean_axis(Axis(0)).unwrap_or_else(|| Array1::zeros(p));
    let a = Mat::<f64>::from_fn(n, p, |i, j| (x[(i, j)] - mean[j]) as f64);
    let total_var: f64 = (0..p)
        .into_par_iter()
        .map(|j| (0..n).map(|i| a[(i, j)] * a[(i, j)]).sum::<f64>())
        .sum::<f64>()
        / (n.max(2) - 1) as f64;
    // v: p x k right singular vectors, s: singular values.
    let (v, s) = if p <= EXACT_MAX {
        let cov = a.transpose() * &a;
        let eig = cov
            .self_adjoint_eigen(Side::Lower)
            .expect("eigendecomposition of a symmetric matrix");
        let (u, vals) = (eig.U(), eig.S().column_vector());
        let v = Mat::<f64>::from_fn(p, k, |i, c| u[(i, p - 1 - c)]);
        let s: Vec<f64> = (0..k).map(|c| vals[p - 1 - c].max(0.0).sqrt()).collect();
        (v, s)
    } else if n <= EXACT_MAX {
        // Gram matrix A A^T (n x n): its eigenvectors are the left singular vectors.
        let gram = &a * a.transpose();
        let eig = gram
            .self_adjoint_eigen(Side::Lower)
            .expect("eigendecomposition of a symmetric matrix");
        let (u, vals) = (eig.U(), eig.S().column_vector());
        let s: Vec<f64> = (0..k).map(|c| vals[n - 1 - c].max(0.0).sqrt()).collect();
        let uk = Mat::<f64>::from_fn(n, k, |i, c| u[(i, n - 1 - c)]);
        let mut v = a.transpose() * &uk; // p x k, columns scaled by s
        for c in 0..k {
            let inv = if s[c] > 0.0 { 1.0 / s[c] } else { 0.0 };
            for j in 0..p {
                v[(j, c)] *= inv;
            }
        }
        (v, s)
    } else {
        let l = (k + k.max(10)).min(p).min(n);
        let mut rng = Rng::new(seed);
        let omega = Mat::<f64>::from_fn(p, l, |_, _| rng.normal());
        let mut q = (&a * &omega).qr().compute_thin_Q();
        for _ in 0..7 {
            let z = (a.transpose() * &q).qr().compute_thin_Q();
            q = (&a * &z).qr().compute_thin_Q();
        }
        let b = q.transpose() * &a; // l x p
        let svd = b.thin_svd().expect("SVD of the projected matrix");
        let (vb, sb) = (svd.V(), svd.S().column_vector());
        let v = Mat::<f64>::from_fn(p, k, |i, c| vb[(i, c)]);
        let s: Vec<f64> = (0..k).map(|c| sb[c]).collect();
        (v, s)
    };
    let scores_m = &a * &v; // n x k
    let mut scores = Array2::<f32>::zeros((n, k));
    let mut components = Array2::<f32>::zeros((k, p));
    for c in 0..k {
        // svd_flip: make the largest-|.| score of each component positive.
        let (mut best, mut sign) = (0.0f64, 1.0f64);
        for i in 0..n {
            let val = scores_m[(i, c)];
            if val.abs() > best {
                best = val.abs();
                sign = val.signum();
            }
        }
        for i in 0..n {
            scores[(i, c)] = (sign * scores_m[(i, c)]) as f32;
        }
        for j in 0..p {
            components[(c, j)] = (sign * v[(j, c)]) as f32;
        }
    }
    let explained_variance: Vec<f64> = s.iter().map(|sv| sv * sv / (n.max(2) - 1) as f64).collect();
    let explained_variance_ratio = explained_variance
        .iter()
        .map(|e| if total_var > 0.0 { e / total_var } else { 0.0 })
        .collect();
    Pca {
        scores,
        components,
        mean,
        explained_variance,
        explained_variance_ratio,
    }
}

/// Standardises columns in place to zero mean and unit variance (ddof = 1) and clips to
/// `±max_value` (`scanpy.pp.scale(zero_center=True, max_value=...)`); constant columns become 0.
pub fn scale(x: &mut Array2<f32>, max_value: Option<f32>) {
    let n = x.nrows() as f64;
    x.axis_iter_mut(Axis(1)).for_each(|mut col| {
        let mean = col.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = col.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
        let sd = var.sqrt();
        col.mapv_inplace(|v| {
            let z = if sd > 0.0 {
                ((v as f64 - mean) / sd) as f32
            } else {
                0.0
            };
            match max_value {
                Some(m) => z.clamp(-m, m),
                None => z,
            }
        });
    });
}
