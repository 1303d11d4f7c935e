//! Importing model weights: PyTorch Lightning `.ckpt`, plain `state_dict` files (`.pt`/`.pth`),
//! and safetensors. The layout (which model family, where the backbone is) is detected from the
//! keys, and the layer widths from the tensor shapes (SSL_MODELS.md, "Checkpoint layouts"):
//!
//! | keys | kind |
//! |---|---|
//! | `encoder.{0,3,..}` (+ `decoder.0.{..}`) | masked autoencoder (Random Mask, GP Mask) |
//! | `backbone.{..}` (+ `projector.*`, `bn.*`) | Barlow Twins |
//! | `inner_model.{..}` | BYOL |
//! | `classifier.{..}` (last Linear = head) | supervised / fine-tuned classifier |
//!
//! A Lightning checkpoint's tensors sit under `state_dict.`; its other entries (epoch,
//! optimizer state, callbacks, hyper-parameters) are skipped without reading their storages.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::model::torch_pickle::{DType, Simple, TensorData, read_torch_file};

/// An error importing a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The file could not be read or parsed.
    #[error("{file}: {message}")]
    Read {
        /// The file.
        file: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The tensors do not form a model cellscope knows.
    #[error("{file}: {message}")]
    Layout {
        /// The file.
        file: PathBuf,
        /// What is missing or inconsistent, naming the key.
        message: String,
    },
    /// A tensor holds NaN or infinite values.
    #[error("{file}: tensor {key} holds non-finite values (NaN or Inf)")]
    NonFinite {
        /// The file.
        file: PathBuf,
        /// The tensor's key.
        key: String,
    },
    /// The gene list does not fit the model.
    #[error("{file}: {message}")]
    Genes {
        /// The gene-list file.
        file: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The gene list (or another data file the model needs) cannot be read; the error names it.
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
}

/// The model families of Richter et al. 2024 (and cellscope's own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ModelKind {
    /// Masked autoencoder (random or gene-programme masking); backbone = `encoder`.
    MaskedAutoencoder,
    /// Barlow Twins; backbone = `backbone`.
    BarlowTwins,
    /// BYOL; backbone = `inner_model`.
    Byol,
    /// Supervised or fine-tuned classifier: backbone + `Linear(64, n_types)`.
    Classifier,
    /// A bare MLP backbone.
    Backbone,
    /// SimCLR (scSSL-Bench); backbone = the encoder, BatchNorms folded.
    Simclr,
    /// VICReg (scSSL-Bench); backbone = the encoder, BatchNorms folded.
    Vicreg,
}

impl ModelKind {
    /// Human-readable name.
    pub fn name(self) -> &'static str {
        match self {
            Self::MaskedAutoencoder => "masked autoencoder",
            Self::BarlowTwins => "Barlow Twins",
            Self::Byol => "BYOL",
            Self::Classifier => "classifier",
            Self::Backbone => "MLP backbone",
            Self::Simclr => "SimCLR",
            Self::Vicreg => "VICReg",
        }
    }
}

/// Hidden-layer activation of the backbone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Activation {
    /// SELU (the self-supervised models).
    Selu,
    /// ReLU (the supervised / fine-tuned classifiers).
    Relu,
}

/// One `Linear` layer: `y = x W^T + b`, PyTorch layout.
#[derive(Debug, Clone, PartialEq)]
pub struct Dense {
    /// Weight, `[n_out, n_in]` row-major (PyTorch's layout).
    pub weight: Vec<f32>,
    /// Bias, `[n_out]` (zeros when the layer has none).
    pub bias: Vec<f32>,
    /// Input width.
    pub n_in: usize,
    /// Output width.
    pub n_out: usize,
}

impl Dense {
    /// Number of parameters (weights and bias).
    pub fn n_params(&self) -> usize {
        self.weight.len() + self.bias.len()
    }
}

