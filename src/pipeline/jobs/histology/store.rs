//! The histology model folder: `mclstexp.safetensors` (the network under the public code's
//! keys; mclSTExp only), `reference.safetensors` (`keys`: the training spots' embeddings or
//! standardised features, `values`: their expression, what prediction averages; the kNN's
//! `feature_mean`, `feature_sd`), `histology.json` ([`ModelInfo`]).

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use ndarray::Array2;

use super::mclstexp::{HistologyModel, Method, ModelInfo};
use crate::model::histology::weights;
use crate::pipeline::jobs::JobError;

/// Writes the model folder atomically (a part folder renamed into place).
///
/// # Errors
/// [`JobError::Data`] for I/O errors naming the folder.
pub fn save_model(m: &HistologyModel, dir: &Path) -> Result<(), JobError> {
    let io = |e: std::io::Error| JobError::Data(crate::data::DataError::io(dir, e));
    let part = crate::data::part::dir(dir, ".model").map_err(io)?;
    if let Some(net) = &m.net {
        let named = weights::state_dict(net);
        weights::write_safetensors(&part.path().join("mclstexp.safetensors"), &named, None)
            .map_err(io)?;
    }
    let matrix = |k: &str, a: &Array2<f32>| {
        (
            k.to_string(),
            vec![a.nrows(), a.ncols()],
            a.iter().copied().collect(),
        )
    };
    let mut reference = vec![matrix("keys", &m.keys), matrix("values", &m.values)];
    if let Some((mean, sd)) = &m.scaling {
        reference.push(("feature_mean".into(), vec![mean.len()], mean.clone()));
        reference.push(("feature_sd".into(), vec![sd.len()], sd.clone()));
    }
    weights::write_safetensors(&part.path().join("reference.safetensors"), &reference, None)
        .map_err(io)?;
    let json = serde_json::to_string_pretty(&m.info).map_err(|e| io(std::io::Error::other(e)))?;
    std::fs::write(part.path().join("histology.json"), json).map_err(io)?;
    crate::data::part::persist_dir(part, dir).map_err(io)
}

/// Reads a model folder written by [`save_model`].
///
/// # Errors
/// [`JobError::Model`] naming the file when a part is missing, malformed or of other sizes.
pub fn load_model(dir: &Path, device: &Device) -> Result<HistologyModel, JobError> {
    let read_err = |file: PathBuf, message: String| {
        JobError::Model(crate::model::ModelError::Read { file, message })
    };
    let info_path = dir.join("histology.json");
    let text = std::fs::read_to_string(&info_path)
        .map_err(|e| read_err(info_path.clone(), e.to_string()))?;
    let info: ModelInfo = serde_json::from_str(&text).map_err(|e| {
        read_err(
            info_path.clone(),
            format!("not a cellscope histology model: {e}"),
        )
    })?;
    let net = match info.method {
        Method::MclStExp => {
            let net_path = dir.join("mclstexp.safetensors");
            let sd = crate::model::checkpoint::read_state_dict(&net_path)?;
            Some(weights::from_state_dict(
                &sd,
                &net_path,
                &info.config,
                device,
            )?)
        }
        Method::Knn => None,
    };
    let ref_path = dir.join("reference.safetensors");
    let r = crate::model::checkpoint::read_state_dict(&ref_path)?;
    let matrix = |k: &str| -> Result<Array2<f32>, JobError> {
        let t = r
            .tensors
            .get(k)
            .filter(|t| t.shape.len() == 2)
            .ok_or_else(|| read_err(ref_path.clone(), format!("missing 2-D tensor {k}")))?;
        Array2::from_shape_vec((t.shape[0], t.shape[1]), t.values.clone())
            .map_err(|e| read_err(ref_path.clone(), e.to_string()))
    };
    let (keys, values) = (matrix("keys")?, matrix("values")?);
    let vector = |k: &str| r.tensors.get(k).map(|t| t.values.clone());
    let scaling = match (info.method, vector("feature_mean"), vector("feature_sd")) {
        (Method::Knn, Some(mean), Some(sd))
            if mean.len() == keys.ncols() && sd.len() == keys.ncols() =>
        {
            Some((mean, sd))
        }
        (Method::Knn, ..) => {
            return Err(read_err(
                ref_path,
                "a kNN model needs feature_mean and feature_sd of the keys' width".into(),
            ));
        }
        _ => None,
    };
    if keys.nrows() != values.nrows() || values.ncols() != info.genes.len() {
        return Err(read_err(
            ref_path,
            "keys and values do not match the panel".into(),
        ));
    }
    Ok(HistologyModel {
        net,
        keys,
        scaling,
        values,
        info,
    })
}
