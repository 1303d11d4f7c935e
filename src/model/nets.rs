//! The ssl_in_scg network family as burn modules, for training (and the burn inference path):
//! the MLP backbone and masked-autoencoder decoder ([`Mlp`]), the Barlow Twins projector and
//! the BYOL projector / predictor ([`Projector`]), and the classifier ([`Classifier`]).
//!
//! Architecture (SSL_MODELS.md, Richter et al. 2024): hidden layers are
//! `Linear -> activation -> Dropout(p)`, the last layer a bare `Linear`; the decoder ends with a
//! Sigmoid. Projectors are `Linear -> BatchNorm1d -> ReLU` per hidden layer and a bare last
//! `Linear` (Barlow Twins: hidden Linears without bias, `64 -> 256 -> 256 -> 512 -> 512`; BYOL:
//! `64 -> 4096 -> 256` with bias). Widths always come from a config or from the tensors of a
//! checkpoint, never from constants.
//!
//! Weights are stored burn-style (`[d_in, d_out]`); [`Dense`] keeps PyTorch's `[out, in]`, and
//! the conversions here transpose.

use burn::config::Config;
use burn::module::{Module, Param, ParamId};
use burn::nn::{BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig};
use burn::tensor::{Device, Tensor, TensorData};

use crate::model::checkpoint::{Activation, Dense};

/// Configuration of an [`Mlp`] (backbone or decoder).
#[derive(Config, Debug)]
pub struct MlpConfig {
    /// Layer widths including the input, e.g. `[19331, 512, 512, 256, 256, 64]` (SSL_MODELS.md).
    pub widths: Vec<usize>,
    /// Hidden activation (SELU for the self-supervised models).
    #[config(default = "Activation::Selu")]
    pub activation: Activation,
    /// Dropout after each hidden activation (0.1 in the masked-autoencoder recipe; 0 for
    /// Barlow Twins).
    #[config(default = 0.1)]
    pub dropout: f64,
    /// Apply a Sigmoid to the output (the masked-autoencoder decoder).
    #[config(default = false)]
    pub sigmoid: bool,
}

/// A multilayer perceptron: `Linear -> activation -> Dropout` per hidden layer, a bare last
/// `Linear`, optionally a final Sigmoid. Input `[batch, widths[0]]`, output `[batch, last]`.
#[derive(Module, Debug)]
pub struct Mlp {
    /// The Linear layers, in order.
    pub layers: Vec<Linear>,
    /// Dropout applied after each hidden activation (active only on an autodiff device).
    pub dropout: Dropout,
    /// Hidden activation.
    #[module(skip)]
    pub activation: Activation,
    /// Whether the output goes through a Sigmoid.
    #[module(skip)]
    pub sigmoid: bool,
}

fn activate(x: Tensor<2>, a: Activation) -> Tensor<2> {
    match a {
        Activation::Selu => selu(x),
        Activation::Relu => burn::tensor::activation::relu(x),
    }
}

/// SELU (Klambauer et al. 2017; PyTorch's constants) with the exponential taken of
/// `min(x, 0)` only. burn 0.22's `selu` exponentiates every input and masks afterwards, so an
/// activation above 88 gives `exp = inf` and its backward `0 * inf = NaN` (seen when
/// pre-training on MERFISH counts: NaN weights after about 110 steps).
pub fn selu(x: Tensor<2>) -> Tensor<2> {
    const ALPHA: f64 = 1.673_263_242_354_377_3;
    const SCALE: f64 = 1.050_700_987_355_480_5;
    let mask = x.clone().greater_equal_scalar(0.0);
    let positive = x.clone().mul_scalar(SCALE);
    let negative = x
        .clamp_max(0.0)
        .exp()
        .sub_scalar(1.0)
        .mul_scalar(ALPHA * SCALE);
    negative.mask_where(mask, positive)
}

/// A burn `Linear` holding a PyTorch-layout [`Dense`] (weight transposed to `[in, out]`).
pub fn linear_from_dense(d: &Dense, device: &Device) -> Linear {
    let mut wt = vec![0f32; d.weight.len()];
    for o in 0..d.n_out {
        for i in 0..d.n_in {
            wt[i * d.n_out + o] = d.weight[o * d.n_in + i];
        }
    }
    Linear {
        weight: Param::from_tensor(Tensor::from_data(
            TensorData::new(wt, [d.n_in, d.n_out]),
            device,
        )),
        bias: Some(Param::from_tensor(Tensor::from_data(
            TensorData::new(d.bias.clone(), [d.n_out]),
            device,
        ))),
    }
}

