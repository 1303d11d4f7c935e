//! Analysis: turning embeddings into neighbours, layouts, clusters, spatial domains, label
//! transfer and the metrics that judge them. CPU code, no UI; depends on `data` only.
//!
//! Each algorithm follows a named reference implementation (scanpy, umap-learn, leidenalg,
//! scikit-learn); the module docs say which, and `tests/analysis_reference.rs` checks the numbers
//! against fixtures those tools wrote.

pub mod cluster;
pub mod leiden;
pub mod metrics;
pub mod neighbors;
pub mod pca;
pub mod spatial;
pub mod transfer;
pub mod umap;

pub use crate::data::rng::Rng;

/// Cooperative cancellation and progress for long analysis steps: `check` returns
/// `Err(Cancelled)` once the flag is set.
#[derive(Debug, Clone, Default)]
pub struct Control {
    cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

/// The step was cancelled by the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cancelled")]
pub struct Cancelled;

impl Control {
    /// A control observing `flag`.
    pub fn with_cancel(flag: std::sync::Arc<std::sync::atomic::AtomicBool>) -> Self {
        Control { cancel: Some(flag) }
    }

    /// `Err(Cancelled)` when cancellation was requested.
    pub fn check(&self) -> Result<(), Cancelled> {
        match &self.cancel {
            Some(f) if f.load(std::sync::atomic::Ordering::Relaxed) => Err(Cancelled),
            _ => Ok(()),
        }
    }
}