/// A model's weights as cellscope runs them: the backbone MLP and, for classifiers, the head.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelWeights {
    /// Family.
    pub kind: ModelKind,
    /// Hidden activation.
    pub activation: Activation,
    /// Backbone layers, in order (`n_genes -> ... -> embedding width`).
    pub backbone: Vec<Dense>,
    /// Classifier head (`embedding width -> n_types`), when the model has one.
    pub head: Option<Dense>,
    /// Decoder layers of an autoencoder (applied with the activation, then Sigmoid), if present.
    pub decoder: Vec<Dense>,
    /// Parameters in the whole file's model (including projector/predictor/decoder tensors).
    pub n_params_total: usize,
}

impl ModelWeights {
    /// Input width (number of genes).
    pub fn n_genes(&self) -> usize {
        self.backbone.first().map_or(0, |l| l.n_in)
    }

    /// Embedding width (output of the backbone's last Linear).
    pub fn embedding_dim(&self) -> usize {
        self.backbone.last().map_or(0, |l| l.n_out)
    }

    /// Layer widths of the backbone, e.g. `[19331, 512, 512, 256, 256, 64]`.
    pub fn widths(&self) -> Vec<usize> {
        let mut w = vec![self.n_genes()];
        w.extend(self.backbone.iter().map(|l| l.n_out));
        w
    }

    /// Backbone parameters.
    pub fn n_params_backbone(&self) -> usize {
        self.backbone.iter().map(Dense::n_params).sum()
    }
}

impl std::fmt::Display for ModelWeights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let widths: Vec<String> = self.widths().iter().map(usize::to_string).collect();
        write!(
            f,
            "{} ({:?} activation): backbone {} ({} genes in, {}-d embedding, {} parameters)",
            self.kind.name(),
            self.activation,
            widths.join(" -> "),
            self.n_genes(),
            self.embedding_dim(),
            self.n_params_backbone()
        )?;
        if let Some(h) = &self.head {
            write!(f, "; classifier head {} -> {} types", h.n_in, h.n_out)?;
        }
        if !self.decoder.is_empty() {
            write!(f, "; decoder with {} layers", self.decoder.len())?;
        }
        write!(f, "; {} parameters in the file", self.n_params_total)
    }
}

/// Tensors read from a file, keyed as in the file (`encoder.0.weight`, ...), plus metadata.
#[derive(Debug, Clone, Default)]
pub struct StateDict {
    /// Tensors by key (a Lightning checkpoint's `state_dict.` prefix removed).
    pub tensors: BTreeMap<String, TensorData>,
    /// Lightning `hyper_parameters`, when present.
    pub hyper_parameters: Option<Simple>,
    /// What the file was: "Lightning checkpoint", "PyTorch state_dict", "safetensors".
    pub format: &'static str,
}

/// Reads the tensors of a PyTorch (zip) or safetensors file.
///
/// # Errors
/// [`ModelError::Read`] for unreadable, truncated or unsupported files.
pub fn read_state_dict(path: &Path) -> Result<StateDict, ModelError> {
    let read_err = |message: String| ModelError::Read {
        file: path.to_path_buf(),
        message,
    };
    let mut head = [0u8; 8];
    {
        use std::io::Read;
        let mut f = std::fs::File::open(path).map_err(|e| read_err(e.to_string()))?;
        let n = f.read(&mut head).map_err(|e| read_err(e.to_string()))?;
        if n < 8 {
            return Err(read_err("file too short to be a checkpoint".into()));
        }
    }
    if &head[..2] == b"PK" {
        // Lightning's optimiser, loop and callback state is never needed to run a model.
        let skip = ["optimizer_states", "loops", "callbacks", "lr_schedulers"];
        let keep = |k: &str| !skip.iter().any(|s| k.starts_with(s));
        let t =
            read_torch_file(path, &keep).map_err(|e| read_err(strip_file(&e.to_string(), path)))?;
        let lightning = t.tensors.keys().any(|k| k.starts_with("state_dict."));
        let tensors = if lightning {
            t.tensors
                .into_iter()
                .filter_map(|(k, v)| k.strip_prefix("state_dict.").map(|s| (s.to_string(), v)))
                .collect()
        } else {
            t.tensors
        };
        Ok(StateDict {
            tensors,
            hyper_parameters: t.entries.get("hyper_parameters").cloned(),
            format: if lightning {
                "Lightning checkpoint"
            } else {
                "PyTorch state_dict"
            },
        })
    } else {
        read_safetensors(path)
    }
}