/// The values of a tensor as `f32`, in logical row-major order.
pub fn tensor_values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap_or_default()
}

/// A burn `Linear` back to PyTorch layout (a missing bias becomes zeros).
pub fn dense_from_linear(l: &Linear) -> Dense {
    let [n_in, n_out] = l.weight.val().dims();
    let w = tensor_values(l.weight.val());
    let mut weight = vec![0f32; w.len()];
    for i in 0..n_in {
        for o in 0..n_out {
            weight[o * n_in + i] = w[i * n_out + o];
        }
    }
    let bias = l
        .bias
        .as_ref()
        .map_or_else(|| vec![0.0; n_out], |b| tensor_values(b.val()));
    Dense {
        weight,
        bias,
        n_in,
        n_out,
    }
}

/// Parameter ids of a `Linear`, by rank: `(weights [2-D], biases [1-D])`.
pub(crate) fn linear_ids(l: &Linear, two: &mut Vec<ParamId>, one: &mut Vec<ParamId>) {
    two.push(l.weight.id);
    if let Some(b) = &l.bias {
        one.push(b.id);
    }
}

impl MlpConfig {
    /// A freshly initialised MLP (PyTorch's `nn.Linear` default: weight and bias uniform in
    /// `±1/sqrt(fan_in)`, which is burn's default Kaiming-uniform with gain `1/sqrt(3)`).
    ///
    /// # Panics
    /// Fewer than two widths, or a dropout outside `[0, 1)`.
    pub fn init(&self, device: &Device) -> Mlp {
        assert!(self.widths.len() >= 2, "an MLP needs at least two widths");
        Mlp {
            layers: self
                .widths
                .windows(2)
                .map(|w| LinearConfig::new(w[0], w[1]).init(device))
                .collect(),
            dropout: DropoutConfig::new(self.dropout).init(),
            activation: self.activation,
            sigmoid: self.sigmoid,
        }
    }
}

impl Mlp {
    /// An MLP holding existing layers (checkpoint weights).
    pub fn from_dense(
        layers: &[Dense],
        activation: Activation,
        dropout: f64,
        sigmoid: bool,
        device: &Device,
    ) -> Self {
        Mlp {
            layers: layers
                .iter()
                .map(|d| linear_from_dense(d, device))
                .collect(),
            dropout: DropoutConfig::new(dropout).init(),
            activation,
            sigmoid,
        }
    }

    /// Forward pass, `[batch, in] -> [batch, out]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let h = self.forward_linear(x);
        if self.sigmoid {
            burn::tensor::activation::sigmoid(h)
        } else {
            h
        }
    }

    /// Forward pass without the final Sigmoid (the decoder's logits).
    pub fn forward_linear(&self, x: Tensor<2>) -> Tensor<2> {
        match self.layers.first() {
            Some(l) => self.forward_after_first(l.forward(x)),
            None => x,
        }
    }

    /// [`Mlp::forward_linear`] from the first layer's output `h1 = x W_0 + b_0` (computed
    /// elsewhere: the sparse first layer of CPU training).
    pub fn forward_after_first(&self, h1: Tensor<2>) -> Tensor<2> {
        let mut h = h1;
        for l in self.layers.iter().skip(1) {
            h = l.forward(self.dropout.forward(activate(h, self.activation)));
        }
        h
    }

    /// The layers in PyTorch layout.
    pub fn to_dense(&self) -> Vec<Dense> {
        self.layers.iter().map(dense_from_linear).collect()
    }

    /// Widths including the input.
    pub fn widths(&self) -> Vec<usize> {
        let mut w = Vec::new();
        for (i, l) in self.layers.iter().enumerate() {
            let [n_in, n_out] = l.weight.val().dims();
            if i == 0 {
                w.push(n_in);
            }
            w.push(n_out);
        }
        w
    }

    /// Freezes every layer except the last `k` (fine-tuning "last:K"); `k >= len` trains all.
    pub fn freeze_all_but_last(mut self, k: usize) -> Self {
        let n = self.layers.len();
        self.layers = self
            .layers
            .into_iter()
            .enumerate()
            .map(|(i, l)| if i + k < n { l.freeze() } else { l })
            .collect();
        self
    }

    /// Parameter ids by rank, for global gradient-norm clipping.
    pub fn param_ids(&self, two: &mut Vec<ParamId>, one: &mut Vec<ParamId>) {
        for l in &self.layers {
            linear_ids(l, two, one);
        }
    }
}

