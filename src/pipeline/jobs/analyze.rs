//! The analysis pipeline on one dataset, as the CLI's `analyze` and `transfer` and the
//! explorer's worker run it: representation → kNN graph → UMAP → Leiden → spatial domains, and
//! the metrics against a ground-truth column.

use ndarray::{Array2, ArrayView2};
use serde::Serialize;
use std::time::Instant;

use super::{Handle, JobError, MISSING_LABELS, Step, check_finite, obs_labels};
use crate::analysis::leiden::{LeidenParams, leiden};
use crate::analysis::metrics::{ClusterScores, cluster_scores, encode, silhouette};
use crate::analysis::neighbors::{KnnParams, fuzzy_connectivities, knn_with};
use crate::analysis::pca::{pca, scale};
use crate::analysis::spatial::{DomainParams, spatial_domains};
use crate::analysis::umap::{UmapParams, pca_init, umap_layout};
use crate::analysis::{Cancelled, Control, ParamError};
use crate::data::anndata::AnnData;
use crate::data::matrix::CsrMatrix;
use crate::data::preprocess::{
    HvgParams, TargetSum, highly_variable_genes, log1p, normalize_total,
};

/// Gene count above which [`expression_pca`] first selects highly variable genes.
pub const HVG_ABOVE: usize = 10_000;

/// Log-normalised expression of a matrix: `normalize_total` (median target, scanpy's default)
/// then `log1p`, unless the matrix holds negative values (already scaled, e.g. pbmc68k_reduced's
/// `X`), in which case it is returned unchanged.
pub fn log_normalized(x: &CsrMatrix) -> CsrMatrix {
    let mut m = x.clone();
    if m.data.iter().any(|&v| v < 0.0) {
        return m;
    }
    normalize_total(&mut m, TargetSum::Median);
    log1p(&mut m);
    m
}

/// scanpy's standard PCA baseline of log-normalised expression: for whole-transcriptome data
/// (more than [`HVG_ABOVE`] genes) the top 2,000 highly variable genes (Seurat flavour); gene
/// panels and pre-selected gene sets are used whole (on dlpfc_151675, already a union of HVGs,
/// a further HVG cut lowers spatial-domain ARI from about 0.5 to 0.3); then
/// `pp.scale(max_value=10)` and PCA to `n_comps` (64 in the reusability study). Returns
/// `n x n_comps` scores.
pub fn expression_pca(lognorm: &CsrMatrix, n_comps: usize, seed: u64) -> Array2<f32> {
    let keep: Vec<usize> = if lognorm.n_cols > HVG_ABOVE {
        let hvg = highly_variable_genes(
            lognorm,
            &HvgParams {
                n_top_genes: Some(2000),
                ..HvgParams::default()
            },
        );
        (0..lognorm.n_cols)
            .filter(|&j| hvg.highly_variable[j])
            .collect()
    } else {
        (0..lognorm.n_cols).collect()
    };
    let mut col = vec![usize::MAX; lognorm.n_cols];
    keep.iter()
        .enumerate()
        .for_each(|(new, &old)| col[old] = new);
    let mut dense = Array2::<f32>::zeros((lognorm.n_rows, keep.len()));
    for i in 0..lognorm.n_rows {
        let (idx, val) = lognorm.row(i);
        for (&j, &v) in idx.iter().zip(val) {
            if col[j as usize] != usize::MAX {
                dense[(i, col[j as usize])] = v;
            }
        }
    }
    scale(&mut dense, Some(10.0));
    pca(dense.view(), n_comps, seed).scores
}

/// The representation the analysis runs on: `obsm[key]` when given (or `X_cellscope` when
/// present), else the PCA baseline of the log-normalised `X` (which must be loaded).
/// Returns the matrix and a description for reports.
///
/// # Errors
/// [`JobError::Input`] naming the file and the missing obsm key (with the keys there are).
pub fn representation(
    a: &AnnData,
    use_rep: Option<&str>,
    seed: u64,
) -> Result<(Array2<f32>, String), JobError> {
    let key = use_rep.map(str::to_string).or_else(|| {
        a.obsm
            .contains_key("X_cellscope")
            .then(|| "X_cellscope".to_string())
    });
    match key.as_deref() {
        Some("X") => Ok((a.x.to_csr().to_dense(), "X".into())),
        Some("pca") | None => {
            let x = log_normalized(&a.x.to_csr());
            Ok((
                expression_pca(&x, 64, seed),
                "PCA (64) of log-normalised expression".into(),
            ))
        }
        Some(k) => match a.obsm.get(k) {
            Some(m) => Ok((m.mapv(|v| v as f32), format!("obsm['{k}']"))),
            None => Err(JobError::Input(format!(
                "{}: obsm has no '{k}' (it has: {}); use --use-rep with one of these, or 'pca'",
                a.source.display(),
                a.obsm.keys().cloned().collect::<Vec<_>>().join(", ")
            ))),
        },
    }
}

