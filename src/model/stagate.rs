//! STAGATE's graph-attention autoencoder (Dong & Zhang 2022; SEED_METHODS.md) in burn, as its
//! public code (`STAGATE_pyG`: `gat_conv.py`, `STAGATE.py`) computes it:
//!
//! - a GAT layer has one weight `W` for source and target (`[in, out]`, no bias) and attention
//!   vectors `a_src`, `a_dst`; an edge `j -> i` weighs `sigmoid(a_src . h_j + a_dst . h_i)`,
//!   softmax-normalised over the edges into `i`, and `i` receives the weighted sum of `h_j`
//!   (`h = x W`);
//! - encoder: `h1 = ELU(GAT1(x))`, `h2 = h1 W2` (no attention); decoder: `h3 = ELU(GAT3(h2))`
//!   with `W2^T` and GAT1's attention coefficients, `h4 = h3 W1^T` (no attention). The decoder's
//!   weights are copies of the encoder's (STAGATE assigns `.data`), so no gradient reaches the
//!   encoder through them; the shared attention carries gradient back to GAT1.
//!
//! Edges are given as source and target index lists (self-loops included by the caller, as
//! STAGATE adds them); aggregation is a scatter-add over targets, so the cost is linear in the
//! edges.

use burn::module::{Module, Param};
use burn::tensor::{Device, Int, Tensor, TensorData};

/// The graph a layer propagates over: edge `e` runs from `src[e]` to `dst[e]`.
#[derive(Debug, Clone)]
pub struct Edges {
    /// Source cell of each edge.
    pub src: Tensor<1, Int>,
    /// Target cell of each edge.
    pub dst: Tensor<1, Int>,
    /// Cells.
    pub n: usize,
}

impl Edges {
    /// Edges from index lists (equal lengths, indices below `n`) on `device`.
    pub fn new(src: &[u32], dst: &[u32], n: usize, device: &Device) -> Self {
        let t = |v: &[u32]| {
            let v: Vec<i64> = v.iter().map(|&i| i64::from(i)).collect();
            Tensor::<1, Int>::from_data(TensorData::new(v.clone(), [v.len()]), device)
        };
        Edges {
            src: t(src),
            dst: t(dst),
            n,
        }
    }
}

/// One GAT layer of STAGATE.
#[derive(Module, Debug)]
pub struct GatLayer {
    /// `W`, `[in, out]`.
    pub weight: Param<Tensor<2>>,
    /// `a_src`, `[out]`.
    pub att_src: Param<Tensor<1>>,
    /// `a_dst`, `[out]`.
    pub att_dst: Param<Tensor<1>>,
}

/// The attention logits of a layer: `(a_src . h_j per cell, a_dst . h_i per cell)`.
pub type Attention = (Tensor<1>, Tensor<1>);

impl GatLayer {
    /// `h = x W`, `[n, out]`.
    pub fn project(&self, x: Tensor<2>) -> Tensor<2> {
        x.matmul(self.weight.val())
    }

    /// The attention logits of `h` (`[n, out]`).
    pub fn attention(&self, h: &Tensor<2>) -> Attention {
        let [n, d] = h.dims();
        let logits = |a: Tensor<1>| h.clone().matmul(a.reshape([d, 1])).reshape([n]);
        (logits(self.att_src.val()), logits(self.att_dst.val()))
    }
}

/// Propagation of `h` (`[n, d]`) over `edges` with attention logits `alpha`: per edge
/// `sigmoid(alpha_src[j] + alpha_dst[i])`, softmax over each target's edges, weighted sum.
pub fn propagate(h: Tensor<2>, alpha: &Attention, edges: &Edges) -> Tensor<2> {
    let [n, d] = h.dims();
    let e = edges.src.dims()[0];
    let device = h.device();
    let logit =
        alpha.0.clone().select(0, edges.src.clone()) + alpha.1.clone().select(0, edges.dst.clone());
    // sigmoid is in (0, 1), so exp cannot overflow: no per-group maximum needed.
    let w = burn::tensor::activation::sigmoid(logit).exp();
    let denom = Tensor::<1>::zeros([n], &device).select_assign(
        0,
        edges.dst.clone(),
        w.clone(),
        burn::tensor::IndexingUpdateOp::Add,
    );
    let coef = w / denom.select(0, edges.dst.clone());
    let messages = h.select(0, edges.src.clone()) * coef.reshape([e, 1]);
    Tensor::<2>::zeros([n, d], &device).select_assign(
        0,
        edges.dst.clone(),
        messages,
        burn::tensor::IndexingUpdateOp::Add,
    )
}

/// STAGATE: two GAT layers; the decoder reuses them transposed.
#[derive(Module, Debug)]
pub struct Stagate {
    /// Input -> hidden (with attention).
    pub conv1: GatLayer,
    /// Hidden -> latent (no attention).
    pub conv2: GatLayer,
}

impl Stagate {
    /// `(latent h2 [n, out], reconstruction h4 [n, in])` of `x` (`[n, in]`).
    pub fn forward(&self, x: Tensor<2>, edges: &Edges) -> (Tensor<2>, Tensor<2>) {
        use burn::tensor::activation::elu;
        let h = self.conv1.project(x);
        let att = self.conv1.attention(&h);
        let h1 = elu(propagate(h, &att, edges), 1.0);
        let h2 = self.conv2.project(h1);
        // The decoder's weights are detached copies of the encoder's (STAGATE's `.data =`).
        let w2t = self.conv2.weight.val().detach().transpose();
        let w1t = self.conv1.weight.val().detach().transpose();
        let h3 = elu(propagate(h2.clone().matmul(w2t), &att, edges), 1.0);
        let h4 = h3.matmul(w1t);
        (h2, h4)
    }
}
