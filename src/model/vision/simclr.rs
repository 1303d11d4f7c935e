//! A small image encoder pre-trained self-supervised on a slide's own tiles, for machines
//! without pretrained weights: SimCLR (Chen et al. 2020) on two augmented views of each tile
//! ([`super::augment`], plus vertical flips), NT-Xent loss
//! ([`crate::model::train::nt_xent_loss`], temperature 0.2), Adam.
//!
//! The encoder is a narrow ResNet in timm's layout (timm's plain 64-wide stem, then basic
//! blocks, one per stage, widths 16-32-64-128; `timm.models.resnet.ResNet(BasicBlock, [1, 1, 1,
//! 1], channels=(16, 32, 64, 128))` loads the saved file) on tiles downsampled to [`INPUT_PX`] pixels;
//! the feature is the pooled last stage (128-d); inputs are values / 255 as for mclSTExp. Saved
//! as `.safetensors` under timm's keys with
//! the input size in the metadata (`input_px`), so [`super::ImageEncoder`] reads it like any
//! ResNet and the feature job resizes patches to the size it was trained on.

use std::sync::atomic::{AtomicBool, Ordering};

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use image::RgbImage;

use super::augment::Augment;
use super::layers::{global_avg_pool, stem_pool};
use super::{Normalization, patches_tensor};
use crate::data::rng::Rng;
use crate::model::histology::weights::Named;
use crate::model::nets::tensor_values;
use crate::model::train::TrainError;
use crate::model::train::nt_xent_loss;

/// Side of the tiles the encoder sees, in pixels (tiles are downsampled to it).
pub const INPUT_PX: u32 = 64;

/// Stem width (timm's plain stem).
const STEM: usize = 64;

/// Stage widths.
const WIDTHS: [usize; 4] = [16, 32, 64, 128];

fn conv(input: usize, output: usize, k: usize, stride: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([input, output], [k, k])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(k / 2, k / 2, k / 2, k / 2))
        .with_bias(false)
        .init(device)
}

fn bn(c: usize, device: &Device) -> BatchNorm {
    BatchNormConfig::new(c).init(device)
}

/// A basic residual block.
#[derive(Module, Debug)]
pub struct Block {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    down: Option<(Conv2d, BatchNorm)>,
}

impl Block {
    fn new(input: usize, output: usize, stride: usize, device: &Device) -> Self {
        let down = (stride != 1 || input != output)
            .then(|| (conv(input, output, 1, stride, device), bn(output, device)));
        Self {
            conv1: conv(input, output, 3, stride, device),
            bn1: bn(output, device),
            conv2: conv(output, output, 3, 1, device),
            bn2: bn(output, device),
            down,
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let short = match &self.down {
            Some((c, b)) => b.forward(c.forward(x.clone())),
            None => x.clone(),
        };
        let h = relu(self.bn1.forward(self.conv1.forward(x)));
        relu(self.bn2.forward(self.conv2.forward(h)) + short)
    }
}

/// The encoder and SimCLR's projection head.
#[derive(Module, Debug)]
pub struct SimClr {
    conv1: Conv2d,
    bn1: BatchNorm,
    blocks: Vec<Block>,
    head1: Linear,
    head2: Linear,
}

impl SimClr {
    /// A new network (burn's default initialisation, seeded through the device by the caller).
    pub fn new(device: &Device) -> Self {
        let mut blocks = Vec::new();
        let mut c = STEM;
        for (s, &w) in WIDTHS.iter().enumerate() {
            blocks.push(Block::new(c, w, if s == 0 { 1 } else { 2 }, device));
            c = w;
        }
        Self {
            conv1: conv(3, STEM, 7, 2, device),
            bn1: bn(STEM, device),
            blocks,
            head1: LinearConfig::new(c, c).init(device),
            head2: LinearConfig::new(c, 64).init(device),
        }
    }

    /// `[n, 3, INPUT_PX, INPUT_PX]` -> pooled features `[n, 128]`.
    pub fn features(&self, x: Tensor<4>) -> Tensor<2> {
        let mut h = stem_pool(relu(self.bn1.forward(self.conv1.forward(x))));
        for b in &self.blocks {
            h = b.forward(h);
        }
        global_avg_pool(h)
    }

    /// The projection `[n, 64]` SimCLR's loss compares.
    pub fn project(&self, x: Tensor<4>) -> Tensor<2> {
        self.head2
            .forward(relu(self.head1.forward(self.features(x))))
    }
}

/// Recipe of [`pretrain`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimClrTraining {
    /// Passes over the tiles.
    pub epochs: usize,
    /// Tiles per batch (each gives two views).
    pub batch: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// NT-Xent temperature.
    pub temperature: f64,
    /// Seed of the views and the order.
    pub seed: u64,
}

impl Default for SimClrTraining {
    fn default() -> Self {
        Self {
            epochs: 20,
            batch: 64,
            lr: 1e-3,
            temperature: 0.2,
            seed: 0,
        }
    }
}

