//! The metrics dashboard of the window, computed off the UI thread: ARI / NMI of the Leiden
//! clusters and spatial domains against a ground-truth obs column, macro/micro/weighted F1 of
//! predicted types, Leiden cluster sizes, the ground truth x cluster confusion matrix and,
//! while comparing, each side's scores and the A x B confusion matrix. O(cells) string work,
//! so the window asks for it once per change of results or ground-truth column.

use std::sync::Arc;

use super::MISSING_LABELS;
use super::analyze::{Analysis, score_clusters};
use super::coloring::encode_in_order;
use super::compare::{Comparison, SideMetrics, side_metrics};
use crate::analysis::metrics::{Classification, ClusterScores};
use crate::analysis::transfer::score_predictions;
use crate::data::anndata::AnnData;

/// What the dashboard is computed from.
#[derive(Debug, Clone)]
pub struct DashboardInputs {
    /// The dataset (its obs holds the ground truth).
    pub data: Arc<AnnData>,
    /// The ground-truth obs column.
    pub truth_key: Option<String>,
    /// The pipeline's results.
    pub analysis: Option<Arc<Analysis>>,
    /// Predicted label and confidence per cell.
    pub prediction: Option<Arc<(Vec<String>, Vec<f32>)>>,
    /// An A-vs-B comparison.
    pub comparison: Option<Arc<Comparison>>,
}

/// A row-normalised contingency table of string labels (rows, missing labels left out) against
/// integer codes (columns).
#[derive(Debug, Clone)]
pub struct Confusion {
    /// Row names, in legend order.
    pub names: Vec<String>,
    /// Counts, `[rows][columns]`.
    pub counts: Vec<Vec<usize>>,
}

impl Confusion {
    /// `None` when there is nothing to draw or too much (over 60 rows or 80 columns).
    pub fn new(rows: &[String], cols: &[u32]) -> Option<Self> {
        let keep: Vec<usize> = (0..rows.len())
            .filter(|&i| !MISSING_LABELS.contains(&rows[i].as_str()))
            .collect();
        let labels: Vec<&String> = keep.iter().map(|&i| &rows[i]).collect();
        let (codes, names) = encode_in_order(&labels, None);
        let k = cols.iter().max().map_or(0, |m| *m as usize + 1);
        if names.is_empty() || k == 0 || names.len() > 60 || k > 80 {
            return None;
        }
        let mut counts = vec![vec![0usize; k]; names.len()];
        for (j, &i) in keep.iter().enumerate() {
            counts[codes[j] as usize][cols[i] as usize] += 1;
        }
        Some(Self { names, counts })
    }

    /// The cells of table cell `(r, c)`.
    pub fn cells(&self, rows: &[String], cols: &[u32], (r, c): (usize, usize)) -> Vec<usize> {
        (0..rows.len())
            .filter(|&i| rows[i] == self.names[r] && cols[i] as usize == c)
            .collect()
    }
}

/// The dashboard's numbers.
#[derive(Debug, Clone, Default)]
pub struct Dashboard {
    /// The ground-truth column as strings (one per cell), when chosen.
    pub truth: Option<Arc<Vec<String>>>,
    /// Against the truth: Leiden scores and labelled cells, domain scores.
    pub clusters: Option<(ClusterScores, usize, Option<ClusterScores>)>,
    /// Predicted types against the truth: scores, the class names they index, cells scored.
    pub predicted: Option<(Classification, Vec<String>, usize)>,
    /// Ground truth (rows) x Leiden cluster (columns).
    pub truth_confusion: Option<Confusion>,
    /// Cells per Leiden cluster.
    pub cluster_sizes: Vec<usize>,
    /// While comparing: each side against the truth.
    pub sides: Vec<SideMetrics>,
    /// While comparing: A (rows) x B (columns).
    pub ab_confusion: Option<Confusion>,
    /// While comparing: B's labels as codes (the confusion matrix's columns).
    pub b_codes: Vec<u32>,
}

/// Computes the dashboard.
pub fn dashboard(x: &DashboardInputs) -> Dashboard {
    let truth: Option<Arc<Vec<String>>> = x.truth_key.as_ref().and_then(|k| {
        let col = x.data.obs.column(k)?;
        Some(Arc::new(
            (0..col.len()).map(|i| col.value_string(i)).collect(),
        ))
    });
    let leiden = x.analysis.as_ref().map(|a| a.leiden.as_slice());
    let clusters = truth.as_ref().zip(x.analysis.as_ref()).map(|(t, a)| {
        let (s, n) = score_clusters(t, &a.leiden);
        let dom = a.domains.as_ref().map(|(d, _)| score_clusters(t, d).0);
        (s, n, dom)
    });
    let predicted = truth
        .as_ref()
        .zip(x.prediction.as_deref())
        .map(|(t, (p, _))| score_predictions(p, t, None, &MISSING_LABELS));
    let truth_confusion = truth
        .as_ref()
        .zip(leiden)
        .and_then(|(t, l)| Confusion::new(t, l));
    let mut cluster_sizes = Vec::new();
    for &c in leiden.unwrap_or_default() {
        let c = c as usize;
        if c >= cluster_sizes.len() {
            cluster_sizes.resize(c + 1, 0);
        }
        cluster_sizes[c] += 1;
    }
    let mut d = Dashboard {
        truth,
        clusters,
        predicted,
        truth_confusion,
        cluster_sizes,
        ..Dashboard::default()
    };
    if let Some(c) = &x.comparison {
        if let Some(t) = &d.truth {
            d.sides = c.sides.iter().map(|s| side_metrics(s, t)).collect();
        }
        d.b_codes = encode_in_order(&c.b_labels, None).0;
        d.ab_confusion = Confusion::new(&c.a_labels, &d.b_codes);
    }
    d
}
