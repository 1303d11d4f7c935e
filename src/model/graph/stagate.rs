//! STAGATE's graph-attention autoencoder (Dong & Zhang 2022; SEED_METHODS.md) in burn, as its
//! public code (`STAGATE_pyG`: `gat_conv.py`, `STAGATE.py`) computes it:
//!
//! - a GAT layer has one weight `W` for source and target (`[in, out]`, no bias) and attention
//!   vectors `a_src`, `a_dst`; an edge `j -> i` weighs `sigmoid(a_src . h_j + a_dst . h_i)`,
//!   softmax-normalised over the edges into `i`, and `i` receives the weighted sum of `h_j`
//!   (`h = x W`);
//! - encoder: `h1 = ELU(GAT1(x))`, `h2 = h1 W2` (no attention); decoder: `h3 = ELU(GAT3(h2))`
//!   with `W2^T` and GAT1's attention coefficients, `h4 = h3 W1^T` (no attention). The decoder's
//!   weights are views of the encoder's (STAGATE assigns `.data`), so no gradient reaches the
//!   encoder through them, but their own updates do ([`TiedDecoder`]); the shared attention
//!   carries gradient back to GAT1.
//!
//! Edges ([`Edges`]) include self-loops (the caller adds them, as STAGATE does); aggregation is
//! a scatter-add over targets, so the cost is linear in the edges.

use burn::module::{Module, Param, ParamId};
use burn::tensor::{Device, Tensor, TensorData};

use super::{Edges, Init};

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
    /// A freshly initialised STAGATE for widths `[in, hidden, latent]` (STAGATE: `[genes, 512,
    /// 30]`): every weight and attention vector `xavier_normal_(gain = 1.414)` as
    /// `gat_conv.py`, seeded.
    pub fn init(widths: [usize; 3], seed: u64, device: &Device) -> Self {
        let mut init = Init::new(seed);
        let mut layer = |i: usize, o: usize| {
            let w = init.xavier_normal(i * o, (o, i), 1.414);
            // att: `[1, 1, out]`, so fan_in = fan_out = out.
            let a = init.xavier_normal(o, (o, o), 1.414);
            let b = init.xavier_normal(o, (o, o), 1.414);
            let v = |x: Vec<f32>| {
                Param::from_tensor(Tensor::from_data(TensorData::new(x, [o]), device))
            };
            GatLayer {
                weight: Param::from_tensor(Tensor::from_data(TensorData::new(w, [i, o]), device)),
                att_src: v(a),
                att_dst: v(b),
            }
        };
        let conv1 = layer(widths[0], widths[1]);
        let conv2 = layer(widths[1], widths[2]);
        Stagate { conv1, conv2 }
    }

    /// `(latent h2 [n, out], reconstruction h4 [n, in])` of `x` (`[n, in]`), the decoder's
    /// weights being the encoder's transposed.
    pub fn forward(&self, x: Tensor<2>, edges: &Edges) -> (Tensor<2>, Tensor<2>) {
        let w = [
            self.conv2.weight.val().transpose().detach(),
            self.conv1.weight.val().transpose().detach(),
        ];
        let out = self.forward_with(x, edges, w);
        (out.latent, out.reconstruction)
    }

    /// The forward pass with the decoder's weights `[W3, W4]` given (`[W2^T, W1^T]`; in
    /// training, the tied decoder's parameters, [`TiedDecoder`]).
    pub fn forward_with(
        &self,
        x: Tensor<2>,
        edges: &Edges,
        decoder: [Tensor<2>; 2],
    ) -> StagateOutput {
        use burn::tensor::activation::elu;
        let [w3, w4] = decoder;
        let h = self.conv1.project(x);
        let att = self.conv1.attention(&h);
        let h1 = elu(propagate(h, &att, edges), 1.0);
        let h2 = self.conv2.project(h1);
        let h3 = elu(propagate(h2.clone().matmul(w3), &att, edges), 1.0);
        StagateOutput {
            latent: h2,
            reconstruction: h3.matmul(w4),
        }
    }

    /// The parameters a training step updates, by rank: the weights, then conv1's attention
    /// vectors (conv2's are never used, as in STAGATE, and get no gradient).
    pub fn param_ids(&self) -> (Vec<ParamId>, Vec<ParamId>) {
        (
            vec![self.conv1.weight.id, self.conv2.weight.id],
            vec![self.conv1.att_src.id, self.conv1.att_dst.id],
        )
    }
}

/// What [`Stagate::forward_with`] returns.
#[derive(Debug, Clone)]
pub struct StagateOutput {
    /// `h2`, `[n, latent]`: STAGATE's representation.
    pub latent: Tensor<2>,
    /// `h4`, `[n, in]`.
    pub reconstruction: Tensor<2>,
}

/// The decoder's weights as STAGATE trains them: `conv3.lin_src` and `conv4.lin_src` are
/// parameters of their own whose storage is the encoder's (`.data = lin_src.transpose(0, 1)`
/// assigns a view). So they receive their own gradients (from the reconstruction, not through
/// the encoder), count in the clipping norm, have their own Adam state, and their Adam update
/// lands in the encoder's weights as well: each step moves `W1` by its encoder update and then
/// by the decoder copy's.
#[derive(Module, Debug)]
pub struct TiedDecoder {
    /// `W3 = W2^T`, `[latent, hidden]`.
    pub w3: Param<Tensor<2>>,
    /// `W4 = W1^T`, `[hidden, in]`.
    pub w4: Param<Tensor<2>>,
}

impl TiedDecoder {
    /// The decoder viewing `net`'s weights, keeping `ids` (the parameters' identities across
    /// steps, so their optimiser state persists) when given.
    pub fn view(net: &Stagate, ids: Option<(ParamId, ParamId)>) -> Self {
        let t = |w: &Param<Tensor<2>>| w.val().transpose().detach().require_grad();
        let (id3, id4) = ids.unwrap_or_else(|| (ParamId::new(), ParamId::new()));
        TiedDecoder {
            w3: Param::initialized(id3, t(&net.conv2.weight)),
            w4: Param::initialized(id4, t(&net.conv1.weight)),
        }
    }

    /// `[W3, W4]` for [`Stagate::forward_with`].
    pub fn weights(&self) -> [Tensor<2>; 2] {
        [self.w3.val(), self.w4.val()]
    }

    /// `net` with its weights set to this decoder's, transposed (the shared storage after the
    /// decoder's update).
    pub fn write_back(&self, net: Stagate) -> Stagate {
        let t = |w: &Param<Tensor<2>>, id: ParamId| {
            Param::initialized(id, w.val().transpose().detach().require_grad())
        };
        Stagate {
            conv1: GatLayer {
                weight: t(&self.w4, net.conv1.weight.id),
                ..net.conv1
            },
            conv2: GatLayer {
                weight: t(&self.w3, net.conv2.weight.id),
                ..net.conv2
            },
        }
    }
}
