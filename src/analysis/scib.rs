//! Batch-integration and conservation metrics as scib-metrics defines them (Luecken et al.
//! 2022, the scores scSSL-Bench reports): silhouette of labels, silhouette of batches within
//! each label, isolated labels, kNN-graph connectivity, iLISI/cLISI and principal component
//! regression. Every formula follows scib-metrics
//! 0.5's public code (`scib_metrics.metrics`), checked against it in
//! `tests/it/analysis_scib.rs`. Distances are Euclidean, in `f64`.

use ndarray::ArrayView2;
use rayon::prelude::*;

use super::neighbors::Knn;

/// Silhouette of each row of `x` with respect to `labels` (codes `0..k`), as
/// `sklearn.metrics.silhouette_samples` and scib-metrics' `silhouette_samples`: `(b - a) /
/// max(a, b)` with `a` the mean distance to the rest of its group and `b` the smallest mean
/// distance to another group; 0 for a cell alone in its group. `O(n^2 d)`, parallel over rows.
pub fn silhouette_samples(x: ArrayView2<f32>, labels: &[u32]) -> Vec<f64> {
    let k = labels.iter().max().map_or(0, |&m| m as usize + 1);
    let mut sizes = vec![0usize; k];
    labels.iter().for_each(|&l| sizes[l as usize] += 1);
    let rows: Vec<Vec<f64>> = x
        .rows()
        .into_iter()
        .map(|r| r.iter().map(|&v| f64::from(v)).collect())
        .collect();
    (0..rows.len())
        .into_par_iter()
        .map(|i| {
            let mut sums = vec![0f64; k];
            for (j, p) in rows.iter().enumerate() {
                let d2: f64 = rows[i].iter().zip(p).map(|(a, b)| (a - b) * (a - b)).sum();
                sums[labels[j] as usize] += d2.sqrt();
            }
            let own = labels[i] as usize;
            if sizes[own] <= 1 {
                return 0.0;
            }
            let a = sums[own] / (sizes[own] - 1) as f64;
            let b = (0..k)
                .filter(|&c| c != own && sizes[c] > 0)
                .map(|c| sums[c] / sizes[c] as f64)
                .fold(f64::INFINITY, f64::min);
            let s = (b - a) / a.max(b);
            if s.is_finite() { s } else { 0.0 }
        })
        .collect()
}

/// `silhouette_label`: the mean silhouette of the labels, rescaled to `[0, 1]` as `(s + 1) / 2`
/// (higher: labels better separated).
pub fn silhouette_label(x: ArrayView2<f32>, labels: &[u32]) -> f64 {
    let s = silhouette_samples(x, labels);
    (s.iter().sum::<f64>() / s.len().max(1) as f64 + 1.0) / 2.0
}

/// Rows of `x` whose label is `l`, with their batches renumbered `0..`.
fn group(
    x: ArrayView2<f32>,
    labels: &[u32],
    batch: &[u32],
    l: u32,
) -> (ndarray::Array2<f32>, Vec<u32>) {
    let rows: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == l).collect();
    let sub = x.select(ndarray::Axis(0), &rows);
    let mut codes: Vec<u32> = Vec::new();
    let b = rows
        .iter()
        .map(|&i| match codes.iter().position(|&c| c == batch[i]) {
            Some(p) => p as u32,
            None => {
                codes.push(batch[i]);
                (codes.len() - 1) as u32
            }
        })
        .collect();
    (sub, b)
}

/// `silhouette_batch`: within each label, the silhouette of the batches, `1 - |s|` per cell,
/// averaged per label, then over labels (a label with one batch, or one cell per batch, is left
/// out). Higher: batches better mixed. `None` when no label qualifies.
pub fn silhouette_batch(x: ArrayView2<f32>, labels: &[u32], batch: &[u32]) -> Option<f64> {
    let k = labels.iter().max().map_or(0, |&m| m + 1);
    let per_label: Vec<f64> = (0..k)
        .filter_map(|l| {
            let (sub, b) = group(x, labels, batch, l);
            let n_batches = b.iter().max().map_or(0, |&m| m as usize + 1);
            if sub.nrows() == 0 || n_batches == 1 || n_batches == sub.nrows() {
                return None;
            }
            let s = silhouette_samples(sub.view(), &b);
            Some(s.iter().map(|v| 1.0 - v.abs()).sum::<f64>() / s.len() as f64)
        })
        .collect();
    (!per_label.is_empty()).then(|| per_label.iter().sum::<f64>() / per_label.len() as f64)
}

