//! The comparison scSSL-Bench makes, on the user's own data: each method trained with the same
//! seed, genes and epochs, its embedding scored with the scib-metrics set
//! ([`super::integration::score`]) and laid out by UMAP for a look at batches and labels.
//!
//! Genes: the `n_top_genes` highly variable genes (scanpy's `seurat` flavour) of the
//! log-normalised matrix, as the bench uses 2,000 HVGs; `pca` is the unintegrated baseline
//! (50 components of those genes, centred) and the reference of `pcr_comparison` for every
//! method.

use std::sync::Arc;
use std::time::Instant;

use ndarray::Array2;

use super::integration::{Cells, IntegrationScores, N_NEIGHBORS, score};
use super::train::{model_input, on_training_thread};
use super::{Handle, JobError, Step, obs_labels};
use crate::analysis::metrics::encode;
use crate::analysis::neighbors::{fuzzy_connectivities, knn};
use crate::analysis::pca::pca;
use crate::analysis::umap::{UmapParams, pca_init, umap_layout};
use crate::data::CsrMatrix;
use crate::data::anndata::AnnData;
use crate::data::preprocess::{HvgParams, highly_variable_genes};
use crate::model::embed::Preprocessing;
use crate::model::train::{Objective, ObjectiveKind, TrainOptions, pretrain};
use crate::model::{BackendChoice, Engine};

/// Principal components of the baseline.
pub const PCA_COMPONENTS: usize = 50;

/// One compared method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// PCA of the HVGs (unintegrated baseline).
    Pca,
    /// A self-supervised objective (those that need no gene programmes).
    Ssl(ObjectiveKind),
}

impl Method {
    /// The name in `--methods` and in the results.
    pub fn name(self) -> &'static str {
        match self {
            Method::Pca => "pca",
            Method::Ssl(k) => k.name(),
        }
    }
}

/// A `--methods` entry that is not `pca` or an objective without gene programmes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "method '{0}': expected pca, random-mask, barlow-twins, byol, simclr or vicreg (objectives that need a GMT file are not benchmarked)"
)]
pub struct ParseMethodError(pub String);

impl std::str::FromStr for Method {
    type Err = ParseMethodError;
    fn from_str(s: &str) -> Result<Self, ParseMethodError> {
        if s == "pca" {
            return Ok(Method::Pca);
        }
        ObjectiveKind::ALL
            .into_iter()
            .find(|k| k.name() == s && !k.needs_programmes())
            .map(Method::Ssl)
            .ok_or_else(|| ParseMethodError(s.to_string()))
    }
}

/// What to compare.
#[derive(Debug, Clone)]
pub struct BenchmarkJob {
    /// obs column of cell types.
    pub label_key: String,
    /// obs column of batches.
    pub batch_key: String,
    /// The methods, in the order of the results.
    pub methods: Vec<Method>,
    /// Training epochs of every self-supervised method.
    pub epochs: usize,
    /// Cells per step for every method (scSSL-Bench trains all at 256); `None`: each
    /// objective's own recipe (8,192 for ssl_in_scg's).
    pub batch_size: Option<usize>,
    /// Seed of training and UMAP.
    pub seed: u64,
    /// Highly variable genes kept (2,000 as scSSL-Bench; all genes when there are fewer).
    pub n_top_genes: usize,
    /// Training and inference backend.
    pub backend: BackendChoice,
    /// Embeddings computed elsewhere, scored as rows after the methods (the window adds the
    /// loaded model's embedding of the dataset): name and `n x d` values.
    pub given: Vec<(String, Arc<Array2<f32>>)>,
}

/// One method's outcome.
#[derive(Debug, Clone)]
pub struct MethodResult {
    /// The method's name ([`Method::name`], or a given embedding's).
    pub name: String,
    /// Its scores.
    pub scores: IntegrationScores,
    /// Seconds to train (0 for PCA) and embed.
    pub seconds: f64,
    /// UMAP of its embedding, `n x 2`.
    pub umap: Array2<f32>,
}

/// The comparison.
#[derive(Debug, Clone)]
pub struct BenchmarkResult {
    /// One row per method, in the job's order.
    pub rows: Vec<MethodResult>,
    /// Label code per cell and the names.
    pub labels: (Vec<u32>, Vec<String>),
    /// Batch code per cell and the names.
    pub batch: (Vec<u32>, Vec<String>),
    /// Genes the methods saw.
    pub n_genes: usize,
}