/// Parameters of [`analyze`]; defaults are scanpy's (15 neighbours, resolution 1).
#[derive(Debug, Clone, PartialEq)]
pub struct AnalyzeParams {
    /// Neighbours in the kNN graph, the cell itself included (scanpy's `n_neighbors`).
    pub n_neighbors: usize,
    /// Leiden resolution.
    pub resolution: f64,
    /// Number of spatial domains (needs coordinates); `None` skips the step.
    pub spatial_domains: Option<usize>,
    /// UMAP settings (seed included).
    pub umap: UmapParams,
    /// kNN search settings.
    pub knn: KnnParams,
    /// Seed for Leiden, PCA and domains.
    pub seed: u64,
}

impl Default for AnalyzeParams {
    fn default() -> Self {
        AnalyzeParams {
            n_neighbors: 15,
            resolution: 1.0,
            spatial_domains: None,
            umap: UmapParams::default(),
            knn: KnnParams::default(),
            seed: 0,
        }
    }
}

impl AnalyzeParams {
    /// Checks every parameter before anything runs: at least 2 neighbours, a positive finite
    /// resolution, at least one spatial domain, valid UMAP settings.
    ///
    /// # Errors
    /// [`ParamError`] naming the first parameter out of range.
    pub fn check(&self) -> Result<(), ParamError> {
        ParamError::unless(
            self.n_neighbors >= 2,
            "n_neighbors",
            self.n_neighbors,
            "at least 2 (the cell itself counts)",
        )?;
        ParamError::unless(
            self.resolution.is_finite() && self.resolution > 0.0,
            "resolution",
            self.resolution,
            "a positive number",
        )?;
        ParamError::unless(
            self.spatial_domains.is_none_or(|k| k >= 1),
            "spatial_domains",
            format!("{:?}", self.spatial_domains),
            "at least 1",
        )?;
        self.umap.check()
    }
}

/// Results of [`analyze`].
#[derive(Debug, Clone)]
pub struct Analysis {
    /// UMAP coordinates `n x 2`.
    pub umap: Array2<f32>,
    /// Fuzzy kNN graph (`obsp['connectivities']`).
    pub connectivities: CsrMatrix,
    /// Leiden clusters, ids by decreasing size.
    pub leiden: Vec<u32>,
    /// Modularity of the Leiden partition.
    pub modularity: f64,
    /// Spatial domains and their posterior confidence, when requested and coordinates exist.
    pub domains: Option<(Vec<u32>, Vec<f32>)>,
    /// Seconds per step.
    pub seconds: Vec<(Step, f64)>,
}

/// Runs kNN → connectivities → UMAP → Leiden (→ spatial domains) on `rep` (`n x d`).
/// `progress(step, fraction)` reports within each step.
///
/// # Errors
/// [`Cancelled`] when `control` is cancelled.
pub fn analyze(
    rep: ArrayView2<f32>,
    coords: Option<ArrayView2<f32>>,
    p: &AnalyzeParams,
    control: &Control,
    progress: &mut dyn FnMut(Step, f32),
) -> Result<Analysis, Cancelled> {
    let mut seconds = Vec::new();
    let t = Instant::now();
    progress(Step::Neighbors, 0.0);
    let knn = knn_with(rep, p.n_neighbors, &p.knn);
    let connectivities = fuzzy_connectivities(&knn);
    seconds.push((Step::Neighbors, t.elapsed().as_secs_f64()));
    progress(Step::Neighbors, 1.0);
    control.check()?;

    let t = Instant::now();
    let init = pca_init(rep, p.umap.seed);
    let umap = umap_layout(
        &connectivities,
        init.view(),
        &p.umap,
        control,
        &mut |e, n| progress(Step::Umap, e as f32 / n as f32),
    )?;
    seconds.push((Step::Umap, t.elapsed().as_secs_f64()));

    let t = Instant::now();
    progress(Step::Leiden, 0.0);
    let (leiden_labels, modularity) = leiden(
        &connectivities,
        &LeidenParams {
            resolution: p.resolution,
            n_iterations: -1,
            seed: p.seed,
        },
        control,
    )?;
    seconds.push((Step::Leiden, t.elapsed().as_secs_f64()));
    progress(Step::Leiden, 1.0);

    let domains = match (p.spatial_domains, coords) {
        (Some(k), Some(c)) if k >= 1 && k <= rep.nrows() => {
            let t = Instant::now();
            progress(Step::SpatialDomains, 0.0);
            let d = spatial_domains(
                rep,
                c,
                &DomainParams {
                    seed: p.seed,
                    ..DomainParams::new(k)
                },
            );
            seconds.push((Step::SpatialDomains, t.elapsed().as_secs_f64()));
            progress(Step::SpatialDomains, 1.0);
            Some(d)
        }
        _ => None,
    };
    Ok(Analysis {
        umap,
        connectivities,
        leiden: leiden_labels,
        modularity,
        domains,
        seconds,
    })
}

