//! Command-line interface: no arguments opens the window; each subcommand (one file here)
//! parses its arguments into a job's parameters, calls the job in [`crate::pipeline::jobs`]
//! and prints its result. Progress goes to stderr (`progress.rs`); Ctrl-C cancels the running
//! job (nothing is left at the output path) and the process exits with code 130.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Parser, Subcommand};

use crate::model::BackendChoice;
use crate::pipeline::jobs::{Handle, JobError};

mod analyze;
mod benchmark;
mod convert;
mod embed;
mod evaluate;
mod histology;
mod impute;
mod plot;
mod predict;
mod progress;
mod train;
mod transfer;

/// cellscope: self-supervised embeddings of single-cell and spatial transcriptomics data.
#[derive(Debug, Parser)]
#[command(
    name = "cellscope",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// What to do; without a subcommand the explorer window opens.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Dataset to open in the window (.h5ad, 10x .h5, Visium folder); default: the embedded
    /// spatial dataset in assets/.
    pub path: Option<PathBuf>,
    /// Save a PNG of the window once the pipeline has finished, then exit (scripted checks).
    #[arg(long, hide = true)]
    pub screenshot: Option<PathBuf>,
}

/// Headless subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Embed every cell with a pretrained model and write a new .h5ad with
    /// obsm['X_cellscope'] (plus the gene coverage report and provenance in uns).
    Embed(embed::Args),
    /// Score a model as Richter et al. and the reusability study did: the held-out cells'
    /// reconstruction (variance-weighted explained variance, masked autoencoders) and the
    /// zero-shot kNN classifier (k = 5, macro-F1 and accuracy) on scikit-learn's 70/15/15 split
    /// (random_state 42).
    Evaluate(evaluate::Args),
    /// Predict genes a spatial panel lacks (or holds out) from a scRNA-seq reference,
    /// SpaGE-style (shared-gene PCA, cosine kNN of reference cells); prints the held-out genes'
    /// Pearson correlations and writes a copy of the query with obsm['cellscope_imputed'].
    Impute(impute::Args),
    /// Neighbours, UMAP, Leiden and (with coordinates) spatial domains on an embedding; writes a
    /// new .h5ad with obsm['X_umap'], obs['leiden'] (and obs['spatial_domain']) and prints the
    /// metrics against --label-key.
    Analyze(analyze::Args),
    /// Transfer labels from a labelled reference to a query by kNN vote (k = 5); writes a new
    /// copy of the query with obs['cellscope_prediction'] and obs['cellscope_confidence'].
    Transfer(transfer::Args),
    /// Pre-train a new self-supervised model on unlabelled data (counts, or log-normalised
    /// values; raw/X is used when X is scaled) and save it as a cellscope model folder.
    /// Recipe of Richter et al.: AdamW, StepLR(2, 0.9), gradient clipping 1.0.
    Pretrain(train::PretrainArgs),
    /// Fine-tune a classifier (Linear(64, n_types) on a pre-trained backbone, or the same
    /// network from random init without --model) on labelled data: 70/15/15 split (seed 42),
    /// class-weighted cross-entropy, validation macro-F1 each epoch, early stopping; prints the
    /// test scores and saves the best epoch's model.
    Finetune(train::FinetuneArgs),
    /// Predict cell types with a fine-tuned model; writes a new .h5ad with
    /// obs['cellscope_prediction'], obs['cellscope_confidence'] and
    /// obsm['cellscope_probabilities'].
    Predict(predict::Args),
    /// Compare methods as scSSL-Bench does: PCA and self-supervised objectives trained with
    /// the same seed, genes (2,000 HVGs) and epochs, each embedding scored with the
    /// scib-metrics set; writes results.csv, a scib-style figure and UMAPs by batch and label.
    Benchmark(benchmark::Args),
    /// Draw a figure of a dataset: cells at an obsm basis coloured by an obs column or a gene,
    /// with legend or colour bar (and a scale bar for spatial), as PNG (300 dpi by default) or
    /// SVG, with provenance metadata.
    Plot(plot::Args),
    /// Print a summary of an .h5ad file, a 10x .h5 matrix, a Visium, Xenium or MERSCOPE
    /// folder: platform and run metadata, shape, X
    /// encoding and dtype, sparsity, obs columns with category counts, obsm, layers, raw, uns
    /// colours.
    Inspect {
        /// The input (.h5ad, 10x .h5, a Visium, Xenium or MERSCOPE output folder).
        path: PathBuf,
    },
    /// Write any input cellscope opens (a Xenium or MERSCOPE output folder, a Visium folder, a
    /// 10x .h5) as a standard .h5ad: vendor cell ids as obs_names, obsm['spatial'] in µm, the
    /// platform, run metadata and control features in uns['cellscope_source'].
    Convert(convert::Args),
    /// Image models on H&E slides: patch features from a ResNet or DenseNet encoder.
    #[command(subcommand)]
    Histology(histology::Command),
}

