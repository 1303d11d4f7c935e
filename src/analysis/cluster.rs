//! k-means and Gaussian mixture clustering of small dense feature matrices.
//!
//! k-means: greedy k-means++ seeding (`2 + ln k` candidates per centre, as
//! `sklearn.cluster.KMeans`), Lloyd iterations to a relative centre shift of 1e-4, best inertia
//! of `n_init` seeded restarts. Gaussian mixture: full covariances, EM initialised from k-means
//! responsibilities, `reg_covar` 1e-6, stop when the mean log-likelihood gains less than 1e-3
//! (`sklearn.mixture.GaussianMixture` defaults, its order of E and M steps) — the model-based
//! clustering (mclust) spatial domain studies use on DLPFC; or one covariance shared by all
//! components ([`Covariance::Tied`], mclust's EEE).

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

use super::Rng;

/// A k-means result.
#[derive(Debug, Clone)]
pub struct KMeans {
    /// Cluster of each row, `0..k`.
    pub labels: Vec<u32>,
    /// Centres, `k x d`.
    pub centers: Array2<f64>,
    /// Sum of squared distances to the assigned centre.
    pub inertia: f64,
}

fn sqdist(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

fn rows_f64(x: ArrayView2<f32>) -> Vec<Vec<f64>> {
    x.outer_iter()
        .map(|r| r.iter().map(|&v| v as f64).collect())
        .collect()
}

/// k-means with `n_init` restarts seeded from `seed`.
///
/// # Panics
/// When `k == 0` or `k > n`.
pub fn kmeans(x: ArrayView2<f32>, k: usize, n_init: usize, seed: u64) -> KMeans {
    let pts = rows_f64(x);
    assert!(k >= 1 && k <= pts.len(), "k must be in 1..=n");
    (0..n_init.max(1))
        .map(|r| kmeans_once(&pts, k, &mut Rng::for_item(seed, r as u64, 0)))
        .min_by(|a, b| a.inertia.total_cmp(&b.inertia))
        .expect("at least one run")
}

fn kmeans_once(pts: &[Vec<f64>], k: usize, rng: &mut Rng) -> KMeans {
    let n = pts.len();
    let d = pts[0].len();
    // Greedy k-means++.
    let trials = 2 + (k as f64).ln() as usize;
    let mut centers: Vec<Vec<f64>> = vec![pts[rng.below(n)].clone()];
    let mut closest: Vec<f64> = pts.iter().map(|p| sqdist(p, &centers[0])).collect();
    while centers.len() < k {
        let total: f64 = closest.iter().sum();
        let mut best: Option<(f64, usize, Vec<f64>)> = None;
        for _ in 0..trials {
            let mut r = rng.uniform() * total;
            let mut pick = n - 1;
            for (i, &c) in closest.iter().enumerate() {
                r -= c;
                if r <= 0.0 {
                    pick = i;
                    break;
                }
            }
            let cand: Vec<f64> = pts
                .par_iter()
                .zip(&closest)
                .map(|(p, &c)| c.min(sqdist(p, &pts[pick])))
                .collect();
            let pot: f64 = cand.iter().sum();
            if best.as_ref().is_none_or(|b| pot < b.0) {
                best = Some((pot, pick, cand));
            }
        }
        let (_, pick, cand) = best.expect("a candidate");
        centers.push(pts[pick].clone());
        closest = cand;
    }
    let mut labels = vec![0u32; n];
    for _ in 0..300 {
        labels = pts
            .par_iter()
            .map(|p| {
                let mut best = (f64::INFINITY, 0u32);
                for (c, ctr) in centers.iter().enumerate() {
                    let dd = sqdist(p, ctr);
                    if dd < best.0 {
                        best = (dd, c as u32);
                    }
                }
                best.1
            })
            .collect();
        let mut sums = vec![vec![0.0; d]; k];
        let mut counts = vec![0usize; k];
        for (p, &l) in pts.iter().zip(&labels) {
            counts[l as usize] += 1;
            sums[l as usize]
                .iter_mut()
                .zip(p)
                .for_each(|(s, v)| *s += v);
        }
        let mut shift = 0.0;
        for c in 0..k {
            if counts[c] == 0 {
                continue; // keep an empty cluster's centre
            }
            let new: Vec<f64> = sums[c].iter().map(|s| s / counts[c] as f64).collect();
            shift += sqdist(&new, &centers[c]);
            centers[c] = new;
        }
        let var: f64 = (0..d)
            .map(|j| {
                let m = pts.iter().map(|p| p[j]).sum::<f64>() / n as f64;
                pts.iter().map(|p| (p[j] - m).powi(2)).sum::<f64>() / n as f64
            })
            .sum();
        if shift <= 1e-4 * var / d as f64 {
            break;
        }
    }
    let inertia = pts
        .iter()
        .zip(&labels)
        .map(|(p, &l)| sqdist(p, &centers[l as usize]))
        .sum();
    let mut c = Array2::<f64>::zeros((k, d));
    for (i, ctr) in centers.iter().enumerate() {
        for (j, v) in ctr.iter().enumerate() {
            c[(i, j)] = *v;
        }
    }
    KMeans {
        labels,
        centers: c,
        inertia,
    }
}

/// Lower-triangular Cholesky factor of a small SPD matrix (row-major `d x d`).
fn cholesky(a: &[f64], d: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; d * d];
    for i in 0..d {
        for j in 0..=i {
            let mut s = a[i * d + j];
            for t in 0..j {
                s -= l[i * d + t] * l[j * d + t];
            }
            if i == j {
                if s <= 0.0 {
                    return None;
                }
                l[i * d + i] = s.sqrt();
            } else {
                l[i * d + j] = s / l[j * d + j];
            }
        }
    }
    Some(l)
}

