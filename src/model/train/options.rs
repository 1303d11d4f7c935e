//! What a training run is told (options, which layers train, labelled cells) and what it
//! reports (events per step and epoch, the outcome).

#[allow(clippy::wildcard_imports)]
use super::*;

/// Hyper-parameters of a training run (written into the model's provenance).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainOptions {
    /// Epochs.
    pub epochs: usize,
    /// Cells per step (8,192 for pre-training, 128 for fine-tuning in the paper).
    pub batch_size: usize,
    /// AdamW learning rate.
    pub lr: f64,
    /// AdamW (decoupled) weight decay.
    pub weight_decay: f64,
    /// StepLR: multiply the learning rate by `gamma` every `step_size` epochs.
    pub step_size: usize,
    /// StepLR factor.
    pub gamma: f64,
    /// Global gradient L2-norm bound (`None` = no clipping).
    pub clip_norm: Option<f64>,
    /// Seed of initialisation, shuffling, masks, augmentation and dropout.
    pub seed: u64,
    /// Dropout after hidden activations.
    pub dropout: f64,
    /// Hidden and embedding widths of a new backbone (input width = number of genes).
    pub hidden: Vec<usize>,
    /// Emit a step event every `log_every` steps.
    pub log_every: usize,
    /// Fraction of cells held out for the validation loss (pre-training).
    pub val_fraction: f64,
    /// Early-stopping patience in epochs (fine-tuning).
    pub patience: usize,
}

impl TrainOptions {
    /// The pre-training recipe of SSL_MODELS.md: AdamW lr 1e-3, weight decay 0.01, dropout 0.1,
    /// batch 8,192, StepLR(2, 0.9), clipping 1.0; backbone `genes -> 512 -> 512 -> 256 -> 256 ->
    /// 64`.
    pub fn pretrain_default() -> Self {
        TrainOptions {
            epochs: 10,
            batch_size: 8192,
            lr: 1e-3,
            weight_decay: 0.01,
            step_size: 2,
            gamma: 0.9,
            clip_norm: Some(1.0),
            seed: 0,
            dropout: 0.1,
            hidden: vec![512, 512, 256, 256, 64],
            log_every: 1,
            val_fraction: 0.1,
            patience: 20,
        }
    }

    /// [`Self::pretrain_default`] with the objective's learning rate and weight decay
    /// ([`ObjectiveKind::recipe`]: 0.01 and 1e-5 for Barlow Twins and BYOL); for SimCLR and
    /// VICReg scSSL-Bench's recipe: batch 256, constant learning rate 1e-4, weight decay 1e-6,
    /// no gradient clipping (PyTorch Lightning's default).
    pub fn pretrain_for(kind: ObjectiveKind) -> Self {
        let (lr, weight_decay) = kind.recipe();
        let base = TrainOptions {
            lr,
            weight_decay,
            ..Self::pretrain_default()
        };
        if kind.is_generic() {
            TrainOptions {
                batch_size: 256,
                step_size: usize::MAX,
                gamma: 1.0,
                clip_norm: None,
                ..base
            }
        } else {
            base
        }
    }

    /// The fine-tuning recipe of the reusability study: AdamW lr 9e-4, weight decay 0.05,
    /// batch 128, early stopping with patience 20.
    pub fn finetune_default() -> Self {
        TrainOptions {
            epochs: 50,
            batch_size: 128,
            lr: 9e-4,
            weight_decay: 0.05,
            step_size: usize::MAX,
            gamma: 1.0,
            clip_norm: Some(1.0),
            log_every: 10,
            ..Self::pretrain_default()
        }
    }

    pub(super) fn lr_at(&self, epoch: usize) -> f64 {
        self.lr * self.gamma.powi((epoch / self.step_size.max(1)) as i32)
    }
}

/// What a [`TrainEvent`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// After a training step.
    Step,
    /// After an epoch, with validation values.
    Epoch,
}

/// Progress of a training run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainEvent {
    /// Step or epoch event.
    pub kind: EventKind,
    /// Epoch (0-based).
    pub epoch: usize,
    /// Epochs planned.
    pub epochs: usize,
    /// Steps done in all (1-based after the first step).
    pub step: usize,
    /// Steps per epoch.
    pub steps_per_epoch: usize,
    /// Training loss: of the step (step events) or the epoch mean (epoch events).
    pub train_loss: f64,
    /// Validation loss (epoch events).
    pub val_loss: Option<f64>,
    /// Validation macro-F1 (fine-tuning epoch events).
    pub val_macro_f1: Option<f64>,
    /// Training throughput since the epoch started (cells per second).
    pub cells_per_sec: f64,
    /// Learning rate of the step.
    pub lr: f64,
}

/// The result of a run.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    /// The trained (last good) weights.
    pub weights: ModelWeights,
    /// Every epoch event, in order.
    pub history: Vec<TrainEvent>,
    /// Whether the run stopped on a cancel request.
    pub cancelled: bool,
    /// Whether early stopping ended it.
    pub early_stopped: bool,
    /// Whether a non-finite loss ended it (the last good epoch is kept).
    pub diverged: bool,
    /// Epoch whose weights were kept.
    pub best_epoch: usize,
    /// The device used, in words.
    pub device: String,
}

/// Which layers fine-tuning trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TrainLayers {
    /// Only the classifier head.
    Head,
    /// The head and the last `k` backbone layers.
    Last(usize),
    /// Everything.
    All,
}

/// A `--train-layers` value that is not `head`, `last:K` or `all`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not head, last:K or all")]
pub struct ParseLayersError(pub String);

impl std::str::FromStr for TrainLayers {
    type Err = ParseLayersError;
    fn from_str(s: &str) -> Result<Self, ParseLayersError> {
        match s {
            "head" => Ok(TrainLayers::Head),
            "all" => Ok(TrainLayers::All),
            _ => s
                .strip_prefix("last:")
                .and_then(|k| k.parse().ok())
                .map(TrainLayers::Last)
                .ok_or_else(|| ParseLayersError(s.to_string())),
        }
    }
}

/// Labelled cells for fine-tuning: class codes per cell and the split.
pub struct Labelled<'a> {
    /// Class code of every cell of `x` (`u32::MAX` = unlabelled, never used).
    pub codes: &'a [u32],
    /// Class names, indexed by code.
    pub class_names: &'a [String],
    /// Training cells.
    pub train: &'a [usize],
    /// Validation cells (macro-F1 each epoch, early stopping).
    pub val: &'a [usize],
}

/// Scores predictions against truth (macro-F1): passed in so that `model` does not depend on
/// `analysis` (the pipeline passes sklearn-checked `analysis::metrics`).
pub type Scorer<'a> = &'a dyn Fn(&[u32], &[u32]) -> f64;
