//! Dense layers of the CPU inference path: the activation as one vectorised pass, then
//! `h W^T + b` through the `gemm` crate (the matrix kernel burn's CPU backend uses, called
//! directly so bias and layout cost nothing extra).
//!
//! Measured on the full-size backbone (`examples/embed_bench.rs`): the four dense layers after
//! the first took 21 us per cell through burn tensors, 9 us of it in an element-wise SELU with a
//! scalar `exp`; here they take about 5 us.

use crate::model::checkpoint::{Activation, Dense};

/// SELU constants (Klambauer et al. 2017; PyTorch `torch.nn.SELU`).
const SELU_ALPHA: f32 = 1.673_263_2;
const SELU_SCALE: f32 = 1.050_701;

/// `e^x` for `x <= 0` to about 2 ulp, branch-free so the compiler vectorises it: range
/// reduction `x = n ln2 + r`, a degree-6 polynomial for `e^r` on `[-ln2/2, ln2/2]` (Cephes
/// `expf` coefficients), and `2^n` built in the exponent bits. Values below -87 give 2^-126.
///
/// `n` is read from the bits of the rounding sum (`1.5 * 2^23 + n` holds `n` in its low
/// mantissa bits) rather than by `n as i32`: Rust's saturating float-to-int cast does not
/// vectorise, and with it SELU took about 5% of the CPU engine's time.
#[inline(always)]
fn exp_nonpositive(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23: adding and subtracting it rounds to integer
    let x = x.clamp(-87.0, 0.0);
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let er = p * r * r + r + 1.0;
    // The low 9 bits of `t`'s representation are `n + 127` modulo 512, and `n + 127` is in
    // 1..=127 here: shifted into the exponent field they make 2^n.
    er * f32::from_bits(t.to_bits().wrapping_add(127) << 23)
}

/// Applies `a` in place on the calling thread, vectorised for the widest instruction set found
/// at run time (`pulp` dispatch).
pub fn activate(h: &mut [f32], a: Activation) {
    pulp::Arch::new().dispatch(|| match a {
        Activation::Selu => {
            for v in h.iter_mut() {
                let x = *v;
                let neg = SELU_SCALE * SELU_ALPHA * (exp_nonpositive(x) - 1.0);
                *v = if x > 0.0 { SELU_SCALE * x } else { neg };
            }
        }
        Activation::Relu => {
            for v in h.iter_mut() {
                *v = v.max(0.0);
            }
        }
    });
}

/// `h W^T + b` for `h` `[rows, d.n_in]` row-major, on the calling thread; returns `[rows,
/// d.n_out]`.
///
/// # Panics
/// If `h.len() != rows * d.n_in`.
#[allow(unsafe_code)]
pub fn linear(h: &[f32], rows: usize, d: &Dense) -> Vec<f32> {
    assert_eq!(h.len(), rows * d.n_in, "input shape");
    assert_eq!(d.weight.len(), d.n_out * d.n_in, "weight shape");
    let mut out = Vec::with_capacity(rows * d.n_out);
    for _ in 0..rows {
        out.extend_from_slice(&d.bias);
    }
    // SAFETY: `out` is `[rows, n_out]` row-major (row stride n_out, column stride 1), `h` is
    // `[rows, n_in]` (row stride n_in), and the right-hand side is `W^T` read from PyTorch's
    // `[n_out, n_in]` weight (element (i, j) at j * n_in + i); all three buffers hold exactly
    // those elements (asserted above), and `out` does not alias the inputs.
    unsafe {
        gemm::gemm(
            rows,
            d.n_out,
            d.n_in,
            out.as_mut_ptr(),
            1,
            d.n_out as isize,
            true,
            h.as_ptr(),
            1,
            d.n_in as isize,
            d.weight.as_ptr(),
            d.n_in as isize,
            1,
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
    out
}

/// A masked autoencoder's reconstruction of the embeddings `emb` (`[rows, d]` row-major): every
/// decoder layer, the model's activation after each but the last, Sigmoid after the last
/// (SSL_MODELS.md; eval mode, no dropout). Row blocks run in parallel. Returns `[rows,
/// n_genes]`, or `None` when the model has no decoder.
pub fn decode(
    w: &crate::model::checkpoint::ModelWeights,
    emb: &[f32],
    rows: usize,
) -> Option<Vec<f32>> {
    use rayon::prelude::*;
    let last = w.decoder.last()?;
    let d_in = w.decoder[0].n_in;
    let block = 256;
    let parts: Vec<Vec<f32>> = emb
        .par_chunks(block * d_in.max(1))
        .map(|h| {
            let n = h.len() / d_in.max(1);
            let mut h = h.to_vec();
            for (i, layer) in w.decoder.iter().enumerate() {
                h = linear(&h, n, layer);
                if i + 1 < w.decoder.len() {
                    activate(&mut h, w.activation);
                }
            }
            for v in &mut h {
                *v = 1.0 / (1.0 + (-*v).exp());
            }
            h
        })
        .collect();
    let out: Vec<f32> = parts.concat();
    debug_assert_eq!(out.len(), rows * last.n_out);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_std_to_a_few_ulp() {
        let mut worst = 0f32;
        for k in 0..=200_000 {
            let x = -87.0 * k as f32 / 200_000.0;
            let (got, want) = (exp_nonpositive(x), x.exp());
            worst = worst.max((got - want).abs() / want);
        }
        assert!(worst < 5e-7, "relative error {worst}");
        assert_eq!(exp_nonpositive(0.0), 1.0);
        // Clamped below: finite and positive, as e^-87.
        let tiny = exp_nonpositive(-1e4);
        assert!((tiny / (-87f32).exp() - 1.0).abs() < 1e-5, "{tiny}");
    }

    #[test]
    fn linear_matches_a_naive_product() {
        let d = Dense {
            weight: (0..12).map(|i| i as f32 * 0.5 - 2.0).collect(),
            bias: vec![1.0, -1.0, 0.5],
            n_in: 4,
            n_out: 3,
        };
        let h: Vec<f32> = (0..8).map(|i| i as f32 - 3.0).collect();
        let got = linear(&h, 2, &d);
        for r in 0..2 {
            for o in 0..3 {
                let want: f32 = d.bias[o]
                    + (0..4)
                        .map(|i| h[r * 4 + i] * d.weight[o * 4 + i])
                        .sum::<f32>();
                assert!((got[r * 3 + o] - want).abs() < 1e-5);
            }
        }
    }
}
