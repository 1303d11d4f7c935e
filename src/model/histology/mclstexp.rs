//! mclSTExp (Shi et al. 2024; SEED_METHODS.md; public code `ZhicengShi/mclSTExp`, `model.py`
//! `mclSTExp_Attention`) in burn: spots and H&E patches embedded in one 256-d space by
//! contrastive learning.
//!
//! - spot side: log-normalised expression (`[n, genes]`) plus learned x and y embeddings of the
//!   spot's array position (`Embedding(65536, genes)` in the public code; here sized to the
//!   largest training coordinate, the only rows that code ever reads or trains), then two
//!   pre-norm transformer blocks whose sequence is the batch of spots (8 heads of 64,
//!   feed-forward width = genes, GELU), then a projection head to 256;
//! - image side: the frozen encoder's feature (DenseNet-121 `features` pooled, 1024-d) through
//!   a projection head to 256;
//! - projection head: `p = Linear(x)`, `LayerNorm(Linear(GELU(p)) + p)` (dropout 0);
//! - loss: `L = spot_emb @ image_emb^T / temperature` (temperature 1), cross-entropy of `L`
//!   and of `L^T` against the diagonal, averaged.
//!
//! Parameter names follow the public code's `state_dict` (`x_embed.weight`,
//! `spot_encoder.{i}.attn.fn.to_qkv.weight`, `image_projection.fc.bias`, ...), so the model
//! saves to and loads from a file that code reads.

use burn::module::{Module, Param};
use burn::nn::{LayerNorm, LayerNormConfig, Linear};
use burn::tensor::activation::{gelu, log_softmax, softmax};
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::data::rng::Rng;

/// The projection head: `LayerNorm(fc(GELU(p)) + p)`, `p = projection(x)`.
#[derive(Module, Debug)]
pub struct ProjectionHead {
    /// `[in -> out]`.
    pub projection: Linear,
    /// `[out -> out]`.
    pub fc: Linear,
    /// Over `out`.
    pub layer_norm: LayerNorm,
}

impl ProjectionHead {
    /// A head `input -> output` with PyTorch's default initialisation from `rng`.
    pub fn new(input: usize, output: usize, rng: &mut Rng, device: &Device) -> Self {
        Self {
            projection: linear(input, output, true, rng, device),
            fc: linear(output, output, true, rng, device),
            layer_norm: LayerNormConfig::new(output).init(device),
        }
    }

    /// `[n, input] -> [n, output]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let p = self.projection.forward(x);
        self.layer_norm
            .forward(self.fc.forward(gelu(p.clone())) + p)
    }
}

/// One pre-norm transformer block over the batch of spots.
#[derive(Module, Debug)]
pub struct AttnBlock {
    /// LayerNorm before attention (`attn.norm`).
    pub attn_norm: LayerNorm,
    /// `to_qkv`, `[dim -> 3 * heads * dim_head]`, no bias.
    pub to_qkv: Linear,
    /// `to_out.0`, `[heads * dim_head -> dim]`.
    pub to_out: Linear,
    /// LayerNorm before the feed-forward (`ff.norm`).
    pub ff_norm: LayerNorm,
    /// `ff.fn.net.0`, `[dim -> hidden]`.
    pub ff1: Linear,
    /// `ff.fn.net.3`, `[hidden -> dim]`.
    pub ff2: Linear,
    /// Attention heads.
    pub heads: usize,
}

impl AttnBlock {
    /// A block over `dim` features, `heads` heads of `dim_head`, feed-forward width `hidden`.
    pub fn new(
        dim: usize,
        heads: usize,
        dim_head: usize,
        hidden: usize,
        rng: &mut Rng,
        device: &Device,
    ) -> Self {
        let inner = heads * dim_head;
        Self {
            attn_norm: LayerNormConfig::new(dim).init(device),
            to_qkv: linear(dim, 3 * inner, false, rng, device),
            to_out: linear(inner, dim, true, rng, device),
            ff_norm: LayerNormConfig::new(dim).init(device),
            ff1: linear(dim, hidden, true, rng, device),
            ff2: linear(hidden, dim, true, rng, device),
            heads,
        }
    }

    /// `[n, dim] -> [n, dim]`: `x + Attn(LN(x))`, then `+ FF(LN(.))`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let x = self.attention(self.attn_norm.forward(x.clone())) + x;
        let h = self
            .ff2
            .forward(gelu(self.ff1.forward(self.ff_norm.forward(x.clone()))));
        h + x
    }

    /// Multi-head self-attention over the `n` rows: softmax(q k^T / sqrt(dim_head)) v per head.
    fn attention(&self, x: Tensor<2>) -> Tensor<2> {
        let n = x.dims()[0];
        let qkv = self.to_qkv.forward(x);
        let inner = qkv.dims()[1] / 3;
        let d = inner / self.heads;
        let part = |k: usize| {
            qkv.clone()
                .slice([0..n, k * inner..(k + 1) * inner])
                .reshape([n, self.heads, d])
                .swap_dims(0, 1)
        };
        let (q, k, v) = (part(0), part(1), part(2));
        let dots = q.matmul(k.swap_dims(1, 2)) * (d as f64).powf(-0.5);
        let out = softmax(dots, 2)
            .matmul(v)
            .swap_dims(0, 1)
            .reshape([n, inner]);
        self.to_out.forward(out)
    }
}

