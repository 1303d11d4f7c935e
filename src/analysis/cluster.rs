//! k-means and Gaussian mixture clustering of small dense feature matrices.
//!
//! k-means: greedy k-means++ seeding (`2 + ln k` candidates per centre, as
//! `sklearn.cluster.KMeans`), Lloyd iterations to a relative centre shift of 1e-4, best inertia
//! of `n_init` seeded restarts. Gaussian mixture: full covariances, EM initialised from k-means
//! responsibilities, `reg_covar` 1e-6, stop when the mean log-likelihood gains less than 1e-3
//! (`sklearn.mixture.GaussianMixture` defaults) — the model-based clustering (mclust) spatial
//! domain studies use on DLPFC.

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
    /// Mean log-likelihood per row at convergence.
    pub log_likelihood: f64,
}

/// Gaussian mixture with `k` full-covariance components, `n_init` restarts (each from a seeded
/// k-means), best final log-likelihood kept.
///
/// # Panics
/// When `k == 0` or `k > n`.
pub fn gmm(x: ArrayView2<f32>, k: usize, n_init: usize, seed: u64) -> Gmm {
    let pts = rows_f64(x);
    assert!(k >= 1 && k <= pts.len(), "k must be in 1..=n");
    (0..n_init.max(1))
        .map(|r| {
            let km = kmeans_once(&pts, k, &mut Rng::for_item(seed, r as u64, 1));
            gmm_em(&pts, k, &km.labels)
        })
        .max_by(|a, b| a.log_likelihood.total_cmp(&b.log_likelihood))
        .expect("at least one run")
}

fn gmm_em(pts: &[Vec<f64>], k: usize, init: &[u32]) -> Gmm {
    let n = pts.len();
    let d = pts[0].len();
    let mut resp = vec![0.0f64; n * k];
    for (i, &l) in init.iter().enumerate() {
        resp[i * k + l as usize] = 1.0;
    }
    let mut prev = f64::NEG_INFINITY;
    let mut ll = f64::NEG_INFINITY;
    for _ in 0..100 {
        // M step.
        let mut weights = vec![0.0; k];
        let mut means = vec![vec![0.0; d]; k];
        for i in 0..n {
            for c in 0..k {
                let r = resp[i * k + c];
                weights[c] += r;
                means[c]
                    .iter_mut()
                    .zip(&pts[i])
                    .for_each(|(m, v)| *m += r * v);
            }
        }
        let mut chol = Vec::with_capacity(k);
        for c in 0..k {
            let nk = weights[c] + 10.0 * f64::EPSILON;
            means[c].iter_mut().for_each(|m| *m /= nk);
            let mut cov = vec![0.0; d * d];
            for i in 0..n {
                let r = resp[i * k + c];
                if r == 0.0 {
                    continue;
                }
                for a in 0..d {
                    let da = pts[i][a] - means[c][a];
                    for b in 0..=a {
                        cov[a * d + b] += r * da * (pts[i][b] - means[c][b]);
                    }
                }
            }
            for a in 0..d {
                for b in 0..=a {
                    cov[a * d + b] /= nk;
                    cov[b * d + a] = cov[a * d + b];
                }
                cov[a * d + a] += 1e-6;
            }
            chol.push(cholesky(&cov, d).unwrap_or_else(|| {
                let mut id = vec![0.0; d * d];
                (0..d).for_each(|a| id[a * d + a] = 1.0);
                id
            }));
            weights[c] = nk / n as f64;
        }
        // E step: log N(x | mu, L L^T) via forward substitution.
        let logdet: Vec<f64> = chol
            .iter()
            .map(|l| (0..d).map(|a| l[a * d + a].ln()).sum::<f64>())
            .collect();
        let rows: Vec<(Vec<f64>, f64)> = pts
            .par_iter()
            .map(|p| {
                let mut lp = vec![0.0; k];
                let mut z = vec![0.0; d];
                for c in 0..k {
                    let l = &chol[c];
                    let mut q = 0.0;
                    for a in 0..d {
                        let mut s = p[a] - means[c][a];
                        for b in 0..a {
                            s -= l[a * d + b] * z[b];
                        }
                        z[a] = s / l[a * d + a];
                        q += z[a] * z[a];
                    }
                    lp[c] = weights[c].ln()
                        - 0.5 * (d as f64 * std::f64::consts::TAU.ln() + q)
                        - logdet[c];
                }
                let m = lp.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let lse = m + lp.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
                (lp.iter().map(|v| (v - lse).exp()).collect(), lse)
            })
            .collect();
        ll = rows.iter().map(|r| r.1).sum::<f64>() / n as f64;
        for (i, (r, _)) in rows.into_iter().enumerate() {
            resp[i * k..(i + 1) * k].copy_from_slice(&r);
        }
        if (ll - prev).abs() < 1e-3 {
            break;
        }
        prev = ll;
    }
    let mut labels = Vec::with_capacity(n);
    let mut confidence = Vec::with_capacity(n);
    for i in 0..n {
        let r = &resp[i * k..(i + 1) * k];
        let (c, v) =
            r.iter().enumerate().fold(
                (0, f64::NEG_INFINITY),
                |b, (c, &v)| if v > b.1 { (c, v) } else { b },
            );
        labels.push(c as u32);
        confidence.push(v as f32);
    }
    Gmm {
        labels,
        confidence,
        log_likelihood: ll,
    }
}
