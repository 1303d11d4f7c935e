//! Self-supervised pre-training and fine-tuning in burn: a hand-written training loop (burn's
//! custom-training-loop pattern: forward on an autodiff device, `backward`, `GradientsParams`,
//! optimizer `step`) on the wgpu or CPU backend.
//!
//! Objectives (SSL_MODELS.md, Richter et al. 2024):
//! - masked autoencoders: random masking (rate 0.5, visible input scaled by `1/(1-rate)`, MSE on
//!   the masked entries), gene-programme masking (whole programmes from a GMT file hidden) and
//!   isolated masking (one programme kept, the rest reconstructed);
//! - Barlow Twins (Zbontar et al. 2021; lambda 0.0051) on two augmented views;
//! - BYOL (Grill et al. 2020; EMA target, tau 0.99).
//!
//! Optimisation as the paper: AdamW (lr 1e-3, weight decay 0.01, PyTorch's epsilon 1e-8),
//! StepLR (step 2 epochs, gamma 0.9) and gradient clipping to a global L2 norm of 1.0 (PyTorch
//! Lightning's `gradient_clip_val`, which clips the norm over all parameters, not per tensor as
//! burn's own clipping does). Fine-tuning: AdamW lr 9e-4, weight decay 0.05, batch 128,
//! class-weighted cross-entropy, early stopping on validation macro-F1 (patience 20).
//!
//! Progress goes out as [`TrainEvent`]s on a bounded crossbeam channel; a cancel flag is checked
//! before every step and the last good model (end of the last whole epoch; for fine-tuning the
//! best validation epoch) is returned.
//!
//! Input data: a CSR matrix already preprocessed as the model expects (`normalize_total` +
//! `log1p`) and aligned to the model's genes; batches are densified one at a time, so memory is
//! the sparse matrix plus one dense batch.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::module::{Module, ParamId};
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor, TensorData};
use crossbeam_channel::Sender;
use rayon::prelude::*;

use super::checkpoint::{Activation, ModelKind, ModelWeights};
use super::engine::BackendChoice;
use super::nets::{
    AutoEncoder, BarlowTwins, ByolOnline, Classifier, Mlp, MlpConfig, ProjectorConfig,
};
use crate::data::CsrMatrix;
use crate::data::genes::GeneList;
use crate::data::rng::Rng;

/// A training error.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A GMT file could not be used.
    #[error("{file}: {message}")]
    Gmt {
        /// The GMT file.
        file: String,
        /// What was wrong.
        message: String,
    },
    /// Options or data that cannot be trained on.
    #[error("{0}")]
    Invalid(String),
    /// No usable compute device.
    #[error("{0}")]
    Device(String),
    /// Cancelled before a whole epoch was done (nothing to keep).
    #[error("training cancelled before the first epoch finished")]
    Cancelled,
    /// The loss became non-finite before a whole epoch was done.
    #[error(
        "training diverged at step {0} (non-finite loss) before the first epoch finished; try a lower --lr"
    )]
    Diverged(usize),
}

/// Gene programmes (MSigDB-style GMT), as indices into a model's genes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Programmes {
    /// Programme names.
    pub names: Vec<String>,
    /// Gene indices (into the model's genes) per programme, non-empty, ascending.
    pub genes: Vec<Vec<u32>>,
    /// The GMT file.
    pub source: String,
}

impl Programmes {
    /// Reads a GMT file (`name<TAB>description<TAB>gene1<TAB>gene2...` per line) and matches
    /// its genes to `genes` by upper-case symbol (SSL_MODELS.md). Programmes with no matched
    /// gene are dropped.
    ///
    /// # Errors
    /// [`TrainError::Gmt`]: unreadable file, a line with fewer than three fields, no programme
    /// matching any gene.
    pub fn read_gmt(path: &Path, genes: &GeneList) -> Result<Self, TrainError> {
        let err = |message: String| TrainError::Gmt {
            file: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let index: std::collections::HashMap<String, u32> = genes
            .symbols
            .iter()
            .enumerate()
            .map(|(i, s)| (s.to_uppercase(), i as u32))
            .collect();
        let (mut names, mut sets) = (Vec::new(), Vec::new());
        for (ln, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let f: Vec<&str> = line.split('\t').collect();
            if f.len() < 3 {
                return Err(err(format!(
                    "line {}: expected name<TAB>description<TAB>genes..., found {} field(s)",
                    ln + 1,
                    f.len()
                )));
            }
            let mut g: Vec<u32> = f[2..]
                .iter()
                .filter_map(|s| index.get(&s.trim().to_uppercase()).copied())
                .collect();
            g.sort_unstable();
            g.dedup();
            if !g.is_empty() {
                names.push(f[0].to_string());
                sets.push(g);
            }
        }
        if sets.is_empty() {
            return Err(err(format!(
                "no programme shares a gene symbol with the model's {} genes",
                genes.len()
            )));
        }
        Ok(Programmes {
            names,
            genes: sets,
            source: path.display().to_string(),
        })
    }
}

/// A self-supervised objective.
#[derive(Debug, Clone)]
pub enum Objective {
    /// Each entry masked with probability `rate`; visible input scaled by `1/(1-rate)`.
    RandomMask {
        /// Masking rate (0.5).
        rate: f64,
    },
    /// Each programme hidden with probability `rate`, whole (genes in several programmes are
    /// hidden when any of them is).
    GpMask {
        /// The programmes.
        programmes: Programmes,
        /// Probability of hiding a programme.
        rate: f64,
    },
    /// One random programme kept visible per cell, every other gene reconstructed.
    Isolated {
        /// The programmes.
        programmes: Programmes,
    },
    /// Barlow Twins on two augmented views.
    BarlowTwins {
        /// Off-diagonal weight (0.0051).
        lambda: f64,
        /// Projector widths after the embedding (`[256, 256, 512, 512]`).
        projector: Vec<usize>,
    },
    /// BYOL with an EMA target.
    Byol {
        /// EMA decay (0.99).
        tau: f64,
        /// Projector / predictor hidden width (4096).
        hidden: usize,
        /// Projection width (256).
        out: usize,
    },
}

impl Objective {
    /// The objective's command-line name.
    pub fn name(&self) -> &'static str {
        match self {
            Objective::RandomMask { .. } => "random-mask",
            Objective::GpMask { .. } => "gp-mask",
            Objective::Isolated { .. } => "isolated",
            Objective::BarlowTwins { .. } => "barlow-twins",
            Objective::Byol { .. } => "byol",
        }
    }

