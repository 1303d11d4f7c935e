//! `cellscope convert`: any input cellscope opens (an instrument's output folder, a 10x
//! matrix, a Visium folder) written as a standard `.h5ad` that scanpy and squidpy read:
//! cells in the matrix's order named by the vendor's ids, `obsm['spatial']` in µm, what the
//! reader found (platform, run metadata, control features) in `uns['cellscope_source']`, and
//! the tissue or morphology image with its scale factor in `uns['spatial']` as squidpy expects.

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
    /// Stereo-seq GEM input: the spot side in DNBs (stereopy's bin_size; 50 = 25 µm spots,
    /// the default).
    #[arg(long)]
    bin_size: Option<u32>,
}

/// Runs `cellscope convert`.
///
/// # Errors
/// An unreadable input, an output that is an input, a failed write.
pub fn run(a: Args) -> anyhow::Result<()> {
    export::check_output(&[&a.path], &a.out)?;
    let (adata, summary) = match a.bin_size {
        None => Summary::read(&a.path)?,
        Some(bin) => {
            let kind = crate::data::detect(&a.path)?;
            if kind != crate::data::InputKind::StereoSeq {
                anyhow::bail!(
                    "{}: --bin-size applies to Stereo-seq GEM files; this input is {kind:?}",
                    a.path.display()
                );
            }
            Summary::read_gem_binned(&a.path, bin)?
        }
    };
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
    // The image under the cells, for squidpy's plots (`uns['spatial'][<folder name>]`).
    let library = a
        .path
        .file_stem()
        .map_or("sample".into(), |s| s.to_string_lossy().into_owned());
    // A damaged image costs the image, not the conversion.
    let images =
        crate::pipeline::jobs::open::spatial_images(&a.path, &library).unwrap_or_else(|e| {
            eprintln!("note: no image in uns['spatial']: {e}");
            None
        });
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
        spatial: images,
        ..Default::default()
    };
    super::write_back(&adata, &results, &a.out, None)
}
