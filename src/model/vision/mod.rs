//! Image encoders for histology (H&E patches -> feature vectors): ResNet and DenseNet as
//! torchvision and timm define them, loaded from `.safetensors` or `.pth` state dicts
//! (`hf://timm/densenet121.tv_in1k/model.safetensors`, `hf://timm/resnet18.a1_in1k/...`,
//! `hf://timm/resnet50.a1_in1k/...` on a machine with the hub), in inference mode (batch norm
//! with running statistics). The feature is the global average of the last block: 512-d for
//! ResNet-18, 2048-d for ResNet-50, 1024-d for DenseNet-121 (what mclSTExp uses).
//!
//! Input: `[n, 3, h, w]` RGB in [0, 1] ([`patches_tensor`]); mclSTExp feeds patches so, without
//! ImageNet normalisation, and [`Normalization::ImageNet`] is there for encoders that expect it.

pub mod augment;
pub mod builtin;
pub mod densenet;
pub mod layers;
pub mod resnet;
pub mod simclr;

use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};
use image::RgbImage;

use crate::model::checkpoint::{ModelError, StateDict, read_state_dict};
pub use densenet::DenseNet;
use layers::Weights;
pub use resnet::ResNet;

/// A loaded image encoder.
#[derive(Debug, Clone)]
pub enum ImageEncoder {
    /// A ResNet (basic or bottleneck blocks).
    ResNet(Box<ResNet>),
    /// A DenseNet.
    DenseNet(Box<DenseNet>),
}

/// What the encoder's input is normalised by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Normalization {
    /// Pixels / 255, as mclSTExp feeds its DenseNet.
    #[default]
    UnitRange,
    /// `(pixels / 255 - mean) / std` with ImageNet's mean (0.485, 0.456, 0.406) and std
    /// (0.229, 0.224, 0.225) (torchvision's and timm's `*.tv_in1k` / `*.a1_in1k` configs).
    ImageNet,
}

/// Where a DenseNet's feature is pooled (ResNets end in a ReLU either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Pooling {
    /// The average of torchvision's `model.features` output (`norm5`, no ReLU): what mclSTExp's
    /// `ImageEncoder` computes (`nn.Sequential(*children[:-1])`, then `adaptive_avg_pool2d`).
    #[default]
    Features,
    /// ReLU, then the average: the classifier's input (torchvision's `forward`, timm's
    /// `forward_head(pre_logits=True)`).
    PreLogits,
}

impl ImageEncoder {
    /// Reads an encoder from a `.safetensors` or `.pth` state dict (a timm or torchvision
    /// model's `state_dict()`), recognising the architecture by its keys.
    ///
    /// # Errors
    /// [`ModelError::Read`] for an unreadable file; [`ModelError::Layout`] when the tensors are
    /// neither a ResNet nor a DenseNet, naming the first key that does not fit.
    pub fn load(path: &Path, device: &Device) -> Result<Self, ModelError> {
        let sd = read_state_dict(path)?;
        Self::from_state_dict(&sd, path, device)
    }

    /// As [`Self::load`], from tensors already read (`file` names them in errors).
    ///
    /// # Errors
    /// As [`Self::load`].
    pub fn from_state_dict(
        sd: &StateDict,
        file: &Path,
        device: &Device,
    ) -> Result<Self, ModelError> {
        let w = Weights { sd, file, device };
        if w.has("features.conv0.weight") {
            return DenseNet::load(&w).map(|d| Self::DenseNet(Box::new(d)));
        }
        if w.has("conv1.weight") && w.has("layer1.0.conv1.weight") {
            return ResNet::load(&w).map(|r| Self::ResNet(Box::new(r)));
        }
        let first = sd.tensors.keys().next().cloned().unwrap_or_default();
        Err(w.layout(format!(
            "not a ResNet (conv1.weight, layer1.0.conv1.weight) or DenseNet (features.conv0.weight) state dict; first key is {first:?}"
        )))
    }

    /// Architecture name and feature width, e.g. `"DenseNet (4 blocks), 1024-d"`.
    pub fn describe(&self) -> String {
        match self {
            Self::ResNet(r) => {
                let depth: Vec<usize> = r.stages.iter().map(Vec::len).collect();
                let kind = if r.bottleneck { "bottleneck" } else { "basic" };
                format!("ResNet ({kind} blocks {depth:?}), {}-d", r.feature_dim())
            }
            Self::DenseNet(d) => {
                let depth: Vec<usize> = d.blocks.iter().map(|b| b.layers.len()).collect();
                format!("DenseNet (layers {depth:?}), {}-d", d.feature_dim())
            }
        }
    }

    /// Feature width.
    pub fn feature_dim(&self) -> usize {
        match self {
            Self::ResNet(r) => r.feature_dim(),
            Self::DenseNet(d) => d.feature_dim(),
        }
    }

    /// `[n, 3, h, w]` -> `[n, feature_dim]`, pooled as the classifier's input
    /// ([`Pooling::PreLogits`]).
    pub fn features(&self, x: Tensor<4>) -> Tensor<2> {
        self.features_with(x, Pooling::PreLogits)
    }

    /// `[n, 3, h, w]` -> `[n, feature_dim]`, pooled as `pooling` says.
    pub fn features_with(&self, x: Tensor<4>, pooling: Pooling) -> Tensor<2> {
        match self {
            Self::ResNet(r) => r.features(x),
            Self::DenseNet(d) => d.features(x, pooling == Pooling::PreLogits),
        }
    }
}

/// Patches (all the same size) as a `[n, 3, h, w]` tensor in channel-first order.
///
/// # Panics
/// When `patches` is empty or the sizes differ (the caller cuts them alike).
pub fn patches_tensor(patches: &[RgbImage], norm: Normalization, device: &Device) -> Tensor<4> {
    let (w, h) = patches[0].dimensions();
    let (w, h) = (w as usize, h as usize);
    let (mean, std) = match norm {
        Normalization::UnitRange => ([0.0f32; 3], [1.0f32; 3]),
        Normalization::ImageNet => ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    };
    let mut v = vec![0f32; patches.len() * 3 * h * w];
    for (i, p) in patches.iter().enumerate() {
        assert_eq!(
            p.dimensions(),
            (w as u32, h as u32),
            "patches differ in size"
        );
        for (k, px) in p.pixels().enumerate() {
            for c in 0..3 {
                v[((i * 3 + c) * h * w) + k] = (px.0[c] as f32 / 255.0 - mean[c]) / std[c];
            }
        }
    }
    Tensor::from_data(TensorData::new(v, [patches.len(), 3, h, w]), device)
}
