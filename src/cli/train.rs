//! `cellscope pretrain` and `finetune`: the training jobs of [`crate::pipeline::jobs::train`]
//! with a progress bar over all steps and a line per epoch; the model is saved as a cellscope
//! folder.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{BackendArg, with_handle};
use crate::model::bench::EncoderKind;
use crate::model::train::{Augmentations, Generic, ObjectiveKind, TrainLayers, TrainOptions};
use crate::pipeline::jobs::JobError;
use crate::pipeline::jobs::train::{FinetuneJob, PretrainJob, Trained};

/// Self-supervised objectives (`--objective`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ObjectiveArg {
    /// Masked autoencoder, random masking (rate 0.5).
    RandomMask,
    /// Masked autoencoder, gene-programme masking (needs --gmt).
    GpMask,
    /// Masked autoencoder, isolated masking: one programme kept (needs --gmt).
    Isolated,
    /// Masked autoencoder from one transcription factor's target programme to the other genes
    /// (needs --gmt with MSigDB C3 TFT sets).
    GpToTf,
    /// Barlow Twins (lambda 0.0051).
    BarlowTwins,
    /// BYOL (EMA 0.99).
    Byol,
    /// SimCLR (NT-Xent, temperature 0.5; scSSL-Bench).
    Simclr,
    /// VICReg (weights 5, 5, 1; scSSL-Bench).
    Vicreg,
}

/// The encoder SimCLR and VICReg train (`--encoder`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EncoderArg {
    /// scSSL-Bench's Linear(genes,128)-BN-ReLU-Linear(128,64)-BN-Dropout.
    Bench,
    /// The ssl_in_scg backbone (SELU; widths from --hidden).
    Backbone,
}

impl From<ObjectiveArg> for ObjectiveKind {
    fn from(o: ObjectiveArg) -> Self {
        match o {
            ObjectiveArg::RandomMask => ObjectiveKind::RandomMask,
            ObjectiveArg::GpMask => ObjectiveKind::GpMask,
            ObjectiveArg::Isolated => ObjectiveKind::Isolated,
            ObjectiveArg::GpToTf => ObjectiveKind::GpToTf,
            ObjectiveArg::BarlowTwins => ObjectiveKind::BarlowTwins,
            ObjectiveArg::Byol => ObjectiveKind::Byol,
            ObjectiveArg::Simclr => ObjectiveKind::Simclr,
            ObjectiveArg::Vicreg => ObjectiveKind::Vicreg,
        }
    }
}

/// The options of a model trained here, shared by `pretrain` and `finetune`.
#[derive(Debug, clap::Args)]
pub struct NewModel {
    /// Hidden and embedding widths of a backbone trained from scratch (SimCLR / VICReg with
    /// `--encoder bench` use the bench's 128, 64).
    #[arg(long, value_delimiter = ',', default_value = "512,512,256,256,64")]
    hidden: Vec<usize>,
    /// Compute backend.
    #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
    backend: BackendArg,
    /// The model folder to write (must not exist).
    #[arg(long)]
    out: PathBuf,
}

/// Arguments of `cellscope pretrain`.
#[derive(Debug, clap::Args)]
pub struct PretrainArgs {
    /// The input (.h5ad, 10x .h5, or Visium folder).
    data: PathBuf,
    /// The objective.
    #[arg(long, value_enum)]
    objective: ObjectiveArg,
    /// MSigDB-style GMT file of gene programmes (gp-mask, isolated: e.g. C8 cell-type
    /// signatures; gp-to-tf: C3 TFT sets named <FACTOR>_TARGET_GENES).
    #[arg(long)]
    gmt: Option<PathBuf>,
    /// The model's genes: a CSV/TSV/parquet gene list or an .h5ad whose var to use; default:
    /// the dataset's genes.
    #[arg(long)]
    genes: Option<PathBuf>,
    /// SimCLR / VICReg: the encoder trained.
    #[arg(long, value_enum, default_value_t = EncoderArg::Bench)]
    encoder: EncoderArg,
    /// SimCLR / VICReg: the views' augmentations, NAME:FRACTION[@PROBABILITY] separated by
    /// commas, NAME one of mask (fraction kept), noise, swap, crossover (scSSL-Bench's;
    /// default probabilities 0.5, 0.3, 0.5, 0.4), or none.
    #[arg(long, default_value = "mask:0.5")]
    augment: Augmentations,
    /// SimCLR / VICReg: projection head width.
    #[arg(long, default_value_t = 256)]
    head_width: usize,
    /// Epochs.
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    /// Seed (initialisation, shuffling, masks, augmentation).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Cells per step; default: the objective's recipe (8,192; 256 for SimCLR and VICReg).
    #[arg(long)]
    batch_size: Option<usize>,
    /// AdamW learning rate; default: the objective's recipe (1e-3 masked autoencoders, 0.01
    /// Barlow Twins and BYOL, 1e-4 SimCLR and VICReg).
    #[arg(long)]
    lr: Option<f64>,
    /// AdamW weight decay; default: the objective's recipe (0.01 masked autoencoders, 1e-5
    /// Barlow Twins and BYOL, 1e-6 SimCLR and VICReg).
    #[arg(long)]
    weight_decay: Option<f64>,
    #[command(flatten)]
    model: NewModel,
}