/// A fitted Gaussian mixture.
#[derive(Debug, Clone)]
pub struct Gmm {
    /// Most probable component of each row.
    pub labels: Vec<u32>,
    /// Posterior probability of the assigned component per row (a confidence).
    pub confidence: Vec<f32>,
    /// Mean log-likelihood per row at the final parameters (sklearn's `score(X)`).
    pub log_likelihood: f64,
    /// EM iterations run.
    pub n_iter: usize,
}

/// The covariance model of a Gaussian mixture (sklearn's `covariance_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Covariance {
    /// One full covariance per component (mclust's VVV).
    Full,
    /// One full covariance shared by all components (sklearn's `tied`, mclust's EEE, what
    /// STAGATE and GraphST cluster their latents with).
    Tied,
}

/// Gaussian mixture with `k` full-covariance components, `n_init` restarts (each from a seeded
/// k-means), best final log-likelihood kept.
///
/// # Panics
/// When `k == 0` or `k > n`.
pub fn gmm(x: ArrayView2<f32>, k: usize, n_init: usize, seed: u64) -> Gmm {
    gmm_with(x, k, n_init, seed, Covariance::Full)
}

/// [`gmm`] with the covariance model chosen.
///
/// # Panics
/// When `k == 0` or `k > n`.
pub fn gmm_with(x: ArrayView2<f32>, k: usize, n_init: usize, seed: u64, cov: Covariance) -> Gmm {
    let pts = rows_f64(x);
    assert!(k >= 1 && k <= pts.len(), "k must be in 1..=n");
    (0..n_init.max(1))
        .map(|r| {
            let km = kmeans_once(&pts, k, &mut Rng::for_item(seed, r as u64, 1));
            gmm_em(&pts, k, &km.labels, cov, (100, 1e-3))
        })
        .max_by(|a, b| a.log_likelihood.total_cmp(&b.log_likelihood))
        .expect("at least one run")
}

/// EM from a hard assignment `init` (codes `0..k`), as `sklearn.mixture.GaussianMixture` with
/// `init_params` giving those responsibilities: an M step from them, then up to `max_iter`
/// rounds of E and M steps, stopping when the mean log-likelihood (of the E step) changes by
/// less than `tol`; labels, confidences and the log-likelihood from a last E step.
/// `reg_covar` 1e-6. (The test compares it with sklearn on the same initial parameters.)
///
/// # Panics
/// When `init` is not one code per row or a code is `>= k`.
pub fn gmm_from_labels(
    x: ArrayView2<f32>,
    k: usize,
    init: &[u32],
    cov: Covariance,
    max_iter: usize,
    tol: f64,
) -> Gmm {
    let pts = rows_f64(x);
    assert_eq!(init.len(), pts.len(), "one initial label per row");
    assert!(init.iter().all(|&l| (l as usize) < k), "labels below k");
    gmm_em(&pts, k, init, cov, (max_iter, tol))
}

/// The parameters of the M step: weights, means, and Cholesky factors of the covariances
/// (one per component, or one shared).
struct Params {
    weights: Vec<f64>,
    means: Vec<Vec<f64>>,
    chol: Vec<Vec<f64>>,
}

