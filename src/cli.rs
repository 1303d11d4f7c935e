//! Command-line interface: no arguments opens the window (once the explorer exists);
//! subcommands run the headless pipeline.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::data::summary::Summary;
use crate::model::BackendChoice;
use crate::model::train::{TrainLayers, TrainOptions};

mod train;

/// Self-supervised objectives (`cellscope pretrain --objective`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ObjectiveArg {
    /// Masked autoencoder, random masking (rate 0.5).
    RandomMask,
    /// Masked autoencoder, gene-programme masking (needs --gmt).
    GpMask,
    /// Masked autoencoder, isolated masking: one programme kept (needs --gmt).
    Isolated,
    /// Barlow Twins (lambda 0.0051).
    BarlowTwins,
    /// BYOL (EMA 0.99).
    Byol,
}

impl ObjectiveArg {
    fn name(self) -> &'static str {
        match self {
            Self::RandomMask => "random-mask",
            Self::GpMask => "gp-mask",
            Self::Isolated => "isolated",
            Self::BarlowTwins => "barlow-twins",
            Self::Byol => "byol",
        }
    }
}

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
    Embed {
        /// The input (.h5ad, 10x .h5, or Visium folder); raw counts in X.
        data: PathBuf,
        /// The model: a cellscope model folder, a PyTorch / Lightning / safetensors file, or a
        /// file on the HuggingFace hub, hf://OWNER/NAME[@REVISION]/PATH (downloaded once into
        /// the cache, e.g. hf://TillR/sc_pretrained/Pretrained Models/RandomMask.ckpt).
        #[arg(long)]
        model: PathBuf,
        /// The model's gene list (CSV/TSV/parquet with feature_id and/or feature_name, or one
        /// gene per line; a path or an hf:// name); default: genes.csv beside the checkpoint,
        /// or the hub repository's var.parquet.
        #[arg(long)]
        genes: Option<PathBuf>,
        /// Compute backend.
        #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
        backend: BackendChoice,
        /// Two-column CSV (dataset gene, model gene) mapping the dataset's gene symbols to the
        /// model's species first (e.g. mouse to human homologs).
        #[arg(long)]
        homologs: Option<PathBuf>,
        /// Cells per forward pass.
        #[arg(long, default_value_t = 1024)]
        batch_size: usize,
        /// The new .h5ad to write (never the input).
        #[arg(long)]
        out: PathBuf,
    },
    /// Neighbours, UMAP, Leiden and (with coordinates) spatial domains on an embedding; writes a
    /// new .h5ad with obsm['X_umap'], obs['leiden'] (and obs['spatial_domain']) and prints the
    /// metrics against --label-key.
    Analyze {
        /// The input (.h5ad, 10x .h5, or Visium folder).
        data: PathBuf,
        /// Representation: an obsm key (X_cellscope, X_pca, ...), `pca` for the PCA (64) of the
        /// log-normalised expression, or `X`. Default: X_cellscope when present, else `pca`.
        #[arg(long)]
        use_rep: Option<String>,
        /// Neighbours in the kNN graph (the cell itself included, as scanpy counts).
        #[arg(long, default_value_t = 15)]
        n_neighbors: usize,
        /// Leiden resolution (RB configuration model).
        #[arg(long, default_value_t = 1.0)]
        resolution: f64,
        /// Number of spatial domains to find (needs obsm['spatial']).
        #[arg(long)]
        spatial_domains: Option<usize>,
        /// Ground-truth obs column for the metrics (ARI, NMI, ...); missing values (NA, nan,
        /// empty, Ambiguous) are left out.
        #[arg(long)]
        label_key: Option<String>,
        /// Seed for UMAP, Leiden, PCA and domains.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// The new .h5ad to write (never the input).
        #[arg(long)]
        out: PathBuf,
        /// Also write the metrics as JSON here.
        #[arg(long)]
        metrics_json: Option<PathBuf>,
    },
    /// Transfer labels from a labelled reference to a query by kNN vote (k = 5); writes a new
    /// copy of the query with obs['cellscope_prediction'] and obs['cellscope_confidence'].
    Transfer {
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
        /// The new .h5ad to write (never the query).
        #[arg(long)]
        out: PathBuf,
        /// Also write the metrics as JSON here.
        #[arg(long)]
        metrics_json: Option<PathBuf>,
    },
    /// Pre-train a new self-supervised model on unlabelled data (counts, or log-normalised
    /// values; raw/X is used when X is scaled) and save it as a cellscope model folder.
    /// Recipe of Richter et al.: AdamW, StepLR(2, 0.9), gradient clipping 1.0.
    Pretrain {
        /// The input (.h5ad, 10x .h5, or Visium folder).
        data: PathBuf,
        /// The objective.
        #[arg(long, value_enum)]
        objective: ObjectiveArg,
        /// MSigDB-style GMT file of gene programmes (gp-mask, isolated).
        #[arg(long)]
        gmt: Option<PathBuf>,
        /// The model's genes: a CSV/TSV/parquet gene list or an .h5ad whose var to use; default:
        /// the dataset's genes.
        #[arg(long)]
        genes: Option<PathBuf>,
        /// Epochs.
        #[arg(long, default_value_t = 10)]
        epochs: usize,
        /// Seed (initialisation, shuffling, masks, augmentation).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Cells per step.
        #[arg(long, default_value_t = 8192)]
        batch_size: usize,
        /// AdamW learning rate.
        #[arg(long, default_value_t = 1e-3)]
        lr: f64,
        /// Hidden and embedding widths of the backbone.
        #[arg(long, value_delimiter = ',', default_value = "512,512,256,256,64")]
        hidden: Vec<usize>,
        /// Compute backend.
        #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
        backend: BackendChoice,
        /// The model folder to write (must not exist).
        #[arg(long)]
        out: PathBuf,
    },
    /// Fine-tune a classifier (Linear(64, n_types) on a pre-trained backbone, or the same
    /// network from random init without --model) on labelled data: 70/15/15 split (seed 42),
    /// class-weighted cross-entropy, validation macro-F1 each epoch, early stopping; prints the
    /// test scores and saves the best epoch's model.
    Finetune {
        /// Labelled input (.h5ad, 10x .h5, or Visium folder).
        data: PathBuf,
        /// obs column with the labels.
        #[arg(long)]
        label_key: String,
        /// Pre-trained model (cellscope folder, checkpoint or hf:// name); without it: supervised
        /// baseline.
        #[arg(long)]
        model: Option<PathBuf>,
        /// Genes of a model trained from scratch (gene list or .h5ad); default: the dataset's.
        #[arg(long)]
        genes: Option<PathBuf>,
        /// What trains: head, last:K (head and the last K backbone layers) or all.
        #[arg(long, default_value = "all")]
        train_layers: TrainLayers,
        /// Maximum epochs.
        #[arg(long, default_value_t = 50)]
        epochs: usize,
        /// Early-stopping patience (epochs without a better validation macro-F1).
        #[arg(long, default_value_t = 20)]
        patience: usize,
        /// Seed (initialisation, shuffling, dropout).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Cells per step.
        #[arg(long, default_value_t = 128)]
        batch_size: usize,
        /// AdamW learning rate.
        #[arg(long, default_value_t = 9e-4)]
        lr: f64,
        /// Backbone widths of a model trained from scratch.
        #[arg(long, value_delimiter = ',', default_value = "512,512,256,256,64")]
        hidden: Vec<usize>,
        /// Compute backend.
        #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
        backend: BackendChoice,
        /// The model folder to write (must not exist).
        #[arg(long)]
        out: PathBuf,
        /// Also write the test metrics as JSON here.
        #[arg(long)]
        metrics_json: Option<PathBuf>,
    },
    /// Predict cell types with a fine-tuned model; writes a new .h5ad with
    /// obs['cellscope_prediction'], obs['cellscope_confidence'] and
    /// obsm['cellscope_probabilities'].
    Predict {
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
    },
    /// Draw a figure of a dataset: cells at an obsm basis coloured by an obs column or a gene,
    /// with legend or colour bar (and a scale bar for spatial), as PNG (300 dpi by default) or
    /// SVG, with provenance metadata.
    Plot {
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
            homologs,
            batch_size,
            out,
        }) => embed(
            &data,
            &model,
            genes.as_deref(),
            backend,
            homologs.as_deref(),
            batch_size,
            &out,
        ),
        Some(Command::Analyze {
            data,
            use_rep,
            n_neighbors,
            resolution,
            spatial_domains,
            label_key,
            seed,
            out,
            metrics_json,
        }) => {
            let p = crate::pipeline::analyze::AnalyzeParams {
                n_neighbors,
                resolution,
                spatial_domains,
                umap: crate::analysis::umap::UmapParams {
                    seed,
                    ..Default::default()
                },
                seed,
                ..Default::default()
            };
            analyze_cmd(
                &data,
                use_rep.as_deref(),
                &p,
                label_key.as_deref(),
                &out,
                metrics_json.as_deref(),
            )
        }
        Some(Command::Transfer {
            reference,
            label_key,
            query,
            use_rep,
            model,
            label_map,
            query_label_key,
            k,
            out,
            metrics_json,
        }) => transfer_cmd(&TransferArgs {
            reference: &reference,
            label_key: &label_key,
            query: &query,
            use_rep: use_rep.as_deref(),
            model: model.as_deref(),
            label_map: label_map.as_deref(),
            query_label_key: query_label_key.as_deref(),
            k,
            out: &out,
            metrics_json: metrics_json.as_deref(),
        }),
        Some(Command::Pretrain {
            data,
            objective,
            gmt,
            genes,
            epochs,
            seed,
            batch_size,
            lr,
            hidden,
            backend,
            out,
        }) => train::pretrain(
            &data,
            crate::pipeline::train::PretrainJob {
                objective: objective.name().into(),
                gmt,
                genes,
                opts: TrainOptions {
                    epochs,
                    seed,
                    batch_size,
                    lr,
                    hidden,
                    ..TrainOptions::pretrain_default()
                },
                backend,
            },
            &out,
        ),
        Some(Command::Finetune {
            data,
            label_key,
            model,
            genes,
            train_layers,
            epochs,
            patience,
            seed,
            batch_size,
            lr,
            hidden,
            backend,
            out,
            metrics_json,
        }) => train::finetune(
            &data,
            model.as_deref(),
            crate::pipeline::train::FinetuneJob {
                label_key,
                layers: if model.is_some() {
                    train_layers
                } else {
                    TrainLayers::All
                },
                genes,
                opts: TrainOptions {
                    epochs,
                    patience,
                    seed,
                    batch_size,
                    lr,
                    hidden,
                    ..TrainOptions::finetune_default()
                },
                backend,
                split_seed: 42,
            },
            &out,
            metrics_json.as_deref(),
        ),
        Some(Command::Predict {
            data,
            model,
            label_key,
            label_map,
            out,
        }) => train::predict(
            &data,
            &model,
            label_key.as_deref(),
            label_map.as_deref(),
            &out,
        ),
        Some(Command::Plot {
            data,
            basis,
            color,
            width,
            height,
            dpi,
            title,
            out,
        }) => plot(
            &data,
            &basis,
            &color,
            crate::export::figure::FigureSize {
                width_in: width,
                height_in: height,
                dpi,
            },
            title,
            &out,
        ),
        Some(Command::Inspect { path }) => {
            let s = Summary::of_path(&path)?;
            println!("{s}");
            Ok(())
        }
        None => crate::ui::run(cli.path, cli.screenshot),
    }
}

