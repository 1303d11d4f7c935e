//! Losses and gradient clipping, each checked against a PyTorch reference
//! (`tests/fixtures/train`): masked reconstruction, Barlow Twins, BYOL, SimCLR's NT-Xent and
//! VICReg (against `lightly`), class-weighted cross-entropy, the global-norm clip.

#[allow(clippy::wildcard_imports)]
use super::*;

/// Masked-reconstruction loss as ssl_in_scg computes it: the autoencoder sees
/// `x * keep * scale`; the loss is the mean over *all* entries of `weight * (recon - x)^2`
/// (`(inv_mask * mse).mean()`; `weight` is `1 - keep` or gp_to_tf's output mask,
/// [`Mask::weights`]). Shapes `[batch, genes]`; returns `[1]`.
pub fn masked_reconstruction_loss(
    model: &AutoEncoder,
    x: Tensor<2>,
    keep: Tensor<2>,
    weight: Tensor<2>,
    scale: f64,
) -> Tensor<1> {
    let recon = model.forward((x.clone() * keep).mul_scalar(scale));
    ((recon - x).powi_scalar(2) * weight).mean()
}

/// One batch's loss, ready for the backward pass.
pub struct StepLoss {
    /// The tensor to differentiate: the loss, or a surrogate with the loss's gradient.
    pub tensor: Tensor<1>,
    /// The loss value, when `tensor` is a surrogate.
    pub value: Option<f64>,
    /// The encoder's first Linear when it ran outside burn on sparse input.
    pub first_layer: Option<SparseFirstLayer>,
}

impl StepLoss {
    /// A loss computed wholly in burn.
    pub fn plain(tensor: Tensor<1>) -> Self {
        Self {
            tensor,
            value: None,
            first_layer: None,
        }
    }

    /// The loss value (reads the tensor back unless a surrogate's value is known).
    pub fn value(&self) -> f64 {
        self.value
            .unwrap_or_else(|| f64::from(self.tensor.clone().into_scalar::<f32>()))
    }

    /// Backward: the gradients of `module`'s parameters, the sparse first layer's included.
    pub fn gradients<M: Module>(self, module: &M) -> GradientsParams {
        let grads = self.tensor.backward();
        let first = self.first_layer.and_then(|f| f.gradients(&grads));
        let mut params = GradientsParams::from_grads(grads, module);
        if let Some(f) = first {
            f.register(&mut params);
        }
        params
    }
}

/// The masked-reconstruction loss with both ends fused on the CPU. The encoder's first Linear
/// multiplies only the stored values of the masked input ([`SparseFirstLayer`]); the network
/// runs in burn from there up to the decoder's logits `z`; the Sigmoid, the weighted squared
/// error and its gradient `dL/dz = 2 (s - x) s (1 - s) / (rows * genes)` (on scored entries)
/// are computed in one parallel pass, and the surrogate `sum(z * dL/dz)` has exactly that
/// gradient. Same loss and gradients as [`masked_reconstruction_loss`] (up to summation
/// order), about 20 fewer full-size tensor passes and two fewer dense products per step on
/// burn's CPU backend. `xv`: row-major `[rows, genes]`.
pub fn masked_reconstruction_fused(
    model: &AutoEncoder,
    xv: &[f32],
    mask: &Mask,
    rows: usize,
    genes: usize,
    device: &Device,
) -> StepLoss {
    let first = SparseFirstLayer::forward(&model.encoder.layers[0], xv, mask, rows, device);
    let z = model
        .decoder
        .forward_linear(model.encoder.forward_after_first(first.output()));
    let zv = crate::model::nets::tensor_values(z.clone().inner());
    let inv_n = 1.0 / (rows * genes).max(1) as f32;
    let mut grad = vec![0f32; rows * genes];
    let arch = pulp::Arch::new();
    let sum: f64 = grad
        .par_chunks_mut(genes.max(1))
        .enumerate()
        .map(|(r, g)| {
            let o = r * genes..(r + 1) * genes;
            let (z, x) = (&zv[o.clone()], &xv[o.clone()]);
            match &mask.scored {
                Scored::Hidden => arch.dispatch(OutputRow {
                    z,
                    x,
                    keep: Some(&mask.keep[o]),
                    inv_n,
                    g,
                }),
                Scored::AllBut(tf) => {
                    let t = tf[r] as usize;
                    let all = arch.dispatch(OutputRow {
                        z,
                        x,
                        keep: None,
                        inv_n,
                        g,
                    });
                    // The row's transcription factor is not scored.
                    g[t] = 0.0;
                    let d = sigmoid(z[t]) - x[t];
                    all - f64::from(d * d)
                }
            }
        })
        .sum();
    let g = to_tensor(grad, rows, genes, &device.clone().inner());
    StepLoss {
        tensor: (z * g).sum(),
        value: Some(sum * f64::from(inv_n)),
        first_layer: Some(first),
    }
}