/// mclSTExp's trainable part (the image encoder is frozen and outside).
#[derive(Module, Debug)]
pub struct MclStExp {
    /// `x_embed.weight`, `[positions, genes]`.
    pub x_embed: Param<Tensor<2>>,
    /// `y_embed.weight`, `[positions, genes]`.
    pub y_embed: Param<Tensor<2>>,
    /// `spot_encoder.{i}`.
    pub spot_encoder: Vec<AttnBlock>,
    /// `spot_projection`.
    pub spot_projection: ProjectionHead,
    /// `image_projection`.
    pub image_projection: ProjectionHead,
}

/// Sizes of a new [`MclStExp`] (defaults: the public code's `train.py`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MclConfig {
    /// Genes (the spot feature width; HER2+: 785).
    pub genes: usize,
    /// Image feature width (DenseNet-121: 1024).
    pub image_dim: usize,
    /// Joint space width (256).
    pub projection_dim: usize,
    /// Attention heads (8).
    pub heads: usize,
    /// Width of a head (64).
    pub dim_head: usize,
    /// Transformer blocks (2).
    pub layers: usize,
    /// Rows of the position embeddings: largest array coordinate + 1.
    pub positions: usize,
}

impl MclConfig {
    /// The public code's sizes for `genes` genes, `image_dim`-wide features and array
    /// coordinates below `positions`.
    pub fn published(genes: usize, image_dim: usize, positions: usize) -> Self {
        Self {
            genes,
            image_dim,
            projection_dim: 256,
            heads: 8,
            dim_head: 64,
            layers: 2,
            positions,
        }
    }
}

impl MclStExp {
    /// A new network with PyTorch's default initialisations (`nn.Embedding`: N(0, 1);
    /// `nn.Linear`: weight and bias uniform in `±1/sqrt(fan_in)`; LayerNorm: 1, 0), from `seed`.
    pub fn new(c: &MclConfig, seed: u64, device: &Device) -> Self {
        let mut rng = Rng::new(seed);
        let embed = |rng: &mut Rng| {
            let v: Vec<f32> = (0..c.positions * c.genes)
                .map(|_| rng.normal() as f32)
                .collect();
            Param::from_tensor(Tensor::from_data(
                TensorData::new(v, [c.positions, c.genes]),
                device,
            ))
        };
        Self {
            x_embed: embed(&mut rng),
            y_embed: embed(&mut rng),
            spot_encoder: (0..c.layers)
                .map(|_| AttnBlock::new(c.genes, c.heads, c.dim_head, c.genes, &mut rng, device))
                .collect(),
            spot_projection: ProjectionHead::new(c.genes, c.projection_dim, &mut rng, device),
            image_projection: ProjectionHead::new(c.image_dim, c.projection_dim, &mut rng, device),
        }
    }

    /// Spot embeddings `[n, projection_dim]` of one batch: expression `[n, genes]`, array
    /// positions `x`, `y` (`[n]`); attention runs across the batch.
    pub fn spot_embeddings(
        &self,
        expr: Tensor<2>,
        x: Tensor<1, Int>,
        y: Tensor<1, Int>,
    ) -> Tensor<2> {
        let mut h = expr + self.x_embed.val().select(0, x) + self.y_embed.val().select(0, y);
        for b in &self.spot_encoder {
            h = b.forward(h);
        }
        self.spot_projection.forward(h)
    }

    /// Image embeddings `[n, projection_dim]` of features `[n, image_dim]`.
    pub fn image_embeddings(&self, features: Tensor<2>) -> Tensor<2> {
        self.image_projection.forward(features)
    }

    /// The symmetric contrastive loss of a batch (scalar): cross-entropy of the spot-to-image
    /// logits `spot @ image^T / temperature` and of their transpose against the diagonal.
    pub fn loss(&self, batch: &Batch, temperature: f64) -> Tensor<1> {
        let s = self.spot_embeddings(batch.expr.clone(), batch.x.clone(), batch.y.clone());
        let i = self.image_embeddings(batch.features.clone());
        clip_loss(s.matmul(i.transpose()) / temperature)
    }
}

/// `nn.Linear(n_in, n_out)`'s default initialisation: uniform in `±1/sqrt(n_in)` (weights
/// stored `[in, out]` as burn's `Linear`).
fn linear(n_in: usize, n_out: usize, bias: bool, rng: &mut Rng, device: &Device) -> Linear {
    let bound = 1.0 / (n_in as f64).sqrt();
    let mut draw = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|_| ((rng.uniform() * 2.0 - 1.0) * bound) as f32)
            .collect()
    };
    let w = draw(n_in * n_out);
    let b = bias.then(|| draw(n_out));
    Linear {
        weight: Param::from_tensor(Tensor::from_data(TensorData::new(w, [n_in, n_out]), device)),
        bias: b.map(|b| Param::from_tensor(Tensor::from_data(TensorData::new(b, [n_out]), device))),
    }
}

/// Mean over rows of `-log_softmax(logits)[r, r]`, and the same of the transpose, averaged.
pub fn clip_loss(logits: Tensor<2>) -> Tensor<1> {
    let n = logits.dims()[0];
    let diag = |l: Tensor<2>| {
        let eye = Tensor::<2>::eye(n, &l.device());
        (log_softmax(l, 1) * eye).sum().neg() / n as f64
    };
    (diag(logits.clone()) + diag(logits.transpose())) / 2.0
}

/// One training batch on the device.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Log-normalised expression, `[n, genes]`.
    pub expr: Tensor<2>,
    /// Array x, `[n]`.
    pub x: Tensor<1, Int>,
    /// Array y, `[n]`.
    pub y: Tensor<1, Int>,
    /// Frozen image features, `[n, image_dim]`.
    pub features: Tensor<2>,
}