fn strip_file(msg: &str, path: &Path) -> String {
    msg.strip_prefix(&format!("{}: ", path.display()))
        .unwrap_or(msg)
        .to_string()
}

fn read_safetensors(path: &Path) -> Result<StateDict, ModelError> {
    use safetensors::Dtype;
    let read_err = |message: String| ModelError::Read {
        file: path.to_path_buf(),
        message,
    };
    let bytes = std::fs::read(path).map_err(|e| read_err(e.to_string()))?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| {
        read_err(format!(
            "neither a PyTorch zip checkpoint nor a safetensors file: {e}"
        ))
    })?;
    let mut tensors = BTreeMap::new();
    for (name, view) in st.tensors() {
        let dtype = match view.dtype() {
            Dtype::F32 => DType::F32,
            Dtype::F64 => DType::F64,
            Dtype::F16 => DType::F16,
            Dtype::BF16 => DType::BF16,
            Dtype::I64 => DType::I64,
            Dtype::I32 => DType::I32,
            Dtype::U8 => DType::U8,
            Dtype::BOOL => DType::Bool,
            _ => continue,
        };
        let values: Vec<f32> = view
            .data()
            .chunks_exact(dtype.size())
            .map(|c| dtype.read(c))
            .collect();
        tensors.insert(
            name,
            TensorData {
                shape: view.shape().to_vec(),
                values,
                dtype,
            },
        );
    }
    Ok(StateDict {
        tensors,
        hyper_parameters: None,
        format: "safetensors",
    })
}

/// Linear layers `{prefix}{i}.weight` (2-D) in index order, with their biases.
fn chain(sd: &StateDict, prefix: &str) -> Vec<(usize, String)> {
    let mut idx: Vec<(usize, String)> = sd
        .tensors
        .iter()
        .filter_map(|(k, t)| {
            let rest = k.strip_prefix(prefix)?;
            let i = rest.strip_suffix(".weight")?;
            let i: usize = i.parse().ok()?;
            (t.shape.len() == 2).then(|| (i, k.clone()))
        })
        .collect();
    idx.sort();
    idx
}

fn dense(sd: &StateDict, file: &Path, weight_key: &str) -> Result<Dense, ModelError> {
    let w = &sd.tensors[weight_key];
    let (n_out, n_in) = (w.shape[0], w.shape[1]);
    let bias_key = format!("{}.bias", weight_key.trim_end_matches(".weight"));
    let bias = match sd.tensors.get(&bias_key) {
        Some(b) if b.shape == [n_out] => b.values.clone(),
        Some(b) => {
            return Err(ModelError::Layout {
                file: file.to_path_buf(),
                message: format!("{bias_key} has shape {:?}, expected [{n_out}]", b.shape),
            });
        }
        None => vec![0.0; n_out],
    };
    for (k, v) in [(weight_key, &w.values), (bias_key.as_str(), &bias)] {
        if v.iter().any(|x| !x.is_finite()) {
            return Err(ModelError::NonFinite {
                file: file.to_path_buf(),
                key: k.to_string(),
            });
        }
    }
    Ok(Dense {
        weight: w.values.clone(),
        bias,
        n_in,
        n_out,
    })
}

