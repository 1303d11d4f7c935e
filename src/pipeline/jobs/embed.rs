//! Embedding a dataset with a loaded model: an in-memory AnnData (the window), or an `.h5ad`
//! streamed from disk in row blocks (the CLI; memory bounded by the block, not the file).

use std::path::Path;

use super::{Handle, JobError, Progress};
use crate::data::anndata::AnnData;
use crate::data::genes::Homologs;
use crate::data::preprocess::TargetSum;
use crate::model::embed::{EmbedOptions, Embedder, Embedding};
use crate::model::{Engine, Model};

/// What to embed.
#[derive(Debug, Clone, Copy)]
pub enum EmbedInput<'a> {
    /// A dataset already in memory.
    Data(&'a AnnData),
    /// A file: `.h5ad` files are streamed in row blocks, other formats read whole.
    File(&'a Path),
}

/// Parameters of [`embed`].
#[derive(Debug, Clone, Copy, Default)]
pub struct EmbedParams<'a> {
    /// Cells per forward pass (`None`: 1,024, [`EmbedOptions::default`]).
    pub batch_size: Option<usize>,
    /// Homolog table applied to the dataset's gene symbols before alignment (e.g. mouse to
    /// human).
    pub homologs: Option<&'a Homologs>,
    /// normalize_total target overriding the model's (`Median`: scanpy's default, which the
    /// reusability study used on spatial panels; `None`: the model's, 1e4 for ssl_in_scg).
    pub target_sum: Option<TargetSum>,
}

/// Embeds every cell of `input` with `model` on `engine` (normalize_total + log1p as the model
/// was trained, genes aligned to the model's, zero-filled); returns the `n_obs x d` embedding
/// (`obsm['X_cellscope']`) with the gene coverage and throughput. Reports
/// [`Progress::Embed`] after every batch; cancelling stops between batches.
///
/// # Errors
/// [`JobError::Params`] for a batch size of 0; [`JobError::Embed`] (unreadable data, no shared
/// genes, values that are not counts), [`JobError::Data`], [`JobError::Cancelled`].
pub fn embed(
    model: &Model,
    engine: &Engine,
    input: EmbedInput<'_>,
    p: &EmbedParams<'_>,
    h: &mut Handle<'_>,
) -> Result<Embedding, JobError> {
    let batch_ok = p.batch_size != Some(0);
    crate::analysis::ParamError::unless(batch_ok, "batch_size", 0, "at least 1")?;
    let base = Embedder::for_model(model, engine);
    let mut preprocessing = base.opts.preprocessing;
    match p.target_sum {
        Some(TargetSum::Fixed(t)) => {
            let ok = t.is_finite() && t > 0.0;
            crate::analysis::ParamError::unless(ok, "target_sum", t, "a positive number")?;
            preprocessing.target_sum = Some(t);
        }
        Some(TargetSum::Median) => preprocessing.target_sum = None,
        None => {}
    }
    let embedder = Embedder {
        homologs: p.homologs,
        opts: EmbedOptions {
            batch_size: p.batch_size.unwrap_or(base.opts.batch_size),
            preprocessing,
            ..base.opts
        },
        ..base
    };
    let cancel = h.cancel_flag().clone();
    let mut progress = |e| h.report(Progress::Embed(e));
    let e = match input {
        EmbedInput::Data(a) => embedder.embed_anndata(a, &mut progress, &cancel)?,
        EmbedInput::File(path) if crate::data::detect(path)? == crate::data::InputKind::H5ad => {
            embedder.embed_h5ad(path, &mut progress, &cancel)?
        }
        EmbedInput::File(path) => {
            let a = crate::data::open(path)?;
            embedder.embed_anndata(&a, &mut progress, &cancel)?
        }
    };
    Ok(e)
}

/// The provenance `cellscope embed` and the window record with an embedding: cellscope version,
/// model path, source and weights SHA-256, data path, device, batch size, preprocessing.
pub fn provenance(
    model: &Model,
    data: &Path,
    e: &Embedding,
    batch_size: usize,
) -> serde_json::Value {
    serde_json::json!({
        "cellscope_version": env!("CARGO_PKG_VERSION"),
        "model": model.path.display().to_string(),
        "model_source": model.provenance.source,
        "model_sha256": model.provenance.weights_sha256,
        "data": data.display().to_string(),
        "device": e.device,
        "batch_size": batch_size,
        "preprocessing": model.preprocessing,
        "target_sum": e.target_sum,
    })
}
