//! [`MclStExp`] to and from a PyTorch-named state dict (the public code's keys; `Linear` weights
//! `[out, in]`), for saving a trained model as `.safetensors` and for the parity fixture.

use std::path::Path;

use burn::module::Param;
use burn::nn::{LayerNorm, LayerNormConfig, Linear};
use burn::tensor::{Device, Tensor, TensorData};

use super::mclstexp::{AttnBlock, MclConfig, MclStExp, ProjectionHead};
use crate::model::checkpoint::{ModelError, StateDict};
use crate::model::nets::{dense_from_linear, linear_from_dense, tensor_values};

/// A named tensor in PyTorch layout: key, shape, values.
pub type Named = (String, Vec<usize>, Vec<f32>);

fn linear_out(key: &str, l: &Linear, out: &mut Vec<Named>) {
    let d = dense_from_linear(l);
    out.push((format!("{key}.weight"), vec![d.n_out, d.n_in], d.weight));
    if l.bias.is_some() {
        out.push((format!("{key}.bias"), vec![d.n_out], d.bias));
    }
}

fn norm_out(key: &str, l: &LayerNorm, out: &mut Vec<Named>) {
    let n = l.gamma.val().dims()[0];
    out.push((
        format!("{key}.weight"),
        vec![n],
        tensor_values(l.gamma.val()),
    ));
    if let Some(b) = &l.beta {
        out.push((format!("{key}.bias"), vec![n], tensor_values(b.val())));
    }
}

fn head_out(key: &str, h: &ProjectionHead, out: &mut Vec<Named>) {
    linear_out(&format!("{key}.projection"), &h.projection, out);
    linear_out(&format!("{key}.fc"), &h.fc, out);
    norm_out(&format!("{key}.layer_norm"), &h.layer_norm, out);
}

/// The network's tensors under the public code's names.
pub fn state_dict(net: &MclStExp) -> Vec<Named> {
    let mut out = Vec::new();
    for (key, p) in [
        ("x_embed.weight", &net.x_embed),
        ("y_embed.weight", &net.y_embed),
    ] {
        out.push((
            key.to_string(),
            p.val().dims().to_vec(),
            tensor_values(p.val()),
        ));
    }
    for (i, b) in net.spot_encoder.iter().enumerate() {
        let k = format!("spot_encoder.{i}");
        norm_out(&format!("{k}.attn.norm"), &b.attn_norm, &mut out);
        linear_out(&format!("{k}.attn.fn.to_qkv"), &b.to_qkv, &mut out);
        linear_out(&format!("{k}.attn.fn.to_out.0"), &b.to_out, &mut out);
        norm_out(&format!("{k}.ff.norm"), &b.ff_norm, &mut out);
        linear_out(&format!("{k}.ff.fn.net.0"), &b.ff1, &mut out);
        linear_out(&format!("{k}.ff.fn.net.3"), &b.ff2, &mut out);
    }
    head_out("spot_projection", &net.spot_projection, &mut out);
    head_out("image_projection", &net.image_projection, &mut out);
    out
}

/// Reads tensors of a state dict by key, checking shapes.
struct Reader<'a> {
    sd: &'a StateDict,
    file: &'a Path,
    device: &'a Device,
}

