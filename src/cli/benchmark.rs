//! `cellscope benchmark`: scSSL-Bench's comparison on the user's data, the job of
//! [`crate::pipeline::jobs::benchmark`]; prints the results table and writes it with the
//! figures into a new folder.

use std::path::PathBuf;

use super::{BackendArg, with_handle};
use crate::pipeline::jobs::benchmark::{self, BenchmarkJob, COLUMNS, Method};

/// Arguments of `cellscope benchmark`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The input (.h5ad, 10x .h5, Visium or an instrument's folder).
    data: PathBuf,
    /// obs column of batches.
    #[arg(long)]
    batch_key: String,
    /// obs column of cell types.
    #[arg(long)]
    label_key: String,
    /// Methods, comma-separated: pca, random-mask, barlow-twins, byol, simclr, vicreg.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "pca,random-mask,barlow-twins,byol,simclr,vicreg"
    )]
    methods: Vec<Method>,
    /// Training epochs of every self-supervised method (the same budget for each).
    #[arg(long, default_value_t = 20)]
    epochs: usize,
    /// Seed of training and UMAP.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Cells per step for every method (scSSL-Bench trains all at 256, so that equal epochs
    /// are equal optimiser steps); 0: each objective's own recipe (8,192 for ssl_in_scg's).
    #[arg(long, default_value_t = 256)]
    batch_size: usize,
    /// Highly variable genes the methods see (scSSL-Bench: 2,000).
    #[arg(long, default_value_t = 2000)]
    n_top_genes: usize,
    /// Compute backend.
    #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
    backend: BackendArg,
    /// The folder to write (must not exist): results.csv, scib_results.png, UMAPs.
    #[arg(long)]
    out: PathBuf,
}

/// Runs `cellscope benchmark`.
///
/// # Errors
/// An existing output; the job's error.
pub fn run(a: Args) -> anyhow::Result<()> {
    if a.out.exists() {
        anyhow::bail!(
            "{}: already exists; choose a new folder for the results",
            a.out.display()
        );
    }
    let job = BenchmarkJob {
        label_key: a.label_key,
        batch_key: a.batch_key,
        methods: a.methods,
        epochs: a.epochs,
        batch_size: (a.batch_size > 0).then_some(a.batch_size),
        seed: a.seed,
        n_top_genes: a.n_top_genes,
        backend: a.backend.into(),
        given: Vec::new(),
    };
    let adata = crate::data::open(&a.data)?;
    let r = with_handle(|h| benchmark::run(&adata, &job, h))?;
    println!(
        "{}: {} cells, {} genes, labels obs['{}'], batches obs['{}'], {} epochs, seed {}",
        a.data.display(),
        adata.n_obs(),
        r.n_genes,
        job.label_key,
        job.batch_key,
        job.epochs,
        job.seed
    );
    println!("{:<14} {:>8} {}", "method", "seconds", COLUMNS.join(" "));
    for row in &r.rows {
        let v: Vec<String> = row
            .values()
            .iter()
            .zip(COLUMNS)
            .map(|(v, c)| {
                format!(
                    "{:>w$}",
                    v.map_or("n/a".into(), |v| format!("{v:.4}")),
                    w = c.len()
                )
            })
            .collect();
        println!("{:<14} {:>8.1} {}", row.name, row.seconds, v.join(" "));
    }
    let params = serde_json::json!({
        "command": "benchmark",
        "label_key": job.label_key,
        "batch_key": job.batch_key,
        "methods": job.methods.iter().map(|m| m.name()).collect::<Vec<_>>(),
        "epochs": job.epochs,
        "batch_size": job.batch_size,
        "seed": job.seed,
        "n_top_genes": job.n_top_genes,
    });
    let prov = crate::export::provenance(&[("data", a.data.as_path())], params);
    let title = format!(
        "{} ({} cells, {} genes; {} epochs, batch {}, seed {})",
        a.data
            .file_name()
            .map_or_else(String::new, |f| f.to_string_lossy().into_owned()),
        adata.n_obs(),
        r.n_genes,
        job.epochs,
        job.batch_size
            .map_or_else(|| "as each recipe".to_string(), |b| b.to_string()),
        job.seed
    );
    let files = benchmark::write(&r, &a.out, &title, &prov)?;
    eprintln!("wrote {} files into {}", files.len(), a.out.display());
    Ok(())
}
