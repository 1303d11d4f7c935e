//! k-nearest-neighbour graphs and UMAP's fuzzy connectivities.
//!
//! Search: exact k-d tree for 2-D coordinates (`kiddo`), exact brute force for small sets, and
//! HNSW (Malkov & Yashunin 2018, the USearch library) for larger embeddings; recall@15 against brute
//! force is measured in `tests/it/analysis_reference.rs`. Connectivities: `umap-learn`'s
//! `fuzzy_simplicial_set` (McInnes et al. 2018), which is what `scanpy.pp.neighbors` stores in
//! `obsp['connectivities']`.

use kiddo::{ImmutableKdTree, SquaredEuclidean};
use ndarray::ArrayView2;
use rayon::prelude::*;
use std::num::NonZeroUsize;

use crate::data::matrix::CsrMatrix;

/// A kNN result: for each of `n` points its `k` neighbours by increasing Euclidean distance, the
/// point itself first (as scanpy and umap-learn count `n_neighbors`). Row-major `n * k`.
#[derive(Debug, Clone, PartialEq)]
pub struct Knn {
    /// Neighbours per point.
    pub k: usize,
    /// Neighbour indices, `n * k`.
    pub indices: Vec<u32>,
    /// Euclidean distances, `n * k`, same order.
    pub distances: Vec<f32>,
}

impl Knn {
    /// Number of points.
    pub fn n(&self) -> usize {
        self.indices.len() / self.k.max(1)
    }

    /// Neighbours of point `i` (itself first).
    pub fn neighbors(&self, i: usize) -> &[u32] {
        &self.indices[i * self.k..(i + 1) * self.k]
    }

    /// Distances of point `i`'s neighbours.
    pub fn dists(&self, i: usize) -> &[f32] {
        &self.distances[i * self.k..(i + 1) * self.k]
    }
}

/// How to search. Defaults: exact up to 4,096 points; HNSW with 16 links per node,
/// `ef_construction` 128 and `ef_search` 64 (recall@15 0.984 on the 100k x 64 benchmark
/// embedding, 0.9987 with 24 / 200 / 100 at twice the time; BENCHMARKS.md).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KnnParams {
    /// Use exact brute force up to this many points.
    pub exact_below: usize,
    /// HNSW links per node (`M`).
    pub max_connections: usize,
    /// HNSW candidate list size while building.
    pub ef_construction: usize,
    /// HNSW candidate list size while searching (raised to `k` when smaller).
    pub ef_search: usize,
    /// Insert points in parallel (faster, but the graph then depends on thread timing; set false
    /// for runs that must repeat bit for bit).
    pub parallel_build: bool,
}

impl Default for KnnParams {
    fn default() -> Self {
        KnnParams {
            exact_below: 4096,
            max_connections: 16,
            ef_construction: 128,
            ef_search: 64,
            parallel_build: true,
        }
    }
}

/// kNN of every row of `x` (`n x d`, Euclidean) among the rows of `x`, `k` including the point
/// itself, with the default [`KnnParams`]. Exact for `d == 2`.
pub fn knn(x: ArrayView2<f32>, k: usize) -> Knn {
    knn_with(x, k, &KnnParams::default())
}

/// kNN with explicit parameters.
pub fn knn_with(x: ArrayView2<f32>, k: usize, p: &KnnParams) -> Knn {
    let n = x.nrows();
    let k = k.min(n).max(1);
    if x.ncols() == 2 {
        knn_2d(x, x, k)
    } else if n <= p.exact_below {
        exact_knn(x, k)
    } else {
        let index = HnswIndex::build(x, p);
        index.search(x, k, p.ef_search)
    }
}

/// Exact kNN by brute force (`O(n^2 d)`, parallel over rows); for 2-D input a k-d tree.
pub fn exact_knn(x: ArrayView2<f32>, k: usize) -> Knn {
    exact_knn_between(x, x, k)
}

