//! Training mclSTExp on frozen image features, and its prediction by neighbours in the joint
//! space, as the public code's `train.py` and `evel_her2st.py` do.

use std::sync::atomic::{AtomicBool, Ordering};

use burn::module::Module;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Int, Tensor, TensorData};
use ndarray::Array2;

use super::mclstexp::{Batch, MclConfig, MclStExp};
use crate::data::rng::Rng;
use crate::model::nets::tensor_values;
use crate::model::train::TrainError;

/// Training recipe (defaults: `train.py`: Adam lr 1e-4, weight decay 1e-3 as L2 in the
/// gradient, batch 128 shuffled, 90 epochs, temperature 1).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MclTraining {
    /// Epochs.
    pub epochs: usize,
    /// Spots per batch (the attention's sequence).
    pub batch: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// L2 weight decay (PyTorch Adam's `weight_decay`).
    pub weight_decay: f64,
    /// Logit temperature.
    pub temperature: f64,
    /// Seed of the initial weights and the batch order.
    pub seed: u64,
}

impl Default for MclTraining {
    fn default() -> Self {
        Self {
            epochs: 90,
            batch: 128,
            lr: 1e-4,
            weight_decay: 1e-3,
            temperature: 1.0,
            seed: 0,
        }
    }
}

/// Training spots: expression, array positions, image features (rows aligned).
#[derive(Debug, Clone)]
pub struct SpotSet {
    /// Log-normalised expression, `[n, genes]`.
    pub expr: Array2<f32>,
    /// Array coordinates `(x, y)`.
    pub positions: Vec<[u32; 2]>,
    /// Frozen image features, `[n, image_dim]`.
    pub features: Array2<f32>,
}

impl SpotSet {
    /// Rows `idx` as a batch on `device`.
    pub fn batch(&self, idx: &[usize], device: &Device) -> Batch {
        let rows = |m: &Array2<f32>| {
            let d = m.ncols();
            let v: Vec<f32> = idx.iter().flat_map(|&i| m.row(i).to_vec()).collect();
            Tensor::<2>::from_data(TensorData::new(v, [idx.len(), d]), device)
        };
        let coord = |k: usize| {
            let v: Vec<i64> = idx
                .iter()
                .map(|&i| i64::from(self.positions[i][k]))
                .collect();
            Tensor::<1, Int>::from_data(TensorData::new(v, [idx.len()]), device)
        };
        Batch {
            expr: rows(&self.expr),
            x: coord(0),
            y: coord(1),
            features: rows(&self.features),
        }
    }

    /// Largest array coordinate + 1 (the position embeddings' rows).
    pub fn positions_needed(&self) -> usize {
        self.positions
            .iter()
            .map(|p| p[0].max(p[1]) as usize + 1)
            .max()
            .unwrap_or(1)
    }
}

/// Adam as PyTorch's (epsilon 1e-8, L2 weight decay added to the gradient).
pub fn optimizer(t: &MclTraining) -> ModuleOptimizer {
    let mut c = AdamConfig::new().with_epsilon(1e-8);
    if t.weight_decay > 0.0 {
        c = c.with_weight_decay(Some(WeightDecayConfig::new(t.weight_decay as f32)));
    }
    c.init()
}

/// One optimiser step on `batch`; returns the network and the loss before the step.
pub fn step(
    net: MclStExp,
    batch: &Batch,
    optim: &mut ModuleOptimizer,
    t: &MclTraining,
) -> (MclStExp, f64) {
    let loss = net.loss(batch, t.temperature);
    let value = f64::from(loss.clone().into_scalar::<f32>());
    let grads = GradientsParams::from_grads(loss.backward(), &net);
    (optim.step(t.lr, net, grads), value)
}

/// Trains a new network of sizes `c` on `set`; `report(epoch, epochs, mean loss)` after each
/// epoch. Returns the network on `device` (inference).
///
/// # Errors
/// [`TrainError::Cancelled`] when `cancel` is set; [`TrainError::Diverged`] on a non-finite
/// loss; [`TrainError::Invalid`] for an empty set or a zero batch.
pub fn train(
    c: &MclConfig,
    set: &SpotSet,
    t: &MclTraining,
    device: &Device,
    cancel: &AtomicBool,
    report: &mut dyn FnMut(usize, usize, f64),
) -> Result<MclStExp, TrainError> {
    let n = set.expr.nrows();
    if n == 0 || t.batch == 0 {
        return Err(TrainError::Invalid(
            "no training spots, or a zero batch size".into(),
        ));
    }
    let ad = device.clone().autodiff();
    let mut net = MclStExp::new(c, t.seed, &ad);
    let mut optim = optimizer(t);
    let mut rng = Rng::for_item(t.seed, 1, 0);
    let mut order: Vec<usize> = (0..n).collect();
    for epoch in 0..t.epochs {
        rng.shuffle(&mut order);
        let mut total = 0.0;
        for chunk in order.chunks(t.batch) {
            if cancel.load(Ordering::Relaxed) {
                return Err(TrainError::Cancelled);
            }
            let (next, loss) = step(net, &set.batch(chunk, &ad), &mut optim, t);
            if !loss.is_finite() {
                return Err(TrainError::Diverged(epoch));
            }
            net = next;
            total += loss * chunk.len() as f64;
        }
        report(epoch + 1, t.epochs, total / n as f64);
    }
    Ok(net.valid())
}