/// Runs the comparison on `a`.
///
/// # Errors
/// [`JobError::Input`]: no methods, a missing obs column, too few cells, unusable values;
/// training errors; [`JobError::Cancelled`].
pub fn run(
    a: &AnnData,
    job: &BenchmarkJob,
    h: &mut Handle<'_>,
) -> Result<BenchmarkResult, JobError> {
    if (job.methods.is_empty() && job.given.is_empty()) || job.epochs == 0 {
        return Err(JobError::Input(
            "the benchmark needs at least one method and one epoch".into(),
        ));
    }
    let labels = encode(&obs_labels(a, &job.label_key)?);
    let batch = encode(&obs_labels(a, &job.batch_key)?);
    if a.n_obs() <= N_NEIGHBORS {
        return Err(JobError::Input(format!(
            "{}: {} cells; the scores need more than {N_NEIGHBORS}",
            a.source.display(),
            a.n_obs()
        )));
    }
    let (x, _, _) = model_input(a, &Preprocessing::default())?;
    let x = Arc::new(top_genes(&x, job.n_top_genes));
    let dense = x.to_dense();
    let baseline = pca(dense.view(), PCA_COMPONENTS, job.seed).scores;
    let cells = Cells {
        labels: &labels.0,
        label_names: &labels.1,
        batch: &batch.0,
        batch_names: &batch.1,
    };
    let mut rows = Vec::new();
    for &method in &job.methods {
        let t = Instant::now();
        let emb = match method {
            Method::Pca => baseline.clone(),
            Method::Ssl(kind) => train_and_embed(&x, kind, job, h)?,
        };
        let seconds = t.elapsed().as_secs_f64();
        let scores = score(emb.view(), &cells, Some(baseline.view()), h)?;
        let umap = layout(&emb, job.seed, h)?;
        rows.push(MethodResult {
            name: method.name().to_string(),
            scores,
            seconds,
            umap,
        });
    }
    for (name, emb) in &job.given {
        if emb.nrows() != x.n_rows {
            return Err(JobError::Input(format!(
                "embedding '{name}' has {} rows for {} cells",
                emb.nrows(),
                x.n_rows
            )));
        }
        let scores = score(emb.view(), &cells, Some(baseline.view()), h)?;
        let umap = layout(emb, job.seed, h)?;
        rows.push(MethodResult {
            name: name.clone(),
            scores,
            seconds: 0.0,
            umap,
        });
    }
    Ok(BenchmarkResult {
        rows,
        labels,
        batch,
        n_genes: x.n_cols,
    })
}

/// The columns of the `n` most highly variable genes (all when there are at most `n`).
fn top_genes(x: &CsrMatrix, n: usize) -> CsrMatrix {
    if x.n_cols <= n {
        return x.clone();
    }
    let hvg = highly_variable_genes(
        x,
        &HvgParams {
            n_top_genes: Some(n),
            ..HvgParams::default()
        },
    );
    let keep: Vec<usize> = (0..x.n_cols).filter(|&j| hvg.highly_variable[j]).collect();
    x.select_columns(&keep)
}

/// Pre-trains `kind` with its recipe (the job's epochs, seed and batch size) on its own
/// thread and embeds every cell with the trained backbone.
fn train_and_embed(
    x: &Arc<CsrMatrix>,
    kind: ObjectiveKind,
    job: &BenchmarkJob,
    h: &mut Handle<'_>,
) -> Result<Array2<f32>, JobError> {
    let recipe = TrainOptions::pretrain_for(kind);
    let opts = TrainOptions {
        epochs: job.epochs,
        seed: job.seed,
        log_every: 10,
        batch_size: job.batch_size.unwrap_or(recipe.batch_size),
        ..recipe
    };
    let backend = job.backend;
    let xt = Arc::clone(x);
    let outcome = on_training_thread(h, move |tx, cancel| {
        let objective = Objective::new(kind, None)?;
        Ok(pretrain(&xt, &objective, &opts, backend, tx, cancel)?)
    })?;
    if outcome.cancelled {
        return Err(JobError::Cancelled);
    }
    h.step(Step::Embed, 0.0);
    let engine = Engine::new(&outcome.weights, job.backend)?;
    let v = engine.embed(x);
    h.step(Step::Embed, 1.0);
    let d = v.len() / x.n_rows.max(1);
    Array2::from_shape_vec((x.n_rows, d), v)
        .map_err(|e| JobError::Input(format!("embedding of {kind}: {e}")))
}

/// UMAP (umap-learn's defaults, 15 neighbours) of an embedding.
fn layout(emb: &Array2<f32>, seed: u64, h: &mut Handle<'_>) -> Result<Array2<f32>, JobError> {
    h.step(Step::Umap, 0.0);
    let graph = fuzzy_connectivities(&knn(emb.view(), 15));
    let params = UmapParams {
        seed,
        ..UmapParams::default()
    };
    let control = crate::analysis::Control::with_cancel(h.cancel_flag().clone());
    let init = pca_init(emb.view(), seed);
    let mut report = |e: usize, n: usize| h.step(Step::Umap, e as f32 / n.max(1) as f32);
    umap_layout(&graph, init.view(), &params, &control, &mut report)
        .map_err(|_| JobError::Cancelled)
}

