//! Scoring an embedding's batch correction and label conservation as scib-metrics does
//! (scSSL-Bench's scoreboard): the metrics of [`crate::analysis::scib`] on `obsm[use_rep]`, with
//! the kNN graph of 90 neighbours the scib-metrics `Benchmarker` builds (exact up to 4,096
//! cells, HNSW beyond) and `obsm[pre_rep]` (the unintegrated PCA) for the PCR comparison.

use serde::Serialize;

use super::{Handle, JobError, Step, obs_labels};
use crate::analysis::metrics::encode;
use crate::analysis::neighbors::{fuzzy_connectivities, knn};
use crate::analysis::{kbet, scib};
use crate::data::anndata::AnnData;

/// Neighbours of the kNN graph (scib-metrics' `Benchmarker` default).
pub const N_NEIGHBORS: usize = 90;

/// What [`run`] scores.
#[derive(Debug, Clone)]
pub struct IntegrationJob {
    /// obsm key of the embedding to score (e.g. `X_cellscope`).
    pub use_rep: String,
    /// obs column of cell types.
    pub label_key: String,
    /// obs column of batches.
    pub batch_key: String,
    /// obsm key of the unintegrated representation for `pcr_comparison` (`X_pca`); skipped
    /// when absent.
    pub pre_rep: Option<String>,
}

/// The scores, named as scib-metrics names its functions (higher is better for each).
#[derive(Debug, Clone, Serialize)]
pub struct IntegrationScores {
    /// Bio conservation: silhouette of the labels, rescaled to `[0, 1]`.
    pub silhouette_label: f64,
    /// Bio conservation: the labels present in the fewest batches, their silhouette.
    pub isolated_labels: f64,
    /// Bio conservation: cLISI on the 90-NN graph.
    pub clisi_knn: f64,
    /// Bio conservation: NMI of k-means clusters (as many as labels) against the labels.
    pub nmi: f64,
    /// Bio conservation: ARI of the same clusters.
    pub ari: f64,
    /// Batch correction: silhouette of the batches within labels, `1 - |s|`.
    pub silhouette_batch: Option<f64>,
    /// Batch correction: iLISI on the 90-NN graph.
    pub ilisi_knn: f64,
    /// Batch correction: share of each label in its largest connected piece of the graph.
    pub graph_connectivity: f64,
    /// Batch correction: how much less variance the batch explains than in `pre_rep`.
    pub pcr_comparison: Option<f64>,
    /// Batch correction: kBET acceptance rate per label (diffusion neighbourhoods of the
    /// graph's connectivities), averaged over labels; `None` when no label has two batches
    /// and 10 cells.
    pub kbet_per_label: Option<f64>,
    /// Mean of the bio-conservation scores.
    pub bio_conservation: f64,
    /// Mean of the batch-correction scores that could be computed.
    pub batch_correction: f64,
    /// `0.4 * batch_correction + 0.6 * bio_conservation` (scib-metrics' `Benchmarker`, the
    /// scib paper's weighting).
    pub total: f64,
    /// Cell typing across batches as scSSL-Bench does it: for each batch, a kNN classifier
    /// (k = 11) trained on the other batches' cells predicts its cells' labels.
    pub cross_batch: Vec<CrossBatch>,
    /// Cells scored.
    pub n_cells: usize,
}

/// One held-out batch's cell typing.
#[derive(Debug, Clone, Serialize)]
pub struct CrossBatch {
    /// The batch held out.
    pub batch: String,
    /// Its cells.
    pub n_cells: usize,
    /// Macro-F1 over the labels of its cells and of the predictions (scikit-learn's).
    pub macro_f1: f64,
    /// Accuracy.
    pub accuracy: f64,
}

/// Neighbours of the cross-batch classifier (scSSL-Bench).
pub const CROSS_BATCH_K: usize = 11;

/// For each batch, kNN (k = [`CROSS_BATCH_K`]) typing of its cells from the other batches'.
fn cross_batch(
    x: ndarray::ArrayView2<f32>,
    labels: &[u32],
    n_labels: usize,
    batch: &[u32],
    names: &[String],
) -> Vec<CrossBatch> {
    use crate::analysis::metrics::classification;
    use crate::analysis::transfer::knn_classify;
    (0..names.len() as u32)
        .filter_map(|b| {
            let (test, train): (Vec<usize>, Vec<usize>) =
                (0..batch.len()).partition(|&i| batch[i] == b);
            if test.is_empty() || train.len() < CROSS_BATCH_K {
                return None;
            }
            let rows = |idx: &[usize]| x.select(ndarray::Axis(0), idx);
            let train_labels: Vec<u32> = train.iter().map(|&i| labels[i]).collect();
            let (pred, _) = knn_classify(
                rows(&train).view(),
                &train_labels,
                n_labels,
                rows(&test).view(),
                CROSS_BATCH_K,
            );
            let truth: Vec<u32> = test.iter().map(|&i| labels[i]).collect();
            let c = classification(&truth, &pred);
            Some(CrossBatch {
                batch: names[b as usize].clone(),
                n_cells: test.len(),
                macro_f1: c.macro_f1,
                accuracy: c.accuracy,
            })
        })
        .collect()
}