/// Configuration of a [`Projector`].
#[derive(Config, Debug)]
pub struct ProjectorConfig {
    /// Widths including the input: Barlow Twins `[64, 256, 256, 512, 512]`; BYOL
    /// `[64, 4096, 256]` (projector) and `[256, 4096, 256]` (predictor).
    pub widths: Vec<usize>,
    /// Bias in the hidden Linears (false for Barlow Twins, whose BatchNorm makes it redundant).
    #[config(default = false)]
    pub hidden_bias: bool,
    /// A BatchNorm after the last Linear, which then has no bias (`lightly`'s
    /// `SimCLRProjectionHead`).
    #[config(default = false)]
    pub output_norm: bool,
}

/// `Linear -> BatchNorm1d -> ReLU` per hidden layer and a last `Linear` (bare, or followed by
/// a BatchNorm).
#[derive(Module, Debug)]
pub struct Projector {
    /// Linear layers.
    pub linears: Vec<Linear>,
    /// One BatchNorm per hidden layer, and one for the output when configured.
    pub norms: Vec<BatchNorm>,
}

impl ProjectorConfig {
    /// A freshly initialised projector (BatchNorm momentum 0.1, epsilon 1e-5, as PyTorch).
    pub fn init(&self, device: &Device) -> Projector {
        let n = self.widths.len() - 1;
        Projector {
            linears: self
                .widths
                .windows(2)
                .enumerate()
                .map(|(i, w)| {
                    let bias = if i + 1 == n {
                        !self.output_norm
                    } else {
                        self.hidden_bias
                    };
                    LinearConfig::new(w[0], w[1]).with_bias(bias).init(device)
                })
                .collect(),
            norms: self.widths[1..n + usize::from(self.output_norm)]
                .iter()
                .map(|&w| BatchNormConfig::new(w).init(device))
                .collect(),
        }
    }
}

impl Projector {
    /// Forward pass, `[batch, in] -> [batch, out]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let n = self.linears.len();
        let mut h = x;
        for (i, l) in self.linears.iter().enumerate() {
            h = l.forward(h);
            if i + 1 < n {
                h = burn::tensor::activation::relu(self.norms[i].forward(h));
            } else if let Some(bn) = self.norms.get(i) {
                h = bn.forward(h);
            }
        }
        h
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

/// A classifier: backbone MLP and `Linear(embedding, n_types)` (the fine-tuning head of the
/// reusability study). As in ssl_in_scg's `classifier.*` checkpoints, the head is one more layer
/// of the MLP: the embedding goes through the activation and dropout before it. Output: logits
/// `[batch, n_types]`.
#[derive(Module, Debug)]
pub struct Classifier {
    /// The backbone.
    pub backbone: Mlp,
    /// The head.
    pub head: Linear,
}

impl Classifier {
    /// Logits `[batch, n_types]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let e = activate(self.backbone.forward(x), self.backbone.activation);
        self.head.forward(self.backbone.dropout.forward(e))
    }

    /// Parameter ids by rank.
    pub fn param_ids(&self, two: &mut Vec<ParamId>, one: &mut Vec<ParamId>) {
        self.backbone.param_ids(two, one);
        linear_ids(&self.head, two, one);
    }
}

/// A masked autoencoder: encoder (the backbone) and decoder (ends with Sigmoid).
#[derive(Module, Debug)]
pub struct AutoEncoder {
    /// The encoder; its output is the embedding.
    pub encoder: Mlp,
    /// The decoder, `embedding -> genes`.
    pub decoder: Mlp,
}

impl AutoEncoder {
    /// Reconstruction `[batch, genes]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.decoder.forward(self.encoder.forward(x))
    }

    /// Parameter ids by rank.
    pub fn param_ids(&self, two: &mut Vec<ParamId>, one: &mut Vec<ParamId>) {
        self.encoder.param_ids(two, one);
        self.decoder.param_ids(two, one);
    }
}

