//! ResNet (He et al. 2016) as torchvision and timm define it (`resnet18`, `resnet50`, ...):
//! stem `conv1` 7x7 stride 2 -> `bn1` -> ReLU -> max-pool 3x3 stride 2; four stages
//! `layer1..layer4` of basic (3x3, 3x3) or bottleneck (1x1, 3x3, 1x1, expansion 4) blocks, the
//! first block of stages 2-4 with stride 2 (on the 3x3 convolution) and a `downsample`
//! 1x1 convolution + BN on the shortcut; the feature is the global average of the last stage
//! (512-d for ResNet-18, 2048-d for ResNet-50). The depth, widths and block type are read off
//! the state dict, so narrower or shallower variants load through the same code.

use super::layers::{Affine, Conv, Weights, global_avg_pool, relu, stem_pool};
use crate::model::checkpoint::ModelError;
use burn::tensor::Tensor;

/// One residual block.
#[derive(Debug, Clone)]
pub struct Block {
    /// Convolutions and their batch norms, in order (2 basic, 3 bottleneck).
    pub convs: Vec<(Conv, Affine)>,
    /// The shortcut's projection, when the shape changes.
    pub downsample: Option<(Conv, Affine)>,
}

impl Block {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let shortcut = match &self.downsample {
            Some((c, bn)) => bn.forward(c.forward(x.clone())),
            None => x.clone(),
        };
        let last = self.convs.len() - 1;
        let mut h = x;
        for (i, (c, bn)) in self.convs.iter().enumerate() {
            h = bn.forward(c.forward(h));
            if i < last {
                h = relu(h);
            }
        }
        relu(h + shortcut)
    }
}

/// A ResNet's feature extractor (no classifier).
#[derive(Debug, Clone)]
pub struct ResNet {
    /// `conv1`, `bn1`.
    pub stem: (Conv, Affine),
    /// The blocks of the four stages, in order.
    pub stages: Vec<Vec<Block>>,
    /// Whether the blocks are bottlenecks.
    pub bottleneck: bool,
}

impl ResNet {
    /// Loads a ResNet from torchvision / timm keys.
    ///
    /// # Errors
    /// [`ModelError::Layout`] naming the key when a tensor is missing or has the wrong shape.
    pub fn load(w: &Weights) -> Result<Self, ModelError> {
        let conv1 = w.conv("conv1", 3, 2)?;
        let mut channels = conv1.out_channels();
        let stem = (conv1, w.batch_norm("bn1", channels)?);
        let bottleneck = w.has("layer1.0.conv3.weight");
        let n_convs = if bottleneck { 3 } else { 2 };
        let mut stages = Vec::new();
        for s in 1..=4 {
            let mut blocks = Vec::new();
            for b in 0.. {
                let p = format!("layer{s}.{b}");
                if !w.has(&format!("{p}.conv1.weight")) {
                    break;
                }
                let stride = if s > 1 && b == 0 { 2 } else { 1 };
                let block_in = channels;
                let mut convs = Vec::new();
                for c in 1..=n_convs {
                    // The stride sits on the 3x3 convolution: conv1 of a basic block, conv2 of
                    // a bottleneck (torchvision's ResNet v1.5, timm's default).
                    let st = if (bottleneck && c == 2) || (!bottleneck && c == 1) {
                        stride
                    } else {
                        1
                    };
                    let conv = w.conv(&format!("{p}.conv{c}"), channels, st)?;
                    channels = conv.out_channels();
                    convs.push((conv, w.batch_norm(&format!("{p}.bn{c}"), channels)?));
                }
                let downsample = if w.has(&format!("{p}.downsample.0.weight")) {
                    let c = w.conv(&format!("{p}.downsample.0"), block_in, stride)?;
                    let bn = w.batch_norm(&format!("{p}.downsample.1"), c.out_channels())?;
                    Some((c, bn))
                } else if stride != 1 || block_in != channels {
                    return Err(w.layout(format!(
                        "{p}: changes shape ({block_in} -> {channels} channels, stride {stride}) but has no downsample"
                    )));
                } else {
                    None
                };
                blocks.push(Block { convs, downsample });
            }
            if blocks.is_empty() {
                return Err(w.layout(format!(
                    "missing tensor layer{s}.0.conv1.weight (not a ResNet)"
                )));
            }
            stages.push(blocks);
        }
        Ok(Self {
            stem,
            stages,
            bottleneck,
        })
    }

    /// Feature width: the last block's output channels.
    pub fn feature_dim(&self) -> usize {
        let last = self
            .stages
            .last()
            .and_then(|s| s.last())
            .expect("four stages");
        last.convs.last().expect("convolutions").0.out_channels()
    }

    /// `[n, 3, h, w]` images -> `[n, feature_dim]` pooled features.
    pub fn features(&self, x: Tensor<4>) -> Tensor<2> {
        let (c, bn) = &self.stem;
        let mut h = stem_pool(relu(bn.forward(c.forward(x))));
        for stage in &self.stages {
            for b in stage {
                h = b.forward(h);
            }
        }
        global_avg_pool(h)
    }
}