/// Agreement of clusters with ground truth, cells with a missing label ([`MISSING_LABELS`])
/// left out: ARI, NMI, homogeneity, completeness, V-measure, plus the number of cells scored.
pub fn score_clusters(truth: &[String], clusters: &[u32]) -> (ClusterScores, usize) {
    let keep: Vec<usize> = (0..truth.len())
        .filter(|&i| !MISSING_LABELS.contains(&truth[i].as_str()))
        .collect();
    let t: Vec<&String> = keep.iter().map(|&i| &truth[i]).collect();
    let (tc, _) = encode(&t);
    let c: Vec<u32> = keep.iter().map(|&i| clusters[i]).collect();
    (cluster_scores(&tc, &c), keep.len())
}

/// Silhouette of the ground-truth labels on a representation (exact up to 20,000 cells, a
/// seeded sample beyond), missing labels left out. `None` with fewer than two labels.
pub fn label_silhouette(rep: ArrayView2<f32>, truth: &[String]) -> Option<(f64, usize)> {
    let keep: Vec<usize> = (0..truth.len())
        .filter(|&i| !MISSING_LABELS.contains(&truth[i].as_str()))
        .collect();
    let t: Vec<&String> = keep.iter().map(|&i| &truth[i]).collect();
    let (tc, _) = encode(&t);
    let sub = rep.select(ndarray::Axis(0), &keep);
    silhouette(sub.view(), &tc, 20_000, 0)
}

/// The reusability study's zero-shot evaluation within one dataset: a kNN classifier (k = 5)
/// trained on the 70 % train part, scored on the 15 % test part (the other 15 % is the
/// validation part fine-tuning uses), the split of all cells made exactly as the study's
/// scikit-learn calls with `random_state = seed` ([`crate::analysis::split`]); cells with a
/// missing label ([`MISSING_LABELS`]) are then left out of both parts.
/// Returns the test scores and the test-set size.
pub fn knn_protocol(
    rep: ArrayView2<f32>,
    truth: &[String],
    seed: u32,
) -> (crate::analysis::metrics::Classification, usize) {
    let z = zero_shot_knn(rep, truth, seed);
    (z.scores, z.test.len())
}

/// The test predictions of [`knn_protocol`].
#[derive(Debug, Clone)]
pub struct ZeroShotKnn {
    /// Scores on the test cells.
    pub scores: crate::analysis::metrics::Classification,
    /// Class names (codes index them).
    pub classes: Vec<String>,
    /// Training cells (rows of the representation).
    pub train: Vec<usize>,
    /// Test cells (rows of the representation), in scikit-learn's order.
    pub test: Vec<usize>,
    /// True class codes of the test cells.
    pub truth: Vec<u32>,
    /// Predicted class codes of the test cells.
    pub pred: Vec<u32>,
}