/// `isolated_labels`: the labels present in the fewest batches, scored by the mean rescaled
/// silhouette (`(s + 1) / 2`, silhouette of all labels) of their cells, averaged over those
/// labels. Higher: the rare labels stay separate.
pub fn isolated_labels(x: ArrayView2<f32>, labels: &[u32], batch: &[u32]) -> f64 {
    let k = labels.iter().max().map_or(0, |&m| m as usize + 1);
    let mut batches: Vec<Vec<u32>> = vec![Vec::new(); k];
    for (&l, &b) in labels.iter().zip(batch) {
        if !batches[l as usize].contains(&b) {
            batches[l as usize].push(b);
        }
    }
    let present: Vec<usize> = (0..k).filter(|&l| !batches[l].is_empty()).collect();
    let fewest = present.iter().map(|&l| batches[l].len()).min().unwrap_or(0);
    let s = silhouette_samples(x, labels);
    let scores: Vec<f64> = present
        .iter()
        .filter(|&&l| batches[l].len() <= fewest)
        .map(|&l| {
            let cells: Vec<f64> = (0..labels.len())
                .filter(|&i| labels[i] as usize == l)
                .map(|i| (s[i] + 1.0) / 2.0)
                .collect();
            cells.iter().sum::<f64>() / cells.len() as f64
        })
        .collect();
    scores.iter().sum::<f64>() / scores.len().max(1) as f64
}

/// `graph_connectivity`: for each label, the share of its cells in the largest strongly
/// connected component of the kNN graph (edges from each cell to its neighbours) restricted to
/// the label's cells; averaged over labels. 1 when every label is one connected piece.
pub fn graph_connectivity(knn: &Knn, labels: &[u32]) -> f64 {
    let k = labels.iter().max().map_or(0, |&m| m + 1);
    let shares: Vec<f64> = (0..k)
        .filter_map(|l| {
            let cells: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == l).collect();
            if cells.is_empty() {
                return None;
            }
            let mut local = vec![usize::MAX; labels.len()];
            cells.iter().enumerate().for_each(|(p, &c)| local[c] = p);
            let edges: Vec<Vec<usize>> = cells
                .iter()
                .map(|&c| {
                    let n = knn.neighbors(c).iter().map(|&j| local[j as usize]);
                    n.filter(|&p| p != usize::MAX).collect()
                })
                .collect();
            let largest = largest_scc(&edges);
            Some(largest as f64 / cells.len() as f64)
        })
        .collect();
    shares.iter().sum::<f64>() / shares.len().max(1) as f64
}

/// The local inverse Simpson index of each cell (Korsunsky et al. 2019, scib-metrics'
/// `lisi_knn`): over the cell's neighbours (itself left out), Gaussian weights `exp(-d * beta)`
/// with `beta` found by bisection so the weights' entropy is `ln(perplexity)` (within 1e-5, at
/// most 50 steps, from `beta = 1`), then `1 / sum_label (weight of the label)^2`; -1 where the
/// weights vanish. `indices` and `distances` are `n * k`, row-major, Euclidean distances;
/// `perplexity` is `floor(k / 3)` as scib-metrics defaults.
pub fn lisi(indices: &[u32], distances: &[f64], k: usize, labels: &[u32]) -> Vec<f64> {
    let n_labels = labels.iter().max().map_or(0, |&m| m as usize + 1);
    let perplexity = (k / 3) as f64;
    (0..indices.len() / k.max(1))
        .into_par_iter()
        .map(|i| {
            let idx = &indices[i * k..(i + 1) * k];
            let d = &distances[i * k..(i + 1) * k];
            let keep: Vec<bool> = idx.iter().map(|&j| j as usize != i).collect();
            let (h, p) = neighbour_probabilities(d, &keep, perplexity);
            if h == 0.0 {
                return -1.0;
            }
            let mut per_label = vec![0f64; n_labels];
            for (&j, &pj) in idx.iter().zip(&p) {
                per_label[labels[j as usize] as usize] += pj;
            }
            1.0 / per_label.iter().map(|v| v * v).sum::<f64>()
        })
        .collect()
}