/// [`crate::model::load_model`] on a local path or an `hf://OWNER/NAME[@REVISION]/PATH` name,
/// which is fetched from the HuggingFace hub into the cache first with a progress bar on
/// stderr (with the repository's `var.parquet` as the gene list when `genes` is not given;
/// [`crate::model::hub`]).
///
/// # Errors
/// The download's or the model's error.
pub(crate) fn load_model(
    model: &std::path::Path,
    genes: Option<&std::path::Path>,
) -> anyhow::Result<crate::model::Model> {
    let hub = crate::model::hub::Hub::from_env();
    // One bar per downloaded file (the model, then its gene list).
    let mut bar: Option<(String, indicatif::ProgressBar)> = None;
    let mut progress = |name: &str, done: u64, total: Option<u64>| {
        // Nothing yet while the hub is asked (a cached file's freshness check, or the wait for
        // the answer); the download's first call announces the length.
        if done == 0 && total.is_none() {
            return true;
        }
        if bar.as_ref().is_none_or(|(n, _)| n != name) {
            let b = indicatif::ProgressBar::new(total.unwrap_or(0));
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{msg}\n{bar:40} {bytes}/{total_bytes}  {bytes_per_sec}  [eta {eta}]",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            b.set_message(format!("downloading {name}"));
            if let Some((_, old)) = bar.replace((name.to_string(), b)) {
                old.finish();
            }
        }
        if let Some((_, b)) = &bar {
            b.set_position(done);
        }
        true
    };
    let (model, genes) = hub.resolve_model(model, genes, &mut progress)?;
    if let Some((_, b)) = bar {
        b.finish();
    }
    Ok(crate::model::load_model(&model, genes.as_deref())?)
}

