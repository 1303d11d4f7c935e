//! UMAP layout (McInnes, Healy & Melville 2018) following umap-learn 0.5's
//! `simplicial_set_embedding` and `optimize_layout_euclidean`, with the gradient denominators of
//! umap-learn (`a*d^(2b) + 1`; `umap-rs` 0.4.5 has them wrong, see PITFALLS.md).
//!
//! Differences from umap-learn, chosen so that the result is deterministic for a seed whatever
//! the thread count, and parallel: each epoch updates every vertex from its own edge list
//! (in CSR order), reading other vertices' positions from a snapshot taken at the start of the
//! epoch; each edge's attraction is applied to its head only, twice as strong, because the graph
//! holds both directions and umap-learn moves both ends of each; negative samples come from a
//! generator seeded per (epoch, vertex). Initialisation is PCA of the input (umap-learn's
//! `init="pca"`) or supplied coordinates; scanpy's default spectral initialisation is not
//! implemented.

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

use super::{Cancelled, Control, Rng};
use crate::data::matrix::CsrMatrix;

/// UMAP parameters; defaults are `scanpy.tl.umap`'s (min_dist 0.5, spread 1, learning rate 1,
/// gamma 1, 5 negative samples, umap-learn's epoch rule: 500 up to 10,000 cells, else 200).
#[derive(Debug, Clone, PartialEq)]
pub struct UmapParams {
    /// Minimum distance between embedded points.
    pub min_dist: f64,
    /// Scale of embedded points.
    pub spread: f64,
    /// Epochs; `None` for umap-learn's default.
    pub n_epochs: Option<usize>,
    /// Initial SGD learning rate.
    pub learning_rate: f64,
    /// Repulsion strength (`gamma`).
    pub repulsion_strength: f64,
    /// Negative samples per positive sample.
    pub negative_sample_rate: f64,
    /// Seed.
    pub seed: u64,
}

impl Default for UmapParams {
    fn default() -> Self {
        UmapParams {
            min_dist: 0.5,
            spread: 1.0,
            n_epochs: None,
            learning_rate: 1.0,
            repulsion_strength: 1.0,
            negative_sample_rate: 5.0,
            seed: 0,
        }
    }
}

/// Fits `a, b` of the low-dimensional similarity `1 / (1 + a d^(2b))` to the offset exponential
/// with `min_dist` and `spread` (umap-learn `find_ab_params`: least squares on 300 points in
/// `[0, 3 spread]`, here by Levenberg-Marquardt from `(1, 1)`, as scipy's `curve_fit`).
pub fn find_ab_params(spread: f64, min_dist: f64) -> (f64, f64) {
    let xs: Vec<f64> = (0..300).map(|i| 3.0 * spread * i as f64 / 299.0).collect();
    let ys: Vec<f64> = xs
        .iter()
        .map(|&x| {
            if x < min_dist {
                1.0
            } else {
                (-(x - min_dist) / spread).exp()
            }
        })
        .collect();
    let sse = |a: f64, b: f64| -> f64 {
        xs.iter()
            .zip(&ys)
            .map(|(&x, &y)| (1.0 / (1.0 + a * x.powf(2.0 * b)) - y).powi(2))
            .sum()
    };
    let (mut a, mut b) = (1.0f64, 1.0f64);
    let mut lambda = 1e-3;
    let mut cost = sse(a, b);
    for _ in 0..500 {
        // Normal equations J^T J and J^T r.
        let (mut jaa, mut jab, mut jbb, mut ga, mut gb) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (&x, &y) in xs.iter().zip(&ys) {
            let p = if x > 0.0 { x.powf(2.0 * b) } else { 0.0 };
            let f = 1.0 / (1.0 + a * p);
            let r = f - y;
            let da = -p * f * f;
            let db = if x > 0.0 {
                -a * p * 2.0 * x.ln() * f * f
            } else {
                0.0
            };
            jaa += da * da;
            jab += da * db;
            jbb += db * db;
            ga += da * r;
            gb += db * r;
        }
        let mut improved = false;
        for _ in 0..50 {
            let (m11, m22) = (jaa * (1.0 + lambda), jbb * (1.0 + lambda));
            let det = m11 * m22 - jab * jab;
            if det == 0.0 {
                lambda *= 10.0;
                continue;
            }
            let sa = -(m22 * ga - jab * gb) / det;
            let sb = -(m11 * gb - jab * ga) / det;
            let c = sse(a + sa, b + sb);
            if c < cost {
                let rel = (cost - c) / cost.max(f64::MIN_POSITIVE);
                a += sa;
                b += sb;
                cost = c;
                lambda = (lambda / 10.0).max(1e-12);
                improved = rel > 1e-15;
                break;
            }
            lambda *= 10.0;
        }
        if !improved {
            break;
        }
    }
    (a, b)
}