fn m_step(pts: &[Vec<f64>], resp: &[f64], k: usize, cov: Covariance) -> Params {
    let (n, d) = (pts.len(), pts[0].len());
    let mut nk = vec![0.0; k];
    let mut means = vec![vec![0.0; d]; k];
    for i in 0..n {
        for c in 0..k {
            let r = resp[i * k + c];
            nk[c] += r;
            means[c]
                .iter_mut()
                .zip(&pts[i])
                .for_each(|(m, v)| *m += r * v);
        }
    }
    nk.iter_mut().for_each(|v| *v += 10.0 * f64::EPSILON);
    for c in 0..k {
        means[c].iter_mut().for_each(|m| *m /= nk[c]);
    }
    let scatter = |c: usize, out: &mut [f64]| {
        for i in 0..n {
            let r = resp[i * k + c];
            if r == 0.0 {
                continue;
            }
            for a in 0..d {
                let da = pts[i][a] - means[c][a];
                for b in 0..=a {
                    out[a * d + b] += r * da * (pts[i][b] - means[c][b]);
                }
            }
        }
    };
    let finish = |mut m: Vec<f64>, total: f64| {
        for a in 0..d {
            for b in 0..=a {
                m[a * d + b] /= total;
                m[b * d + a] = m[a * d + b];
            }
            m[a * d + a] += 1e-6;
        }
        cholesky(&m, d).unwrap_or_else(|| {
            let mut id = vec![0.0; d * d];
            (0..d).for_each(|a| id[a * d + a] = 1.0);
            id
        })
    };
    let chol = match cov {
        Covariance::Full => (0..k)
            .map(|c| {
                let mut m = vec![0.0; d * d];
                scatter(c, &mut m);
                finish(m, nk[c])
            })
            .collect(),
        Covariance::Tied => {
            let mut m = vec![0.0; d * d];
            (0..k).for_each(|c| scatter(c, &mut m));
            vec![finish(m, nk.iter().sum())]
        }
    };
    let total: f64 = nk.iter().sum();
    Params {
        weights: nk.iter().map(|v| v / total).collect(),
        means,
        chol,
    }
}

/// Responsibilities and log-likelihood per row: log N(x | mu_c, L L^T) by forward
/// substitution. Returns the responsibilities `[n * k]` and the mean log-likelihood.
fn e_step(pts: &[Vec<f64>], p: &Params, k: usize) -> (Vec<f64>, f64) {
    let d = pts[0].len();
    let logdet: Vec<f64> = p
        .chol
        .iter()
        .map(|l| (0..d).map(|a| l[a * d + a].ln()).sum::<f64>())
        .collect();
    let rows: Vec<(Vec<f64>, f64)> = pts
        .par_iter()
        .map(|x| {
            let mut lp = vec![0.0; k];
            let mut z = vec![0.0; d];
            for (c, lp) in lp.iter_mut().enumerate() {
                let s = c.min(p.chol.len() - 1);
                let l = &p.chol[s];
                let mut q = 0.0;
                for a in 0..d {
                    let mut v = x[a] - p.means[c][a];
                    for b in 0..a {
                        v -= l[a * d + b] * z[b];
                    }
                    z[a] = v / l[a * d + a];
                    q += z[a] * z[a];
                }
                *lp = p.weights[c].ln()
                    - 0.5 * (d as f64 * std::f64::consts::TAU.ln() + q)
                    - logdet[s];
            }
            let m = lp.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let lse = m + lp.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
            (lp.iter().map(|v| (v - lse).exp()).collect(), lse)
        })
        .collect();
    let ll = rows.iter().map(|r| r.1).sum::<f64>() / pts.len() as f64;
    (rows.into_iter().flat_map(|r| r.0).collect(), ll)
}

fn gmm_em(
    pts: &[Vec<f64>],
    k: usize,
    init: &[u32],
    cov: Covariance,
    (max_iter, tol): (usize, f64),
) -> Gmm {
    let n = pts.len();
    let mut resp = vec![0.0f64; n * k];
    for (i, &l) in init.iter().enumerate() {
        resp[i * k + l as usize] = 1.0;
    }
    let mut params = m_step(pts, &resp, k, cov);
    let mut prev = f64::NEG_INFINITY;
    let mut n_iter = 0;
    for _ in 0..max_iter {
        let (r, ll) = e_step(pts, &params, k);
        params = m_step(pts, &r, k, cov);
        n_iter += 1;
        if (ll - prev).abs() < tol {
            break;
        }
        prev = ll;
    }
    let (resp, log_likelihood) = e_step(pts, &params, k);
    let mut labels = Vec::with_capacity(n);
    let mut confidence = Vec::with_capacity(n);
    for i in 0..n {
        let r = &resp[i * k..(i + 1) * k];
        let (c, v) =
            r.iter().enumerate().fold(
                (0, f64::NEG_INFINITY),
                |b, (c, &v)| {
                    if v > b.1 { (c, v) } else { b }
                },
            );
        labels.push(c as u32);
        confidence.push(v as f32);
    }
    Gmm {
        labels,
        confidence,
        log_likelihood,
        n_iter,
    }
}