fn embed(
    data: &std::path::Path,
    model_path: &std::path::Path,
    genes: Option<&std::path::Path>,
    backend: BackendChoice,
    homologs: Option<&std::path::Path>,
    batch_size: usize,
    out: &std::path::Path,
) -> anyhow::Result<()> {
    use crate::data::{InputKind, detect, h5ad::H5adReader, write};
    use crate::model::embed::{EmbedOptions, Embedder};
    use std::sync::atomic::AtomicBool;

    write::check_not_input(data, out)?;
    let homologs = homologs
        .map(crate::data::genes::Homologs::read_csv)
        .transpose()?;
    let model = load_model(model_path, genes)?;
    eprintln!("model: {}", model.weights);
    let engine = crate::model::Engine::new(&model.weights, backend).map_err(anyhow::Error::msg)?;
    eprintln!("device: {}", engine.description());
    let base = Embedder::for_model(&model, &engine);
    let embedder = Embedder {
        homologs: homologs.as_ref(),
        opts: EmbedOptions {
            batch_size: batch_size.max(1),
            ..base.opts
        },
        ..base
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
        let reader = H5adReader::open(data)?;
        let meta = if write::copies_x_from(data) {
            reader.read_metadata()?
        } else {
            reader.read()?
        };
        let emb = embedder.embed_h5ad(data, &mut progress, &cancel)?;
        (meta, emb)
    } else {
        let a = crate::data::open(data)?;
        let emb = embedder.embed_anndata(&a, &mut progress, &cancel)?;
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

fn plot(
    data: &std::path::Path,
    basis: &str,
    color: &str,
    size: crate::export::figure::FigureSize,
    title: Option<String>,
    out: &std::path::Path,
) -> anyhow::Result<()> {
    use crate::export::figure::{Figure, save_figure};
    let a = crate::data::open(data)?;
    let (coords, y_down, units) = if basis == "spatial" {
        let s = a.default_spatial().ok_or_else(|| {
            anyhow::anyhow!(
                "{}: no spatial coordinates (obsm['spatial'] or obs row/col)",
                data.display()
            )
        })?;
        (a.spatial_coords(&s)?, true, Some("units".to_string()))
    } else {
        let m = a
            .obsm
            .get(basis)
            .filter(|m| m.ncols() >= 2)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "{}: obsm has no 2-D '{basis}' (it has: {})",
                    data.display(),
                    a.obsm.keys().cloned().collect::<Vec<_>>().join(", ")
                )
            })?;
        (m.clone(), false, None)
    };
    let coloring = crate::render::coloring::obs_or_gene_coloring(&a, color).ok_or_else(|| {
        anyhow::anyhow!(
            "{}: '{color}' is neither an obs column ({}) nor a gene",
            data.display(),
            a.obs.column_names().join(", ")
        )
    })?;
    let positions: Vec<[f32; 2]> = coords
        .outer_iter()
        .map(|r| [r[0] as f32, r[1] as f32])
        .collect();
    let order: Vec<u32> = (0..positions.len() as u32).collect();
    let fig = Figure {
        title: title.unwrap_or_else(|| format!("{basis}: {color}")),
        positions: &positions,
        colors: &coloring.colors,
        order: &order,
        legend: &coloring.legend,
        colorbar: coloring
            .range
            .map(|(lo, hi)| (lo, hi, crate::render::coloring::Ramp::Viridis)),
        scale_bar: units,
        y_down,
        provenance: crate::export::provenance(
            &[("data", data)],
            serde_json::json!({"basis": basis, "color": color, "dpi": size.dpi,
                "width_in": size.width_in, "height_in": size.height_in}),
        ),
    };
    save_figure(&fig, &size, out)?;
    let (w, h) = size.pixels();
    eprintln!("wrote {} ({w} x {h} px, {} dpi)", out.display(), size.dpi);
    Ok(())
}

