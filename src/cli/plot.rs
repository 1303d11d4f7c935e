//! `cellscope plot`: a figure of a dataset (the plot job of [`crate::pipeline::jobs::export`]).

use std::path::PathBuf;

use crate::export::figure::FigureSize;
use crate::pipeline::jobs::export::{PlotParams, plot};

/// Arguments of `cellscope plot`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The input (.h5ad, 10x .h5, or Visium folder).
    data: PathBuf,
    /// `spatial` or an obsm key (X_umap, X_pca, ...; the first two columns are drawn).
    #[arg(long, default_value = "spatial")]
    basis: String,
    /// An obs column or a gene.
    #[arg(long)]
    color: String,
    /// Width in inches.
    #[arg(long, default_value_t = 6.0)]
    width: f32,
    /// Height in inches.
    #[arg(long, default_value_t = 5.0)]
    height: f32,
    /// Dots per inch.
    #[arg(long, default_value_t = 300)]
    dpi: u32,
    /// Title (default: "<basis>: <color>").
    #[arg(long)]
    title: Option<String>,
    /// The figure to write: .png or .svg.
    #[arg(long)]
    out: PathBuf,
}

/// Runs `cellscope plot`.
///
/// # Errors
/// The job's error.
pub fn run(a: Args) -> anyhow::Result<()> {
    let p = PlotParams {
        basis: a.basis,
        color: a.color,
        size: FigureSize {
            width_in: a.width,
            height_in: a.height,
            dpi: a.dpi,
        },
        title: a.title,
    };
    plot(&a.data, &p, &a.out)?;
    let (w, h) = p.size.pixels();
    eprintln!(
        "wrote {} ({w} x {h} px, {} dpi)",
        a.out.display(),
        p.size.dpi
    );
    Ok(())
}