    /// The paper's defaults for a named objective; gene-programme objectives need `programmes`.
    ///
    /// # Errors
    /// An unknown name, or a gene-programme objective without programmes.
    pub fn from_name(name: &str, programmes: Option<Programmes>) -> Result<Self, TrainError> {
        let need = |p: Option<Programmes>| {
            p.ok_or_else(|| TrainError::Invalid(format!("--objective {name} needs --gmt FILE")))
        };
        Ok(match name {
            "random-mask" => Objective::RandomMask { rate: 0.5 },
            "gp-mask" => Objective::GpMask {
                programmes: need(programmes)?,
                rate: 0.5,
            },
            "isolated" => Objective::Isolated {
                programmes: need(programmes)?,
            },
            "barlow-twins" => Objective::BarlowTwins {
                lambda: 0.0051,
                projector: vec![256, 256, 512, 512],
            },
            "byol" => Objective::Byol {
                tau: 0.99,
                hidden: 4096,
                out: 256,
            },
            other => {
                return Err(TrainError::Invalid(format!(
                    "unknown objective '{other}' (random-mask, gp-mask, isolated, barlow-twins, byol)"
                )));
            }
        })
    }
}

/// Hyper-parameters of a training run (written into the model's provenance).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainOptions {
    /// Epochs.
    pub epochs: usize,
    /// Cells per step (8,192 for pre-training, 128 for fine-tuning in the paper).
    pub batch_size: usize,
    /// AdamW learning rate.
    pub lr: f64,
    /// AdamW (decoupled) weight decay.
    pub weight_decay: f64,
    /// StepLR: multiply the learning rate by `gamma` every `step_size` epochs.
    pub step_size: usize,
    /// StepLR factor.
    pub gamma: f64,
    /// Global gradient L2-norm bound (`None` = no clipping).
    pub clip_norm: Option<f64>,
    /// Seed of initialisation, shuffling, masks, augmentation and dropout.
    pub seed: u64,
    /// Dropout after hidden activations.
    pub dropout: f64,
    /// Hidden and embedding widths of a new backbone (input width = number of genes).
    pub hidden: Vec<usize>,
    /// Emit a step event every `log_every` steps.
    pub log_every: usize,
    /// Fraction of cells held out for the validation loss (pre-training).
    pub val_fraction: f64,
    /// Early-stopping patience in epochs (fine-tuning).
    pub patience: usize,
}

impl TrainOptions {
    /// The pre-training recipe of SSL_MODELS.md: AdamW lr 1e-3, weight decay 0.01, dropout 0.1,
    /// batch 8,192, StepLR(2, 0.9), clipping 1.0; backbone `genes -> 512 -> 512 -> 256 -> 256 ->
    /// 64`.
    pub fn pretrain_default() -> Self {
        TrainOptions {
            epochs: 10,
            batch_size: 8192,
            lr: 1e-3,
            weight_decay: 0.01,
            step_size: 2,
            gamma: 0.9,
            clip_norm: Some(1.0),
            seed: 0,
            dropout: 0.1,
            hidden: vec![512, 512, 256, 256, 64],
            log_every: 1,
            val_fraction: 0.1,
            patience: 20,
        }
    }

    /// The fine-tuning recipe of the reusability study: AdamW lr 9e-4, weight decay 0.05,
    /// batch 128, early stopping with patience 20.
    pub fn finetune_default() -> Self {
        TrainOptions {
            epochs: 50,
            batch_size: 128,
            lr: 9e-4,
            weight_decay: 0.05,
            step_size: usize::MAX,
            gamma: 1.0,
            clip_norm: Some(1.0),
            log_every: 10,
            ..Self::pretrain_default()
        }
    }

    fn lr_at(&self, epoch: usize) -> f64 {
        self.lr * self.gamma.powi((epoch / self.step_size.max(1)) as i32)
    }
}

/// What a [`TrainEvent`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// After a training step.
    Step,
    /// After an epoch, with validation values.
    Epoch,
}

/// Progress of a training run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainEvent {
    /// Step or epoch event.
    pub kind: EventKind,
    /// Epoch (0-based).
    pub epoch: usize,
    /// Epochs planned.
    pub epochs: usize,
    /// Steps done in all (1-based after the first step).
    pub step: usize,
    /// Steps per epoch.
    pub steps_per_epoch: usize,
    /// Training loss: of the step (step events) or the epoch mean (epoch events).
    pub train_loss: f64,
    /// Validation loss (epoch events).
    pub val_loss: Option<f64>,
    /// Validation macro-F1 (fine-tuning epoch events).
    pub val_macro_f1: Option<f64>,
    /// Training throughput since the epoch started (cells per second).
    pub cells_per_sec: f64,
    /// Learning rate of the step.
    pub lr: f64,
}

/// The result of a run.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    /// The trained (last good) weights.
    pub weights: ModelWeights,
    /// Every epoch event, in order.
    pub history: Vec<TrainEvent>,
    /// Whether the run stopped on a cancel request.
    pub cancelled: bool,
    /// Whether early stopping ended it.
    pub early_stopped: bool,
    /// Whether a non-finite loss ended it (the last good epoch is kept).
    pub diverged: bool,
    /// Epoch whose weights were kept.
    pub best_epoch: usize,
    /// The device used, in words.
    pub device: String,
}

/// The burn device for `choice` (autodiff enabled), and its description.
///
/// # Errors
/// `Wgpu` when no adapter exists.
pub fn training_device(choice: BackendChoice) -> Result<(Device, String), TrainError> {
    let (_, device, name) = super::engine::select_device(choice).map_err(TrainError::Device)?;
    Ok((device.autodiff(), name))
}