fn obs_labels(a: &crate::data::anndata::AnnData, key: &str) -> anyhow::Result<Vec<String>> {
    let c = a.obs.column(key).ok_or_else(|| {
        anyhow::anyhow!(
            "{}: obs has no column '{key}' (it has: {})",
            a.source.display(),
            a.obs.column_names().join(", ")
        )
    })?;
    Ok((0..c.len()).map(|i| c.value_string(i)).collect())
}

fn write_json_atomic(path: &std::path::Path, value: &serde_json::Value) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp, serde_json::to_string_pretty(value)?.as_bytes())?;
    tmp.persist(path)?;
    Ok(())
}

fn analyze_cmd(
    data: &std::path::Path,
    use_rep: Option<&str>,
    p: &crate::pipeline::analyze::AnalyzeParams,
    label_key: Option<&str>,
    out: &std::path::Path,
    metrics_json: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    use crate::data::{Column, write};
    use crate::pipeline::analyze::{
        Step, analyze, label_silhouette, representation, score_clusters,
    };

    write::check_not_input(data, out)?;
    let a = crate::data::open(data)?;
    let truth = label_key.map(|k| obs_labels(&a, k)).transpose()?;
    let coords = a.spatial_f32()?;
    if p.spatial_domains.is_some() && coords.is_none() {
        anyhow::bail!(
            "{}: --spatial-domains needs coordinates in obsm['spatial']",
            data.display()
        );
    }
    let (rep, rep_name) = representation(&a, use_rep, p.seed).map_err(anyhow::Error::msg)?;
    eprintln!(
        "representation: {rep_name}, {} x {}",
        rep.nrows(),
        rep.ncols()
    );
    let bar = indicatif::ProgressBar::new(100);
    let mut progress = |s: Step, f: f32| {
        bar.set_message(format!("{s:?}"));
        bar.set_position((f * 100.0) as u64);
    };
    let res = analyze(
        rep.view(),
        coords.as_ref().map(|c| c.view()),
        p,
        &crate::analysis::Control::default(),
        &mut progress,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    bar.finish_and_clear();
    let n_clusters = res.leiden.iter().max().map_or(0, |m| m + 1);
    eprintln!(
        "Leiden: {n_clusters} clusters, modularity {:.4}",
        res.modularity
    );
    let mut metrics = serde_json::json!({
        "representation": rep_name,
        "n_cells": rep.nrows(),
        "leiden": {"n_clusters": n_clusters, "modularity": res.modularity, "resolution": p.resolution},
        "seconds": res.seconds.iter().map(|(s, t)| (format!("{s:?}"), *t)).collect::<std::collections::BTreeMap<_, _>>(),
    });
    if let Some(t) = &truth {
        let (s, n) = score_clusters(t, &res.leiden);
        println!(
            "leiden vs {}: ARI {:.4}  NMI {:.4}  homogeneity {:.4}  completeness {:.4}  V {:.4}  ({n} cells)",
            label_key.unwrap_or_default(),
            s.ari,
            s.nmi,
            s.homogeneity,
            s.completeness,
            s.v_measure
        );
        metrics["leiden"]["vs_label"] = serde_json::to_value(s)?;
        if let Some((sil, used)) = label_silhouette(rep.view(), t) {
            println!(
                "silhouette of {} on the representation: {sil:.4} ({used} cells)",
                label_key.unwrap_or_default()
            );
            metrics["label_silhouette"] = serde_json::json!({"value": sil, "cells": used});
        }
        let (codes, _) = crate::analysis::metrics::encode(t);
        let agree = crate::analysis::metrics::knn_label_agreement(res.umap.view(), &codes, 15);
        println!("15-NN label agreement of the UMAP: {agree:.4}");
        metrics["umap_15nn_label_agreement"] = serde_json::json!(agree);
        let (s, n) = crate::pipeline::analyze::knn_protocol(rep.view(), t, 42);
        println!(
            "kNN classifier (k = 5, 70/15/15 split, seed 42), test set of {n}: accuracy {:.4}  macro-F1 {:.4}  weighted-F1 {:.4}",
            s.accuracy, s.macro_f1, s.weighted_f1
        );
        metrics["knn_classifier_test"] = serde_json::to_value(&s)?;
    }
    let mut obs = vec![(
        "leiden".to_string(),
        Column::categorical_from_labels(
            &res.leiden.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
        ),
    )];
    if let Some((dom, conf)) = &res.domains {
        obs.push((
            "spatial_domain".into(),
            Column::categorical_from_labels(&dom.iter().map(|c| c.to_string()).collect::<Vec<_>>()),
        ));
        obs.push((
            "spatial_domain_confidence".into(),
            Column::Float(conf.iter().map(|&c| c as f64).collect()),
        ));
        metrics["spatial_domain"] = serde_json::json!({"n_domains": p.spatial_domains});
        if let Some(t) = &truth {
            let (s, n) = score_clusters(t, dom);
            println!(
                "spatial_domain vs {}: ARI {:.4}  NMI {:.4}  ({n} cells)",
                label_key.unwrap_or_default(),
                s.ari,
                s.nmi
            );
            metrics["spatial_domain"]["vs_label"] = serde_json::to_value(s)?;
        }
    }
    let mut obsm = vec![("X_umap".to_string(), res.umap)];
    if rep_name.starts_with("PCA") {
        obsm.push(("X_pca".into(), rep));
    }
    let additions = write::Additions {
        obsm,
        obs,
        uns: vec![("cellscope_analysis".into(), metrics.to_string())],
    };
    write::write_h5ad(&a, &additions, out)?;
    eprintln!("wrote {}", out.display());
    if let Some(m) = metrics_json {
        write_json_atomic(m, &metrics)?;
    }
    Ok(())
}

struct TransferArgs<'a> {
    reference: &'a std::path::Path,
    label_key: &'a str,
    query: &'a std::path::Path,
    use_rep: Option<&'a str>,
    model: Option<&'a std::path::Path>,
    label_map: Option<&'a std::path::Path>,
    query_label_key: Option<&'a str>,
    k: usize,
    out: &'a std::path::Path,
    metrics_json: Option<&'a std::path::Path>,
}

