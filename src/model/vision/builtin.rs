//! Image encoders that need no file: randomly initialised torchvision architectures (the
//! "random-weight encoder" baseline of histology-to-expression papers, and the only DenseNet
//! there is where pretrained weights cannot be downloaded), and colour-and-texture statistics
//! of the patch (the simplest image feature, a baseline for any learned one).
//!
//! Names (`--encoder`): `random:densenet121[:SEED]`, `random:resnet18[:SEED]`,
//! `colour-texture`.

use std::collections::BTreeMap;

use image::RgbImage;

use crate::data::rng::Rng;
use crate::model::checkpoint::StateDict;
use crate::model::torch_pickle::{DType, TensorData};

/// A name that starts like a built-in encoder (`random:`) but names none.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}: expected random:densenet121[:SEED] or random:resnet18[:SEED] (SEED a number)")]
pub struct UnknownBuiltin {
    /// The name given.
    pub name: String,
}

/// An encoder named without a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Builtin {
    /// torchvision's DenseNet-121 with its default initialisation.
    RandomDenseNet121 {
        /// Seed of the weights.
        seed: u64,
    },
    /// torchvision's ResNet-18 with its default initialisation.
    RandomResNet18 {
        /// Seed of the weights.
        seed: u64,
    },
    /// [`colour_texture`] statistics.
    ColourTexture,
}

impl Builtin {
    /// The built-in encoder `name` names, or `None` for a file or `hf://` name.
    ///
    /// # Errors
    /// [`UnknownBuiltin`] for a `random:` name of another architecture or a seed that is not a
    /// number.
    pub fn parse(name: &str) -> Option<Result<Self, UnknownBuiltin>> {
        if name == "colour-texture" || name == "color-texture" {
            return Some(Ok(Self::ColourTexture));
        }
        let rest = name.strip_prefix("random:")?;
        let (arch, seed) = rest.split_once(':').unwrap_or((rest, "0"));
        let unknown = || UnknownBuiltin { name: name.into() };
        Some(match (arch, seed.parse::<u64>()) {
            ("densenet121", Ok(seed)) => Ok(Self::RandomDenseNet121 { seed }),
            ("resnet18", Ok(seed)) => Ok(Self::RandomResNet18 { seed }),
            _ => Err(unknown()),
        })
    }

    /// A stable identifier (the feature cache and the model folder record it).
    pub fn id(&self) -> String {
        match self {
            Self::RandomDenseNet121 { seed } => format!("random:densenet121:{seed}"),
            Self::RandomResNet18 { seed } => format!("random:resnet18:{seed}"),
            Self::ColourTexture => "colour-texture".into(),
        }
    }

    /// The random network's state dict (timm / torchvision keys), `None` for
    /// [`Builtin::ColourTexture`].
    pub fn state_dict(&self) -> Option<StateDict> {
        match *self {
            Self::RandomDenseNet121 { seed } => Some(densenet121(seed)),
            Self::RandomResNet18 { seed } => Some(resnet18(seed)),
            Self::ColourTexture => None,
        }
    }
}

/// Builds a state dict with torchvision's initialisation: convolutions Kaiming-normal
/// (`std = sqrt(2 / fan)`), batch norms weight 1, bias 0, running mean 0, variance 1.
struct Builder {
    rng: Rng,
    t: BTreeMap<String, TensorData>,
    fan_out: bool,
}

impl Builder {
    fn conv(&mut self, key: &str, out: usize, input: usize, k: usize) {
        let fan = if self.fan_out {
            out * k * k
        } else {
            input * k * k
        };
        let std = (2.0 / fan as f64).sqrt();
        let n = out * input * k * k;
        let values = (0..n).map(|_| (self.rng.normal() * std) as f32).collect();
        self.put(&format!("{key}.weight"), vec![out, input, k, k], values);
    }

    fn bn(&mut self, key: &str, c: usize) {
        for (part, v) in [
            ("weight", 1.0),
            ("bias", 0.0),
            ("running_mean", 0.0),
            ("running_var", 1.0),
        ] {
            self.put(&format!("{key}.{part}"), vec![c], vec![v; c]);
        }
    }

    fn put(&mut self, key: &str, shape: Vec<usize>, values: Vec<f32>) {
        self.t.insert(
            key.into(),
            TensorData {
                shape,
                values,
                dtype: DType::F32,
            },
        );
    }

    fn done(self) -> StateDict {
        StateDict {
            tensors: self.t,
            hyper_parameters: None,
            format: "built-in random weights",
        }
    }
}