/// Default number of epochs in umap-learn: 500 for up to 10,000 points, else 200.
pub fn default_epochs(n: usize) -> usize {
    if n <= 10_000 { 500 } else { 200 }
}

/// Initial coordinates from the first two principal components of `x` (`n x d`), scaled so the
/// largest absolute coordinate is 10, plus N(0, 1e-4) noise (umap-learn `init="pca"`).
pub fn pca_init(x: ArrayView2<f32>, seed: u64) -> Array2<f32> {
    let n = x.nrows();
    let mut init = if x.ncols() <= 2 {
        let mut m = Array2::<f32>::zeros((n, 2));
        for (i, r) in x.outer_iter().enumerate() {
            for (j, v) in r.iter().take(2).enumerate() {
                m[(i, j)] = *v;
            }
        }
        m
    } else {
        super::pca::pca(x, 2, seed).scores
    };
    let maxabs = init
        .iter()
        .fold(0f32, |m, v| m.max(v.abs()))
        .max(f32::MIN_POSITIVE);
    let mut rng = Rng::new(seed ^ 0x5eed);
    init.mapv_inplace(|v| v * (10.0 / maxabs));
    init.iter_mut()
        .for_each(|v| *v += (rng.normal() * 1e-4) as f32);
    init
}

/// The graph's edges kept for the optimisation, as CSR `(indptr, tails, epochs per sample)`:
/// weights below `max / n_epochs` are pruned and each kept edge is sampled every
/// `n_epochs / (n_epochs * w / max)` epochs (umap-learn's `make_epochs_per_sample`).
fn prune_edges(graph: &CsrMatrix, n_epochs: usize) -> (Vec<usize>, Vec<u32>, Vec<f32>) {
    let n = graph.n_rows;
    let wmax = graph.data.iter().copied().fold(0f32, f32::max);
    let cut = wmax / n_epochs as f32;
    let mut indptr = vec![0usize; n + 1];
    let mut tails: Vec<u32> = Vec::with_capacity(graph.nnz());
    let mut eps: Vec<f32> = Vec::with_capacity(graph.nnz());
    for i in 0..n {
        let (cols, vals) = graph.row(i);
        for (&j, &w) in cols.iter().zip(vals) {
            if w >= cut && w > 0.0 {
                tails.push(j);
                // epochs_per_sample = n_epochs / (n_epochs * w / wmax)
                eps.push((n_epochs as f64 / (n_epochs as f64 * w as f64 / wmax as f64)) as f32);
            }
        }
        indptr[i + 1] = tails.len();
    }
    (indptr, tails, eps)
}

/// The initial layout scaled to `[0, 10]` per axis (umap-learn's
/// `simplicial_set_embedding`), interleaved `[x0, y0, x1, y1, ...]`.
fn scaled_init(init: ArrayView2<f32>) -> Vec<f32> {
    let mut pos: Vec<f32> = Vec::with_capacity(2 * init.nrows());
    let mut lo = [f32::INFINITY; 2];
    let mut hi = [f32::NEG_INFINITY; 2];
    for r in init.outer_iter() {
        for d in 0..2 {
            lo[d] = lo[d].min(r[d]);
            hi[d] = hi[d].max(r[d]);
        }
    }
    for r in init.outer_iter() {
        for d in 0..2 {
            let span = (hi[d] - lo[d]).max(f32::MIN_POSITIVE);
            pos.push(10.0 * (r[d] - lo[d]) / span);
        }
    }
    pos
}