/// One row of the fused output end: `s = sigmoid(z)`, `g_j = w_j 2 (s_j - x_j) s_j (1 - s_j)
/// inv_n` into `g`, `w_j = 1 - keep_j` (every entry scored without `keep`); the result is
/// `sum_j w_j (s_j - x_j)^2`. Branch-free, with per-lane sums, and compiled for the best
/// instruction set found at run time, so that it vectorises.
struct OutputRow<'a> {
    z: &'a [f32],
    x: &'a [f32],
    keep: Option<&'a [f32]>,
    inv_n: f32,
    g: &'a mut [f32],
}

/// Lanes of [`OutputRow`]'s sums (one AVX-512 vector).
const LANES: usize = 16;

impl pulp::WithSimd for OutputRow<'_> {
    type Output = f64;

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) -> f64 {
        let mut acc = [0f32; LANES];
        let mut one = |lane: usize, w: f32, z: f32, x: f32, g: &mut f32| {
            let s = sigmoid(z);
            let d = s - x;
            acc[lane] += w * d * d;
            *g = w * 2.0 * d * s * (1.0 - s) * self.inv_n;
        };
        let full = self.z.len() / LANES * LANES;
        let (g, g_tail) = self.g.split_at_mut(full);
        let chunks = g
            .chunks_exact_mut(LANES)
            .zip(self.z.chunks_exact(LANES))
            .zip(self.x.chunks_exact(LANES));
        for (c, ((g, z), x)) in chunks.enumerate() {
            let mut w = [1f32; LANES];
            if let Some(keep) = self.keep {
                for (w, k) in w.iter_mut().zip(&keep[c * LANES..(c + 1) * LANES]) {
                    *w = 1.0 - k;
                }
            }
            for k in 0..LANES {
                one(k, w[k], z[k], x[k], &mut g[k]);
            }
        }
        for (k, g) in g_tail.iter_mut().enumerate() {
            let w = self.keep.map_or(1.0, |keep| 1.0 - keep[full + k]);
            one(k, w, self.z[full + k], self.x[full + k], g);
        }
        acc.iter().map(|&a| f64::from(a)).sum()
    }
}

/// The logistic function with [`exp_poly`]: within 2e-7 relative of `1 / (1 + exp(-z))`.
#[inline(always)]
pub fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + exp_poly(-z))
}

