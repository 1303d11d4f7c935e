//! Imputing genes of a spatial panel from a scRNA-seq reference (SpaGE-style,
//! [`crate::analysis::impute`]), with the reusability study's hold-out check: a gene the query
//! measured and the user names is left out of the alignment, predicted, and scored by Pearson
//! correlation against its measured values.

use ndarray::Array2;
use serde::Serialize;

use super::train::model_input;
use super::{Handle, JobError, Step};
use crate::analysis::impute::{ImputeParams, impute, pearson};
use crate::data::anndata::AnnData;
use crate::data::rng::Rng;
use crate::model::embed::Preprocessing;

/// What [`run`] imputes.
#[derive(Debug, Clone, Default)]
pub struct ImputeJob {
    /// Genes to predict (reference symbols, case-insensitive); those the query also measured
    /// are held out.
    pub genes: Vec<String>,
    /// Also hold out this many randomly chosen shared genes (seeded).
    pub hold_out: usize,
    /// Seed of the hold-out choice.
    pub seed: u64,
    /// SpaGE's parameters.
    pub params: ImputeParams,
}

/// The result of [`run`].
#[derive(Debug, Clone, Serialize)]
pub struct Imputed {
    /// The predicted genes (reference symbols), in the columns' order.
    pub genes: Vec<String>,
    /// Predicted log-normalised expression, `n_query x genes`.
    #[serde(skip)]
    pub values: Array2<f32>,
    /// Per held-out gene: Pearson correlation of prediction and measurement across the query
    /// cells.
    pub held_out: Vec<(String, f64)>,
    /// Shared genes the alignment used.
    pub n_shared: usize,
}

impl Imputed {
    /// Mean hold-out Pearson correlation (`None` without held-out genes).
    pub fn mean_pcc(&self) -> Option<f64> {
        (!self.held_out.is_empty())
            .then(|| self.held_out.iter().map(|g| g.1).sum::<f64>() / self.held_out.len() as f64)
    }
}

/// Both datasets `normalize_total` (median target, scanpy's default) + `log1p`; the shared
/// genes (minus the held-out ones) align them; the named and held-out genes are predicted.
///
/// # Errors
/// [`JobError::Params`]: nothing to impute, a gene the reference lacks, too many held out;
/// [`JobError::Input`]: data that are not counts; [`JobError::Cancelled`].
pub fn run(
    reference: &AnnData,
    query: &AnnData,
    job: &ImputeJob,
    h: &mut Handle<'_>,
) -> Result<Imputed, JobError> {
    h.step(Step::Transfer, 0.0);
    let pre = Preprocessing {
        target_sum: None,
        log1p: true,
    };
    let (rx, rgenes, _) = model_input(reference, &pre)?;
    let (qx, qgenes, _) = model_input(query, &pre)?;
    let upper = |v: &[String]| v.iter().map(|s| s.to_uppercase()).collect::<Vec<_>>();
    let (rsym, qsym) = (upper(&rgenes.symbols), upper(&qgenes.symbols));
    let q_index: std::collections::HashMap<&str, usize> = qsym
        .iter()
        .enumerate()
        .rev()
        .map(|(j, s)| (s.as_str(), j))
        .collect();
    let r_index: std::collections::HashMap<&str, usize> = rsym
        .iter()
        .enumerate()
        .rev()
        .map(|(j, s)| (s.as_str(), j))
        .collect();
    let mut targets: Vec<usize> = Vec::new();
    for g in &job.genes {
        let j = *r_index.get(g.to_uppercase().as_str()).ok_or_else(|| {
            JobError::Params(crate::analysis::ParamError {
                name: "genes",
                value: g.clone(),
                expected: "a gene of the reference (it is not in its var)",
            })
        })?;
        if !targets.contains(&j) {
            targets.push(j);
        }
    }
    let mut shared: Vec<usize> = (0..rsym.len())
        .filter(|&j| q_index.contains_key(rsym[j].as_str()) && !targets.contains(&j))
        .collect();
    pick_hold_out(&mut shared, &mut targets, job)?;
    h.check()?;
    let qcols: Vec<usize> = shared.iter().map(|&j| q_index[rsym[j].as_str()]).collect();
    let values = impute(
        rx.dense_columns(&shared).view(),
        qx.dense_columns(&qcols).view(),
        rx.dense_columns(&targets).view(),
        job.params,
    )?;
    // Held-out genes: the predicted column `t` against the query's measured column, read once.
    let (scored, qscored): (Vec<usize>, Vec<usize>) = targets
        .iter()
        .enumerate()
        .filter_map(|(t, &j)| Some((t, *q_index.get(rsym[j].as_str())?)))
        .unzip();
    let measured = qx.dense_columns(&qscored);
    let held_out = scored
        .iter()
        .enumerate()
        .map(|(k, &t)| {
            let p: Vec<f32> = values.column(t).to_vec();
            let m: Vec<f32> = measured.column(k).to_vec();
            (rgenes.symbols[targets[t]].clone(), pearson(&p, &m))
        })
        .collect();
    h.step(Step::Transfer, 1.0);
    Ok(Imputed {
        genes: targets.iter().map(|&j| rgenes.symbols[j].clone()).collect(),
        values,
        held_out,
        n_shared: shared.len(),
    })
}

/// Moves `job.hold_out` seeded random genes from `shared` to `targets`; checks something is
/// left to align on and something to impute.
fn pick_hold_out(
    shared: &mut Vec<usize>,
    targets: &mut Vec<usize>,
    job: &ImputeJob,
) -> Result<(), JobError> {
    let bad = |name: &'static str, v: usize, expected: &'static str| {
        JobError::Params(crate::analysis::ParamError {
            name,
            value: v.to_string(),
            expected,
        })
    };
    if job.hold_out + 2 > shared.len() {
        return Err(bad(
            "hold_out",
            job.hold_out,
            "fewer than the shared genes minus 1",
        ));
    }
    let mut order = shared.clone();
    Rng::new(job.seed).shuffle(&mut order);
    let out = &order[..job.hold_out];
    targets.extend_from_slice(out);
    shared.retain(|j| !out.contains(j));
    if targets.is_empty() {
        return Err(bad(
            "genes",
            0,
            "--genes or --hold-out: at least one gene to impute",
        ));
    }
    Ok(())
}