fn layers(sd: &StateDict, file: &Path, prefix: &str) -> Result<Vec<Dense>, ModelError> {
    let keys = chain(sd, prefix);
    let mut out: Vec<Dense> = Vec::with_capacity(keys.len());
    for (_, k) in keys {
        let d = dense(sd, file, &k)?;
        if let Some(prev) = out.last()
            && prev.n_out != d.n_in
        {
            return Err(ModelError::Layout {
                file: file.to_path_buf(),
                message: format!(
                    "{k} takes {} inputs but the previous layer gives {}; the Linear layers \
                     under {prefix:?} do not chain",
                    d.n_in, prev.n_out
                ),
            });
        }
        out.push(d);
    }
    Ok(out)
}

/// Detects the layout of a state dict and extracts the model.
///
/// # Errors
/// [`ModelError::Layout`] when no known layout matches or the layers do not chain;
/// [`ModelError::NonFinite`] for NaN/Inf weights.
pub fn model_from_state_dict(sd: &StateDict, file: &Path) -> Result<ModelWeights, ModelError> {
    let candidates = [
        ("classifier.", ModelKind::Classifier, Activation::Relu),
        ("encoder.", ModelKind::MaskedAutoencoder, Activation::Selu),
        ("backbone.", ModelKind::BarlowTwins, Activation::Selu),
        ("inner_model.", ModelKind::Byol, Activation::Selu),
        ("", ModelKind::Backbone, Activation::Selu),
    ];
    for (prefix, kind, activation) in candidates {
        if chain(sd, prefix).len() < 2 {
            continue;
        }
        let mut backbone = layers(sd, file, prefix)?;
        let head = if kind == ModelKind::Classifier {
            backbone.pop()
        } else {
            None
        };
        let decoder = if kind == ModelKind::MaskedAutoencoder {
            layers(sd, file, "decoder.0.")?
        } else {
            Vec::new()
        };
        let activation = hyper_activation(sd).unwrap_or(activation);
        let n_params_total = sd
            .tensors
            .iter()
            .filter(|(k, _)| !k.ends_with("num_batches_tracked"))
            .map(|(_, t)| t.values.len())
            .sum();
        return Ok(ModelWeights {
            kind,
            activation,
            backbone,
            head,
            decoder,
            n_params_total,
        });
    }
    // Linear weights under a known prefix that are not 2-D: say so, not "unknown layout".
    let prefixes = ["encoder.", "backbone.", "inner_model.", "classifier."];
    if let Some((k, t)) = sd.tensors.iter().find(|(k, t)| {
        k.ends_with(".weight") && t.shape.len() != 2 && prefixes.iter().any(|p| k.contains(p))
    }) && !k.contains("bn")
        && !k.contains("norm")
    {
        return Err(ModelError::Layout {
            file: file.to_path_buf(),
            message: format!(
                "{k} has shape {:?}; a Linear weight is 2-D [out_features, in_features]",
                t.shape
            ),
        });
    }
    let some: Vec<&str> = sd.tensors.keys().take(8).map(String::as_str).collect();
    Err(ModelError::Layout {
        file: file.to_path_buf(),
        message: format!(
            "unknown layout: expected Linear layers under encoder., backbone., inner_model. or \
             classifier. (e.g. encoder.0.weight); found keys {some:?}"
        ),
    })
}

/// An `activation` hyper-parameter naming SELU or ReLU, when the checkpoint has one.
fn hyper_activation(sd: &StateDict) -> Option<Activation> {
    let Some(Simple::Dict(h)) = &sd.hyper_parameters else {
        return None;
    };
    match h.get("activation") {
        Some(Simple::Str(s)) if s.to_lowercase().contains("relu") => Some(Activation::Relu),
        Some(Simple::Str(s)) if s.to_lowercase().contains("selu") => Some(Activation::Selu),
        _ => None,
    }
}

/// Reads a checkpoint file and extracts the model.
///
/// # Errors
/// See [`read_state_dict`] and [`model_from_state_dict`].
pub fn load_checkpoint(path: &Path) -> Result<(ModelWeights, StateDict), ModelError> {
    let sd = read_state_dict(path)?;
    let m = model_from_state_dict(&sd, path)?;
    Ok((m, sd))
}