/// Exact kNN of each row of `queries` among the rows of `points`.
pub fn exact_knn_between(points: ArrayView2<f32>, queries: ArrayView2<f32>, k: usize) -> Knn {
    let k = k.min(points.nrows()).max(1);
    if points.ncols() == 2 {
        return knn_2d(points, queries, k);
    }
    let rows: Vec<(Vec<u32>, Vec<f32>)> = (0..queries.nrows())
        .into_par_iter()
        .map(|i| {
            let q = queries.row(i);
            let mut d: Vec<(f32, u32)> = points
                .outer_iter()
                .enumerate()
                .map(|(j, p)| {
                    (
                        p.iter()
                            .zip(q.iter())
                            .map(|(a, b)| (a - b) * (a - b))
                            .sum::<f32>(),
                        j as u32,
                    )
                })
                .collect();
            d.select_nth_unstable_by(k - 1, |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            d.truncate(k);
            d.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            (
                d.iter().map(|e| e.1).collect(),
                d.iter().map(|e| e.0.sqrt()).collect(),
            )
        })
        .collect();
    flatten(rows, k)
}

fn flatten(rows: Vec<(Vec<u32>, Vec<f32>)>, k: usize) -> Knn {
    let mut indices = Vec::with_capacity(rows.len() * k);
    let mut distances = Vec::with_capacity(rows.len() * k);
    for (i, d) in rows {
        indices.extend(i);
        distances.extend(d);
    }
    Knn {
        k,
        indices,
        distances,
    }
}

/// The points as `f64` pairs and the k-d tree over them (coordinates must be finite).
fn tree_2d(points: ArrayView2<f32>) -> (Vec<[f64; 2]>, ImmutableKdTree<f64, 2>) {
    let pts: Vec<[f64; 2]> = points
        .outer_iter()
        .map(|r| [r[0] as f64, r[1] as f64])
        .collect();
    let tree = ImmutableKdTree::new_from_slice(&pts).expect("k-d tree from finite points");
    (pts, tree)
}

fn knn_2d(points: ArrayView2<f32>, queries: ArrayView2<f32>, k: usize) -> Knn {
    let (_, tree) = tree_2d(points);
    let kk = NonZeroUsize::new(k).expect("k >= 1");
    let rows: Vec<(Vec<u32>, Vec<f32>)> = (0..queries.nrows())
        .into_par_iter()
        .map(|i| {
            let q = [queries[(i, 0)] as f64, queries[(i, 1)] as f64];
            let mut res = tree
                .query(&q)
                .nearest_n::<SquaredEuclidean<f64>>(kk)
                .execute();
            res.sort_by(|a, b| a.distance.total_cmp(&b.distance).then(a.item.cmp(&b.item)));
            (
                res.iter().map(|r| r.item).collect(),
                res.iter().map(|r| r.distance.sqrt() as f32).collect(),
            )
        })
        .collect();
    flatten(rows, k)
}

/// All points of `points` within `radius` of each query (2-D), sorted by distance, self included.
pub fn radius_2d(points: ArrayView2<f32>, radius: f64) -> Vec<Vec<(u32, f32)>> {
    let (pts, tree) = tree_2d(points);
    pts.par_iter()
        .map(|q| {
            let mut res = tree
                .query(q)
                .within::<SquaredEuclidean<f64>>(radius * radius)
                .execute();
            res.sort_by(|a, b| a.distance.total_cmp(&b.distance).then(a.item.cmp(&b.item)));
            res.iter()
                .map(|r| (r.item, r.distance.sqrt() as f32))
                .collect()
        })
        .collect()
}

/// An HNSW index over the rows of a matrix (USearch, squared-L2 metric, `f32` vectors).
pub struct HnswIndex {
    index: usearch::Index,
    n: usize,
}

impl HnswIndex {
    /// Builds the index over the rows of `x` (rows are added from rayon's threads).
    ///
    /// # Panics
    /// When USearch cannot allocate the index (out of memory).
    pub fn build(x: ArrayView2<f32>, p: &KnnParams) -> Self {
        let n = x.nrows();
        let opts = usearch::IndexOptions {
            dimensions: x.ncols(),
            metric: usearch::MetricKind::L2sq,
            quantization: usearch::ScalarKind::F32,
            connectivity: p.max_connections,
            expansion_add: p.ef_construction,
            expansion_search: p.ef_search,
            multi: false,
        };
        let index = usearch::Index::new(&opts).expect("USearch index");
        let threads = if p.parallel_build {
            rayon::current_num_threads()
        } else {
            1
        };
        index
            .reserve_capacity_and_threads(n, threads)
            .expect("USearch reserve");
        let add = |i: usize| {
            let row = x.row(i);
            let v: Vec<f32> = row.iter().copied().collect();
            index.add(i as u64, &v).expect("USearch add");
        };
        if p.parallel_build {
            (0..n).into_par_iter().for_each(add);
        } else {
            (0..n).for_each(add);
        }
        HnswIndex { index, n }
    }

    /// Approximate kNN of each row of `queries`, sorted by distance.
    pub fn search(&self, queries: ArrayView2<f32>, k: usize, ef: usize) -> Knn {
        let k = k.min(self.n).max(1);
        self.index.change_expansion_search(ef.max(k));
        let rows: Vec<(Vec<u32>, Vec<f32>)> = (0..queries.nrows())
            .into_par_iter()
            .map(|i| {
                let q: Vec<f32> = queries.row(i).iter().copied().collect();
                let m = self.index.search(&q, k).expect("USearch search");
                let mut res: Vec<(f32, u32)> = m
                    .distances
                    .iter()
                    .zip(&m.keys)
                    .map(|(&d, &key)| (d.max(0.0), key as u32))
                    .collect();
                res.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                let mut idx: Vec<u32> = res.iter().map(|r| r.1).collect();
                let mut dist: Vec<f32> = res.iter().map(|r| r.0.sqrt()).collect();
                // A query can (rarely) return fewer than k: pad with the last neighbour found.
                while idx.len() < k {
                    idx.push(*idx.last().unwrap_or(&(i as u32)));
                    dist.push(*dist.last().unwrap_or(&0.0));
                }
                (idx, dist)
            })
            .collect();
        flatten(rows, k)
    }
}

/// Recall of `approx` against `exact`: mean fraction of each point's exact neighbours found.
pub fn recall(approx: &Knn, exact: &Knn) -> f64 {
    let n = exact.n();
    let total: f64 = (0..n)
        .map(|i| {
            let a = approx.neighbors(i);
            exact.neighbors(i).iter().filter(|j| a.contains(j)).count() as f64 / exact.k as f64
        })
        .sum();
    total / n as f64
}

/// `umap.umap_.smooth_knn_dist`: per-point `sigma` and `rho` (f32, as umap-learn stores them)
/// with `local_connectivity = 1`, bandwidth 1, 64 bisection steps to tolerance 1e-5.
pub fn smooth_knn_dist(knn: &Knn) -> (Vec<f32>, Vec<f32>) {
    const TOL: f64 = 1e-5;
    const MIN_K_DIST_SCALE: f64 = 1e-3;
    let k = knn.k;
    let target = (k as f64).log2();
    let mean_all: f64 =
        knn.distances.iter().map(|&d| d as f64).sum::<f64>() / knn.distances.len().max(1) as f64;
    (0..knn.n())
        .into_par_iter()
        .map(|i| {
            let d = knn.dists(i);
            let rho = d.iter().copied().find(|&v| v > 0.0).unwrap_or(0.0);
            let (mut lo, mut hi, mut mid) = (0.0f64, f64::INFINITY, 1.0f64);
            for _ in 0..64 {
                let mut psum = 0.0;
                for &dj in &d[1..] {
                    let x = dj as f64 - rho as f64;
                    psum += if x > 0.0 { (-(x / mid)).exp() } else { 1.0 };
                }
                if (psum - target).abs() < TOL {
                    break;
                }
                if psum > target {
                    hi = mid;
                    mid = (lo + hi) / 2.0;
                } else {
                    lo = mid;
                    if hi == f64::INFINITY {
                        mid *= 2.0;
                    } else {
                        mid = (lo + hi) / 2.0;
                    }
                }
            }
            let mut sigma = mid;
            if rho > 0.0 {
                let mean_i = d.iter().map(|&v| v as f64).sum::<f64>() / k as f64;
                sigma = sigma.max(MIN_K_DIST_SCALE * mean_i);
            } else {
                sigma = sigma.max(MIN_K_DIST_SCALE * mean_all);
            }
            (sigma as f32, rho)
        })
        .unzip()
}

/// Fuzzy simplicial set of a kNN graph (umap-learn `fuzzy_simplicial_set` with
/// `set_op_mix_ratio = 1`, `local_connectivity = 1`): membership
/// `exp(-(d - rho_i) / sigma_i)`, symmetrised by fuzzy union `A + A^T - A∘A^T`. Returns the
/// `n x n` symmetric CSR connectivities (scanpy's `obsp['connectivities']`), sorted indices, no
/// explicit zeros, no diagonal.
pub fn fuzzy_connectivities(knn: &Knn) -> CsrMatrix {
    let (sigmas, rhos) = smooth_knn_dist(knn);
    let n = knn.n();
    let k = knn.k;
    // Directed memberships as triplets.
    let mut trip: Vec<(u32, u32, f32)> = Vec::with_capacity(n * k * 2);
    for i in 0..n {
        for (&j, &d) in knn.neighbors(i).iter().zip(knn.dists(i)) {
            if j as usize == i {
                continue;
            }
            let v = if d - rhos[i] <= 0.0 || sigmas[i] == 0.0 {
                1.0
            } else {
                (-((d as f64 - rhos[i] as f64) / sigmas[i] as f64)).exp() as f32
            };
            if v != 0.0 {
                trip.push((i as u32, j, v));
            }
        }
    }
    let directed = CsrMatrix::from_triplets(n, &mut trip);
    // Union: for each pair, a + b - a*b with b from the transpose.
    let mut both: Vec<(u32, u32, f32)> = Vec::with_capacity(trip.len() * 2);
    for i in 0..n {
        let (cols, vals) = directed.row(i);
        for (&j, &v) in cols.iter().zip(vals) {
            both.push((i as u32, j, v));
            both.push((j, i as u32, v));
        }
    }
    both.par_sort_unstable_by_key(|t| (t.0, t.1));
    let mut out: Vec<(u32, u32, f32)> = Vec::with_capacity(both.len());
    let mut t = 0;
    while t < both.len() {
        let (i, j, a) = both[t];
        if t + 1 < both.len() && both[t + 1].0 == i && both[t + 1].1 == j {
            let b = both[t + 1].2;
            out.push((i, j, a + b - a * b));
            t += 2;
        } else {
            out.push((i, j, a));
            t += 1;
        }
    }
    out.retain(|e| e.2 != 0.0);
    CsrMatrix::from_triplets(n, &mut out)
}
