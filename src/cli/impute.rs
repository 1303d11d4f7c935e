//! `cellscope impute`: the impute job (SpaGE-style, from a scRNA-seq reference); prints the
//! held-out genes' Pearson correlations, writes a copy of the query with the predictions.

use std::path::PathBuf;

use super::with_handle;
use crate::analysis::impute::ImputeParams;
use crate::export::tables::{Results, keys};
use crate::pipeline::jobs::export;
use crate::pipeline::jobs::impute::ImputeJob;

/// Arguments of `cellscope impute`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The scRNA-seq reference (.h5ad, 10x .h5); counts.
    #[arg(long)]
    reference: PathBuf,
    /// The spatial query (.h5ad, 10x .h5, Visium folder).
    #[arg(long)]
    query: PathBuf,
    /// Genes to predict (reference symbols, comma-separated); those the query measured are
    /// held out of the alignment and scored.
    #[arg(long, value_delimiter = ',')]
    genes: Vec<String>,
    /// Also hold out this many randomly chosen shared genes and score them.
    #[arg(long, default_value_t = 0)]
    hold_out: usize,
    /// Seed of the hold-out choice.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Reference neighbours per query cell (SpaGE: 50).
    #[arg(long, default_value_t = 50)]
    k: usize,
    /// Principal components of the shared genes (SpaGE: 30).
    #[arg(long, default_value_t = 30)]
    n_components: usize,
    /// The new .h5ad to write (a copy of the query; never an input): obsm['cellscope_imputed'],
    /// uns['cellscope_imputed_genes'] and the scores in uns['cellscope_imputation'].
    #[arg(long)]
    out: PathBuf,
}

/// Runs `cellscope impute`.
///
/// # Errors
/// Unreadable inputs, an output equal to an input, the job's error.
pub fn run(a: Args) -> anyhow::Result<()> {
    export::check_output(&[&a.reference, &a.query], &a.out)?;
    let reference = crate::data::open(&a.reference)?;
    let query = crate::data::open(&a.query)?;
    let job = ImputeJob {
        genes: a.genes,
        hold_out: a.hold_out,
        seed: a.seed,
        params: ImputeParams {
            n_components: a.n_components,
            k: a.k,
        },
    };
    let r = with_handle(|h| crate::pipeline::jobs::impute::run(&reference, &query, &job, h))?;
    println!(
        "imputed {} genes for {} cells, aligned on {} shared genes",
        r.genes.len(),
        r.values.nrows(),
        r.n_shared
    );
    for (g, pcc) in &r.held_out {
        println!("  held out {g}: Pearson {pcc:.4}");
    }
    if let Some(m) = r.mean_pcc() {
        println!(
            "mean hold-out Pearson {m:.4} over {} genes",
            r.held_out.len()
        );
    }
    let results = Results {
        imputed: Some(&r.values),
        provenance: serde_json::json!({
            "cellscope_version": env!("CARGO_PKG_VERSION"),
            "reference": a.reference.display().to_string(),
            "query": a.query.display().to_string(),
            "method": "SpaGE-style: z-scored shared genes, reference PCA, cosine kNN",
            "k": a.k,
            "n_components": a.n_components,
        }),
        uns: vec![
            (
                format!("{}_genes", keys::IMPUTED),
                serde_json::json!(r.genes),
            ),
            ("cellscope_imputation".into(), serde_json::json!(r)),
        ],
        ..Default::default()
    };
    super::write_back(&query, &results, &a.out, None)
}