/// `exp(x)` by Cephes' `expf` (range reduction by `ln 2` in two parts, a degree-6 polynomial,
/// the exponent set by bits), about 1 ulp for `x` in `[-87, 88]` and clamped outside; plain
/// arithmetic that vectorises, where `f32::exp` is a library call per element.
#[inline(always)]
pub fn exp_poly(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    // Round to nearest by adding and removing 1.5 * 2^23 (no library call, vectorises).
    let n = (x * std::f32::consts::LOG2_E + 12_582_912.0) - 12_582_912.0;
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let p = (((((1.987_569_2e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2)
        * r
        + 1.666_666_5e-1)
        * r
        + 0.5)
        * r
        * r
        + r
        + 1.0;
    p * f32::from_bits(((n as i32 + 127) as u32) << 23)
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

/// SimCLR's NT-Xent loss (Chen et al. 2020) as `lightly`'s `NTXentLoss` without a memory bank:
/// both views L2-normalised (`F.normalize`, eps 1e-12), `S = [z1; z2] [z1; z2]^T / temperature`
/// over the `2 batch` projections, and for each row the cross-entropy of its other view
/// against every projection but itself: `mean_r logsumexp_{j != r} S_rj - mean_i z1_i . z2_i /
/// temperature`. Shapes `[batch, d]`; returns `[1]`.
pub fn nt_xent_loss(z1: Tensor<2>, z2: Tensor<2>, temperature: f64) -> Tensor<1> {
    let [b, _] = z1.dims();
    let norm = |t: Tensor<2>| {
        let n = t.clone().powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-12);
        t / n
    };
    let (z1, z2) = (norm(z1), norm(z2));
    let positive = (z1.clone() * z2.clone())
        .sum()
        .div_scalar(b as f64 * temperature);
    let z = Tensor::cat(vec![z1, z2], 0);
    let s = z.clone().matmul(z.transpose()).div_scalar(temperature);
    // A projection is not its own negative: exp(S_rr - 1e4) is 0 in f32 (|S| <= 1/temperature).
    let eye = Tensor::<2>::eye(2 * b, &s.device());
    let s = s - eye.mul_scalar(1e4);
    let max = s.clone().max_dim(1).detach();
    let lse = (s - max.clone()).exp().sum_dim(1).log() + max;
    lse.mean() - positive
}

/// VICReg's loss (Bardes et al. 2022) as `lightly`'s `VICRegLoss`:
/// `lambda MSE(z1, z2) + mu (v(z1) + v(z2)) / 2 + nu (c(z1) + c(z2))` with
/// `v(z) = mean_j relu(1 - sqrt(var_j(z) + 1e-4))` (unbiased variance over the batch) and `c(z)` the sum of squared off-diagonal
/// entries of the covariance (`/ (batch - 1)`) divided by `d`. scSSL-Bench: lambda = mu = 5,
/// nu = 1. Shapes `[batch, d]` (batch >= 2); returns `[1]`.
pub fn vicreg_loss(z1: Tensor<2>, z2: Tensor<2>, weights: VicregWeights) -> Tensor<1> {
    let [b, d] = z1.dims();
    let invariance = (z1.clone() - z2.clone()).powi_scalar(2).mean();
    let n1 = (b.max(2) - 1) as f64;
    let terms = |z: Tensor<2>| {
        let c = z.clone() - z.mean_dim(0);
        let var = c.clone().powi_scalar(2).sum_dim(0).div_scalar(n1);
        let std = var.add_scalar(1e-4).sqrt();
        let v = std.neg().add_scalar(1.0).clamp_min(0.0).mean();
        let cov = c.clone().transpose().matmul(c).div_scalar(n1);
        let eye = Tensor::<2>::eye(d, &cov.device());
        let off = (cov * eye.neg().add_scalar(1.0))
            .powi_scalar(2)
            .sum()
            .div_scalar(d as f64);
        (v, off)
    };
    let (v1, c1) = terms(z1);
    let (v2, c2) = terms(z2);
    invariance.mul_scalar(weights.invariance)
        + (v1 + v2).mul_scalar(weights.variance * 0.5)
        + (c1 + c2).mul_scalar(weights.covariance)
}

/// The weights of VICReg's three terms.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct VicregWeights {
    /// Invariance (lambda).
    pub invariance: f64,
    /// Variance (mu).
    pub variance: f64,
    /// Covariance (nu).
    pub covariance: f64,
}

impl VicregWeights {
    /// scSSL-Bench's weights: 5, 5, 1 (SEED_METHODS.md).
    pub const BENCH: VicregWeights = VicregWeights {
        invariance: 5.0,
        variance: 5.0,
        covariance: 1.0,
    };
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

#[cfg(test)]
mod tests {
    use super::{exp_poly, sigmoid};

    /// The vectorisable `exp` and sigmoid against `f64` over their whole useful range.
    #[test]
    fn polynomial_exp_and_sigmoid_are_accurate() {
        for i in -870_000..=880_000 {
            let x = i as f32 * 1e-4;
            let want = f64::from(x).exp();
            let rel = (f64::from(exp_poly(x)) - want).abs() / want;
            assert!(rel < 3e-7, "exp({x}): relative error {rel}");
        }
        assert!(exp_poly(-1e4) > 0.0 && exp_poly(1e4).is_finite(), "clamped");
        for i in -1_000_000..=1_000_000 {
            let z = i as f32 * 1e-4;
            let want = 1.0 / (1.0 + (-f64::from(z)).exp());
            let err = (f64::from(sigmoid(z)) - want).abs();
            // Below -87 the clamped exp leaves s at about 1.6e-38 instead of smaller.
            let tol = if z < -87.0 { 1e-37 } else { 3e-7 * want };
            assert!(err <= tol, "sigmoid({z}): error {err}");
        }
        assert_eq!(sigmoid(200.0), 1.0);
        assert!(sigmoid(-200.0) < 1e-37);
    }
}
