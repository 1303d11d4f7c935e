//! scSSL-Bench's generic self-supervised networks (Barkmann et al. 2025; SEED_METHODS.md):
//! the bench's encoder ([`BnEncoder`]), the choice between it and the ssl_in_scg backbone
//! ([`Encoder`]), and an encoder with a projection head ([`Siamese`]) for SimCLR and VICReg.
//!
//! Projection heads are the `lightly` library's (1.6, `lightly.models.modules.heads`), which
//! the bench builds its models from: SimCLR's `SimCLRProjectionHead(emb, 256, 256)` is
//! `Linear(no bias) -> BatchNorm1d -> ReLU -> Linear(no bias) -> BatchNorm1d`; VICReg's
//! `VICRegProjectionHead(emb, 256, 256, num_layers=2)` is `Linear(no bias) -> BatchNorm1d ->
//! ReLU -> Linear(bias)`. Width 256 is the VICReg projector (the bench's model
//! configs are not public); SimCLR uses the same width.

use burn::module::{Module, ParamId};
use burn::nn::{BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

use crate::model::checkpoint::{Activation, Dense};
use crate::model::nets::{
    Mlp, MlpConfig, Projector, ProjectorConfig, dense_from_linear, linear_ids, tensor_values,
};

/// Which encoder a generic objective trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum EncoderKind {
    /// scSSL-Bench's `Linear(in,128)-BN-ReLU-Linear(128,64)-BN-Dropout` ([`BnEncoder`]).
    Bench,
    /// The ssl_in_scg MLP backbone (SELU, dropout; widths from the options).
    Backbone,
}

impl EncoderKind {
    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            EncoderKind::Bench => "bench",
            EncoderKind::Backbone => "backbone",
        }
    }
}

/// scSSL-Bench's encoder: per layer `Linear -> BatchNorm1d`, ReLU between layers, dropout on
/// the output (`Linear(in,128)-BN-ReLU-Linear(128,64)-BN-Dropout` with the bench's widths).
/// Input `[batch, genes]`, output `[batch, last width]`. BatchNorm as PyTorch's (momentum 0.1,
/// epsilon 1e-5; batch statistics in training, running ones in eval mode).
#[derive(Module, Debug)]
pub struct BnEncoder {
    /// The Linear layers (with bias, as `nn.Linear`).
    pub linears: Vec<Linear>,
    /// One BatchNorm after each Linear.
    pub norms: Vec<BatchNorm>,
    /// Dropout on the output (active only on an autodiff device).
    pub dropout: Dropout,
}

impl BnEncoder {
    /// A freshly initialised encoder with `widths` (input included, e.g. `[2000, 128, 64]`);
    /// Linear layers as PyTorch's default initialisation.
    ///
    /// # Panics
    /// Fewer than two widths, or a dropout outside `[0, 1)`.
    pub fn new(widths: &[usize], dropout: f64, device: &Device) -> Self {
        assert!(widths.len() >= 2, "an encoder needs at least two widths");
        BnEncoder {
            linears: widths
                .windows(2)
                .map(|w| LinearConfig::new(w[0], w[1]).init(device))
                .collect(),
            norms: widths[1..]
                .iter()
                .map(|&w| BatchNormConfig::new(w).init(device))
                .collect(),
            dropout: DropoutConfig::new(dropout).init(),
        }
    }

    /// Forward pass, `[batch, in] -> [batch, out]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let n = self.linears.len();
        let mut h = x;
        for (i, (l, bn)) in self.linears.iter().zip(&self.norms).enumerate() {
            h = bn.forward(l.forward(h));
            if i + 1 < n {
                h = burn::tensor::activation::relu(h);
            }
        }
        self.dropout.forward(h)
    }

    /// The eval-mode encoder as plain Linear layers (ReLU between them): each BatchNorm folded
    /// into the Linear before it, `W'[o] = W[o] s_o`, `b'_o = (b_o - mean_o) s_o + beta_o`,
    /// `s_o = gamma_o / sqrt(running_var_o + eps)`. What a saved model holds, so inference is
    /// the MLP path every model takes.
    pub fn to_folded_dense(&self) -> Vec<Dense> {
        self.linears
            .iter()
            .zip(&self.norms)
            .map(|(l, bn)| {
                let mut d = dense_from_linear(l);
                let gamma = tensor_values(bn.gamma.val());
                let beta = tensor_values(bn.beta.val());
                let mean = tensor_values(bn.running_mean.value());
                let var = tensor_values(bn.running_var.value());
                for o in 0..d.n_out {
                    let s = f64::from(gamma[o]) / (f64::from(var[o]) + bn.epsilon).sqrt();
                    for w in &mut d.weight[o * d.n_in..(o + 1) * d.n_in] {
                        *w = (f64::from(*w) * s) as f32;
                    }
                    d.bias[o] = ((f64::from(d.bias[o]) - f64::from(mean[o])) * s
                        + f64::from(beta[o])) as f32;
                }
                d
            })
            .collect()
    }

    /// Parameter ids by rank.
    pub fn param_ids(&self, two: &mut Vec<ParamId>, one: &mut Vec<ParamId>) {
        for l in &self.linears {
            linear_ids(l, two, one);
        }
        for b in &self.norms {
            one.push(b.gamma.id);
            one.push(b.beta.id);
        }
    }
}