impl Reader<'_> {
    fn get(&self, key: &str, shape: &[usize]) -> Result<&[f32], ModelError> {
        let err = |message: String| ModelError::Layout {
            file: self.file.to_path_buf(),
            message,
        };
        let t = self
            .sd
            .tensors
            .get(key)
            .ok_or_else(|| err(format!("missing tensor {key} (not an mclSTExp model)")))?;
        if t.shape != shape {
            return Err(err(format!(
                "{key}: shape {:?}, expected {shape:?}",
                t.shape
            )));
        }
        Ok(&t.values)
    }

    fn matrix(&self, key: &str, rows: usize, cols: usize) -> Result<Param<Tensor<2>>, ModelError> {
        let v = self.get(key, &[rows, cols])?.to_vec();
        Ok(Param::from_tensor(Tensor::from_data(
            TensorData::new(v, [rows, cols]),
            self.device,
        )))
    }

    fn vector(&self, key: &str, n: usize) -> Result<Param<Tensor<1>>, ModelError> {
        let v = self.get(key, &[n])?.to_vec();
        Ok(Param::from_tensor(Tensor::from_data(
            TensorData::new(v, [n]),
            self.device,
        )))
    }

    fn linear(
        &self,
        key: &str,
        n_in: usize,
        n_out: usize,
        bias: bool,
    ) -> Result<Linear, ModelError> {
        let weight = self.get(&format!("{key}.weight"), &[n_out, n_in])?.to_vec();
        let bias_values = if bias {
            self.get(&format!("{key}.bias"), &[n_out])?.to_vec()
        } else {
            vec![0.0; n_out]
        };
        let d = crate::model::Dense {
            weight,
            bias: bias_values,
            n_in,
            n_out,
        };
        let mut l = linear_from_dense(&d, self.device);
        if !bias {
            l.bias = None;
        }
        Ok(l)
    }

    fn norm(&self, key: &str, n: usize) -> Result<LayerNorm, ModelError> {
        let mut l = LayerNormConfig::new(n).init(self.device);
        l.gamma = self.vector(&format!("{key}.weight"), n)?;
        l.beta = Some(self.vector(&format!("{key}.bias"), n)?);
        Ok(l)
    }

    fn head(&self, key: &str, n_in: usize, n_out: usize) -> Result<ProjectionHead, ModelError> {
        Ok(ProjectionHead {
            projection: self.linear(&format!("{key}.projection"), n_in, n_out, true)?,
            fc: self.linear(&format!("{key}.fc"), n_out, n_out, true)?,
            layer_norm: self.norm(&format!("{key}.layer_norm"), n_out)?,
        })
    }
}

/// The network of `c`'s sizes from a state dict with the public code's keys (its image
/// encoder's keys, when present, are ignored: the encoder is loaded separately).
///
/// # Errors
/// [`ModelError::Layout`] naming the first missing key or wrong shape.
pub fn from_state_dict(
    sd: &StateDict,
    file: &Path,
    c: &MclConfig,
    device: &Device,
) -> Result<MclStExp, ModelError> {
    let r = Reader { sd, file, device };
    let inner = c.heads * c.dim_head;
    let mut blocks = Vec::new();
    for i in 0..c.layers {
        let k = format!("spot_encoder.{i}");
        blocks.push(AttnBlock {
            attn_norm: r.norm(&format!("{k}.attn.norm"), c.genes)?,
            to_qkv: r.linear(&format!("{k}.attn.fn.to_qkv"), c.genes, 3 * inner, false)?,
            to_out: r.linear(&format!("{k}.attn.fn.to_out.0"), inner, c.genes, true)?,
            ff_norm: r.norm(&format!("{k}.ff.norm"), c.genes)?,
            ff1: r.linear(&format!("{k}.ff.fn.net.0"), c.genes, c.genes, true)?,
            ff2: r.linear(&format!("{k}.ff.fn.net.3"), c.genes, c.genes, true)?,
            heads: c.heads,
        });
    }
    Ok(MclStExp {
        x_embed: r.matrix("x_embed.weight", c.positions, c.genes)?,
        y_embed: r.matrix("y_embed.weight", c.positions, c.genes)?,
        spot_encoder: blocks,
        spot_projection: r.head("spot_projection", c.genes, c.projection_dim)?,
        image_projection: r.head("image_projection", c.image_dim, c.projection_dim)?,
    })
}

/// Writes named tensors as `.safetensors` (f32), with optional metadata, atomically (a part
/// file renamed into place).
///
/// # Errors
/// I/O errors, or a shape that does not match its values.
pub fn write_safetensors(
    path: &Path,
    named: &[Named],
    metadata: Option<std::collections::HashMap<String, String>>,
) -> std::io::Result<()> {
    let bytes: Vec<Vec<u8>> = named
        .iter()
        .map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let views = named
        .iter()
        .zip(&bytes)
        .map(|((k, shape, _), b)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), b)
                .map(|v| (k.clone(), v))
                .map_err(std::io::Error::other)
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    let out = safetensors::serialize(views, metadata).map_err(std::io::Error::other)?;
    let mut part = crate::data::part::file(path, ".safetensors")?;
    std::io::Write::write_all(&mut part, &out)?;
    crate::data::part::persist(part, path)
}
