//! Losses and gradient clipping, each checked against a PyTorch reference
//! (`tests/fixtures/train`): masked reconstruction, Barlow Twins, BYOL, class-weighted
//! cross-entropy, the global-norm clip.

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

/// The masked-reconstruction loss with the output end fused on the CPU: the network runs in
/// burn up to the decoder's logits `z`; the Sigmoid, the weighted squared error and its
/// gradient `dL/dz = 2 (s - x) s (1 - s) / (rows * genes)` (on scored entries) are computed in
/// one parallel pass, and the returned surrogate `sum(z * dL/dz)` has exactly that gradient.
/// Same loss and gradients as [`masked_reconstruction_loss`], about 20 fewer full-size tensor
/// passes per step on burn's CPU backend. `xv`: row-major `[rows, genes]`. Returns the
/// surrogate (to call `backward` on) and the loss value.
pub fn masked_reconstruction_fused(
    model: &AutoEncoder,
    xv: &[f32],
    mask: &Mask,
    rows: usize,
    genes: usize,
    device: &Device,
) -> (Tensor<1>, f64) {
    let scale = mask.scale as f32;
    let x_in: Vec<f32> = xv
        .par_iter()
        .zip(mask.keep.par_iter())
        .map(|(&x, &k)| x * k * scale)
        .collect();
    let z = model
        .decoder
        .forward_linear(model.encoder.forward(to_tensor(x_in, rows, genes, device)));
    let zv = crate::model::nets::tensor_values(z.clone().inner());
    let n = (rows * genes).max(1) as f32;
    let mut grad = vec![0f32; rows * genes];
    let sum: f64 = grad
        .par_chunks_mut(genes.max(1))
        .enumerate()
        .map(|(r, g)| {
            let o = r * genes;
            let mut l = 0f64;
            for j in 0..genes {
                if mask.scores(r, j, genes) {
                    let s = 1.0 / (1.0 + (-zv[o + j]).exp());
                    let d = s - xv[o + j];
                    l += f64::from(d * d);
                    g[j] = 2.0 * d * s * (1.0 - s) / n;
                }
            }
            l
        })
        .sum();
    let g = to_tensor(grad, rows, genes, &device.clone().inner());
    ((z * g).sum(), sum / f64::from(n))
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
