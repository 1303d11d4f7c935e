//! `cellscope embed`: the embed job on a file, written back with the coverage report and
//! provenance.

use std::path::PathBuf;

use super::{BackendArg, with_handle};
use crate::data::preprocess::TargetSum;
use crate::data::write::copies_x_from;
use crate::export::tables::Results;
use crate::pipeline::jobs::{embed, export};

/// Arguments of `cellscope embed`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The input (.h5ad, 10x .h5, or Visium folder); raw counts in X.
    data: PathBuf,
    /// The model: a cellscope model folder, a PyTorch / Lightning / safetensors file, or a
    /// file on the HuggingFace hub, hf://OWNER/NAME[@REVISION]/PATH (downloaded once into
    /// the cache, e.g. hf://TillR/sc_pretrained/Pretrained Models/RandomMask.ckpt).
    #[arg(long)]
    model: PathBuf,
    /// The model's gene list (CSV/TSV/parquet with feature_id and/or feature_name, or one
    /// gene per line; a path or an hf:// name); default: genes.csv beside the checkpoint,
    /// or the hub repository's var.parquet.
    #[arg(long)]
    genes: Option<PathBuf>,
    /// Compute backend.
    #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
    backend: BackendArg,
    /// Two-column CSV (dataset gene, model gene) mapping the dataset's gene symbols to the
    /// model's species first (e.g. mouse to human homologs).
    #[arg(long)]
    homologs: Option<PathBuf>,
    /// Cells per forward pass.
    #[arg(long, default_value_t = 1024)]
    batch_size: usize,
    /// normalize_total target: counts per cell, or `median` (scanpy's default, as the
    /// reusability study on spatial panels); default: the model's (1e4 for ssl_in_scg).
    #[arg(long, value_parser = parse_target_sum)]
    target_sum: Option<TargetSum>,
    /// The new .h5ad to write (never the input).
    #[arg(long)]
    out: PathBuf,
}

/// `median` or a positive number of counts.
fn parse_target_sum(s: &str) -> Result<TargetSum, String> {
    if s.eq_ignore_ascii_case("median") {
        return Ok(TargetSum::Median);
    }
    match s.parse::<f64>() {
        Ok(t) if t.is_finite() && t > 0.0 => Ok(TargetSum::Fixed(t)),
        _ => Err(format!(
            "{s}: expected `median` or a positive number of counts per cell"
        )),
    }
}

/// Runs `cellscope embed`.
///
/// # Errors
/// The job's error.
pub fn run(a: Args) -> anyhow::Result<()> {
    export::check_output(&[&a.data], &a.out)?;
    let homologs = a
        .homologs
        .as_deref()
        .map(crate::data::genes::Homologs::read_csv)
        .transpose()?;
    let crate::pipeline::jobs::model::Loaded { model, engine } =
        super::load(&a.model, a.genes.as_deref(), a.backend.into())?;
    eprintln!("model: {}", model.weights);
    eprintln!("device: {}", engine.description());
    let params = embed::EmbedParams {
        batch_size: Some(a.batch_size),
        homologs: homologs.as_ref(),
        target_sum: a.target_sum,
    };
    // An .h5ad is streamed in row blocks and its X copied as stored (when it can be) rather
    // than read; other formats are read whole once.
    let h5ad = crate::data::detect(&a.data)? == crate::data::InputKind::H5ad;
    let adata = match (h5ad, copies_x_from(&a.data)) {
        (true, true) => crate::data::h5ad::H5adReader::open(&a.data)?.read_metadata()?,
        (true, false) => crate::data::h5ad::H5adReader::open(&a.data)?.read()?,
        (false, _) => crate::data::open(&a.data)?,
    };
    let input = if h5ad {
        embed::EmbedInput::File(&a.data)
    } else {
        embed::EmbedInput::Data(&adata)
    };
    let emb = with_handle(|h| embed::embed(&model, &engine, input, &params, h))?;
    eprintln!("genes: {}", emb.coverage);
    eprintln!(
        "embedded {} cells in {} dimensions at {:.0} cells/s",
        emb.values.nrows(),
        emb.values.ncols(),
        emb.cells_per_sec
    );
    let results = Results {
        embedding: Some(&emb.values),
        provenance: embed::provenance(&model, &a.data, &emb, a.batch_size),
        uns: vec![("cellscope_coverage".into(), serde_json::json!(emb.coverage))],
        ..Default::default()
    };
    super::write_back(&adata, &results, &a.out, None)
}