/// torchvision's `densenet121()`: growth 32, blocks 6-12-24-16, bottleneck 4 x growth, 64
/// initial features; Kaiming-normal (fan-in) convolutions.
fn densenet121(seed: u64) -> StateDict {
    let mut b = Builder {
        rng: Rng::new(seed),
        t: BTreeMap::new(),
        fan_out: false,
    };
    let (growth, bn_size) = (32, 4);
    b.conv("features.conv0", 64, 3, 7);
    b.bn("features.norm0", 64);
    let mut c = 64;
    let blocks = [6, 12, 24, 16];
    for (i, &layers) in blocks.iter().enumerate() {
        for l in 1..=layers {
            let p = format!("features.denseblock{}.denselayer{l}", i + 1);
            b.bn(&format!("{p}.norm1"), c);
            b.conv(&format!("{p}.conv1"), bn_size * growth, c, 1);
            b.bn(&format!("{p}.norm2"), bn_size * growth);
            b.conv(&format!("{p}.conv2"), growth, bn_size * growth, 3);
            c += growth;
        }
        if i + 1 < blocks.len() {
            let p = format!("features.transition{}", i + 1);
            b.bn(&format!("{p}.norm"), c);
            b.conv(&format!("{p}.conv"), c / 2, c, 1);
            c /= 2;
        }
    }
    b.bn("features.norm5", c);
    b.done()
}

/// torchvision's `resnet18()`: basic blocks 2-2-2-2 of widths 64-512; Kaiming-normal
/// (fan-out) convolutions.
fn resnet18(seed: u64) -> StateDict {
    let mut b = Builder {
        rng: Rng::new(seed),
        t: BTreeMap::new(),
        fan_out: true,
    };
    b.conv("conv1", 64, 3, 7);
    b.bn("bn1", 64);
    let mut c = 64;
    for (s, width) in [64, 128, 256, 512].into_iter().enumerate() {
        for k in 0..2 {
            let p = format!("layer{}.{k}", s + 1);
            b.conv(&format!("{p}.conv1"), width, c, 3);
            b.bn(&format!("{p}.bn1"), width);
            b.conv(&format!("{p}.conv2"), width, width, 3);
            b.bn(&format!("{p}.bn2"), width);
            if k == 0 && (s > 0 || c != width) {
                b.conv(&format!("{p}.downsample.0"), width, c, 1);
                b.bn(&format!("{p}.downsample.1"), width);
            }
            c = width;
        }
    }
    b.done()
}

/// Width of [`colour_texture`]'s vector.
pub const COLOUR_TEXTURE_DIM: usize = 12;

/// Colour and texture statistics of a patch (values on 0..1): mean and standard deviation of
/// R, G, B, of HSV saturation and value; mean Sobel gradient magnitude of the grey image
/// (edges, nuclei boundaries) and its standard deviation. Haematoxylin-dense (purple, dark)
/// and eosin (pink) regions and glass separate on these.
pub fn colour_texture(p: &RgbImage) -> [f32; COLOUR_TEXTURE_DIM] {
    let (w, h) = (p.width() as usize, p.height() as usize);
    let n = (w * h).max(1) as f64;
    let mut sums = [0f64; 5];
    let mut sq = [0f64; 5];
    let mut grey = vec![0f64; w * h];
    for (i, px) in p.pixels().enumerate() {
        let [r, g, b] = px.0.map(|v| f64::from(v) / 255.0);
        let (max, min) = (r.max(g).max(b), r.min(g).min(b));
        let sat = if max > 0.0 { (max - min) / max } else { 0.0 };
        for (k, v) in [r, g, b, sat, max].into_iter().enumerate() {
            sums[k] += v;
            sq[k] += v * v;
        }
        grey[i] = 0.299 * r + 0.587 * g + 0.114 * b;
    }
    let mut out = [0f32; COLOUR_TEXTURE_DIM];
    for k in 0..5 {
        let m = sums[k] / n;
        out[2 * k] = m as f32;
        out[2 * k + 1] = (sq[k] / n - m * m).max(0.0).sqrt() as f32;
    }
    let (mut gs, mut gq, mut gn) = (0f64, 0f64, 0f64);
    for y in 1..h.saturating_sub(1) {
        for x in 1..w.saturating_sub(1) {
            let at = |dx: usize, dy: usize| grey[(y + dy - 1) * w + x + dx - 1];
            let gx = at(2, 0) + 2.0 * at(2, 1) + at(2, 2) - at(0, 0) - 2.0 * at(0, 1) - at(0, 2);
            let gy = at(0, 2) + 2.0 * at(1, 2) + at(2, 2) - at(0, 0) - 2.0 * at(1, 0) - at(2, 0);
            let m = (gx * gx + gy * gy).sqrt();
            gs += m;
            gq += m * m;
            gn += 1.0;
        }
    }
    let gm = gs / gn.max(1.0);
    out[10] = gm as f32;
    out[11] = (gq / gn.max(1.0) - gm * gm).max(0.0).sqrt() as f32;
    out
}