/// Barlow Twins: backbone and projector (the final affine-free BatchNorm is the loss's
/// standardisation).
#[derive(Module, Debug)]
pub struct BarlowTwins {
    /// The backbone.
    pub backbone: Mlp,
    /// The projector.
    pub projector: Projector,
}

impl BarlowTwins {
    /// Projections `[batch, projector out]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.projector.forward(self.backbone.forward(x))
    }

    /// Parameter ids by rank.
    pub fn param_ids(&self, two: &mut Vec<ParamId>, one: &mut Vec<ParamId>) {
        self.backbone.param_ids(two, one);
        self.projector.param_ids(two, one);
    }
}

/// BYOL's online network: backbone ("inner model"), projector and predictor.
#[derive(Module, Debug)]
pub struct ByolOnline {
    /// The backbone.
    pub backbone: Mlp,
    /// Projector `embedding -> 4096 -> 256`.
    pub projector: Projector,
    /// Predictor `256 -> 4096 -> 256`.
    pub predictor: Projector,
}

/// BYOL's target network: an exponential moving average of the online backbone and projector.
#[derive(Module, Debug)]
pub struct ByolTarget {
    /// The backbone.
    pub backbone: Mlp,
    /// The projector.
    pub projector: Projector,
}

impl ByolOnline {
    /// Predictions `[batch, 256]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.predictor
            .forward(self.projector.forward(self.backbone.forward(x)))
    }

    /// Parameter ids by rank.
    pub fn param_ids(&self, two: &mut Vec<ParamId>, one: &mut Vec<ParamId>) {
        self.backbone.param_ids(two, one);
        self.projector.param_ids(two, one);
        self.predictor.param_ids(two, one);
    }

    /// A target network initialised as a copy of this online network (detached).
    pub fn target(&self) -> ByolTarget {
        ByolTarget {
            backbone: self.backbone.valid(),
            projector: self.projector.valid(),
        }
    }
}

fn ema_linear(t: &Linear, o: &Linear, tau: f64) -> Linear {
    let mix = |a: Tensor<2>, b: Tensor<2>| a.mul_scalar(tau) + b.mul_scalar(1.0 - tau);
    let mix1 = |a: Tensor<1>, b: Tensor<1>| a.mul_scalar(tau) + b.mul_scalar(1.0 - tau);
    let dev = t.weight.val().device();
    Linear {
        weight: Param::from_tensor(mix(t.weight.val(), o.weight.val().inner().to_device(&dev))),
        bias: match (&t.bias, &o.bias) {
            (Some(tb), Some(ob)) => Some(Param::from_tensor(mix1(
                tb.val(),
                ob.val().inner().to_device(&dev),
            ))),
            _ => None,
        },
    }
}

impl ByolTarget {
    /// Projections `[batch, 256]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.projector.forward(self.backbone.forward(x))
    }

    /// The EMA update `target = tau * target + (1 - tau) * online` (BYOL, Grill et al. 2020;
    /// tau 0.99 in ssl_in_scg). BatchNorm affine parameters follow the same rule; running
    /// statistics are the target's own.
    pub fn ema(self, online: &ByolOnline, tau: f64) -> Self {
        let backbone = Mlp {
            layers: self
                .backbone
                .layers
                .iter()
                .zip(&online.backbone.layers)
                .map(|(t, o)| ema_linear(t, o, tau))
                .collect(),
            ..self.backbone
        };
        let mut projector = self.projector;
        projector.linears = projector
            .linears
            .iter()
            .zip(&online.projector.linears)
            .map(|(t, o)| ema_linear(t, o, tau))
            .collect();
        for (t, o) in projector.norms.iter_mut().zip(&online.projector.norms) {
            let dev = t.gamma.val().device();
            let g = t.gamma.val().mul_scalar(tau)
                + o.gamma.val().inner().to_device(&dev).mul_scalar(1.0 - tau);
            let b = t.beta.val().mul_scalar(tau)
                + o.beta.val().inner().to_device(&dev).mul_scalar(1.0 - tau);
            t.gamma = Param::from_tensor(g);
            t.beta = Param::from_tensor(b);
        }
        ByolTarget {
            backbone,
            projector,
        }
    }
}
