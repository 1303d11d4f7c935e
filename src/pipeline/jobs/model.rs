//! Loading a model: a cellscope folder, a PyTorch / Lightning / safetensors checkpoint, or an
//! `hf://OWNER/NAME[@REVISION]/PATH` file fetched from the HuggingFace hub into the cache
//! first ([`crate::model::hub`]); then its compute engine on the chosen backend.

use std::path::Path;

use super::{Handle, JobError, Progress, Step};
use crate::model::hub::{Hub, HubError};
use crate::model::{BackendChoice, Engine, Model};

/// A loaded model and the engine that runs it.
pub struct Loaded {
    /// Weights, genes, preprocessing, provenance.
    pub model: Model,
    /// The compute engine (sparse CPU path, burn CPU or burn wgpu).
    pub engine: Engine,
}

/// The model named by `source` (with its gene list `genes`, default: beside the checkpoint or
/// the hub repository's `var.parquet`), without an engine. Downloads report
/// [`Progress::Download`]; cancelling stops a download or a wait for the hub at once.
///
/// # Errors
/// [`JobError::Hub`] for a failed download, [`JobError::Model`] for an unusable file,
/// [`JobError::Cancelled`].
pub fn resolve(
    source: &Path,
    genes: Option<&Path>,
    hub: &Hub,
    h: &mut Handle<'_>,
) -> Result<Model, JobError> {
    let cancel = h.cancel_flag().clone();
    let resolved = hub.resolve_model(source, genes, &mut |name, done, total| {
        h.report(Progress::Download {
            name: name.to_string(),
            done,
            total,
        });
        !cancel.load(std::sync::atomic::Ordering::Relaxed)
    });
    let (path, genes) = match resolved {
        Err(HubError::Cancelled) => return Err(JobError::Cancelled),
        r => r?,
    };
    h.step(Step::LoadModel, 0.0);
    Ok(crate::model::load_model(&path, genes.as_deref())?)
}

/// The local path of a single file named by `source`: itself, or an `hf://` file fetched into
/// the cache first (reporting [`Progress::Download`]; cancellable).
///
/// # Errors
/// [`JobError::Hub`] for a failed download, [`JobError::Cancelled`].
pub fn resolve_file(
    source: &Path,
    hub: &Hub,
    h: &mut Handle<'_>,
) -> Result<std::path::PathBuf, JobError> {
    let Some(file) = crate::model::hub::HubFile::parse(&source.to_string_lossy()) else {
        return Ok(source.to_path_buf());
    };
    let file = file?;
    let name = file.to_string();
    let cancel = h.cancel_flag().clone();
    let r = hub.fetch(&file, &mut |done, total| {
        h.report(Progress::Download {
            name: name.clone(),
            done,
            total,
        });
        !cancel.load(std::sync::atomic::Ordering::Relaxed)
    });
    match r {
        Err(HubError::Cancelled) => Err(JobError::Cancelled),
        r => Ok(r?),
    }
}

/// The compute engine for `model` on `backend`.
///
/// # Errors
/// [`JobError::Device`] when `backend` asks for a device that does not exist.
pub fn engine(model: &Model, backend: BackendChoice) -> Result<Engine, JobError> {
    Engine::new(&model.weights, backend).map_err(JobError::from)
}

/// [`resolve`] then [`engine`].
///
/// # Errors
/// As [`resolve`] and [`engine`].
pub fn load(
    source: &Path,
    genes: Option<&Path>,
    backend: BackendChoice,
    hub: &Hub,
    h: &mut Handle<'_>,
) -> Result<Loaded, JobError> {
    let model = resolve(source, genes, hub, h)?;
    let engine = engine(&model, backend)?;
    h.step(Step::LoadModel, 1.0);
    Ok(Loaded { model, engine })
}
