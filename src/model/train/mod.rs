//! Self-supervised pre-training and fine-tuning in burn: a hand-written training loop (burn's
//! custom-training-loop pattern: forward on an autodiff device, `backward`, `GradientsParams`,
//! optimizer `step`) on the wgpu or CPU backend.
//!
//! Objectives (SSL_MODELS.md, Richter et al. 2024):
//! - masked autoencoders: random masking (rate 0.5, visible input scaled by `1/(1-rate)`, MSE on
//!   the masked entries), gene-programme masking (whole programmes from a GMT file hidden) and
//!   isolated masking (one programme kept, the rest reconstructed);
//! - Barlow Twins (Zbontar et al. 2021; lambda 0.0051) on two augmented views;
//! - BYOL (Grill et al. 2020; EMA target, tau 0.99);
//! - scSSL-Bench's generic methods (Barkmann et al. 2025): SimCLR (NT-Xent, temperature 0.5)
//!   and VICReg (5, 5, 1) on the bench's encoder or the backbone, with the bench's augmentations
//!   (masking, Gaussian noise, inner swap, cross-over; [`bench_views`]); Adam-style lr 1e-4,
//!   weight decay 1e-6, batch 256, constant learning rate, no clipping.
//!
//! Optimisation as the paper: AdamW (lr 1e-3, weight decay 0.01, PyTorch's epsilon 1e-8),
//! StepLR (step 2 epochs, gamma 0.9) and gradient clipping to a global L2 norm of 1.0 (PyTorch
//! Lightning's `gradient_clip_val`, which clips the norm over all parameters, not per tensor as
//! burn's own clipping does). Fine-tuning: AdamW lr 9e-4, weight decay 0.05, batch 128,
//! class-weighted cross-entropy, early stopping on validation macro-F1 (patience 20).
//!
//! Progress goes out as [`TrainEvent`]s on a bounded crossbeam channel; a cancel flag is checked
//! before every step and the last good model (end of the last whole epoch; for fine-tuning the
//! best validation epoch) is returned.
//!
//! Input data: a CSR matrix already preprocessed as the model expects (`normalize_total` +
//! `log1p`) and aligned to the model's genes; batches are densified one at a time, so memory is
//! the sparse matrix plus one dense batch.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::module::{Module, ParamId};
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor, TensorData};
use crossbeam_channel::Sender;
use rayon::prelude::*;

use crate::data::CsrMatrix;
use crate::data::genes::GeneList;
use crate::data::rng::Rng;
use crate::model::bench::{Encoder, HeadKind, Siamese};
use crate::model::checkpoint::{Activation, ModelKind, ModelWeights};
use crate::model::engine::BackendChoice;
use crate::model::nets::{
    AutoEncoder, BarlowTwins, ByolOnline, Classifier, Mlp, MlpConfig, ProjectorConfig,
};

mod augment;
mod bench_views;
mod finetune;
pub(crate) mod heap;
mod loops;
mod losses;
mod objectives;
mod options;
mod sparse_input;

pub use augment::*;
pub use bench_views::*;
pub use finetune::*;
pub use loops::*;
pub use losses::*;
pub use objectives::*;
pub use options::*;
pub use sparse_input::{FirstLayerGrads, SparseFirstLayer};

/// A training error.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A GMT file could not be read.
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    /// A GMT file could not be used.
    #[error("{file}: {message}")]
    Gmt {
        /// The GMT file.
        file: String,
        /// What was wrong.
        message: String,
    },
    /// Options or data that cannot be trained on.
    #[error("{0}")]
    Invalid(String),
    /// No usable compute device.
    #[error("{0}")]
    Device(String),
    /// Cancelled before a whole epoch was done (nothing to keep).
    #[error("training cancelled before the first epoch finished")]
    Cancelled,
    /// The loss became non-finite before a whole epoch was done.
    #[error(
        "training diverged at step {0} (non-finite loss) before the first epoch finished; try a lower --lr"
    )]
    Diverged(usize),
}