/// Scores `a.obsm[job.use_rep]`.
///
/// # Errors
/// [`JobError::Input`] naming the missing obsm key or obs column, or when there are fewer cells
/// than the graph's neighbours.
pub fn run(
    a: &AnnData,
    job: &IntegrationJob,
    h: &mut Handle<'_>,
) -> Result<IntegrationScores, JobError> {
    let rep = |key: &str| {
        a.obsm
            .get(key)
            .map(|m| m.mapv(|v| v as f32))
            .ok_or_else(|| {
                let keys: Vec<&String> = a.obsm.keys().collect();
                JobError::Input(format!(
                    "{}: obsm has no '{key}' (it has: {keys:?})",
                    a.source.display()
                ))
            })
    };
    let x = rep(&job.use_rep)?;
    let (labels, label_names) = encode(&obs_labels(a, &job.label_key)?);
    let (batch, batch_names) = encode(&obs_labels(a, &job.batch_key)?);
    let n = x.nrows();
    if n <= N_NEIGHBORS {
        return Err(JobError::Input(format!(
            "{}: {n} cells; the scores need more than {N_NEIGHBORS} (the kNN graph's size)",
            a.source.display()
        )));
    }
    let pre = match &job.pre_rep {
        Some(k) if a.obsm.contains_key(k) => Some(rep(k)?),
        _ => None,
    };
    let cells = Cells {
        labels: &labels,
        label_names: &label_names,
        batch: &batch,
        batch_names: &batch_names,
    };
    score(x.view(), &cells, pre.as_ref().map(|p| p.view()), h)
}

/// The cells' labels and batches as codes (sorted names, [`encode`]) with their names.
#[derive(Debug, Clone, Copy)]
pub struct Cells<'a> {
    /// Label code per cell.
    pub labels: &'a [u32],
    /// Label names by code.
    pub label_names: &'a [String],
    /// Batch code per cell.
    pub batch: &'a [u32],
    /// Batch names by code.
    pub batch_names: &'a [String],
}

/// Every score of embedding `x` (`n x d`, more than [`N_NEIGHBORS`] rows); `pre`: the
/// unintegrated representation for `pcr_comparison`.
///
/// # Errors
/// [`JobError::Cancelled`].
pub fn score(
    x: ndarray::ArrayView2<f32>,
    cells: &Cells<'_>,
    pre: Option<ndarray::ArrayView2<f32>>,
    h: &mut Handle<'_>,
) -> Result<IntegrationScores, JobError> {
    let (labels, batch) = (cells.labels, cells.batch);
    let n = x.nrows();
    h.step(Step::Neighbors, 0.0);
    let graph = knn(x, N_NEIGHBORS);
    let distances: Vec<f64> = graph.distances.iter().map(|&d| f64::from(d)).collect();
    h.step(Step::Neighbors, 1.0);
    h.check()?;
    let (k, idx) = (N_NEIGHBORS, &graph.indices);
    h.step(Step::Metrics, 0.0);
    let (nmi, ari) = scib::nmi_ari_kmeans(x, labels, 0);
    let silhouette_label = scib::silhouette_label(x, labels);
    let isolated_labels = scib::isolated_labels(x, labels, batch);
    let clisi_knn = scib::clisi(idx, &distances, k, labels);
    h.step(Step::Metrics, 0.4);
    h.check()?;
    let silhouette_batch = scib::silhouette_batch(x, labels, batch);
    let ilisi_knn = scib::ilisi(idx, &distances, k, batch);
    let graph_connectivity = scib::graph_connectivity(&graph, labels);
    let pcr_comparison = pre.map(|p| scib::pcr_comparison(p, x, batch));
    h.step(Step::Metrics, 0.6);
    h.check()?;
    let conn = fuzzy_connectivities(&graph);
    let (kbet_per_label, _) = kbet::kbet_per_label(&conn, labels, batch);
    h.step(Step::Metrics, 1.0);
    let bio = [silhouette_label, isolated_labels, clisi_knn, nmi, ari];
    let batch_scores: Vec<f64> = [
        silhouette_batch,
        Some(ilisi_knn),
        kbet_per_label,
        Some(graph_connectivity),
        pcr_comparison,
    ]
    .into_iter()
    .flatten()
    .collect();
    let bio_conservation = bio.iter().sum::<f64>() / bio.len() as f64;
    let batch_correction = batch_scores.iter().sum::<f64>() / batch_scores.len() as f64;
    Ok(IntegrationScores {
        nmi,
        ari,
        silhouette_label,
        isolated_labels,
        clisi_knn,
        silhouette_batch,
        ilisi_knn,
        graph_connectivity,
        pcr_comparison,
        kbet_per_label,
        bio_conservation,
        batch_correction,
        total: 0.4 * batch_correction + 0.6 * bio_conservation,
        cross_batch: cross_batch(x, labels, cells.label_names.len(), batch, cells.batch_names),
        n_cells: n,
    })
}