/// [`knn_protocol`] with its split and predictions.
pub fn zero_shot_knn(rep: ArrayView2<f32>, truth: &[String], seed: u32) -> ZeroShotKnn {
    use crate::analysis::{split::split_70_15_15, transfer::knn_classify};
    let labelled = |i: &usize| !MISSING_LABELS.contains(&truth[*i].as_str());
    let (codes, classes) = encode(truth);
    // The split is of all cells, as the study's code splits the AnnData; unlabelled cells are
    // then left out of both parts.
    let (train, _, test) = split_70_15_15(truth.len(), seed);
    let train: Vec<usize> = train.into_iter().filter(labelled).collect();
    let test: Vec<usize> = test.into_iter().filter(labelled).collect();
    let train_codes: Vec<u32> = train.iter().map(|&i| codes[i]).collect();
    let test_codes: Vec<u32> = test.iter().map(|&i| codes[i]).collect();
    let rows = |idx: &[usize]| rep.select(ndarray::Axis(0), idx);
    let (pred, _) = knn_classify(
        rows(&train).view(),
        &train_codes,
        classes.len(),
        rows(&test).view(),
        5,
    );
    ZeroShotKnn {
        scores: crate::analysis::metrics::classification(&test_codes, &pred),
        classes,
        train,
        test,
        truth: test_codes,
        pred,
    }
}

/// What [`run`] analyses and scores.
#[derive(Debug, Clone, Default)]
pub struct AnalyzeJob {
    /// obsm key of the representation (`pca` for the PCA baseline, `X` for X itself); `None`:
    /// `X_cellscope` when present, else `pca`.
    pub use_rep: Option<String>,
    /// A representation computed elsewhere (the loaded model's embedding) and its name;
    /// overrides `use_rep`.
    pub matrix: Option<(std::sync::Arc<Array2<f32>>, String)>,
    /// Pipeline parameters.
    pub params: AnalyzeParams,
    /// Ground-truth obs column to score against (missing labels left out).
    pub label_key: Option<String>,
    /// Spatial domains by a graph method (STAGATE, GraphST) instead of BANKSY's features
    /// (with `params.spatial_domains` giving their number).
    pub graph_domains: Option<super::domains::GraphDomainParams>,
}

/// Scores of a run against a ground-truth column.
#[derive(Debug, Clone, Serialize)]
pub struct LabelScores {
    /// The obs column scored against.
    pub label_key: String,
    /// Leiden clusters against it, and the cells scored.
    pub leiden: (ClusterScores, usize),
    /// Spatial domains against it, and the cells scored.
    pub domains: Option<(ClusterScores, usize)>,
    /// Silhouette of the labels on the representation, and the cells used.
    pub silhouette: Option<(f64, usize)>,
    /// 15-NN label agreement of the UMAP.
    pub umap_agreement: f64,
    /// The kNN classifier protocol on the test split ([`knn_protocol`]), and its size.
    pub knn_classifier: (crate::analysis::metrics::Classification, usize),
}

/// The result of [`run`].
#[derive(Debug, Clone)]
pub struct AnalyzeOutput {
    /// The representation analysed, `n_obs x d`.
    pub representation: std::sync::Arc<Array2<f32>>,
    /// Its description (`obsm['X_cellscope']`, `PCA (64) of log-normalised expression`, ...).
    pub name: String,
    /// UMAP, clusters, domains, timings.
    pub analysis: Analysis,
    /// Scores against the ground truth, when a label key was given.
    pub scores: Option<LabelScores>,
    /// The graph method's latent, parameters and timings, when one found the domains.
    pub graph_domains: Option<super::domains::GraphDomains>,
}

impl AnalyzeOutput {
    /// Whether the representation is the PCA baseline (then written as `obsm['X_pca']`).
    pub fn is_pca(&self) -> bool {
        self.name.starts_with("PCA")
    }

    /// The run's parameters and metrics as JSON (written to `uns['cellscope_analysis']` and
    /// by `--metrics-json`).
    pub fn report(&self, p: &AnalyzeParams) -> serde_json::Value {
        let a = &self.analysis;
        let n_clusters = a.leiden.iter().max().map_or(0, |m| m + 1);
        let mut m = serde_json::json!({
            "representation": self.name,
            "n_cells": self.representation.nrows(),
            "leiden": {"n_clusters": n_clusters, "modularity": a.modularity, "resolution": p.resolution},
            "seconds": a.seconds.iter().map(|(s, t)| (format!("{s:?}"), *t)).collect::<std::collections::BTreeMap<_, _>>(),
        });
        if a.domains.is_some() {
            m["spatial_domain"] = serde_json::json!({"n_domains": p.spatial_domains});
            m["spatial_domain"]["method"] = match &self.graph_domains {
                Some(g) => g.report(),
                None => serde_json::json!({"method": "banksy"}),
            };
        }
        let Some(s) = &self.scores else {
            return m;
        };
        m["leiden"]["vs_label"] = serde_json::json!(s.leiden.0);
        if let Some((sil, used)) = s.silhouette {
            m["label_silhouette"] = serde_json::json!({"value": sil, "cells": used});
        }
        m["umap_15nn_label_agreement"] = serde_json::json!(s.umap_agreement);
        m["knn_classifier_test"] = serde_json::json!(s.knn_classifier.0);
        if let Some((d, _)) = &s.domains {
            m["spatial_domain"]["vs_label"] = serde_json::json!(d);
        }
        m
    }
}