/// The outputs of `analyze` and `transfer`: the new `.h5ad` and, when asked, the metrics as
/// JSON.
#[derive(Debug, clap::Args)]
pub struct Outputs {
    /// The new .h5ad to write (never an input).
    #[arg(long)]
    out: PathBuf,
    /// Also write the metrics as JSON here.
    #[arg(long)]
    metrics_json: Option<PathBuf>,
}

impl Outputs {
    /// Refuses outputs that are inputs (or inside input folders), or the same path twice.
    fn check(&self, inputs: &[&std::path::Path]) -> Result<(), JobError> {
        let mut outputs = vec![self.out.as_path()];
        outputs.extend(self.metrics_json.as_deref());
        crate::pipeline::jobs::export::check_outputs(inputs, &outputs)
    }
}

/// The compute backend (`--backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendArg {
    /// wgpu on a hardware GPU adapter, else the CPU (a software adapter such as lavapipe is
    /// slower than the CPU path).
    Auto,
    /// The CPU (sparse first layer).
    Cpu,
    /// burn wgpu; an error when no adapter exists.
    Wgpu,
}

impl From<BackendArg> for BackendChoice {
    fn from(b: BackendArg) -> Self {
        match b {
            BackendArg::Auto => BackendChoice::Auto,
            BackendArg::Cpu => BackendChoice::Cpu,
            BackendArg::Wgpu => BackendChoice::Wgpu,
        }
    }
}

/// Runs a parsed command line.
///
/// # Errors
/// The job's error (a [`JobError`] inside the `anyhow` chain; [`exit_code`] maps it), for
/// printing by `main` (one message, no backtrace).
pub fn run(cli: Cli) -> anyhow::Result<()> {
    if cli.command.is_some() {
        // From the start, so that Ctrl-C while a file is read still ends cleanly.
        cancel_on_ctrl_c();
    }
    match cli.command {
        Some(Command::Embed(a)) => embed::run(a),
        Some(Command::Analyze(a)) => analyze::run(a),
        Some(Command::Transfer(a)) => transfer::run(a),
        Some(Command::Pretrain(a)) => train::pretrain(a),
        Some(Command::Finetune(a)) => train::finetune(a),
        Some(Command::Predict(a)) => predict::run(a),
        Some(Command::Benchmark(a)) => benchmark::run(a),
        Some(Command::Evaluate(a)) => evaluate::run(a),
        Some(Command::Impute(a)) => impute::run(a),
        Some(Command::Plot(a)) => plot::run(a),
        Some(Command::Convert(a)) => convert::run(a),
        Some(Command::Histology(c)) => histology::run(c),
        Some(Command::Inspect { path }) => {
            print_to_pipe(&crate::data::summary::Summary::of_path(&path)?.to_string())
        }
        None => crate::ui::run(cli.path, cli.screenshot),
    }
}

