//! The building blocks of the image encoders, loaded from a PyTorch state dict: 2-D
//! convolutions without bias and batch normalisation in inference mode (running statistics, as
//! `model.eval()`), as per-channel affine maps.

use std::path::Path;

use burn::tensor::module::{conv2d, max_pool2d};
use burn::tensor::ops::{ConvOptions, MaxPoolOptions};
use burn::tensor::{Device, Tensor, TensorData};

use crate::model::checkpoint::{ModelError, StateDict};

/// A bias-free 2-D convolution (`torch.nn.Conv2d(bias=False)`): weight `[out, in, k, k]`,
/// square stride and zero padding.
#[derive(Debug, Clone)]
pub struct Conv {
    /// `[out, in, k, k]`.
    pub weight: Tensor<4>,
    /// Stride (both axes).
    pub stride: usize,
    /// Zero padding (both sides, both axes).
    pub padding: usize,
}

impl Conv {
    /// `[n, in, h, w] -> [n, out, h', w']`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let (s, p) = (self.stride, self.padding);
        conv2d(
            x,
            self.weight.clone(),
            None,
            ConvOptions::new([s, s], [p, p], [1, 1], 1),
        )
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.weight.dims()[0]
    }
}

/// `BatchNorm2d` in inference mode: `y = (x - mean) / sqrt(var + eps) * gamma + beta` folded
/// into `y = x * scale + shift` per channel (eps 1e-5, PyTorch's default).
#[derive(Debug, Clone)]
pub struct Affine {
    /// `gamma / sqrt(var + eps)`, `[c]`.
    pub scale: Tensor<1>,
    /// `beta - mean * scale`, `[c]`.
    pub shift: Tensor<1>,
}

impl Affine {
    /// Applies the map to `[n, c, h, w]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let c = self.scale.dims()[0];
        x * self.scale.clone().reshape([1, c, 1, 1]) + self.shift.clone().reshape([1, c, 1, 1])
    }
}

/// ReLU.
pub fn relu(x: Tensor<4>) -> Tensor<4> {
    burn::tensor::activation::relu(x)
}

/// `MaxPool2d(3, stride 2, padding 1)`, the ResNet and DenseNet stem's pooling.
pub fn stem_pool(x: Tensor<4>) -> Tensor<4> {
    max_pool2d(
        x,
        MaxPoolOptions::new([3, 3])
            .with_stride([2, 2])
            .with_padding([1, 1]),
    )
}

/// Global average pooling `[n, c, h, w] -> [n, c]`.
pub fn global_avg_pool(x: Tensor<4>) -> Tensor<2> {
    let [n, c, h, w] = x.dims();
    x.reshape([n, c, h * w]).mean_dim(2).reshape([n, c])
}

/// Tensors of a state dict, converted to burn on `device`; errors name the file and key.
pub struct Weights<'a> {
    /// The tensors.
    pub sd: &'a StateDict,
    /// The file they came from (for errors).
    pub file: &'a Path,
    /// Where to place them.
    pub device: &'a Device,
}

impl Weights<'_> {
    /// Whether `key` is present.
    pub fn has(&self, key: &str) -> bool {
        self.sd.tensors.contains_key(key)
    }

    fn values(&self, key: &str, rank: usize) -> Result<(&[f32], &[usize]), ModelError> {
        let t = self
            .sd
            .tensors
            .get(key)
            .ok_or_else(|| self.layout(format!("missing tensor {key}")))?;
        if t.shape.len() != rank {
            return Err(self.layout(format!("{key}: shape {:?}, expected rank {rank}", t.shape)));
        }
        if t.values.iter().any(|v| !v.is_finite()) {
            return Err(ModelError::NonFinite {
                file: self.file.to_path_buf(),
                key: key.to_string(),
            });
        }
        Ok((&t.values, &t.shape))
    }

    /// A layout error naming the file.
    pub fn layout(&self, message: String) -> ModelError {
        ModelError::Layout {
            file: self.file.to_path_buf(),
            message,
        }
    }

    /// The convolution `key` (`{key}.weight`, square kernel, `in_channels` inputs).
    ///
    /// # Errors
    /// [`ModelError::Layout`] when missing, not square or taking other than `in_channels`.
    pub fn conv(&self, key: &str, in_channels: usize, stride: usize) -> Result<Conv, ModelError> {
        let name = format!("{key}.weight");
        let (v, s) = self.values(&name, 4)?;
        if s[1] != in_channels || s[2] != s[3] {
            return Err(self.layout(format!(
                "{name}: shape {s:?}, expected [out, {in_channels}, k, k]"
            )));
        }
        let weight = Tensor::from_data(
            TensorData::new(v.to_vec(), [s[0], s[1], s[2], s[3]]),
            self.device,
        );
        Ok(Conv {
            weight,
            stride,
            padding: s[2] / 2,
        })
    }

    /// The batch norm `key` (`weight`, `bias`, `running_mean`, `running_var`) over `channels`.
    ///
    /// # Errors
    /// [`ModelError::Layout`] when a tensor is missing or not `[channels]`.
    pub fn batch_norm(&self, key: &str, channels: usize) -> Result<Affine, ModelError> {
        let get = |part: &str| -> Result<&[f32], ModelError> {
            let name = format!("{key}.{part}");
            let (v, s) = self.values(&name, 1)?;
            if s[0] != channels {
                return Err(self.layout(format!("{name}: shape {s:?}, expected [{channels}]")));
            }
            Ok(v)
        };
        let (g, b, m, var) = (
            get("weight")?,
            get("bias")?,
            get("running_mean")?,
            get("running_var")?,
        );
        let scale: Vec<f32> = g
            .iter()
            .zip(var)
            .map(|(&g, &v)| (g as f64 / (v as f64 + 1e-5).sqrt()) as f32)
            .collect();
        let shift: Vec<f32> = b
            .iter()
            .zip(m)
            .zip(&scale)
            .map(|((&b, &m), &s)| (b as f64 - m as f64 * s as f64) as f32)
            .collect();
        let t = |v: Vec<f32>| Tensor::from_data(TensorData::new(v, [channels]), self.device);
        Ok(Affine {
            scale: t(scale),
            shift: t(shift),
        })
    }
}