/// The input side an encoder file asks for (`input_px` in a safetensors file's metadata, as
/// [`save`] writes it), `None` for files without it.
pub fn input_px(path: &std::path::Path) -> Option<u32> {
    let bytes = std::fs::read(path).ok()?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).ok()?;
    meta.metadata().as_ref()?.get("input_px")?.parse().ok()
}

/// Writes the encoder as `.safetensors` under timm's keys with `input_px` in the metadata,
/// atomically.
///
/// # Errors
/// I/O errors.
pub fn save(net: &SimClr, path: &std::path::Path) -> std::io::Result<()> {
    let meta = std::collections::HashMap::from([
        ("input_px".to_string(), INPUT_PX.to_string()),
        (
            "trained_by".to_string(),
            "cellscope histology pretrain-encoder (SimCLR)".to_string(),
        ),
    ]);
    crate::model::histology::weights::write_safetensors(path, &timm_state_dict(net), Some(meta))
}

/// `tile` downsampled to [`INPUT_PX`] (triangle filter).
pub fn downsample(tile: &RgbImage) -> RgbImage {
    image::imageops::resize(
        tile,
        INPUT_PX,
        INPUT_PX,
        image::imageops::FilterType::Triangle,
    )
}

/// Pre-trains on `tiles` (already downsampled, [`downsample`]); `report(epoch, epochs, mean
/// loss)`. Returns the network for inference.
///
/// # Errors
/// [`TrainError::Invalid`] with fewer than two tiles; [`TrainError::Cancelled`];
/// [`TrainError::Diverged`].
pub fn pretrain(
    tiles: &[RgbImage],
    t: &SimClrTraining,
    device: &Device,
    cancel: &AtomicBool,
    report: &mut dyn FnMut(usize, usize, f64),
) -> Result<SimClr, TrainError> {
    if tiles.len() < 2 {
        return Err(TrainError::Invalid(
            "SimCLR needs at least two tiles".into(),
        ));
    }
    let ad = device.clone().autodiff();
    ad.seed(t.seed);
    let mut net = SimClr::new(&ad);
    let mut optim = AdamConfig::new().init();
    let mut rng = Rng::new(t.seed);
    let aug = Augment {
        vflip: 0.5,
        ..Augment::default()
    };
    let mut order: Vec<usize> = (0..tiles.len()).collect();
    for epoch in 0..t.epochs {
        rng.shuffle(&mut order);
        let (mut total, mut n) = (0.0, 0usize);
        for chunk in order.chunks(t.batch.max(2)) {
            if cancel.load(Ordering::Relaxed) {
                return Err(TrainError::Cancelled);
            }
            if chunk.len() < 2 {
                continue;
            }
            let view = |rng: &mut Rng| -> Vec<RgbImage> {
                chunk.iter().map(|&i| aug.apply(&tiles[i], rng)).collect()
            };
            let (a, b) = (view(&mut rng), view(&mut rng));
            let za = net.project(patches_tensor(&a, Normalization::UnitRange, &ad));
            let zb = net.project(patches_tensor(&b, Normalization::UnitRange, &ad));
            let loss = nt_xent_loss(za, zb, t.temperature);
            let value = f64::from(loss.clone().into_scalar::<f32>());
            if !value.is_finite() {
                return Err(TrainError::Diverged(epoch));
            }
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optim.step(t.lr, net, grads);
            total += value * chunk.len() as f64;
            n += chunk.len();
        }
        report(epoch + 1, t.epochs, total / n.max(1) as f64);
    }
    Ok(net.valid())
}

/// The encoder's tensors under timm's ResNet keys, PyTorch layout: `(key, shape, values)`.
pub fn timm_state_dict(net: &SimClr) -> Vec<Named> {
    let mut out = Vec::new();
    let conv_out = |key: &str, c: &Conv2d, out: &mut Vec<Named>| {
        let w = c.weight.val();
        out.push((format!("{key}.weight"), w.dims().to_vec(), tensor_values(w)));
    };
    let bn_out = |key: &str, b: &BatchNorm, out: &mut Vec<Named>| {
        for (part, t) in [
            ("weight", b.gamma.val()),
            ("bias", b.beta.val()),
            ("running_mean", b.running_mean.value()),
            ("running_var", b.running_var.value()),
        ] {
            out.push((format!("{key}.{part}"), t.dims().to_vec(), tensor_values(t)));
        }
    };
    conv_out("conv1", &net.conv1, &mut out);
    bn_out("bn1", &net.bn1, &mut out);
    for (s, b) in net.blocks.iter().enumerate() {
        let p = format!("layer{}.0", s + 1);
        conv_out(&format!("{p}.conv1"), &b.conv1, &mut out);
        bn_out(&format!("{p}.bn1"), &b.bn1, &mut out);
        conv_out(&format!("{p}.conv2"), &b.conv2, &mut out);
        bn_out(&format!("{p}.bn2"), &b.bn2, &mut out);
        if let Some((c, n)) = &b.down {
            conv_out(&format!("{p}.downsample.0"), c, &mut out);
            bn_out(&format!("{p}.downsample.1"), n, &mut out);
        }
    }
    out
}