/// Dense rows `rows` of `x`, row-major `[rows.len(), x.n_cols]`.
pub fn dense_rows(x: &CsrMatrix, rows: &[usize]) -> Vec<f32> {
    let g = x.n_cols;
    let mut out = vec![0f32; rows.len() * g];
    out.par_chunks_mut(g.max(1))
        .zip(rows.par_iter())
        .for_each(|(dst, &r)| {
            let (idx, val) = x.row(r);
            for (&j, &v) in idx.iter().zip(val) {
                dst[j as usize] = v;
            }
        });
    out
}

fn to_tensor(v: Vec<f32>, rows: usize, cols: usize, device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(v, [rows, cols]), device)
}

/// Masked-reconstruction loss: the autoencoder sees `x * keep * scale`; the loss is the mean
/// squared error over the hidden entries (`keep == 0`). Shapes `[batch, genes]`; returns `[1]`.
pub fn masked_reconstruction_loss(
    model: &AutoEncoder,
    x: Tensor<2>,
    keep: Tensor<2>,
    scale: f64,
) -> Tensor<1> {
    let recon = model.forward((x.clone() * keep.clone()).mul_scalar(scale));
    let hidden = keep.neg().add_scalar(1.0);
    let n = hidden.clone().sum().clamp_min(1.0);
    ((recon - x) * hidden).powi_scalar(2).sum() / n
}

/// Keep mask of the random-mask objective, row-major `[rows, genes]`: each entry visible (1)
/// with probability `p_keep`, from a per-row seeded generator (reproducible whatever the
/// thread count).
pub fn random_keep(rows: usize, genes: usize, p_keep: f64, seed: u64) -> Vec<f32> {
    let mut keep = vec![0f32; rows * genes];
    keep.par_chunks_mut(genes.max(1))
        .enumerate()
        .for_each(|(r, row)| {
            let mut rng = Rng::for_item(seed, r as u64, 0x726d);
            for v in row.iter_mut() {
                *v = f32::from(u8::from(rng.uniform() < p_keep));
            }
        });
    keep
}

/// The masked-reconstruction loss with the output end fused on the CPU: the network runs in
/// burn up to the decoder's logits `z`; the Sigmoid, the masked squared error and its gradient
/// `dL/dz = 2 (s - x) s (1 - s) / n_hidden` (on hidden entries) are computed in one parallel
/// pass, and the returned surrogate `sum(z * dL/dz)` has exactly that gradient. Same loss and
/// gradients as [`masked_reconstruction_loss`], about 20 fewer full-size tensor passes per
/// step on burn's CPU backend. `xv`, `keep`: row-major `[rows, genes]`. Returns the surrogate
/// (to call `backward` on) and the loss value.
#[allow(clippy::too_many_arguments)]
pub fn masked_reconstruction_fused(
    model: &AutoEncoder,
    xv: &[f32],
    keep: &[f32],
    rows: usize,
    genes: usize,
    scale: f64,
    device: &Device,
) -> (Tensor<1>, f64) {
    let scale = scale as f32;
    let x_in: Vec<f32> = xv
        .par_iter()
        .zip(keep.par_iter())
        .map(|(&x, &k)| x * k * scale)
        .collect();
    let z = model
        .decoder
        .forward_linear(model.encoder.forward(to_tensor(x_in, rows, genes, device)));
    let zv = super::nets::tensor_values(z.clone().inner());
    let n_hidden = keep.par_iter().filter(|&&k| k == 0.0).count().max(1) as f32;
    let mut grad = vec![0f32; rows * genes];
    let sum: f64 = grad
        .par_chunks_mut(genes.max(1))
        .enumerate()
        .map(|(r, g)| {
            let o = r * genes;
            let mut l = 0f64;
            for j in 0..genes {
                if keep[o + j] == 0.0 {
                    let s = 1.0 / (1.0 + (-zv[o + j]).exp());
                    let d = s - xv[o + j];
                    l += f64::from(d * d);
                    g[j] = 2.0 * d * s * (1.0 - s) / n_hidden;
                }
            }
            l
        })
        .sum();
    let g = to_tensor(grad, rows, genes, &device.clone().inner());
    ((z * g).sum(), sum / f64::from(n_hidden))
}

/// Barlow Twins loss (Zbontar et al. 2021): each view's projections standardised over the
/// batch (the affine-free BatchNorm1d, biased variance, eps 1e-5), cross-correlation
/// `C = z1^T z2 / batch`, loss `sum_i (1 - C_ii)^2 + lambda * sum_{i != j} C_ij^2`.
/// Shapes `[batch, d]`; returns `[1]`.
pub fn barlow_twins_loss(z1: Tensor<2>, z2: Tensor<2>, lambda: f64) -> Tensor<1> {
    let [b, d] = z1.dims();
    let standardise = |z: Tensor<2>| {
        let (var, mean) = z.clone().var_mean_bias(0);
        (z - mean) / var.add_scalar(1e-5).sqrt()
    };
    let c = standardise(z1)
        .transpose()
        .matmul(standardise(z2))
        .div_scalar(b as f64);
    let eye = Tensor::<2>::eye(d, &c.device());
    let diag = (c.clone() * eye.clone()).sum_dim(1);
    let on = diag.clone().neg().add_scalar(1.0).powi_scalar(2).sum();
    let off = (c * eye.neg().add_scalar(1.0)).powi_scalar(2).sum();
    on + off.mul_scalar(lambda)
}

/// BYOL's regression loss `2 - 2 cos(p, z)`, mean over the batch (Grill et al. 2020). `z` is
/// the target's projection (treated as a constant). Shapes `[batch, d]`; returns `[1]`.
pub fn byol_loss(p: Tensor<2>, z: Tensor<2>) -> Tensor<1> {
    let norm = |t: Tensor<2>| {
        let n = t.clone().powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-12);
        t / n
    };
    let cos = (norm(p) * norm(z)).sum_dim(1);
    cos.mean().mul_scalar(-2.0).add_scalar(2.0)
}

