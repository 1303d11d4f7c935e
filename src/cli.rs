//! Command-line interface: no arguments opens the window (once the explorer exists);
//! subcommands run the headless pipeline.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::data::summary::Summary;
use crate::model::BackendChoice;

/// cellscope: self-supervised embeddings of single-cell and spatial transcriptomics data.
#[derive(Debug, Parser)]
#[command(name = "cellscope", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Headless subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Embed every cell with a pretrained model and write a new .h5ad with
    /// obsm['X_cellscope'] (plus the gene coverage report and provenance in uns).
    Embed {
        /// The input (.h5ad, 10x .h5, or Visium folder); raw counts in X.
        data: PathBuf,
        /// The model: a cellscope model folder, or a PyTorch / Lightning / safetensors file.
        #[arg(long)]
        model: PathBuf,
        /// The model's gene list (CSV/TSV with feature_id and/or feature_name, or one gene per
        /// line); default: genes.csv beside the checkpoint.
        #[arg(long)]
        genes: Option<PathBuf>,
        /// Compute backend.
        #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
        backend: BackendChoice,
        /// Cells per forward pass.
        #[arg(long, default_value_t = 1024)]
        batch_size: usize,
        /// The new .h5ad to write (never the input).
        #[arg(long)]
        out: PathBuf,
    },
    /// Print a summary of an .h5ad file, a 10x .h5 matrix or a Visium folder: shape, X
    /// encoding and dtype, sparsity, obs columns with category counts, obsm, layers, raw, uns
    /// colours.
    Inspect {
        /// The input (.h5ad, 10x .h5, or Visium Space Ranger folder).
        path: PathBuf,
    },
}

/// Runs a parsed command line.
///
/// # Errors
/// The command's error, for printing by `main` (one message, no backtrace).
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Some(Command::Embed {
            data,
            model,
            genes,
            backend,
            batch_size,
            out,
        }) => embed(&data, &model, genes.as_deref(), backend, batch_size, &out),
        Some(Command::Inspect { path }) => {
            let s = Summary::of_path(&path)?;
            println!("{s}");
            Ok(())
        }
        None => {
            // The explorer window lands with the UI layer; until then, say what there is.
            use clap::CommandFactory;
            println!("cellscope: the explorer window is not part of this build yet.\n");
            Cli::command().print_help()?;
            Ok(())
        }
    }
}

fn embed(
    data: &std::path::Path,
    model_path: &std::path::Path,
    genes: Option<&std::path::Path>,
    backend: BackendChoice,
    batch_size: usize,
    out: &std::path::Path,
) -> anyhow::Result<()> {
    use crate::data::{InputKind, detect, genes::dataset_genes, h5ad::H5adReader, write};
    use crate::model::embed::{EmbedOptions, Embedder};
    use std::sync::atomic::AtomicBool;

    write::check_not_input(data, out)?;
    let model = crate::model::load_model(model_path, genes)?;
    eprintln!("model: {}", model.weights);
    let engine = crate::model::Engine::new(&model.weights, backend).map_err(anyhow::Error::msg)?;
    eprintln!("device: {}", engine.description());
    let embedder = Embedder {
        engine: &engine,
        genes: &model.genes,
        dim: model.weights.embedding_dim(),
        opts: EmbedOptions {
            batch_size: batch_size.max(1),
            preprocessing: model.preprocessing,
            ..EmbedOptions::default()
        },
    };
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} cells  {msg}  [{elapsed_precise}, eta {eta}]",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut progress = |p: crate::model::embed::EmbedProgress| {
        bar.set_length(p.total as u64);
        bar.set_position(p.done as u64);
        bar.set_message(format!("{:.0} cells/s", p.cells_per_sec));
    };
    let cancel = AtomicBool::new(false);
    let (adata, emb) = if detect(data)? == InputKind::H5ad {
        let meta = H5adReader::open(data)?.read_metadata()?;
        let emb = embedder.embed_h5ad(data, &mut progress, &cancel)?;
        (meta, emb)
    } else {
        let a = crate::data::open(data)?;
        let emb = embedder.embed_matrix(
            &a.x.to_csr(),
            &dataset_genes(&a),
            data,
            &mut progress,
            &cancel,
        )?;
        (a, emb)
    };
    bar.finish_and_clear();
    eprintln!("genes: {}", emb.coverage);
    eprintln!(
        "embedded {} cells in {} dimensions at {:.0} cells/s",
        emb.values.nrows(),
        emb.values.ncols(),
        emb.cells_per_sec
    );
    let provenance = serde_json::json!({
        "cellscope_version": env!("CARGO_PKG_VERSION"),
        "model": model.path.display().to_string(),
        "model_source": model.provenance.source,
        "model_sha256": model.provenance.weights_sha256,
        "data": data.display().to_string(),
        "device": emb.device,
        "batch_size": batch_size,
        "preprocessing": model.preprocessing,
    });
    let additions = write::Additions {
        obsm: vec![("X_cellscope".into(), emb.values)],
        obs: Vec::new(),
        uns: vec![
            (
                "cellscope_coverage".into(),
                serde_json::to_string(&emb.coverage)?,
            ),
            ("cellscope_provenance".into(), provenance.to_string()),
        ],
    };
    write::write_h5ad(&adata, &additions, out)?;
    eprintln!("wrote {}", out.display());
    Ok(())
}
