//! `cellscope convert`: any input cellscope opens (an instrument's output folder, a 10x
//! matrix, a Visium folder) written as a standard `.h5ad` that scanpy and squidpy read:
//! cells in the matrix's order named by the vendor's ids, `obsm['spatial']` in µm, what the
//! reader found (platform, run metadata, control features) in `uns['cellscope_source']`.

use std::path::PathBuf;

use crate::data::summary::Summary;
use crate::export::tables::Results;
use crate::pipeline::jobs::export;

/// Arguments of `cellscope convert`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The input: a Xenium or MERSCOPE output folder, a Visium folder, a 10x .h5 or an .h5ad.
    path: PathBuf,
    /// The new .h5ad to write (never an input).
    #[arg(long)]
    out: PathBuf,
}

/// Runs `cellscope convert`.
///
/// # Errors
/// An unreadable input, an output that is an input, a failed write.
pub fn run(a: Args) -> anyhow::Result<()> {
    export::check_output(&[&a.path], &a.out)?;
    let (adata, summary) = Summary::read(&a.path)?;
    eprintln!(
        "read {}: {} cells x {} genes{}",
        a.path.display(),
        adata.n_obs(),
        adata.n_vars(),
        summary
            .vendor
            .as_ref()
            .map(|v| format!(" ({})", v.platform))
            .unwrap_or_default()
    );
    let results = Results {
        provenance: serde_json::json!({
            "cellscope_version": env!("CARGO_PKG_VERSION"),
            "converted_from": a.path.display().to_string(),
        }),
        uns: summary
            .vendor
            .iter()
            .map(|v| ("cellscope_source".to_string(), serde_json::json!(v)))
            .collect(),
        ..Default::default()
    };
    super::write_back(&adata, &results, &a.out, None)
}