/// Arguments of `cellscope finetune`.
#[derive(Debug, clap::Args)]
pub struct FinetuneArgs {
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
    #[command(flatten)]
    new_model: NewModel,
    /// Also write the test metrics as JSON here.
    #[arg(long)]
    metrics_json: Option<PathBuf>,
}

fn check_out(out: &Path) -> Result<(), JobError> {
    if out.exists() {
        return Err(JobError::Input(format!(
            "{}: already exists; choose a new folder for the model",
            out.display()
        )));
    }
    Ok(())
}

/// Saves the model and prints how the run ended. A run cancelled with Ctrl-C saves nothing (the
/// window keeps its last good epoch; the command line treats Ctrl-C as "stop, keep nothing").
fn save_and_report(t: &Trained, out: &Path) -> anyhow::Result<()> {
    if t.outcome.cancelled {
        return Err(JobError::Cancelled.into());
    }
    crate::model::save_model(&t.model, out)?;
    eprintln!(
        "{}: {}; {}; genes {}",
        out.display(),
        t.model.weights,
        t.summary(),
        t.coverage
    );
    if let Some(e) = t.outcome.history.last() {
        eprintln!(
            "final train loss {:.5}{}{}, {:.0} cells/s",
            e.train_loss,
            e.val_loss
                .map(|v| format!(", val loss {v:.5}"))
                .unwrap_or_default(),
            e.val_macro_f1
                .map(|v| format!(", val macro-F1 {v:.4}"))
                .unwrap_or_default(),
            e.cells_per_sec
        );
    }
    if let Some((c, _)) = &t.test {
        println!(
            "test (15%): macro-F1 {:.4}, accuracy {:.4}, weighted F1 {:.4}",
            c.macro_f1, c.accuracy, c.weighted_f1
        );
    }
    Ok(())
}

/// Runs `cellscope pretrain`.
///
/// # Errors
/// An existing output; the job's error.
pub fn pretrain(a: PretrainArgs) -> anyhow::Result<()> {
    let m = a.model;
    check_out(&m.out)?;
    let kind: ObjectiveKind = a.objective.into();
    let recipe = TrainOptions::pretrain_for(kind);
    let job = PretrainJob {
        objective: kind,
        gmt: a.gmt,
        generic: Generic {
            encoder: match a.encoder {
                EncoderArg::Bench => EncoderKind::Bench,
                EncoderArg::Backbone => EncoderKind::Backbone,
            },
            head_width: a.head_width,
            augment: a.augment,
        },
        genes: a.genes,
        opts: TrainOptions {
            epochs: a.epochs,
            seed: a.seed,
            batch_size: a.batch_size.unwrap_or(recipe.batch_size),
            lr: a.lr.unwrap_or(recipe.lr),
            weight_decay: a.weight_decay.unwrap_or(recipe.weight_decay),
            hidden: m.hidden,
            ..recipe
        },
        backend: m.backend.into(),
    };
    let adata = Arc::new(crate::data::open(&a.data)?);
    let trained = with_handle(|h| crate::pipeline::jobs::train::pretrain(adata, job, h))?;
    save_and_report(&trained, &m.out)
}

/// Runs `cellscope finetune`; also writes the test metrics as JSON when asked.
///
/// # Errors
/// An existing output; the job's error.
pub fn finetune(a: FinetuneArgs) -> anyhow::Result<()> {
    check_out(&a.new_model.out)?;
    let job = FinetuneJob {
        label_key: a.label_key,
        layers: if a.model.is_some() {
            a.train_layers
        } else {
            TrainLayers::All
        },
        genes: a.genes,
        opts: TrainOptions {
            epochs: a.epochs,
            patience: a.patience,
            seed: a.seed,
            batch_size: a.batch_size,
            lr: a.lr,
            hidden: a.new_model.hidden,
            ..TrainOptions::finetune_default()
        },
        backend: a.new_model.backend.into(),
        split_seed: 42,
    };
    let adata = Arc::new(crate::data::open(&a.data)?);
    let init = a
        .model
        .as_deref()
        .map(|m| super::load_model(m, None))
        .transpose()?;
    let trained = with_handle(|h| crate::pipeline::jobs::train::finetune(adata, job, init, h))?;
    save_and_report(&trained, &a.new_model.out)?;
    if let (Some(p), Some((c, names))) = (&a.metrics_json, &trained.test) {
        let per_class: serde_json::Map<String, serde_json::Value> = c
            .classes
            .iter()
            .zip(&c.f1)
            .map(|(&k, &f)| (names[k as usize].clone(), f.into()))
            .collect();
        let v = serde_json::json!({
            "split": "70/15/15 test",
            "macro_f1": c.macro_f1,
            "accuracy": c.accuracy,
            "micro_f1": c.micro_f1,
            "weighted_f1": c.weighted_f1,
            "f1_per_class": per_class,
            "epochs": trained.outcome.history.len(),
            "best_epoch": trained.outcome.best_epoch,
        });
        crate::pipeline::jobs::export::write_json(p, &v)?;
    }
    Ok(())
}