/// Class-weighted cross-entropy as PyTorch's `F.cross_entropy(logits, y, weight=w)`:
/// `sum_i w[y_i] * -log softmax(logits_i)[y_i] / sum_i w[y_i]`. `logits [batch, k]`,
/// `targets [batch]` (class codes), `weights [k]`; returns `[1]`.
pub fn weighted_cross_entropy(logits: Tensor<2>, targets: &[u32], weights: &[f32]) -> Tensor<1> {
    let [b, k] = logits.dims();
    let device = logits.device();
    let mut onehot = vec![0f32; b * k];
    let mut wsum = 0f64;
    for (i, &t) in targets.iter().enumerate() {
        let w = weights[t as usize];
        onehot[i * k + t as usize] = w;
        wsum += f64::from(w);
    }
    let target = to_tensor(onehot, b, k, &device);
    let logp = burn::tensor::activation::log_softmax(logits, 1);
    (logp * target).sum().neg().div_scalar(wsum.max(1e-12))
}

/// sklearn's `class_weight='balanced'`: `n / (k * count_c)` (0 for absent classes).
pub fn balanced_class_weights(codes: &[u32], k: usize) -> Vec<f32> {
    let mut counts = vec![0usize; k];
    for &c in codes {
        counts[c as usize] += 1;
    }
    let n = codes.len() as f64;
    counts
        .iter()
        .map(|&c| {
            if c == 0 {
                0.0
            } else {
                (n / (k as f64 * c as f64)) as f32
            }
        })
        .collect()
}

/// Scales all gradients so that their global L2 norm is at most `max_norm` (PyTorch's
/// `clip_grad_norm_`: factor `max_norm / (norm + 1e-6)` when the norm exceeds it). Returns the
/// norm before clipping.
pub fn clip_global_norm(
    grads: &mut GradientsParams,
    two: &[ParamId],
    one: &[ParamId],
    max_norm: f64,
) -> f64 {
    let mut total: Option<Tensor<1>> = None;
    let mut add = |t: Tensor<1>| {
        total = Some(match total.take() {
            Some(a) => a + t,
            None => t,
        });
    };
    for &id in two {
        if let Some(g) = grads.get::<2>(id) {
            add(g.powi_scalar(2).sum());
        }
    }
    for &id in one {
        if let Some(g) = grads.get::<1>(id) {
            add(g.powi_scalar(2).sum());
        }
    }
    let Some(total) = total else {
        return 0.0;
    };
    let norm = f64::from(total.into_scalar::<f32>()).sqrt();
    if norm > max_norm {
        let f = max_norm / (norm + 1e-6);
        for &id in two {
            if let Some(g) = grads.remove::<2>(id) {
                grads.register(id, g.mul_scalar(f));
            }
        }
        for &id in one {
            if let Some(g) = grads.remove::<1>(id) {
                grads.register(id, g.mul_scalar(f));
            }
        }
    }
    norm
}

/// Negative-binomial resampling and dropout of a log-normalised batch (the Barlow Twins / BYOL
/// augmentation): each non-zero `x` is replaced by `log1p(NB(mean = expm1(x), dispersion
/// theta))`, sampled as a Gamma-Poisson mixture, then each entry is zeroed with probability
/// `drop`. Zeros stay zero. Row-major `[rows, genes]` in place.
pub fn augment(values: &mut [f32], genes: usize, theta: f64, drop: f64, rng_seed: u64) {
    values
        .par_chunks_mut(genes.max(1))
        .enumerate()
        .for_each(|(r, row)| {
            let mut rng = Rng::for_item(rng_seed, r as u64, 0x4e42);
            for v in row.iter_mut().filter(|v| **v != 0.0) {
                if rng.uniform() < drop {
                    *v = 0.0;
                    continue;
                }
                let mu = f64::from(*v).exp_m1();
                let lambda = gamma(&mut rng, theta) * mu / theta;
                *v = (poisson(&mut rng, lambda) as f64).ln_1p() as f32;
            }
        });
}

/// Gamma(shape, 1) by Marsaglia & Tsang (2000); shape < 1 by the `U^(1/shape)` boost.
fn gamma(rng: &mut Rng, shape: f64) -> f64 {
    if shape < 1.0 {
        return gamma(rng, shape + 1.0) * rng.uniform().max(1e-300).powf(1.0 / shape);
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let x = rng.normal();
        let v = (1.0 + c * x).powi(3);
        if v <= 0.0 {
            continue;
        }
        let u = rng.uniform();
        if u.max(1e-300).ln() < 0.5 * x * x + d - d * v + d * v.ln() {
            return d * v;
        }
    }
}

/// Poisson(lambda): inversion for lambda < 30, else the normal approximation rounded (an
/// augmentation, not an estimator).
fn poisson(rng: &mut Rng, lambda: f64) -> u64 {
    if lambda <= 0.0 {
        return 0;
    }
    if lambda < 30.0 {
        let (mut k, mut p, mut s) = (0u64, (-lambda).exp(), 0.0);
        s += p;
        let u = rng.uniform();
        while u > s && k < 1000 {
            k += 1;
            p *= lambda / k as f64;
            s += p;
        }
        k
    } else {
        (lambda + lambda.sqrt() * rng.normal()).round().max(0.0) as u64
    }
}

/// Keep masks for the programme objectives, row-major `[rows, genes]` (1 = visible).
fn programme_keep(
    rows: usize,
    genes: usize,
    programmes: &Programmes,
    isolated: bool,
    rate: f64,
    seed: u64,
) -> Vec<f32> {
    let mut keep = vec![if isolated { 0f32 } else { 1f32 }; rows * genes];
    keep.par_chunks_mut(genes.max(1))
        .enumerate()
        .for_each(|(r, row)| {
            let mut rng = Rng::for_item(seed, r as u64, 0x6770);
            if isolated {
                let p = rng.below(programmes.genes.len());
                for &g in &programmes.genes[p] {
                    row[g as usize] = 1.0;
                }
            } else {
                for set in &programmes.genes {
                    if rng.uniform() < rate {
                        for &g in set {
                            row[g as usize] = 0.0;
                        }
                    }
                }
            }
        });
    keep
}