fn embed_with(
    model: &crate::model::Model,
    a: &crate::data::anndata::AnnData,
) -> anyhow::Result<ndarray::Array2<f32>> {
    let engine = crate::model::Engine::new(&model.weights, BackendChoice::Auto)
        .map_err(anyhow::Error::msg)?;
    let cancel = std::sync::atomic::AtomicBool::new(false);
    let emb = crate::model::embed::Embedder::for_model(model, &engine).embed_anndata(
        a,
        &mut |_| {},
        &cancel,
    )?;
    eprintln!("{}: genes {}", a.source.display(), emb.coverage);
    Ok(emb.values)
}

fn transfer_cmd(t: &TransferArgs) -> anyhow::Result<()> {
    use crate::analysis::transfer::{LabelMap, score_predictions};
    use crate::data::{Column, write};
    use crate::pipeline::transfer::{shared_gene_representation, transfer_labels};

    write::check_not_input(t.query, t.out)?;
    write::check_not_input(t.reference, t.out)?;
    let map = t
        .label_map
        .map(LabelMap::read_csv)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let r = crate::data::open(t.reference)?;
    let q = crate::data::open(t.query)?;
    let labels = obs_labels(&r, t.label_key)?;
    let query_truth = t.query_label_key.map(|k| obs_labels(&q, k)).transpose()?;
    let (rr, qr, rep_name) = if let Some(m) = t.model {
        let model = load_model(m, None)?;
        (
            embed_with(&model, &r)?,
            embed_with(&model, &q)?,
            format!("model {}", m.display()),
        )
    } else if let Some(key) = t.use_rep {
        let get = |a: &crate::data::anndata::AnnData| -> anyhow::Result<ndarray::Array2<f32>> {
            a.obsm
                .get(key)
                .map(|m| m.mapv(|v| v as f32))
                .ok_or_else(|| anyhow::anyhow!("{}: obsm has no '{key}'", a.source.display()))
        };
        let (rr, qr) = (get(&r)?, get(&q)?);
        if rr.ncols() != qr.ncols() {
            anyhow::bail!(
                "obsm['{key}'] has {} columns in the reference but {} in the query",
                rr.ncols(),
                qr.ncols()
            );
        }
        (rr, qr, format!("obsm['{key}']"))
    } else {
        let (rr, qr, shared) = shared_gene_representation(&r, &q, 0).map_err(anyhow::Error::msg)?;
        let name = format!(
            "log-normalised expression of {shared} shared genes, reference PCA ({})",
            rr.ncols()
        );
        (rr, qr, name)
    };
    eprintln!("representation: {rep_name}");
    let res = transfer_labels(rr.view(), &labels, qr.view(), map.as_ref(), t.k);
    let mut metrics = serde_json::json!({"representation": rep_name, "k": t.k, "reference_cells": res.reference_cells, "query_cells": q.n_obs()});
    if let Some(truth) = &query_truth {
        let (s, classes, n) = score_predictions(
            &res.predicted,
            truth,
            map.as_ref(),
            &crate::pipeline::analyze::MISSING_LABELS,
        );
        println!(
            "accuracy {:.4}  macro-F1 {:.4}  micro-F1 {:.4}  weighted-F1 {:.4}  ({n} cells)",
            s.accuracy, s.macro_f1, s.micro_f1, s.weighted_f1
        );
        for (i, &c) in s.classes.iter().enumerate() {
            println!(
                "  {:<32} precision {:.3}  recall {:.3}  F1 {:.3}  support {}",
                classes[c as usize], s.precision[i], s.recall[i], s.f1[i], s.support[i]
            );
        }
        metrics["scores"] = serde_json::to_value(&s)?;
        metrics["classes"] = serde_json::to_value(&classes)?;
        metrics["scored_cells"] = serde_json::json!(n);
    }
    let additions = write::Additions {
        obsm: Vec::new(),
        obs: vec![
            (
                "cellscope_prediction".into(),
                Column::categorical_from_labels(&res.predicted),
            ),
            (
                "cellscope_confidence".into(),
                Column::Float(res.confidence.iter().map(|&c| c as f64).collect()),
            ),
        ],
        uns: vec![("cellscope_transfer".into(), metrics.to_string())],
    };
    write::write_h5ad(&q, &additions, t.out)?;
    eprintln!("wrote {}", t.out.display());
    if let Some(m) = t.metrics_json {
        write_json_atomic(m, &metrics)?;
    }
    Ok(())
}
