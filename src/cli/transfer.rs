//! `cellscope transfer`: the label-transfer job between two files; prints the scores, writes
//! the predictions into a new copy of the query.

use std::path::PathBuf;

use super::with_handle;
use crate::analysis::transfer::LabelMap;
use crate::export::tables::Results;
use crate::model::BackendChoice;
use crate::pipeline::jobs::transfer::{TransferJob, TransferOutput, TransferRep};

/// Arguments of `cellscope transfer`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Labelled reference (.h5ad, 10x .h5, or Visium folder).
    #[arg(long)]
    reference: PathBuf,
    /// Reference obs column holding the labels.
    #[arg(long)]
    label_key: String,
    /// The query dataset.
    #[arg(long)]
    query: PathBuf,
    /// Shared representation: an obsm key present in both files. Default (without --model):
    /// log-normalised expression of the shared genes on the reference's 30 PCs.
    #[arg(long, conflicts_with = "model")]
    use_rep: Option<String>,
    /// Embed both datasets with this model (cellscope folder, PyTorch checkpoint or hf://
    /// name) first.
    #[arg(long)]
    model: Option<PathBuf>,
    /// CSV of (reference label, query label) pairs relating the two label sets.
    #[arg(long)]
    label_map: Option<PathBuf>,
    /// Query obs column with true labels, to print metrics.
    #[arg(long)]
    query_label_key: Option<String>,
    /// Neighbours that vote.
    #[arg(long, default_value_t = 5)]
    k: usize,
    #[command(flatten)]
    out: super::Outputs,
}

/// Runs `cellscope transfer`.
///
/// # Errors
/// The job's error.
pub fn run(a: Args) -> anyhow::Result<()> {
    a.out.check(&[&a.query, &a.reference])?;
    let map = a.label_map.as_deref().map(LabelMap::read_csv).transpose()?;
    let reference = crate::data::open(&a.reference)?;
    let query = crate::data::open(&a.query)?;
    let loaded = (a.model.as_deref())
        .map(|m| super::load(m, None, BackendChoice::Auto))
        .transpose()?;
    let representation = match (&loaded, &a.use_rep) {
        (Some(l), _) => TransferRep::Model(&l.model, &l.engine),
        (None, Some(key)) => TransferRep::Obsm(key),
        (None, None) => TransferRep::SharedGenes,
    };
    let job = TransferJob {
        label_key: &a.label_key,
        representation,
        label_map: map.as_ref(),
        query_label_key: a.query_label_key.as_deref(),
        k: a.k,
    };
    let o = with_handle(|h| crate::pipeline::jobs::transfer::run(&reference, &query, &job, h))?;
    eprintln!("representation: {}", o.representation);
    print_scores(&o);
    let report = o.report(a.k, query.n_obs());
    let t = &o.transfer;
    let results = Results {
        predicted: Some((&t.predicted, &t.confidence)),
        provenance: crate::export::provenance(
            &[("reference", &a.reference), ("query", &a.query)],
            report.clone(),
        ),
        uns: vec![("cellscope_transfer".into(), report.clone())],
        ..Default::default()
    };
    let metrics = a.out.metrics_json.as_deref().map(|m| (m, &report));
    super::write_back(&query, &results, &a.out.out, metrics)
}

fn print_scores(o: &TransferOutput) {
    let Some(t) = &o.scores else {
        return;
    };
    let s = &t.scores;
    println!(
        "accuracy {:.4}  macro-F1 {:.4}  micro-F1 {:.4}  weighted-F1 {:.4}  ({} cells)",
        s.accuracy, s.macro_f1, s.micro_f1, s.weighted_f1, t.cells
    );
    for (i, &c) in s.classes.iter().enumerate() {
        println!(
            "  {:<32} precision {:.3}  recall {:.3}  F1 {:.3}  support {}",
            t.classes[c as usize], s.precision[i], s.recall[i], s.f1[i], s.support[i]
        );
    }
}
