//! Spatial neighbourhood graphs on 2-D coordinates and spatial domains.
//!
//! Domains follow BANKSY's neighbourhood-augmented features (Singhal et al. 2024, Nat. Genet.):
//! each cell's embedding `z_i` is concatenated with the Gaussian-weighted mean `m_i` of its
//! spatial neighbours' embeddings as `[sqrt(1-λ) z_i, sqrt(λ) m_i]` (λ = 0.8, BANKSY's setting
//! for domains), reduced by PCA and clustered into the requested number of domains with a
//! full-covariance Gaussian mixture (the mclust-style clustering used on DLPFC).

use ndarray::{Array2, ArrayView2, s};

use super::cluster::gmm;
use super::neighbors::{knn, radius_2d};
use super::pca::pca;

/// How spatial neighbours are chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SpatialNeighbors {
    /// The `k` nearest other cells.
    Knn(usize),
    /// All other cells within a radius (coordinate units).
    Radius(f64),
}

/// Spatial neighbours of each cell (excluding itself) with Gaussian weights
/// `exp(-d^2 / (2 sigma^2))`, `sigma` the median neighbour distance, normalised to sum to 1
/// (BANKSY's `k_geom` neighbourhood with Gaussian decay). Coordinates `n x 2`.
pub fn spatial_weights(coords: ArrayView2<f32>, how: SpatialNeighbors) -> Vec<Vec<(u32, f32)>> {
    let raw: Vec<Vec<(u32, f32)>> = match how {
        SpatialNeighbors::Knn(k) => {
            let nn = knn(coords, k + 1);
            (0..coords.nrows())
                .map(|i| {
                    nn.neighbors(i)
                        .iter()
                        .zip(nn.dists(i))
                        .filter(|(j, _)| **j as usize != i)
                        .map(|(&j, &d)| (j, d))
                        .collect()
                })
                .collect()
        }
        SpatialNeighbors::Radius(r) => radius_2d(coords, r)
            .into_iter()
            .enumerate()
            .map(|(i, v)| v.into_iter().filter(|(j, _)| *j as usize != i).collect())
            .collect(),
    };
    let mut all: Vec<f32> = raw.iter().flatten().map(|e| e.1).collect();
    all.sort_by(f32::total_cmp);
    let sigma = all
        .get(all.len() / 2)
        .copied()
        .unwrap_or(1.0)
        .max(f32::MIN_POSITIVE) as f64;
    raw.into_iter()
        .map(|v| {
            let w: Vec<f64> = v
                .iter()
                .map(|e| (-(e.1 as f64).powi(2) / (2.0 * sigma * sigma)).exp())
                .collect();
            let total: f64 = w.iter().sum::<f64>().max(f64::MIN_POSITIVE);
            v.iter()
                .zip(w)
                .map(|(e, wi)| (e.0, (wi / total) as f32))
                .collect()
        })
        .collect()
}

/// Spatial-domain parameters (defaults from BANKSY: λ = 0.8, 18 spatial neighbours; 10 PCs of
/// the augmented features as in our DLPFC check; 8 mixture restarts).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DomainParams {
    /// Number of domains.
    pub n_domains: usize,
    /// Neighbourhood mixing λ in `[0, 1]`.
    pub lambda: f64,
    /// Spatial neighbourhood.
    pub neighbors: SpatialNeighbors,
    /// Principal components of the augmented features.
    pub n_pcs: usize,
    /// Gaussian-mixture restarts.
    pub n_init: usize,
    /// Seed.
    pub seed: u64,
}

impl DomainParams {
    /// Defaults for `n_domains` domains.
    pub fn new(n_domains: usize) -> Self {
        DomainParams {
            n_domains,
            lambda: 0.8,
            neighbors: SpatialNeighbors::Knn(18),
            n_pcs: 10,
            n_init: 8,
            seed: 0,
        }
    }
}

/// Neighbourhood-augmented features `[sqrt(1-λ) z, sqrt(λ) m]`, shape `n x 2d`.
pub fn augmented_features(
    embedding: ArrayView2<f32>,
    weights: &[Vec<(u32, f32)>],
    lambda: f64,
) -> Array2<f32> {
    let (n, d) = embedding.dim();
    let (a, b) = ((1.0 - lambda).sqrt() as f32, lambda.sqrt() as f32);
    let mut out = Array2::<f32>::zeros((n, 2 * d));
    for (i, wi) in weights.iter().enumerate().take(n) {
        let mut own = out.slice_mut(s![i, ..d]);
        own.assign(&embedding.row(i));
        own.mapv_inplace(|v| v * a);
        let mut m = out.slice_mut(s![i, d..]);
        for &(j, w) in wi {
            m.scaled_add(w * b, &embedding.row(j as usize));
        }
    }
    out
}

/// Spatial domains of cells from an embedding (`n x d`, e.g. PCA or a model's) and coordinates
/// (`n x 2`). Returns domain ids `0..n_domains` and the per-cell posterior confidence.
///
/// # Panics
/// When `n_domains` exceeds the number of cells or the shapes disagree.
pub fn spatial_domains(
    embedding: ArrayView2<f32>,
    coords: ArrayView2<f32>,
    p: &DomainParams,
) -> (Vec<u32>, Vec<f32>) {
    assert_eq!(
        embedding.nrows(),
        coords.nrows(),
        "embedding and coordinates differ in rows"
    );
    let w = spatial_weights(coords, p.neighbors);
    let feats = augmented_features(embedding, &w, p.lambda);
    let reduced = pca(feats.view(), p.n_pcs, p.seed).scores;
    let g = gmm(reduced.view(), p.n_domains, p.n_init, p.seed);
    (g.labels, g.confidence)
}

/// Spatial smoothing of cluster labels as GraphST's and its successors' `refine_label`: each
/// cell takes the most common label among its `n_neighbors` nearest other cells (Euclidean on
/// `coords`, `n x 2`; 50 in GraphST), ties going to the label met first in order of distance
/// (`max(neigh_type, key=neigh_type.count)`). The cell's own label does not vote.
///
/// # Panics
/// When `labels` and `coords` differ in length.
pub fn refine_labels(coords: ArrayView2<f32>, labels: &[u32], n_neighbors: usize) -> Vec<u32> {
    assert_eq!(coords.nrows(), labels.len(), "one label per cell");
    let n = labels.len();
    if n < 2 || n_neighbors == 0 {
        return labels.to_vec();
    }
    let nn = super::neighbors::exact_knn(coords, (n_neighbors + 1).min(n));
    let n_labels = labels.iter().map(|&l| l as usize + 1).max().unwrap_or(0);
    (0..n)
        .map(|i| {
            let mut count = vec![0usize; n_labels];
            let mut first = vec![usize::MAX; n_labels];
            let others = nn.neighbors(i).iter().filter(|&&j| j as usize != i);
            for (rank, &j) in others.take(n_neighbors).enumerate() {
                let l = labels[j as usize] as usize;
                count[l] += 1;
                first[l] = first[l].min(rank);
            }
            (0..n_labels)
                .filter(|&l| count[l] > 0)
                .max_by(|&a, &b| count[a].cmp(&count[b]).then(first[b].cmp(&first[a])))
                .map_or(labels[i], |l| l as u32)
        })
        .collect()
}