/// Entropy and weights of one cell's neighbours at `beta` (scib-metrics' `_Hbeta`).
fn h_beta(d: &[f64], keep: &[bool], beta: f64) -> (f64, Vec<f64>) {
    let p: Vec<f64> = d
        .iter()
        .zip(keep)
        .map(|(&x, &k)| if k { (-x * beta).exp() } else { 0.0 })
        .collect();
    let sum: f64 = p.iter().sum();
    if sum == 0.0 {
        return (0.0, vec![0.0; d.len()]);
    }
    let h = sum.ln() + beta * d.iter().zip(&p).map(|(x, q)| x * q).sum::<f64>() / sum;
    (h, p.into_iter().map(|q| q / sum).collect())
}

/// The bisection on `beta` of scib-metrics' `_get_neighbor_probability`.
fn neighbour_probabilities(d: &[f64], keep: &[bool], perplexity: f64) -> (f64, Vec<f64>) {
    let target = perplexity.ln();
    let (mut beta, mut lo, mut hi) = (1.0f64, f64::NEG_INFINITY, f64::INFINITY);
    let (mut h, mut p) = h_beta(d, keep, beta);
    let mut tries = 0;
    while (h - target).abs() >= 1e-5 && tries < 50 {
        let above = h - target > 0.0;
        let next = if above {
            if hi == f64::INFINITY {
                beta * 2.0
            } else {
                (beta + hi) / 2.0
            }
        } else if lo == f64::NEG_INFINITY {
            beta / 2.0
        } else {
            (beta + lo) / 2.0
        };
        if above {
            lo = beta;
        } else {
            hi = beta;
        }
        beta = next;
        (h, p) = h_beta(d, keep, beta);
        tries += 1;
    }
    (h, p)
}

/// The median of the values that are not NaN (numpy's `nanmedian`).
fn nan_median(v: &[f64]) -> f64 {
    let mut x: Vec<f64> = v.iter().copied().filter(|f| !f.is_nan()).collect();
    if x.is_empty() {
        return f64::NAN;
    }
    x.sort_by(f64::total_cmp);
    let m = x.len() / 2;
    if x.len() % 2 == 1 {
        x[m]
    } else {
        (x[m - 1] + x[m]) / 2.0
    }
}

/// `ilisi_knn`: the median LISI of the batches, scaled as `(median - 1) / (batches - 1)`
/// (higher: batches better mixed). Arguments as [`lisi`].
pub fn ilisi(indices: &[u32], distances: &[f64], k: usize, batch: &[u32]) -> f64 {
    let n = batch.iter().max().map_or(0, |&m| m + 1) as f64;
    (nan_median(&lisi(indices, distances, k, batch)) - 1.0) / (n - 1.0)
}

/// `clisi_knn`: the median LISI of the labels, scaled as `(labels - median) / (labels - 1)`
/// (higher: neighbourhoods purer in label). Arguments as [`lisi`].
pub fn clisi(indices: &[u32], distances: &[f64], k: usize, labels: &[u32]) -> f64 {
    let n = labels.iter().max().map_or(0, |&m| m + 1) as f64;
    (n - nan_median(&lisi(indices, distances, k, labels))) / (n - 1.0)
}

