//! What the objectives hide and perturb, as ssl_in_scg's code does it
//! (`models/lightning_modules/cellnet_autoencoder.py`, `models/contrastive/data_augmentations.py`;
//! SEED_METHODS.md): the masks of the masked autoencoders and the Barlow Twins / BYOL views.

#[allow(clippy::wildcard_imports)]
use super::*;

/// What a masked objective hides from the encoder and where its loss is taken, for one batch.
/// The loss is `mean over all rows x genes of scored * (reconstruction - x)^2` (the public
/// code's `(inv_mask * mse).mean()`, so the masked fraction scales the loss and its gradient).
#[derive(Debug, Clone, PartialEq)]
pub struct Mask {
    /// Visible input entries (1) and hidden ones (0), row-major `[rows, genes]`.
    pub keep: Vec<f32>,
    /// Factor on the visible input.
    pub scale: f64,
    /// Where the loss is taken.
    pub scored: Scored,
}

/// Which entries a masked objective's loss counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scored {
    /// The hidden entries (`keep == 0`): random, gene-programme and isolated masking.
    Hidden,
    /// Every entry but one gene per row (gp_to_tf: the row's transcription factor).
    AllBut(Vec<u32>),
}

impl Mask {
    /// The loss weight of every entry, row-major `[rows, genes]` (1 scored, 0 not).
    pub fn weights(&self, genes: usize) -> Vec<f32> {
        match &self.scored {
            Scored::Hidden => self.keep.iter().map(|&k| 1.0 - k).collect(),
            Scored::AllBut(tf) => {
                let mut w = vec![1f32; self.keep.len()];
                for (r, &g) in tf.iter().enumerate() {
                    w[r * genes + g as usize] = 0.0;
                }
                w
            }
        }
    }
}

/// Random masking: each entry hidden with probability `rate` (a per-row seeded generator, so
/// the mask does not depend on the thread count; rates resolved to 1/65,536), the visible input scaled by `1/(1-rate)`.
pub fn random_mask(rows: usize, genes: usize, rate: f64, seed: u64) -> Mask {
    // Four 16-bit draws per 64 random bits: an entry is hidden when its draw is below
    // `rate * 2^16` (rounded; the rate is honoured to 1/65,536).
    let threshold = (rate.clamp(0.0, 1.0) * 65_536.0).round().min(65_535.0) as u16;
    let mut keep = vec![0f32; rows * genes];
    keep.par_chunks_mut(genes.max(1))
        .enumerate()
        .for_each(|(r, row)| {
            let mut rng = Rng::for_item(seed, r as u64, 0x726d);
            for four in row.chunks_mut(4) {
                let mut bits = rng.next_u64();
                for v in four {
                    *v = f32::from(u8::from(bits as u16 >= threshold));
                    bits >>= 16;
                }
            }
        });
    Mask {
        keep,
        scale: 1.0 / (1.0 - rate),
        scored: Scored::Hidden,
    }
}

/// Gene-programme masking: `floor(n_programmes * rate)` whole programmes, drawn without
/// replacement, hidden in every row of the batch; the visible input scaled by
/// `1 / (1 - hidden fraction of the entries)` (`_mask_gene_programs_numpy` and its caller).
pub fn gp_mask(rows: usize, genes: usize, programmes: &Programmes, rate: f64, seed: u64) -> Mask {
    let n = programmes.genes.len();
    let mut order: Vec<usize> = (0..n).collect();
    Rng::new(seed ^ 0x6770).shuffle(&mut order);
    order.truncate(((n as f64 * rate) as usize).min(n));
    gp_mask_of(rows, genes, programmes, &order)
}

/// [`gp_mask`] hiding the programmes `chosen`.
pub fn gp_mask_of(rows: usize, genes: usize, programmes: &Programmes, chosen: &[usize]) -> Mask {
    let mut hidden = vec![false; genes];
    for &p in chosen {
        for &g in &programmes.genes[p] {
            hidden[g as usize] = true;
        }
    }
    batch_mask(rows, &hidden, true)
}

/// Isolated masking: one programme, drawn for the whole batch, is all the encoder sees; the
/// loss is taken on every other gene (`_mask_single_gene_programs`). The input is not rescaled:
/// the public code refers to a masked fraction it never computes in this branch.
pub fn isolated_mask(rows: usize, genes: usize, programmes: &Programmes, seed: u64) -> Mask {
    let p = Rng::new(seed ^ 0x6973).below(programmes.genes.len());
    isolated_mask_of(rows, genes, programmes, p)
}

/// [`isolated_mask`] keeping programme `p`.
pub fn isolated_mask_of(rows: usize, genes: usize, programmes: &Programmes, p: usize) -> Mask {
    let mut hidden = vec![true; genes];
    for &g in &programmes.genes[p] {
        hidden[g as usize] = false;
    }
    batch_mask(rows, &hidden, false)
}