/// The trainable network of an objective.
enum Net {
    Ae(AutoEncoder),
    Bt(BarlowTwins, f64),
    Byol(ByolOnline, super::nets::ByolTarget, f64),
}

impl Net {
    fn param_ids(&self) -> (Vec<ParamId>, Vec<ParamId>) {
        let (mut two, mut one) = (Vec::new(), Vec::new());
        match self {
            Net::Ae(m) => m.param_ids(&mut two, &mut one),
            Net::Bt(m, _) => m.param_ids(&mut two, &mut one),
            Net::Byol(m, _, _) => m.param_ids(&mut two, &mut one),
        }
        (two, one)
    }

    fn backbone(&self) -> &Mlp {
        match self {
            Net::Ae(m) => &m.encoder,
            Net::Bt(m, _) => &m.backbone,
            Net::Byol(m, _, _) => &m.backbone,
        }
    }

    fn weights(&self) -> ModelWeights {
        let (kind, decoder, total) = match self {
            Net::Ae(m) => (
                ModelKind::MaskedAutoencoder,
                m.decoder.to_dense(),
                m.num_params(),
            ),
            Net::Bt(m, _) => (ModelKind::BarlowTwins, Vec::new(), m.num_params()),
            Net::Byol(m, _, _) => (ModelKind::Byol, Vec::new(), m.num_params()),
        };
        let b = self.backbone();
        ModelWeights {
            kind,
            activation: b.activation,
            backbone: b.to_dense(),
            head: None,
            decoder,
            n_params_total: total,
        }
    }
}

/// The masked objectives' loss: fused on the CPU backend, all in burn elsewhere (on a GPU the
/// logits never leave the device).
#[allow(clippy::too_many_arguments)]
fn masked_loss(
    m: &AutoEncoder,
    xv: &[f32],
    keep: Vec<f32>,
    rows: usize,
    genes: usize,
    scale: f64,
    device: &Device,
) -> (Tensor<1>, Option<f64>) {
    if device.clone().inner() == Device::flex() {
        let (s, l) = masked_reconstruction_fused(m, xv, &keep, rows, genes, scale, device);
        (s, Some(l))
    } else {
        let x = to_tensor(xv.to_vec(), rows, genes, device);
        let keep = to_tensor(keep, rows, genes, &device.clone().inner());
        (masked_reconstruction_loss(m, x, keep, scale), None)
    }
}

/// One batch's loss for the objective: the tensor to call `backward` on and, when that is a
/// surrogate, the loss value.
fn objective_loss(
    net: &Net,
    objective: &Objective,
    xv: &[f32],
    rows: usize,
    genes: usize,
    seed: u64,
    device: &Device,
) -> (Tensor<1>, Option<f64>) {
    match (net, objective) {
        (Net::Ae(m), Objective::RandomMask { rate }) => {
            let keep = random_keep(rows, genes, 1.0 - rate, seed);
            masked_loss(m, xv, keep, rows, genes, 1.0 / (1.0 - rate), device)
        }
        (Net::Ae(m), Objective::GpMask { programmes, rate }) => {
            let keep = programme_keep(rows, genes, programmes, false, *rate, seed);
            masked_loss(m, xv, keep, rows, genes, 1.0, device)
        }
        (Net::Ae(m), Objective::Isolated { programmes }) => {
            let keep = programme_keep(rows, genes, programmes, true, 0.0, seed);
            masked_loss(m, xv, keep, rows, genes, 1.0, device)
        }
        (Net::Bt(m, lambda), _) => {
            let (v1, v2) = views(xv, genes, seed);
            let loss = barlow_twins_loss(
                m.forward(to_tensor(v1, rows, genes, device)),
                m.forward(to_tensor(v2, rows, genes, device)),
                *lambda,
            );
            (loss, None)
        }
        (Net::Byol(m, target, _), _) => {
            let (v1, v2) = views(xv, genes, seed);
            let (t1, t2) = (
                to_tensor(v1, rows, genes, device),
                to_tensor(v2, rows, genes, device),
            );
            let z1 = target.forward(t1.clone().inner()).detach();
            let z2 = target.forward(t2.clone().inner()).detach();
            (
                byol_loss(m.forward(t1), z2) + byol_loss(m.forward(t2), z1),
                None,
            )
        }
        _ => unreachable!("network built for another objective"),
    }
}

/// NB dispersion and dropout rate of the contrastive augmentation.
const AUG_THETA: f64 = 10.0;
const AUG_DROP: f64 = 0.2;

fn views(xv: &[f32], genes: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let (mut a, mut b) = (xv.to_vec(), xv.to_vec());
    augment(&mut a, genes, AUG_THETA, AUG_DROP, seed);
    augment(&mut b, genes, AUG_THETA, AUG_DROP, seed ^ 0x5eed);
    (a, b)
}

fn init_net(
    objective: &Objective,
    n_genes: usize,
    opts: &TrainOptions,
    device: &Device,
) -> Result<Net, TrainError> {
    if opts.hidden.is_empty() {
        return Err(TrainError::Invalid(
            "a backbone needs at least one layer".into(),
        ));
    }
    let mut widths = vec![n_genes];
    widths.extend(&opts.hidden);
    let emb = *widths.last().unwrap_or(&64);
    Ok(match objective {
        Objective::RandomMask { .. } | Objective::GpMask { .. } | Objective::Isolated { .. } => {
            let mut dec: Vec<usize> = widths.iter().rev().copied().collect();
            dec[0] = emb;
            Net::Ae(AutoEncoder {
                encoder: MlpConfig::new(widths)
                    .with_dropout(opts.dropout)
                    .init(device),
                decoder: MlpConfig::new(dec)
                    .with_dropout(opts.dropout)
                    .with_sigmoid(true)
                    .init(device),
            })
        }
        Objective::BarlowTwins { lambda, projector } => {
            let mut pw = vec![emb];
            pw.extend(projector);
            Net::Bt(
                BarlowTwins {
                    backbone: MlpConfig::new(widths).with_dropout(0.0).init(device),
                    projector: ProjectorConfig::new(pw).init(device),
                },
                *lambda,
            )
        }
        Objective::Byol { tau, hidden, out } => {
            let online = ByolOnline {
                backbone: MlpConfig::new(widths)
                    .with_dropout(opts.dropout)
                    .init(device),
                projector: ProjectorConfig::new(vec![emb, *hidden, *out])
                    .with_hidden_bias(true)
                    .init(device),
                predictor: ProjectorConfig::new(vec![*out, *hidden, *out])
                    .with_hidden_bias(true)
                    .init(device),
            };
            let target = online.target();
            Net::Byol(online, target, *tau)
        }
    })
}