/// Prints `text` on stdout; a reader that went away (`cellscope inspect X | head`) ends the
/// output quietly instead of the panic `println!` gives.
fn print_to_pipe(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    match writeln!(std::io::stdout().lock(), "{text}") {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => Ok(r?),
    }
}

/// The one-line message for an error of [`run`]: the error and each cause that adds something
/// (our errors already print their source, e.g. HDF5's or the operating system's message, so
/// the chain would repeat it).
pub fn message(e: &anyhow::Error) -> String {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !msg.contains(&c) {
            msg = format!("{msg}: {c}");
        }
    }
    msg
}

/// The process exit code for an error of [`run`]: 130 (as a shell reports SIGINT) when the
/// user cancelled with Ctrl-C, 2 otherwise.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    match e.downcast_ref::<JobError>() {
        Some(JobError::Cancelled) => 130,
        _ => 2,
    }
}

/// The cancel flag of this process's jobs, set by Ctrl-C (SIGINT), SIGTERM or SIGHUP once
/// installed. A second signal while the job winds down exits at once (130), and so does a
/// signal while an output is being written, after removing its part file
/// ([`crate::data::part`]).
fn cancel_on_ctrl_c() -> Arc<AtomicBool> {
    static FLAG: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();
    FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        let f = flag.clone();
        let installed = ctrlc::set_handler(move || {
            // An output half written is removed at once: the run stops without a file.
            if f.swap(true, Ordering::SeqCst) || crate::data::part::any_live() {
                crate::data::part::remove_live();
                std::process::exit(130);
            }
            eprintln!("\ncancelling (Ctrl-C again to quit at once)");
        });
        if let Err(e) = installed {
            eprintln!("warning: Ctrl-C will not cancel cleanly: {e}");
        }
        flag
    })
    .clone()
}

/// Runs `job` with a handle that draws progress on stderr and is cancelled by Ctrl-C.
fn with_handle<T>(job: impl FnOnce(&mut Handle<'_>) -> T) -> T {
    let mut bars = progress::Bars::default();
    let mut report = |p| bars.show(p);
    let mut h = Handle::new(&mut report, cancel_on_ctrl_c());
    let r = job(&mut h);
    drop(h);
    bars.finish();
    r
}

/// Writes `adata` with `results` to the new `.h5ad` at `out` (the one write-back,
/// [`crate::pipeline::jobs::export::write_results`]), says so, and writes `metrics` as JSON to
/// its path when asked.
fn write_back(
    adata: &crate::data::AnnData,
    results: &crate::export::tables::Results<'_>,
    out: &std::path::Path,
    metrics: Option<(&std::path::Path, &serde_json::Value)>,
) -> anyhow::Result<()> {
    use crate::pipeline::jobs::export;
    with_handle(|h| export::write_results(adata, results, out, h))?;
    eprintln!("wrote {}", out.display());
    if let Some((path, value)) = metrics {
        export::write_json(path, value)?;
    }
    Ok(())
}

/// [`crate::pipeline::jobs::model::load`] (the model and its engine on `backend`) with
/// download bars and Ctrl-C.
fn load(
    model: &std::path::Path,
    genes: Option<&std::path::Path>,
    backend: BackendChoice,
) -> Result<crate::pipeline::jobs::model::Loaded, JobError> {
    let hub = crate::model::hub::Hub::from_env();
    with_handle(|h| crate::pipeline::jobs::model::load(model, genes, backend, &hub, h))
}

/// [`crate::pipeline::jobs::model::resolve`] with download bars and Ctrl-C.
fn load_model(
    model: &std::path::Path,
    genes: Option<&std::path::Path>,
) -> Result<crate::model::Model, JobError> {
    let hub = crate::model::hub::Hub::from_env();
    with_handle(|h| crate::pipeline::jobs::model::resolve(model, genes, &hub, h))
}