/// Runs UMAP's SGD on a symmetric fuzzy graph (`n x n` CSR, e.g. from
/// [`super::neighbors::fuzzy_connectivities`]) from `init` (`n x 2`). Returns `n x 2`
/// coordinates. `progress(epoch, n_epochs)` is called after every epoch.
///
/// # Errors
/// [`Cancelled`] when `control` is cancelled (checked every epoch).
pub fn umap_layout(
    graph: &CsrMatrix,
    init: ArrayView2<f32>,
    p: &UmapParams,
    control: &Control,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Array2<f32>, Cancelled> {
    let n = graph.n_rows;
    assert_eq!(init.nrows(), n, "init rows must equal graph size");
    let n_epochs = p.n_epochs.unwrap_or_else(|| default_epochs(n)).max(1);
    let (a, b) = find_ab_params(p.spread, p.min_dist);
    let (a, b) = (a as f32, b as f32);
    let gamma = p.repulsion_strength as f32;

    let (indptr, tails, eps) = prune_edges(graph, n_epochs);
    let neg_rate = p.negative_sample_rate as f32;
    let mut next_sample: Vec<f32> = eps.clone();
    let mut next_neg: Vec<f32> = eps.iter().map(|e| e / neg_rate).collect();

    let mut pos = scaled_init(init);

    // Vertex chunks own disjoint slices of positions and per-edge state.
    const CHUNK: usize = 512;
    let starts: Vec<usize> = (0..n).step_by(CHUNK).collect();
    let clip = |v: f32| v.clamp(-4.0, 4.0);
    for epoch in 0..n_epochs {
        control.check()?;
        let alpha = (p.learning_rate * (1.0 - epoch as f64 / n_epochs as f64)) as f32;
        let snapshot = pos.clone();
        let mut work = Vec::with_capacity(starts.len());
        {
            let (mut prest, mut srest, mut nrest) =
                (&mut pos[..], &mut next_sample[..], &mut next_neg[..]);
            for &s in &starts {
                let e = (s + CHUNK).min(n);
                let (pc, pr) = prest.split_at_mut(2 * (e - s));
                let ne = indptr[e] - indptr[s];
                let (sc, sr) = srest.split_at_mut(ne);
                let (nc, nr) = nrest.split_at_mut(ne);
                prest = pr;
                srest = sr;
                nrest = nr;
                work.push((s, e, pc, sc, nc));
            }
        }
        let ep = epoch as f32;
        work.into_par_iter().for_each(|(s, e, pc, sc, nc)| {
            let base = indptr[s];
            for v in s..e {
                let mut rng = Rng::for_item(p.seed, epoch as u64, v as u64);
                let li = v - s;
                let mut cur = [pc[2 * li], pc[2 * li + 1]];
                for ei in indptr[v]..indptr[v + 1] {
                    let le = ei - base;
                    if sc[le] > ep {
                        continue;
                    }
                    let t = tails[ei] as usize;
                    let other = [snapshot[2 * t], snapshot[2 * t + 1]];
                    let d2 = (cur[0] - other[0]).powi(2) + (cur[1] - other[1]).powi(2);
                    if d2 > 0.0 {
                        // d2^b, and d2^(b-1) = d2^b / d2.
                        let pb = d2.powf(b);
                        let g = -2.0 * a * b * (pb / d2) / (a * pb + 1.0);
                        for d in 0..2 {
                            cur[d] += 2.0 * clip(g * (cur[d] - other[d])) * alpha;
                        }
                    }
                    sc[le] += eps[ei];
                    let epn = eps[ei] / neg_rate;
                    let n_neg = ((ep - nc[le]) / epn) as i64;
                    for _ in 0..n_neg.max(0) {
                        let kk = rng.below(n);
                        if kk == v {
                            continue;
                        }
                        let other = [snapshot[2 * kk], snapshot[2 * kk + 1]];
                        let d2 = (cur[0] - other[0]).powi(2) + (cur[1] - other[1]).powi(2);
                        if d2 > 0.0 {
                            let g = 2.0 * gamma * b / ((0.001 + d2) * (a * d2.powf(b) + 1.0));
                            for d in 0..2 {
                                cur[d] += clip(g * (cur[d] - other[d])) * alpha;
                            }
                        }
                    }
                    nc[le] += n_neg.max(0) as f32 * epn;
                }
                pc[2 * li] = cur[0];
                pc[2 * li + 1] = cur[1];
            }
        });
        progress(epoch + 1, n_epochs);
    }
    Ok(Array2::from_shape_vec((n, 2), pos).expect("n x 2 layout"))
}