fn optimizer(opts: &TrainOptions) -> ModuleOptimizer {
    AdamWConfig::new()
        .with_weight_decay(opts.weight_decay as f32)
        .with_epsilon(1e-8)
        .init()
}

/// One optimiser step: gradients of the module, global-norm clipping, AdamW.
struct Update<'a> {
    optim: &'a mut ModuleOptimizer,
    lr: f64,
    clip: Option<f64>,
    /// Parameter ids by rank (2-D, 1-D), for the clipping norm.
    ids: (&'a [ParamId], &'a [ParamId]),
}

impl Update<'_> {
    fn apply<M: Module>(&mut self, m: M, grads: burn::tensor::Gradients) -> M {
        let mut g = GradientsParams::from_grads(grads, &m);
        if let Some(c) = self.clip {
            clip_global_norm(&mut g, self.ids.0, self.ids.1, c);
        }
        self.optim.step(self.lr, m, g)
    }
}

/// Running totals of one epoch: the training loss summed over cells, the cells done and the
/// wall time since the epoch began; builds the step and epoch events from them.
struct EpochTally {
    epoch: usize,
    steps_per_epoch: usize,
    lr: f64,
    start: Instant,
    sum: f64,
    done: usize,
}

impl EpochTally {
    fn new(epoch: usize, steps_per_epoch: usize, lr: f64) -> Self {
        Self {
            epoch,
            steps_per_epoch,
            lr,
            start: Instant::now(),
            sum: 0.0,
            done: 0,
        }
    }

    fn event(&self, kind: EventKind, opts: &TrainOptions, step: usize, loss: f64) -> TrainEvent {
        TrainEvent {
            kind,
            epoch: self.epoch,
            epochs: opts.epochs,
            step,
            steps_per_epoch: self.steps_per_epoch,
            train_loss: loss,
            val_loss: None,
            val_macro_f1: None,
            cells_per_sec: self.done as f64 / self.start.elapsed().as_secs_f64().max(1e-9),
            lr: self.lr,
        }
    }

    /// Counts step `step` (1-based over the run) of `n` cells with mean loss `loss`, and sends
    /// a step event every `opts.log_every` steps.
    fn record(
        &mut self,
        events: &Sender<TrainEvent>,
        opts: &TrainOptions,
        step: usize,
        loss: f64,
        n: usize,
    ) {
        self.sum += loss * n as f64;
        self.done += n;
        if step.is_multiple_of(opts.log_every.max(1)) {
            send(events, self.event(EventKind::Step, opts, step, loss));
        }
    }

    /// The epoch event, taken when the epoch's last step is done (before validation, so the
    /// throughput counts training only): mean training loss over the epoch, validation scores
    /// left for the caller.
    fn epoch_event(&self, opts: &TrainOptions, step: usize) -> TrainEvent {
        let mean = self.sum / self.done.max(1) as f64;
        self.event(EventKind::Epoch, opts, step, mean)
    }
}

fn send(events: &Sender<TrainEvent>, e: TrainEvent) {
    // A consumer that went away (closed window, finished CLI) must not stop training.
    let _ = events.send(e);
}

fn check_options(opts: &TrainOptions, n: usize) -> Result<(), TrainError> {
    if n == 0 {
        return Err(TrainError::Invalid("no cells to train on".into()));
    }
    if opts.batch_size == 0 || opts.epochs == 0 {
        return Err(TrainError::Invalid(
            "--epochs and --batch-size must be at least 1".into(),
        ));
    }
    if !(0.0..1.0).contains(&opts.dropout) {
        return Err(TrainError::Invalid(format!(
            "dropout {} is not in [0, 1)",
            opts.dropout
        )));
    }
    Ok(())
}