/// The scores' columns, named as scib-metrics names its functions, then the aggregates.
pub const COLUMNS: [&str; 13] = [
    "isolated_labels",
    "nmi",
    "ari",
    "silhouette_label",
    "clisi_knn",
    "silhouette_batch",
    "ilisi_knn",
    "kbet_per_label",
    "graph_connectivity",
    "pcr_comparison",
    "bio_conservation",
    "batch_correction",
    "total",
];

impl MethodResult {
    /// The values of [`COLUMNS`].
    pub fn values(&self) -> Vec<Option<f64>> {
        let s = &self.scores;
        vec![
            Some(s.isolated_labels),
            Some(s.nmi),
            Some(s.ari),
            Some(s.silhouette_label),
            Some(s.clisi_knn),
            s.silhouette_batch,
            Some(s.ilisi_knn),
            s.kbet_per_label,
            Some(s.graph_connectivity),
            s.pcr_comparison,
            Some(s.bio_conservation),
            Some(s.batch_correction),
            Some(s.total),
        ]
    }
}

/// Writes the comparison into the new folder `dir` (atomically: built beside it, renamed):
/// `results.csv` (one row per method: seconds, [`COLUMNS`]), `scib_results.png` (the
/// scib-style table) and `umap_<method>_batch.png` / `umap_<method>_label.png`. Returns the
/// files written.
///
/// # Errors
/// [`JobError::Input`] when `dir` exists; [`JobError::Export`] naming the file.
pub fn write(
    r: &BenchmarkResult,
    dir: &std::path::Path,
    title: &str,
    provenance: &serde_json::Value,
) -> Result<Vec<std::path::PathBuf>, JobError> {
    use crate::export::figure::{Figure, FigureSize, save_figure};
    use crate::export::scoreboard::{Scoreboard, save_scoreboard};
    if dir.exists() {
        return Err(JobError::Input(format!(
            "{}: already exists; choose a new folder for the results",
            dir.display()
        )));
    }
    let io = |e: std::io::Error| JobError::Input(format!("{}: {e}", dir.display()));
    let tmp = crate::data::part::dir(dir, ".benchmark.part").map_err(io)?;
    let mut names = Vec::new();
    let mut csv = format!("method,seconds,{}\n", COLUMNS.join(","));
    for row in &r.rows {
        let cells: Vec<String> = row
            .values()
            .iter()
            .map(|v| v.map_or(String::new(), |v| format!("{v}")))
            .collect();
        csv.push_str(&format!(
            "{},{:.3},{}\n",
            row.name,
            row.seconds,
            cells.join(",")
        ));
    }
    crate::export::write_atomic(&tmp.path().join("results.csv"), csv.as_bytes())?;
    names.push("results.csv".to_string());
    let board = Scoreboard {
        rows: r.rows.iter().map(|m| m.name.clone()).collect(),
        columns: COLUMNS.iter().map(|c| c.to_string()).collect(),
        values: r.rows.iter().map(MethodResult::values).collect(),
        aggregates: 3,
        title: title.to_string(),
    };
    save_scoreboard(&board, provenance, &tmp.path().join("scib_results.png"))?;
    names.push("scib_results.png".to_string());
    for row in &r.rows {
        let positions: Vec<[f32; 2]> = row.umap.rows().into_iter().map(|p| [p[0], p[1]]).collect();
        for (what, (codes, cats)) in [("batch", &r.batch), ("label", &r.labels)] {
            let palette = crate::render::colors::categorical(cats.len(), None);
            let colors: Vec<egui::Color32> = codes.iter().map(|&c| palette[c as usize]).collect();
            let legend: Vec<crate::render::coloring::LegendItem> = cats
                .iter()
                .enumerate()
                .map(|(k, name)| crate::render::coloring::LegendItem {
                    name: name.clone(),
                    color: palette[k],
                    count: codes.iter().filter(|&&c| c as usize == k).count(),
                })
                .collect();
            let order: Vec<u32> = (0..codes.len() as u32).collect();
            let safe: String = row
                .name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            let name = format!("umap_{safe}_{what}.png");
            let fig = Figure {
                title: format!(
                    "{}: UMAP by {what} (total {:.3})",
                    row.name, row.scores.total
                ),
                positions: &positions,
                colors: &colors,
                order: &order,
                legend: &legend,
                colorbar: None,
                scale_bar: None,
                y_down: false,
                provenance: provenance.clone(),
            };
            let size = FigureSize {
                width_in: 6.0,
                height_in: 4.5,
                dpi: 120,
            };
            save_figure(&fig, &size, &tmp.path().join(&name))?;
            names.push(name);
        }
    }
    crate::data::part::persist_dir(tmp, dir).map_err(io)?;
    Ok(names.into_iter().map(|n| dir.join(n)).collect())
}
