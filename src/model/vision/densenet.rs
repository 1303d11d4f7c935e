//! DenseNet (Huang et al. 2017) as torchvision and timm define it (`densenet121`, mclSTExp's
//! image encoder): stem `features.conv0` 7x7 stride 2 -> `norm0` -> ReLU -> max-pool 3x3
//! stride 2; dense blocks whose layers compute `norm1 -> ReLU -> conv1 (1x1, bn_size * growth)
//! -> norm2 -> ReLU -> conv2 (3x3, growth)` and concatenate it to their input; transitions
//! `norm -> ReLU -> conv (1x1) -> avg-pool 2x2`; then `norm5` and the global average, with or
//! without a ReLU between ([`super::Pooling`]; 1024-d for DenseNet-121). Growth rate, block sizes and widths are read off the state dict;
//! torchvision's old keys (`norm.1`, `conv.1`) are accepted as its loader accepts them.

use burn::tensor::Tensor;
use burn::tensor::module::avg_pool2d;
use burn::tensor::ops::AvgPoolOptions;

use super::layers::{Affine, Conv, Weights, global_avg_pool, relu, stem_pool};
use crate::model::checkpoint::ModelError;

/// One dense layer: two pre-activation convolutions.
#[derive(Debug, Clone)]
pub struct DenseLayer {
    /// `(norm1, conv1)`, `(norm2, conv2)`.
    pub parts: [(Affine, Conv); 2],
}

/// A dense block and the transition after it (none after the last block).
#[derive(Debug, Clone)]
pub struct DenseBlock {
    /// The block's layers.
    pub layers: Vec<DenseLayer>,
    /// `(norm, conv)` of the transition, followed by a 2x2 average pool.
    pub transition: Option<(Affine, Conv)>,
}

/// A DenseNet's feature extractor (no classifier).
#[derive(Debug, Clone)]
pub struct DenseNet {
    /// `conv0`, `norm0`.
    pub stem: (Conv, Affine),
    /// Dense blocks.
    pub blocks: Vec<DenseBlock>,
    /// `norm5`.
    pub norm5: Affine,
    width: usize,
}

/// `key` or torchvision's pre-0.4 spelling of it (`norm1` was `norm.1`).
fn key_of(w: &Weights, key: &str) -> String {
    if w.has(&format!("{key}.weight")) {
        return key.to_string();
    }
    key.replace("norm1", "norm.1")
        .replace("norm2", "norm.2")
        .replace("conv1", "conv.1")
        .replace("conv2", "conv.2")
}

impl DenseNet {
    /// Loads a DenseNet from torchvision / timm keys.
    ///
    /// # Errors
    /// [`ModelError::Layout`] naming the key when a tensor is missing or has the wrong shape.
    pub fn load(w: &Weights) -> Result<Self, ModelError> {
        let conv0 = w.conv("features.conv0", 3, 2)?;
        let mut c = conv0.out_channels();
        let stem = (conv0, w.batch_norm("features.norm0", c)?);
        let mut blocks = Vec::new();
        for b in 1.. {
            let mut layers = Vec::new();
            for l in 1.. {
                let p = format!("features.denseblock{b}.denselayer{l}");
                if !w.has(&format!("{}.weight", key_of(w, &format!("{p}.conv1")))) {
                    break;
                }
                let n1 = w.batch_norm(&key_of(w, &format!("{p}.norm1")), c)?;
                let c1 = w.conv(&key_of(w, &format!("{p}.conv1")), c, 1)?;
                let n2 = w.batch_norm(&key_of(w, &format!("{p}.norm2")), c1.out_channels())?;
                let c2 = w.conv(&key_of(w, &format!("{p}.conv2")), c1.out_channels(), 1)?;
                c += c2.out_channels();
                layers.push(DenseLayer {
                    parts: [(n1, c1), (n2, c2)],
                });
            }
            if layers.is_empty() {
                break;
            }
            let t = format!("features.transition{b}");
            let transition = if w.has(&format!("{t}.conv.weight")) {
                let n = w.batch_norm(&format!("{t}.norm"), c)?;
                let conv = w.conv(&format!("{t}.conv"), c, 1)?;
                c = conv.out_channels();
                Some((n, conv))
            } else {
                None
            };
            blocks.push(DenseBlock { layers, transition });
        }
        if blocks.is_empty() {
            return Err(w.layout(
                "missing tensor features.denseblock1.denselayer1.conv1.weight (not a DenseNet)"
                    .into(),
            ));
        }
        Ok(Self {
            stem,
            blocks,
            norm5: w.batch_norm("features.norm5", c)?,
            width: c,
        })
    }

    /// Feature width (`norm5`'s channels).
    pub fn feature_dim(&self) -> usize {
        self.width
    }

    /// `[n, 3, h, w]` images -> `[n, feature_dim]` pooled features: the average of `norm5`'s
    /// output, after a ReLU when `relu_last` (the classifier's input) and without (torchvision's
    /// `model.features`, as mclSTExp pools it).
    pub fn features(&self, x: Tensor<4>, relu_last: bool) -> Tensor<2> {
        let (c, bn) = &self.stem;
        let mut h = stem_pool(relu(bn.forward(c.forward(x))));
        for b in &self.blocks {
            for layer in &b.layers {
                let mut y = h.clone();
                for (bn, conv) in &layer.parts {
                    y = conv.forward(relu(bn.forward(y)));
                }
                h = Tensor::cat(vec![h, y], 1);
            }
            if let Some((bn, conv)) = &b.transition {
                h = conv.forward(relu(bn.forward(h)));
                h = avg_pool2d(h, AvgPoolOptions::new([2, 2]).with_stride([2, 2]));
            }
        }
        let h = self.norm5.forward(h);
        global_avg_pool(if relu_last { relu(h) } else { h })
    }
}