/// Self-supervised pre-training of a new backbone on `x` (cells x model genes, preprocessed).
/// A seeded `val_fraction` of the cells is held out for the validation loss (computed in eval
/// mode with seeded masks / views).
///
/// # Errors
/// [`TrainError`]: bad options, no device, cancelled before the first epoch.
pub fn pretrain(
    x: &CsrMatrix,
    objective: &Objective,
    opts: &TrainOptions,
    backend: BackendChoice,
    events: &Sender<TrainEvent>,
    cancel: &AtomicBool,
) -> Result<TrainOutcome, TrainError> {
    check_options(opts, x.n_rows)?;
    let (device, device_name) = training_device(backend)?;
    device.seed(opts.seed);
    let mut order: Vec<usize> = (0..x.n_rows).collect();
    Rng::new(opts.seed).shuffle(&mut order);
    let n_val = if x.n_rows >= 20 {
        ((x.n_rows as f64 * opts.val_fraction).round() as usize).min(x.n_rows / 2)
    } else {
        0
    };
    let (val, train) = order.split_at(n_val);
    let (val, mut train) = (val.to_vec(), train.to_vec());
    let mut net = init_net(objective, x.n_cols, opts, &device)?;
    let (two, one) = net.param_ids();
    let mut optim = optimizer(opts);
    let steps_per_epoch = train.len().div_ceil(opts.batch_size);
    let mut history = Vec::new();
    let mut last_good: Option<(ModelWeights, usize)> = None;
    let mut step = 0usize;
    let mut rng = Rng::new(opts.seed ^ 0x7261_696e);
    for epoch in 0..opts.epochs {
        rng.shuffle(&mut train);
        let lr = opts.lr_at(epoch);
        let mut tally = EpochTally::new(epoch, steps_per_epoch, lr);
        for batch in train.chunks(opts.batch_size) {
            if cancel.load(Ordering::Relaxed) {
                return finish(last_good, history, End::Cancelled, device_name);
            }
            let xv = dense_rows(x, batch);
            let seed = opts.seed.wrapping_add(step as u64 * 7919);
            let (loss, value) =
                objective_loss(&net, objective, &xv, batch.len(), x.n_cols, seed, &device);
            let value = value.unwrap_or_else(|| f64::from(loss.clone().into_scalar::<f32>()));
            if !value.is_finite() {
                return finish(last_good, history, End::Diverged(step + 1), device_name);
            }
            let grads = loss.backward();
            let mut update = Update {
                optim: &mut optim,
                lr,
                clip: opts.clip_norm,
                ids: (&two, &one),
            };
            net = match net {
                Net::Ae(m) => Net::Ae(update.apply(m, grads)),
                Net::Bt(m, l) => Net::Bt(update.apply(m, grads), l),
                Net::Byol(m, t, tau) => {
                    let m = update.apply(m, grads);
                    let t = t.ema(&m, tau);
                    Net::Byol(m, t, tau)
                }
            };
            step += 1;
            tally.record(events, opts, step, value, batch.len());
        }
        let mut e = tally.epoch_event(opts, step);
        e.val_loss = (!val.is_empty()).then(|| validation_loss(&net, objective, x, &val, opts));
        history.push(e);
        send(events, e);
        last_good = Some((net.weights(), epoch));
    }
    finish(last_good, history, End::Done, device_name)
}

/// How a run ended.
#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    Done,
    Cancelled,
    EarlyStop,
    Diverged(usize),
}

fn finish(
    last_good: Option<(ModelWeights, usize)>,
    history: Vec<TrainEvent>,
    end: End,
    device: String,
) -> Result<TrainOutcome, TrainError> {
    let (weights, best_epoch) = last_good.ok_or(match end {
        End::Diverged(step) => TrainError::Diverged(step),
        _ => TrainError::Cancelled,
    })?;
    Ok(TrainOutcome {
        weights,
        history,
        cancelled: end == End::Cancelled,
        early_stopped: end == End::EarlyStop,
        diverged: matches!(end, End::Diverged(_)),
        best_epoch,
        device,
    })
}

/// Mean objective loss over the validation cells, the networks in eval mode (no dropout,
/// BatchNorm running statistics), with fixed seeds so epochs are comparable.
fn validation_loss(
    net: &Net,
    objective: &Objective,
    x: &CsrMatrix,
    val: &[usize],
    opts: &TrainOptions,
) -> f64 {
    let valid = match net {
        Net::Ae(m) => Net::Ae(m.valid()),
        Net::Bt(m, l) => Net::Bt(m.valid(), *l),
        Net::Byol(m, t, tau) => Net::Byol(m.valid(), t.clone(), *tau),
    };
    let device = valid.backbone().layers[0].weight.val().device();
    let (mut sum, mut n) = (0.0, 0usize);
    for (b, batch) in val.chunks(opts.batch_size).enumerate() {
        let xv = dense_rows(x, batch);
        let (loss, value) = objective_loss(
            &valid,
            objective,
            &xv,
            batch.len(),
            x.n_cols,
            opts.seed ^ (b as u64 + 0x76),
            &device,
        );
        let value = value.unwrap_or_else(|| f64::from(loss.into_scalar::<f32>()));
        sum += value * batch.len() as f64;
        n += batch.len();
    }
    sum / n.max(1) as f64
}

/// Which layers fine-tuning trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TrainLayers {
    /// Only the classifier head.
    Head,
    /// The head and the last `k` backbone layers.
    Last(usize),
    /// Everything.
    All,
}

impl std::str::FromStr for TrainLayers {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "head" => Ok(TrainLayers::Head),
            "all" => Ok(TrainLayers::All),
            _ => s
                .strip_prefix("last:")
                .and_then(|k| k.parse().ok())
                .map(TrainLayers::Last)
                .ok_or_else(|| format!("'{s}' is not head, last:K or all")),
        }
    }
}

/// Labelled cells for fine-tuning: class codes per cell and the split.
pub struct Labelled<'a> {
    /// Class code of every cell of `x` (`u32::MAX` = unlabelled, never used).
    pub codes: &'a [u32],
    /// Class names, indexed by code.
    pub class_names: &'a [String],
    /// Training cells.
    pub train: &'a [usize],
    /// Validation cells (macro-F1 each epoch, early stopping).
    pub val: &'a [usize],
}

/// Scores predictions against truth (macro-F1): passed in so that `model` does not depend on
/// `analysis` (the pipeline passes sklearn-checked `analysis::metrics`).
pub type Scorer<'a> = &'a dyn Fn(&[u32], &[u32]) -> f64;