/// The analysis job: checks the parameters, picks the representation ([`representation`]),
/// runs [`analyze`] and, with a label key, scores clusters, domains, silhouette, UMAP
/// agreement and the kNN protocol against it.
///
/// # Errors
/// [`JobError::Params`] for a parameter out of range; [`JobError::Input`] for a missing obsm
/// key or obs column, or domains asked for without coordinates; [`JobError::Cancelled`].
pub fn run(a: &AnnData, job: &AnalyzeJob, h: &mut Handle<'_>) -> Result<AnalyzeOutput, JobError> {
    let p = &job.params;
    p.check()?;
    let truth = job
        .label_key
        .as_deref()
        .map(|k| obs_labels(a, k))
        .transpose()?;
    let coords = a.spatial_f32()?;
    if p.spatial_domains.is_some() && coords.is_none() {
        return Err(JobError::Input(format!(
            "{}: spatial domains need coordinates in obsm['spatial']",
            a.source.display()
        )));
    }
    let (rep, name) = match &job.matrix {
        Some((m, name)) => (m.clone(), name.clone()),
        None => {
            let (r, n) = representation(a, job.use_rep.as_deref(), p.seed)?;
            (std::sync::Arc::new(r), n)
        }
    };
    check_finite(rep.view(), &a.source, &name)?;
    if let Some(c) = &coords {
        check_finite(c.view(), &a.source, "obsm['spatial']")?;
    }
    if let Some(k) = p.spatial_domains
        && k > rep.nrows()
    {
        return Err(JobError::Input(format!(
            "{}: {k} spatial domains asked for, but the dataset has {} cells",
            a.source.display(),
            rep.nrows()
        )));
    }
    if let Some(g) = &job.graph_domains {
        g.check()?;
    }
    let control = Control::with_cancel(h.cancel_flag().clone());
    let graph_k = job.graph_domains.as_ref().and(p.spatial_domains);
    let banksy = AnalyzeParams {
        spatial_domains: p.spatial_domains.filter(|_| graph_k.is_none()),
        ..p.clone()
    };
    let mut analysis = analyze(
        rep.view(),
        coords.as_ref().map(|c| c.view()),
        &banksy,
        &control,
        &mut |s, f| h.step(s, f),
    )?;
    let graph_domains = match (&job.graph_domains, graph_k, &coords) {
        (Some(g), Some(k), Some(c)) => {
            let is_model = job.matrix.is_some() || name.contains("X_cellscope");
            let d = super::domains::run(a, c.view(), k, (&rep, &name, is_model), g, p.seed, h)?;
            analysis.domains = Some((d.labels.clone(), d.confidence.clone()));
            analysis
                .seconds
                .push((Step::SpatialDomains, d.seconds.0 + d.seconds.1));
            Some(d)
        }
        _ => None,
    };
    if analysis.umap.iter().any(|v| !v.is_finite()) {
        return Err(JobError::Input(format!(
            "{}: the UMAP of {name} is not finite (identical or all-zero cells leave no \
             neighbour distances to lay out); filter such cells first",
            a.source.display()
        )));
    }
    let scores = match (&truth, &job.label_key) {
        (Some(t), Some(k)) => Some(label_scores(rep.view(), &analysis, t, k)),
        _ => None,
    };
    Ok(AnalyzeOutput {
        representation: rep,
        name,
        analysis,
        scores,
        graph_domains,
    })
}

fn label_scores(rep: ArrayView2<f32>, a: &Analysis, truth: &[String], key: &str) -> LabelScores {
    let (codes, _) = encode(truth);
    LabelScores {
        label_key: key.to_string(),
        leiden: score_clusters(truth, &a.leiden),
        domains: a.domains.as_ref().map(|(d, _)| score_clusters(truth, d)),
        silhouette: label_silhouette(rep, truth),
        umap_agreement: crate::analysis::metrics::knn_label_agreement(a.umap.view(), &codes, 15),
        knn_classifier: knn_protocol(rep, truth, 42),
    }
}