/// Principal component regression (Büttner et al. 2018; scib-metrics'
/// `principal_component_regression(..., categorical=True)`): the PCA of `x` with every
/// component (exact thin SVD of the centred matrix), each component's R² on the one-hot
/// `covariate` (the share of its variance between the covariate's groups), averaged with the
/// components' variances as weights. In `[0, 1]`: how much of the variance the covariate
/// explains.
pub fn pcr(x: ArrayView2<f32>, covariate: &[u32]) -> f64 {
    let (n, p) = x.dim();
    if n < 2 || p == 0 {
        return 0.0;
    }
    let mean: Vec<f64> = (0..p)
        .map(|j| x.column(j).iter().map(|&v| f64::from(v)).sum::<f64>() / n as f64)
        .collect();
    let a = faer::Mat::<f64>::from_fn(n, p, |i, j| f64::from(x[(i, j)]) - mean[j]);
    let svd = a.thin_svd().expect("SVD of the centred matrix");
    let (u, s) = (svd.U(), svd.S().column_vector());
    let groups = covariate.iter().max().map_or(0, |&m| m as usize + 1);
    let mut sizes = vec![0f64; groups];
    covariate.iter().for_each(|&g| sizes[g as usize] += 1.0);
    let (mut weighted, mut total) = (0.0, 0.0);
    for c in 0..n.min(p) {
        let score = |i: usize| u[(i, c)] * s[c];
        let m = (0..n).map(score).sum::<f64>() / n as f64;
        let ss: f64 = (0..n).map(|i| (score(i) - m).powi(2)).sum();
        let mut sums = vec![0f64; groups];
        (0..n).for_each(|i| sums[covariate[i] as usize] += score(i));
        let between: f64 = (0..groups)
            .filter(|&g| sizes[g] > 0.0)
            .map(|g| sizes[g] * (sums[g] / sizes[g] - m).powi(2))
            .sum();
        let r2 = if ss > 0.0 {
            (between / ss).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let var = s[c] * s[c] / (n - 1) as f64;
        weighted += r2 * var;
        total += var;
    }
    if total > 0.0 { weighted / total } else { 0.0 }
}

/// `pcr_comparison`: how much less of the variance the batch explains after integration,
/// `(pcr(pre) - pcr(post)) / pcr(pre)`, 0 when it explains more (scib-metrics' scaling).
pub fn pcr_comparison(pre: ArrayView2<f32>, post: ArrayView2<f32>, batch: &[u32]) -> f64 {
    let before = pcr(pre, batch);
    if before <= 0.0 {
        return 0.0;
    }
    ((before - pcr(post, batch)) / before).max(0.0)
}

/// `nmi_ari_cluster_labels_kmeans`: k-means with as many clusters as labels, then the NMI
/// (arithmetic) and ARI of its clusters against the labels. scib-metrics runs one k-means++
/// start from jax's seed 0; this runs [`super::cluster::kmeans`] with 10 seeded starts (the
/// lowest inertia kept), so the two agree within k-means' own run-to-run spread, not exactly.
pub fn nmi_ari_kmeans(x: ArrayView2<f32>, labels: &[u32], seed: u64) -> (f64, f64) {
    let mut seen: Vec<u32> = labels.to_vec();
    seen.sort_unstable();
    seen.dedup();
    let k = seen.len().clamp(1, x.nrows().max(1));
    let pred = super::cluster::kmeans(x, k, 10, seed).labels;
    (
        super::metrics::normalized_mutual_information(labels, &pred),
        super::metrics::adjusted_rand_index(labels, &pred),
    )
}

/// Size of the largest strongly connected component of a directed graph (adjacency lists), by
/// Tarjan's algorithm without recursion.
fn largest_scc(edges: &[Vec<usize>]) -> usize {
    let n = edges.len();
    let (mut index, mut low) = (vec![usize::MAX; n], vec![0usize; n]);
    let mut on_stack = vec![false; n];
    let (mut stack, mut next, mut best) = (Vec::new(), 0usize, 0usize);
    for root in 0..n {
        if index[root] != usize::MAX {
            continue;
        }
        // (node, next edge to look at)
        let mut call = vec![(root, 0usize)];
        while let Some(top) = call.last_mut() {
            let (v, e) = *top;
            if e == 0 && index[v] == usize::MAX {
                index[v] = next;
                low[v] = next;
                next += 1;
                stack.push(v);
                on_stack[v] = true;
            }
            if let Some(&w) = edges[v].get(e) {
                top.1 += 1;
                if index[w] == usize::MAX {
                    call.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            call.pop();
            if let Some(&(parent, _)) = call.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == index[v] {
                let mut size = 0;
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    size += 1;
                    if w == v {
                        break;
                    }
                }
                best = best.max(size);
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::largest_scc;

    /// A 3-cycle and a 2-cycle joined one way: the largest strongly connected piece has 3
    /// nodes; a chain has only singletons.
    #[test]
    fn strongly_connected_components() {
        let g = vec![vec![1], vec![2], vec![0, 3], vec![4], vec![3]];
        assert_eq!(largest_scc(&g), 3);
        let chain = vec![vec![1], vec![2], vec![]];
        assert_eq!(largest_scc(&chain), 1);
        assert_eq!(largest_scc(&[]), 0);
    }
}