/// Fine-tunes a classifier: `Linear(embedding, n_types)` on the backbone of `init` (a
/// pre-trained model), or on a freshly initialised backbone (the supervised baseline, same
/// network from random init). Class-weighted cross-entropy (balanced weights on the training
/// cells); validation macro-F1 every epoch; the best epoch's weights are kept; training stops
/// after `patience` epochs without improvement.
///
/// # Errors
/// [`TrainError`]: bad options, no device, fewer than two classes, cancelled before the first
/// epoch.
#[allow(clippy::too_many_arguments)]
pub fn finetune(
    x: &CsrMatrix,
    labelled: &Labelled<'_>,
    init: Option<&ModelWeights>,
    layers: TrainLayers,
    opts: &TrainOptions,
    backend: BackendChoice,
    score: Scorer<'_>,
    events: &Sender<TrainEvent>,
    cancel: &AtomicBool,
) -> Result<TrainOutcome, TrainError> {
    check_options(opts, labelled.train.len())?;
    let k = labelled.class_names.len();
    if k < 2 {
        return Err(TrainError::Invalid(format!(
            "fine-tuning needs at least two classes, found {k}"
        )));
    }
    let (device, device_name) = training_device(backend)?;
    device.seed(opts.seed);
    let backbone = match init {
        Some(w) => {
            if w.n_genes() != x.n_cols {
                return Err(TrainError::Invalid(format!(
                    "the model takes {} genes, the data has {} after alignment",
                    w.n_genes(),
                    x.n_cols
                )));
            }
            Mlp::from_dense(&w.backbone, w.activation, opts.dropout, false, &device)
        }
        None => {
            let mut widths = vec![x.n_cols];
            widths.extend(&opts.hidden);
            MlpConfig::new(widths)
                .with_activation(Activation::Selu)
                .with_dropout(opts.dropout)
                .init(&device)
        }
    };
    let emb = *backbone.widths().last().unwrap_or(&64);
    let n_layers = backbone.layers.len();
    let backbone = match layers {
        TrainLayers::Head => backbone.freeze_all_but_last(0),
        TrainLayers::Last(kk) => backbone.freeze_all_but_last(kk.min(n_layers)),
        TrainLayers::All => backbone,
    };
    let mut model = Classifier {
        backbone,
        head: burn::nn::LinearConfig::new(emb, k).init(&device),
    };
    let (mut two, mut one) = (Vec::new(), Vec::new());
    model.param_ids(&mut two, &mut one);
    let train_codes: Vec<u32> = labelled.train.iter().map(|&i| labelled.codes[i]).collect();
    let weights = balanced_class_weights(&train_codes, k);
    let mut optim = optimizer(opts);
    let mut order = labelled.train.to_vec();
    let steps_per_epoch = order.len().div_ceil(opts.batch_size);
    let mut rng = Rng::new(opts.seed ^ 0x6674);
    let (mut history, mut step) = (Vec::new(), 0usize);
    let mut best: Option<(ModelWeights, usize)> = None;
    let mut best_f1 = f64::NEG_INFINITY;
    let mut early = false;
    for epoch in 0..opts.epochs {
        rng.shuffle(&mut order);
        let lr = opts.lr_at(epoch);
        let mut tally = EpochTally::new(epoch, steps_per_epoch, lr);
        for batch in order.chunks(opts.batch_size) {
            if cancel.load(Ordering::Relaxed) {
                return finish(best, history, End::Cancelled, device_name);
            }
            let xv = dense_rows(x, batch);
            let t: Vec<u32> = batch.iter().map(|&i| labelled.codes[i]).collect();
            let logits = model.forward(to_tensor(xv, batch.len(), x.n_cols, &device));
            let loss = weighted_cross_entropy(logits, &t, &weights);
            let value = f64::from(loss.clone().into_scalar::<f32>());
            if !value.is_finite() {
                return finish(best, history, End::Diverged(step + 1), device_name);
            }
            model = Update {
                optim: &mut optim,
                lr,
                clip: opts.clip_norm,
                ids: (&two, &one),
            }
            .apply(model, loss.backward());
            step += 1;
            tally.record(events, opts, step, value, batch.len());
        }
        let mut e = tally.epoch_event(opts, step);
        let valid = model.valid();
        let (val_loss, f1) = if labelled.val.is_empty() {
            (None, None)
        } else {
            let (logits, _) = classifier_logits(&valid, x, labelled.val, opts.batch_size.max(512));
            let truth: Vec<u32> = labelled.val.iter().map(|&i| labelled.codes[i]).collect();
            let pred = argmax_rows(&logits, k);
            let l = weighted_cross_entropy(
                to_tensor(logits, truth.len(), k, &Device::flex()),
                &truth,
                &weights,
            );
            (
                Some(f64::from(l.into_scalar::<f32>())),
                Some(score(&truth, &pred)),
            )
        };
        e.val_loss = val_loss;
        e.val_macro_f1 = f1;
        history.push(e);
        send(events, e);
        let f1v = f1.unwrap_or(-tally.sum);
        if f1v > best_f1 || best.is_none() {
            best_f1 = f1v;
            best = Some((classifier_weights(&valid), epoch));
        } else if best
            .as_ref()
            .is_some_and(|(_, b)| epoch >= b + opts.patience.max(1))
        {
            early = true;
            break;
        }
    }
    finish(
        best,
        history,
        if early { End::EarlyStop } else { End::Done },
        device_name,
    )
}

fn classifier_weights(m: &Classifier) -> ModelWeights {
    ModelWeights {
        kind: ModelKind::Classifier,
        activation: m.backbone.activation,
        backbone: m.backbone.to_dense(),
        head: Some(super::nets::dense_from_linear(&m.head)),
        decoder: Vec::new(),
        n_params_total: m.num_params(),
    }
}

fn classifier_logits(
    m: &Classifier,
    x: &CsrMatrix,
    rows: &[usize],
    batch: usize,
) -> (Vec<f32>, usize) {
    let device = m.head.weight.val().device();
    let mut out = Vec::new();
    for b in rows.chunks(batch) {
        let t = to_tensor(dense_rows(x, b), b.len(), x.n_cols, &device);
        out.extend(super::nets::tensor_values(m.forward(t)));
    }
    (out, rows.len())
}

/// Row-wise argmax of a row-major `[n, k]` matrix.
pub fn argmax_rows(values: &[f32], k: usize) -> Vec<u32> {
    values
        .chunks(k.max(1))
        .map(|r| {
            let mut best = 0;
            for (j, &v) in r.iter().enumerate() {
                if v > r[best] {
                    best = j;
                }
            }
            best as u32
        })
        .collect()
}

/// Softmax of each row of a row-major `[n, k]` logit matrix, in place (probabilities).
pub fn softmax_rows(values: &mut [f32], k: usize) {
    for r in values.chunks_mut(k.max(1)) {
        let m = r.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut s = 0.0;
        for v in r.iter_mut() {
            *v = (*v - m).exp();
            s += *v;
        }
        for v in r.iter_mut() {
            *v /= s;
        }
    }
}
