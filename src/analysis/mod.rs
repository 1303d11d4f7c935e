//! Analysis: turning embeddings into neighbours, layouts, clusters, spatial domains, label
//! transfer and the metrics that judge them. CPU code, no UI; depends on `data` only.
//!
//! Each algorithm follows a named reference implementation (scanpy, umap-learn, leidenalg,
//! scikit-learn); the module docs say which, and `tests/it/analysis_reference.rs` checks the numbers
//! against fixtures those tools wrote.

pub mod cluster;
pub mod impute;
pub mod kbet;
pub mod leiden;
pub mod metrics;
pub mod neighbors;
pub mod pca;
pub mod prediction;
pub mod scib;
pub mod spatial;
pub mod spatial_graph;
pub mod split;
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

/// A parameter outside the range an algorithm accepts, found by the parameters' `check()`
/// before anything runs (linfa's `ParamGuard` habit), so a bad `--resolution` or `k` is a
/// message, not a panic on the worker.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{name} = {value}: {expected}")]
pub struct ParamError {
    /// The parameter, as the command line names it (`n_neighbors`, `resolution`, ...).
    pub name: &'static str,
    /// The value given, as text.
    pub value: String,
    /// What is accepted.
    pub expected: &'static str,
}

impl ParamError {
    /// `Err` naming `name` unless `ok`.
    ///
    /// # Errors
    /// The [`ParamError`] when `ok` is false.
    pub fn unless(
        ok: bool,
        name: &'static str,
        value: impl std::fmt::Display,
        expected: &'static str,
    ) -> Result<(), ParamError> {
        if ok {
            Ok(())
        } else {
            Err(ParamError {
                name,
                value: value.to_string(),
                expected,
            })
        }
    }
}

impl umap::UmapParams {
    /// Checks the ranges umap-learn accepts.
    ///
    /// # Errors
    /// [`ParamError`] naming the first parameter out of range.
    pub fn check(&self) -> Result<(), ParamError> {
        let pos = |v: f64| v.is_finite() && v > 0.0;
        ParamError::unless(pos(self.spread), "spread", self.spread, "a positive number")?;
        ParamError::unless(
            self.min_dist.is_finite() && (0.0..=self.spread).contains(&self.min_dist),
            "min_dist",
            self.min_dist,
            "between 0 and spread",
        )?;
        ParamError::unless(
            pos(self.learning_rate),
            "learning_rate",
            self.learning_rate,
            "a positive number",
        )?;
        ParamError::unless(
            self.repulsion_strength.is_finite() && self.repulsion_strength >= 0.0,
            "repulsion_strength",
            self.repulsion_strength,
            "zero or more",
        )?;
        ParamError::unless(
            self.negative_sample_rate.is_finite() && self.negative_sample_rate >= 0.0,
            "negative_sample_rate",
            self.negative_sample_rate,
            "zero or more",
        )?;
        ParamError::unless(
            self.n_epochs.is_none_or(|e| e >= 1),
            "n_epochs",
            format!("{:?}", self.n_epochs),
            "at least 1",
        )
    }
}