/// Spot embeddings of `set` in consecutive batches of `batch` (attention runs within a
/// batch, as `evel_her2st.py` embeds the training spots in loader order, batch 32),
/// `[n, projection_dim]`.
pub fn spot_keys(net: &MclStExp, set: &SpotSet, batch: usize, device: &Device) -> Array2<f32> {
    let n = set.expr.nrows();
    let idx: Vec<usize> = (0..n).collect();
    let mut rows = Vec::with_capacity(n);
    for chunk in idx.chunks(batch.max(1)) {
        let b = set.batch(chunk, device);
        rows.extend(tensor_values(net.spot_embeddings(b.expr, b.x, b.y)));
    }
    let d = rows.len() / n.max(1);
    Array2::from_shape_vec((n, d), rows).expect("one row per spot")
}

/// Image embeddings of features `[n, image_dim]`, `[n, projection_dim]`.
pub fn image_queries(net: &MclStExp, features: &Array2<f32>, device: &Device) -> Array2<f32> {
    let (n, d) = features.dim();
    let x = Tensor::<2>::from_data(
        TensorData::new(features.iter().copied().collect::<Vec<f32>>(), [n, d]),
        device,
    );
    let e = tensor_values(net.image_embeddings(x));
    let w = e.len() / n.max(1);
    Array2::from_shape_vec((n, w), e).expect("one row per patch")
}

/// mclSTExp's prediction: for each query, the `top_k` keys of highest cosine similarity; their
/// expression averaged with weights `1 / d^2`, `d` the L1 distance between the (unnormalised)
/// key and query (`evel_her2st.py`, top 200). Returns `[queries, genes]`.
///
/// # Panics
/// When `keys` and `values` differ in rows.
pub fn predict(
    queries: &Array2<f32>,
    keys: &Array2<f32>,
    values: &Array2<f32>,
    top_k: usize,
) -> Array2<f32> {
    assert_eq!(keys.nrows(), values.nrows(), "one expression row per key");
    let unit = |m: &Array2<f32>| {
        let mut u = m.clone();
        for mut r in u.rows_mut() {
            let norm = r.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            r.mapv_inplace(|v| v / norm);
        }
        u
    };
    let (qu, ku) = (unit(queries), unit(keys));
    let sim = qu.dot(&ku.t());
    let k = top_k.min(keys.nrows());
    let mut out = Array2::<f32>::zeros((queries.nrows(), values.ncols()));
    for (i, row) in sim.rows().into_iter().enumerate() {
        let mut idx: Vec<usize> = (0..row.len()).collect();
        idx.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
        let w: Vec<f64> = idx[..k]
            .iter()
            .map(|&j| {
                let d: f64 = keys
                    .row(j)
                    .iter()
                    .zip(queries.row(i))
                    .map(|(a, b)| (f64::from(*a) - f64::from(*b)).abs())
                    .sum();
                1.0 / (d * d).max(1e-24)
            })
            .collect();
        let total: f64 = w.iter().sum();
        for (&j, wj) in idx[..k].iter().zip(&w) {
            let f = (wj / total) as f32;
            for (o, v) in out.row_mut(i).iter_mut().zip(values.row(j)) {
                *o += f * v;
            }
        }
    }
    out
}

/// The baseline's prediction: the uniform mean expression of the `k` keys nearest to each
/// query by Euclidean distance (keys and queries standardised alike by the caller). Returns
/// `[queries, genes]`.
///
/// # Panics
/// When `keys` and `values` differ in rows.
pub fn predict_knn(
    queries: &Array2<f32>,
    keys: &Array2<f32>,
    values: &Array2<f32>,
    k: usize,
) -> Array2<f32> {
    assert_eq!(keys.nrows(), values.nrows(), "one expression row per key");
    let k = k.clamp(1, keys.nrows().max(1));
    let mut out = Array2::<f32>::zeros((queries.nrows(), values.ncols()));
    for (i, q) in queries.rows().into_iter().enumerate() {
        let mut d: Vec<(f32, usize)> = keys
            .rows()
            .into_iter()
            .enumerate()
            .map(|(j, r)| (r.iter().zip(q).map(|(a, b)| (a - b) * (a - b)).sum(), j))
            .collect();
        d.sort_by(|a, b| a.0.total_cmp(&b.0));
        for &(_, j) in &d[..k] {
            for (o, v) in out.row_mut(i).iter_mut().zip(values.row(j)) {
                *o += v / k as f32;
            }
        }
    }
    out
}

/// Column means and standard deviations (population; 1 where a column is constant), for
/// standardising features.
pub fn column_scaling(m: &Array2<f32>) -> (Vec<f32>, Vec<f32>) {
    let n = m.nrows().max(1) as f64;
    m.columns()
        .into_iter()
        .map(|c| {
            let mean = c.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
            let var = c
                .iter()
                .map(|&v| (f64::from(v) - mean).powi(2))
                .sum::<f64>()
                / n;
            let sd = if var > 0.0 { var.sqrt() } else { 1.0 };
            (mean as f32, sd as f32)
        })
        .unzip()
}

/// `m` standardised column-wise by `(mean, sd)`.
pub fn standardise(m: &Array2<f32>, mean: &[f32], sd: &[f32]) -> Array2<f32> {
    let mut out = m.clone();
    for mut r in out.rows_mut() {
        for ((v, mu), s) in r.iter_mut().zip(mean).zip(sd) {
            *v = (*v - mu) / s;
        }
    }
    out
}
