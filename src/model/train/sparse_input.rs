//! The masked autoencoders' first Linear on sparse input, for training on the CPU.
//!
//! The encoder's first layer (`n_genes -> 512` in ssl_in_scg) sees `x * keep * scale`: about
//! 2.5% non-zeros for HER2+ spots under a 0.5 random mask. burn multiplies it densely twice per
//! step (forward, and `dW = x^T dh`). Here both products touch only the stored values: the
//! forward is inference's blocked sparse kernel ([`sparse_first_layer`]) on the weights laid out
//! afresh each step; its output enters burn as a leaf that requires a gradient, so backward
//! stops there and hands back `dh = dL/d(x W + b)`; then `dW = x^T dh` (gene by gene, from the
//! batch's columns) and `db = sum_rows dh` are registered as the layer's gradients. Same
//! gradients as the dense product up to summation order (`tests/it/model_objectives.rs`).

use burn::module::ParamId;
use burn::nn::Linear;
use burn::optim::GradientsParams;
use burn::tensor::Gradients;
use rayon::prelude::*;

use super::{Mask, to_tensor};
use crate::data::CsrMatrix;
use crate::model::infer::sparse::{ROWS_PER_TASK, SparseWeights, sparse_first_layer};
use crate::model::nets::tensor_values;
use burn::tensor::{Device, Tensor, TensorData};

/// One step's first layer: the masked batch and the layer's output, a leaf of burn's graph.
pub struct SparseFirstLayer {
    /// `x * keep * scale`, CSR `[rows, genes]`.
    x: CsrMatrix,
    /// `x W + b`, `[rows, n_out]`; requires a gradient on an autodiff device.
    h: Tensor<2>,
    weight: ParamId,
    bias: Option<ParamId>,
}

impl SparseFirstLayer {
    /// `(xv * keep * scale) W + b` for `layer` (burn layout, `W [genes, n_out]`), `xv`
    /// row-major `[rows, genes]`.
    pub fn forward(layer: &Linear, xv: &[f32], mask: &Mask, rows: usize, device: &Device) -> Self {
        let [n_in, n_out] = layer.weight.val().dims();
        let bias = layer.bias.as_ref();
        let w = SparseWeights::from_in_out(
            &tensor_values(layer.weight.val()),
            &bias.map(|b| tensor_values(b.val())).unwrap_or_default(),
            n_in,
            n_out,
        );
        let x = masked_csr(xv, mask, rows, n_in);
        let per = rows
            .div_ceil(rayon::current_num_threads().max(1))
            .clamp(1, ROWS_PER_TASK);
        let starts: Vec<usize> = (0..rows).step_by(per).collect();
        let parts: Vec<Vec<f32>> = starts
            .into_par_iter()
            .map(|r0| sparse_first_layer(&x, r0..(r0 + per).min(rows), &w))
            .collect();
        let h = to_tensor(parts.concat(), rows, n_out, device);
        let h = if device.is_autodiff() {
            h.require_grad()
        } else {
            h
        };
        Self {
            x,
            h,
            weight: layer.weight.id,
            bias: bias.map(|b| b.id),
        }
    }

    /// The layer's output `[rows, n_out]`, before the activation.
    pub fn output(&self) -> Tensor<2> {
        self.h.clone()
    }

    /// The layer's weight and bias gradients, from `dh` in `grads` (none when the output
    /// took no part in the loss).
    pub fn gradients(&self, grads: &Gradients) -> Option<FirstLayerGrads> {
        let dh = self.h.grad(grads)?;
        let [_, n_out] = dh.dims();
        let inner = dh.device();
        let dh = tensor_values(dh);
        let dw = weight_grad(&self.x, &dh, n_out);
        let bias = self.bias.map(|id| {
            let mut db = vec![0f32; n_out];
            for r in dh.chunks(n_out.max(1)) {
                for (s, &v) in db.iter_mut().zip(r) {
                    *s += v;
                }
            }
            (
                id,
                Tensor::<1>::from_data(TensorData::new(db, [n_out]), &inner),
            )
        });
        Some(FirstLayerGrads {
            weight: (self.weight, to_tensor(dw, self.x.n_cols, n_out, &inner)),
            bias,
        })
    }
}

/// The first layer's parameter gradients (on the inner device, as burn's optimisers take them).
pub struct FirstLayerGrads {
    weight: (ParamId, Tensor<2>),
    bias: Option<(ParamId, Tensor<1>)>,
}

impl FirstLayerGrads {
    /// Adds them to the module's other gradients.
    pub fn register(self, params: &mut GradientsParams) {
        params.register(self.weight.0, self.weight.1);
        if let Some((id, b)) = self.bias {
            params.register(id, b);
        }
    }
}

/// The non-zeros of `xv * keep * scale` (`[rows, genes]` row-major), as CSR.
fn masked_csr(xv: &[f32], mask: &Mask, rows: usize, genes: usize) -> CsrMatrix {
    let scale = mask.scale as f32;
    let per_row: Vec<(Vec<u32>, Vec<f32>)> = xv
        .par_chunks(genes.max(1))
        .zip(mask.keep.par_chunks(genes.max(1)))
        .map(|(x, k)| {
            let (mut idx, mut val) = (Vec::new(), Vec::new());
            for (g, (&x, &k)) in x.iter().zip(k).enumerate() {
                let v = x * k * scale;
                if v != 0.0 {
                    idx.push(g as u32);
                    val.push(v);
                }
            }
            (idx, val)
        })
        .collect();
    let mut m = CsrMatrix {
        n_rows: rows,
        n_cols: genes,
        indptr: Vec::with_capacity(rows + 1),
        indices: Vec::new(),
        data: Vec::new(),
    };
    m.indptr.push(0);
    for (idx, val) in per_row {
        m.indices.extend(idx);
        m.data.extend(val);
        m.indptr.push(m.indices.len() as u64);
    }
    m
}

/// Genes per parallel task of [`weight_grad`].
const GENES_PER_TASK: usize = 64;

/// `x^T dh`, `[x.n_cols, n_out]` row-major (burn's weight layout): each gene's row sums
/// `x[r, g] * dh[r]` over the rows that store gene `g`, read from the batch's columns.
fn weight_grad(x: &CsrMatrix, dh: &[f32], n_out: usize) -> Vec<f32> {
    let genes = x.n_cols;
    // Gene-major: row g of the transpose lists the cells storing gene g.
    let xt = x.transpose();
    let mut dw = vec![0f32; genes * n_out];
    let arch = pulp::Arch::new();
    dw.par_chunks_mut((GENES_PER_TASK * n_out).max(1))
        .enumerate()
        .for_each(|(b, block)| {
            // Compiled for the best instruction set found at run time, so the loop vectorises.
            arch.dispatch(|| {
                for (k, d) in block.chunks_mut(n_out).enumerate() {
                    let g = b * GENES_PER_TASK + k;
                    let (rows_of, vals) = xt.row(g);
                    for (&r, &v) in rows_of.iter().zip(vals) {
                        let r = r as usize;
                        for (a, &h) in d.iter_mut().zip(&dh[r * n_out..(r + 1) * n_out]) {
                            *a += v * h;
                        }
                    }
                }
            });
        });
    dw
}
