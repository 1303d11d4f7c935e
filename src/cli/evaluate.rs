//! `cellscope evaluate`: the evaluate job (a model's held-out reconstruction and zero-shot kNN
//! on the study's split), or with `--use-rep` the integration job (an embedding's scib
//! metrics); prints the scores, optionally writes them as JSON.

use std::path::PathBuf;

use super::{BackendArg, with_handle};
use crate::pipeline::jobs::evaluate::{EvaluateJob, Evaluation};

/// Arguments of `cellscope evaluate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The input (.h5ad, 10x .h5, or Visium folder); counts in X (or raw/X).
    data: PathBuf,
    /// The model: a cellscope model folder, a PyTorch / Lightning / safetensors file, or an
    /// hf:// name.
    #[arg(long, required_unless_present = "use_rep", conflicts_with = "use_rep")]
    model: Option<PathBuf>,
    /// Score this obsm embedding's batch correction and label conservation as scib-metrics
    /// does (needs --label-key and --batch-key) instead of evaluating a model.
    #[arg(long, requires_all = ["label_key", "batch_key"])]
    use_rep: Option<String>,
    /// The unintegrated representation for the PCR comparison (skipped when absent).
    #[arg(long, default_value = "X_pca")]
    pre_rep: String,
    /// The model's gene list (default: beside the checkpoint, or the hub's var.parquet).
    #[arg(long)]
    genes: Option<PathBuf>,
    /// obs column of cell types for the zero-shot kNN classifier.
    #[arg(long)]
    label_key: Option<String>,
    /// obs column of batches: also report the test cells' scores per batch.
    #[arg(long)]
    batch_key: Option<String>,
    /// random_state of the 70/15/15 split (scikit-learn's train_test_split).
    #[arg(long, default_value_t = 42)]
    split_seed: u32,
    /// Compute backend.
    #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
    backend: BackendArg,
    /// Also write the scores as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Runs `cellscope evaluate`.
///
/// # Errors
/// Unreadable data or model, a missing obs column, no shared genes.
pub fn run(a: Args) -> anyhow::Result<()> {
    if let Some(rep) = a.use_rep {
        let adata = crate::data::open(&a.data)?;
        let job = crate::pipeline::jobs::integration::IntegrationJob {
            use_rep: rep,
            label_key: a.label_key.unwrap_or_default(),
            batch_key: a.batch_key.unwrap_or_default(),
            pre_rep: Some(a.pre_rep),
        };
        let s = with_handle(|h| crate::pipeline::jobs::integration::run(&adata, &job, h))?;
        print_integration(&job, &s);
        if let Some(path) = &a.json {
            let text = serde_json::to_string_pretty(&s)?;
            crate::export::write_atomic(path, text.as_bytes())?;
        }
        return Ok(());
    }
    let model_path = a.model.unwrap_or_default();
    let crate::pipeline::jobs::model::Loaded { model, engine } =
        super::load(&model_path, a.genes.as_deref(), a.backend.into())?;
    let adata = crate::data::open(&a.data)?;
    let job = EvaluateJob {
        label_key: a.label_key,
        batch_key: a.batch_key,
        split_seed: a.split_seed,
    };
    let e =
        with_handle(|h| crate::pipeline::jobs::evaluate::run(&model, &engine, &adata, &job, h))?;
    print_scores(&a.data, &e);
    if let Some(path) = &a.json {
        let text = serde_json::to_string_pretty(&e)?;
        crate::export::write_atomic(path, text.as_bytes())?;
    }
    Ok(())
}

fn print_scores(data: &std::path::Path, e: &Evaluation) {
    let (tr, va, te) = e.split;
    eprintln!("{}: genes {}", data.display(), e.coverage);
    println!("split (train_test_split, 70/15/15): {tr} train, {va} validation, {te} test cells");
    match &e.reconstruction {
        Some(r) => println!(
            "reconstruction of the {} test cells: explained variance (variance-weighted) {:.4}, MSE {:.4}",
            r.n_cells, r.explained_variance_weighted, r.mse
        ),
        None => println!("reconstruction: the model has no decoder"),
    }
    if let Some(z) = &e.zero_shot {
        println!(
            "zero-shot kNN (k = 5) on obs['{}'], {} train / {} test cells: macro-F1 {:.4}, accuracy {:.4}",
            z.label_key, z.n_train, z.n_test, z.macro_f1, z.accuracy
        );
        for (b, f1, acc, n) in &z.per_batch {
            println!("  batch {b} ({n} test cells): macro-F1 {f1:.4}, accuracy {acc:.4}");
        }
    }
}

fn print_integration(
    job: &crate::pipeline::jobs::integration::IntegrationJob,
    s: &crate::pipeline::jobs::integration::IntegrationScores,
) {
    let opt = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.4}"));
    println!(
        "obsm['{}'], {} cells, labels obs['{}'], batches obs['{}'] (scib-metrics' definitions, 90-NN graph)",
        job.use_rep, s.n_cells, job.label_key, job.batch_key
    );
    println!(
        "bio conservation: silhouette_label {:.4}, isolated_labels {:.4}, clisi_knn {:.4}, nmi {:.4}, ari {:.4} (k-means)",
        s.silhouette_label, s.isolated_labels, s.clisi_knn, s.nmi, s.ari
    );
    println!(
        "batch correction: silhouette_batch {}, ilisi_knn {:.4}, kbet_per_label {}, graph_connectivity {:.4}, pcr_comparison {}",
        opt(s.silhouette_batch),
        s.ilisi_knn,
        opt(s.kbet_per_label),
        s.graph_connectivity,
        opt(s.pcr_comparison)
    );
    println!(
        "aggregate: bio conservation {:.4}, batch correction {:.4}, total {:.4} (0.4 batch + 0.6 bio)",
        s.bio_conservation, s.batch_correction, s.total
    );
    for c in &s.cross_batch {
        println!(
            "cell typing of batch {} ({} cells) from the others, kNN (k = 11): macro-F1 {:.4}, accuracy {:.4}",
            c.batch, c.n_cells, c.macro_f1, c.accuracy
        );
    }
}