/// The encoder a generic objective trains.
#[derive(Module, Debug)]
pub enum Encoder {
    /// scSSL-Bench's encoder.
    Bench(BnEncoder),
    /// The ssl_in_scg backbone.
    Backbone(Mlp),
}

impl Encoder {
    /// A new encoder of `kind`: the bench's widths `[genes, 128, 64]` with `dropout`, or the
    /// backbone `[genes, hidden...]` (SELU, `dropout` after hidden activations).
    pub fn new(
        kind: EncoderKind,
        genes: usize,
        hidden: &[usize],
        dropout: f64,
        device: &Device,
    ) -> Self {
        match kind {
            EncoderKind::Bench => {
                Encoder::Bench(BnEncoder::new(&[genes, 128, 64], dropout, device))
            }
            EncoderKind::Backbone => {
                let mut widths = vec![genes];
                widths.extend(hidden);
                Encoder::Backbone(MlpConfig::new(widths).with_dropout(dropout).init(device))
            }
        }
    }

    /// Embeddings `[batch, out]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        match self {
            Encoder::Bench(e) => e.forward(x),
            Encoder::Backbone(m) => m.forward(x),
        }
    }

    /// The embedding width.
    pub fn out_width(&self) -> usize {
        let last = match self {
            Encoder::Bench(e) => e.linears.last(),
            Encoder::Backbone(m) => m.layers.last(),
        };
        last.map_or(0, |l| l.weight.val().dims()[1])
    }

    /// The eval-mode layers and their hidden activation, as a saved model holds them.
    pub fn to_dense(&self) -> (Vec<Dense>, Activation) {
        match self {
            Encoder::Bench(e) => (e.to_folded_dense(), Activation::Relu),
            Encoder::Backbone(m) => (m.to_dense(), m.activation),
        }
    }

    /// Parameter ids by rank.
    pub fn param_ids(&self, two: &mut Vec<ParamId>, one: &mut Vec<ParamId>) {
        match self {
            Encoder::Bench(e) => e.param_ids(two, one),
            Encoder::Backbone(m) => m.param_ids(two, one),
        }
    }

    /// The device of the parameters.
    pub fn device(&self) -> Device {
        match self {
            Encoder::Bench(e) => e.linears[0].weight.val().device(),
            Encoder::Backbone(m) => m.layers[0].weight.val().device(),
        }
    }
}

/// The two projection heads of `lightly` the bench uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadKind {
    /// `SimCLRProjectionHead`: BatchNorm after the last Linear, no biases.
    Simclr,
    /// `VICRegProjectionHead` with two layers: bare last Linear with bias.
    Vicreg,
}

/// An encoder and a projection head; both views go through the same network.
#[derive(Module, Debug)]
pub struct Siamese {
    /// The encoder (what is saved and embeds).
    pub encoder: Encoder,
    /// The projection head.
    pub projector: Projector,
}

impl Siamese {
    /// A new network: `encoder`, then a `head` of widths `[encoder out, width, width]`.
    pub fn new(encoder: Encoder, head: HeadKind, width: usize, device: &Device) -> Self {
        let widths = vec![encoder.out_width(), width, width];
        let projector = ProjectorConfig::new(widths)
            .with_hidden_bias(false)
            .with_output_norm(head == HeadKind::Simclr)
            .init(device);
        Siamese { encoder, projector }
    }

    /// Projections `[batch, width]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.projector.forward(self.encoder.forward(x))
    }

    /// Parameter ids by rank.
    pub fn param_ids(&self, two: &mut Vec<ParamId>, one: &mut Vec<ParamId>) {
        self.encoder.param_ids(two, one);
        self.projector.param_ids(two, one);
    }
}
