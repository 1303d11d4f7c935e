//! `cellscope predict`: the prediction job with a fine-tuned model; prints the scores, writes
//! the predictions.

use std::path::PathBuf;

use super::with_handle;
use crate::export::tables::Results;
use crate::pipeline::jobs::export;

/// Arguments of `cellscope predict`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The input (.h5ad, 10x .h5, or Visium folder).
    data: PathBuf,
    /// A fine-tuned model (cellscope folder).
    #[arg(long)]
    model: PathBuf,
    /// obs column with true labels, to print metrics.
    #[arg(long)]
    label_key: Option<String>,
    /// CSV of (model label, data label) pairs relating the two label sets.
    #[arg(long)]
    label_map: Option<PathBuf>,
    /// The new .h5ad to write (never the input).
    #[arg(long)]
    out: PathBuf,
}

/// Runs `cellscope predict`.
///
/// # Errors
/// Unreadable data or model, a model without a head, an output equal to the input.
pub fn run(a: Args) -> anyhow::Result<()> {
    export::check_output(&[&a.data], &a.out)?;
    let model = super::load_model(&a.model, None)?;
    let adata = crate::data::open(&a.data)?;
    let map = a
        .label_map
        .as_deref()
        .map(crate::analysis::transfer::LabelMap::read_csv)
        .transpose()?;
    let key = a.label_key.as_deref();
    let o =
        with_handle(|h| crate::pipeline::jobs::predict::run(&model, &adata, key, map.as_ref(), h))?;
    eprintln!("{}: genes {}", a.data.display(), o.coverage);
    if let (Some((c, n)), Some(key)) = (&o.scores, key) {
        println!(
            "{n} cells scored against obs['{key}']: accuracy {:.4}, macro-F1 {:.4}, weighted F1 {:.4}",
            c.accuracy, c.macro_f1, c.weighted_f1
        );
    }
    let probabilities = o.probabilities();
    let results = Results {
        predicted: Some((&o.labels, &o.prediction.confidence)),
        probabilities: Some(&probabilities),
        provenance: serde_json::json!({
            "cellscope_version": env!("CARGO_PKG_VERSION"),
            "model": a.model.display().to_string(),
            "model_weights_sha256": model.provenance.weights_sha256,
            "classes": model.class_names.clone().unwrap_or_default(),
        }),
        ..Default::default()
    };
    super::write_back(&adata, &results, &a.out, None)
}