/// gp_to_tf: each row sees the genes of one transcription factor's target programme (distinct
/// factors across the batch, from a seeded permutation, repeated when the batch has more rows
/// than factors; the public code leaves such rows with no input); the loss is taken on every
/// gene except that factor (`_only_activate_gene_program_numpy`: `inv_output_mask`). Input not
/// rescaled, as for [`isolated_mask`]. `programmes` must be [`Programmes::with_regulators`].
pub fn gp_to_tf_mask(rows: usize, genes: usize, programmes: &Programmes, seed: u64) -> Mask {
    let n = programmes.genes.len();
    let mut rng = Rng::new(seed ^ 0x7466);
    let mut order = Vec::with_capacity(rows + n);
    while order.len() < rows {
        let mut p: Vec<usize> = (0..n).collect();
        rng.shuffle(&mut p);
        order.extend(p);
    }
    order.truncate(rows);
    gp_to_tf_mask_of(genes, programmes, &order)
}

/// [`gp_to_tf_mask`] with row `r` on programme `order[r]`.
pub fn gp_to_tf_mask_of(genes: usize, programmes: &Programmes, order: &[usize]) -> Mask {
    let rows = order.len();
    let mut keep = vec![0f32; rows * genes];
    for (r, &p) in order.iter().enumerate() {
        for &g in &programmes.genes[p] {
            keep[r * genes + g as usize] = 1.0;
        }
    }
    let tf = order
        .iter()
        .map(|&p| programmes.regulators[p].unwrap_or(0))
        .collect();
    Mask {
        keep,
        scale: 1.0,
        scored: Scored::AllBut(tf),
    }
}

/// The same hidden genes in every row; `rescale`: scale by `1/(1 - hidden fraction)`.
fn batch_mask(rows: usize, hidden: &[bool], rescale: bool) -> Mask {
    let row: Vec<f32> = hidden.iter().map(|&h| f32::from(u8::from(!h))).collect();
    let frac = hidden.iter().filter(|&&h| h).count() as f64 / hidden.len().max(1) as f64;
    Mask {
        keep: row.repeat(rows),
        scale: if rescale && frac < 1.0 {
            1.0 / (1.0 - frac)
        } else {
            1.0
        },
        scored: Scored::Hidden,
    }
}

/// Intensity of the negative-binomial noise of the contrastive view (`NegBinNoise(0.2)`).
pub const NB_INTENSITY: f64 = 0.2;
/// Dropout rate of the contrastive view, survivors rescaled by `1/(1-p)` (`F.dropout(p=0.1)`).
pub const VIEW_DROPOUT: f64 = 0.1;

/// The Barlow Twins / BYOL views of a log-normalised batch (row-major `[rows, genes]`): the
/// original cells, and the cells with additive negative-binomial noise then dropout
/// (`NegBinNoise` then `DropoutAugmentation`): per entry `n ~ NB(total_count 10, probs
/// U(0,1))`, per row `noise = intensity * log1p(n / sum(n) * 10^4)`, `v = max(x + noise, 0)`,
/// then each entry zeroed with probability [`VIEW_DROPOUT`] and the survivors divided by
/// `1 - p`. Seeded per row, so independent of the thread count.
pub fn contrastive_views(xv: &[f32], genes: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut v = xv.to_vec();
    let keep_scale = (1.0 / (1.0 - VIEW_DROPOUT)) as f32;
    v.par_chunks_mut(genes.max(1))
        .enumerate()
        .for_each(|(r, row)| {
            let mut rng = Rng::for_item(seed, r as u64, 0x4e42);
            let counts: Vec<f64> = (0..row.len())
                .map(|_| {
                    let p = rng_uniform_open(&mut rng);
                    negative_binomial(&mut rng, 10.0, p) as f64
                })
                .collect();
            let total: f64 = counts.iter().sum();
            for (x, c) in row.iter_mut().zip(counts) {
                let noise = if total > 0.0 {
                    NB_INTENSITY * (c / total * 1e4).ln_1p()
                } else {
                    0.0
                };
                let y = (f64::from(*x) + noise).max(0.0) as f32;
                *x = if rng.uniform() < VIEW_DROPOUT {
                    0.0
                } else {
                    y * keep_scale
                };
            }
        });
    (xv.to_vec(), v)
}

/// A uniform draw in `[0, 1)` (torch.rand's range).
fn rng_uniform_open(rng: &mut Rng) -> f64 {
    rng.uniform().min(1.0 - f64::EPSILON)
}

/// PyTorch's `NegativeBinomial(total_count, probs).sample()`: `Poisson(Gamma(total_count,
/// scale probs / (1 - probs)))`.
pub(super) fn negative_binomial(rng: &mut Rng, total_count: f64, probs: f64) -> u64 {
    let lambda = gamma(rng, total_count) * probs / (1.0 - probs);
    poisson(rng, lambda)
}

/// Gamma(shape, 1) by Marsaglia & Tsang (2000); shape < 1 by the `U^(1/shape)` boost.
pub(super) fn gamma(rng: &mut Rng, shape: f64) -> f64 {
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
pub(super) fn poisson(rng: &mut Rng, lambda: f64) -> u64 {
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
