//! Spatial domains by the graph methods the reusability study used, on any representation:
//! STAGATE and GraphST trained on the slide (model::graph), their latent clustered by a
//! Gaussian mixture with one covariance shared by all components (mclust's `EEE`, as both
//! methods' `mclust_R`), optionally refined by a spatial majority vote (GraphST's
//! `refine_label`). "-RM" in the study is just the SSL embedding as the input.

use ndarray::{Array2, ArrayView2};
use std::time::Instant;

use super::{Handle, JobError, Progress, Step};
use crate::analysis::ParamError;
use crate::analysis::cluster::{Covariance, gmm_with};
use crate::analysis::spatial::refine_labels;
use crate::analysis::spatial_graph::{GraphKind, GraphStats, SpatialGraph};
use crate::data::anndata::AnnData;
use crate::data::preprocess::{
    HvgParams, InputScale, TargetSum, highly_variable_genes, log1p, normalize_total,
};
use crate::model::BackendChoice;
use crate::model::graph::train::{GraphTraining, train_graphst, train_stagate};

/// How spatial domains are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DomainMethod {
    /// BANKSY-style neighbourhood-augmented features and a full-covariance mixture
    /// ([`crate::analysis::spatial`]).
    #[default]
    Banksy,
    /// STAGATE's graph-attention autoencoder (radius graph), mclust EEE on its 30-d latent.
    Stagate,
    /// GraphST's contrastive GCN autoencoder (3-NN graph), mclust EEE on 20 PCs of its output.
    Graphst,
}

impl DomainMethod {
    /// The method's name as its authors write it.
    pub fn name(self) -> &'static str {
        match self {
            DomainMethod::Banksy => "BANKSY",
            DomainMethod::Stagate => "STAGATE",
            DomainMethod::Graphst => "GraphST",
        }
    }

    /// The obsm key its latent is written to (`None` for BANKSY).
    pub fn latent_key(self) -> Option<&'static str> {
        match self {
            DomainMethod::Banksy => None,
            DomainMethod::Stagate => Some("X_stagate"),
            DomainMethod::Graphst => Some("X_graphst"),
        }
    }

    /// Epochs of the public code (`train_STAGATE`: 1,000; `GraphST`: 600).
    pub fn default_epochs(self) -> usize {
        match self {
            DomainMethod::Stagate => 1000,
            _ => 600,
        }
    }
}

/// What a graph method is fed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DomainInput {
    /// The analysed embedding when it is a model's (the loaded model's, or `X_cellscope`),
    /// else [`DomainInput::Hvg`].
    #[default]
    Auto,
    /// The methods' own gene input: `normalize_total(1e4)`, `log1p`, 3,000 highly variable
    /// genes (all genes of smaller panels); GraphST also scales each gene to unit variance
    /// without centring, clipped at 10 (`sc.pp.scale(zero_center=False, max_value=10)`).
    Hvg,
    /// The PCA baseline (`obsm['X_pca']` when the file has it, else 64 PCs of the log-normalised
    /// expression as `analyze` computes them).
    Pca,
    /// An obsm matrix.
    Obsm(String),
}

impl std::str::FromStr for DomainInput {
    type Err = std::convert::Infallible;
    /// `auto`, `hvg`, `pca` or `X_pca`, else an obsm key.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "auto" => DomainInput::Auto,
            "hvg" | "genes" => DomainInput::Hvg,
            "pca" | "X_pca" => DomainInput::Pca,
            k => DomainInput::Obsm(k.to_string()),
        })
    }
}

/// Parameters of a graph method.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphDomainParams {
    /// STAGATE or GraphST (BANKSY is not a graph method).
    pub method: DomainMethod,
    /// Its input.
    pub input: DomainInput,
    /// The spatial graph; `None`: the method's published graph ([`default_graph`]).
    pub graph: Option<GraphKind>,
    /// Epochs; `None`: the public code's ([`DomainMethod::default_epochs`]).
    pub epochs: Option<usize>,
    /// Relabel each cell by the majority of its 50 nearest cells (GraphST's `refine_label`,
    /// radius 50).
    pub refine: bool,
    /// Where the network trains.
    pub backend: BackendChoice,
}

impl Default for GraphDomainParams {
    fn default() -> Self {
        GraphDomainParams {
            method: DomainMethod::Stagate,
            input: DomainInput::Auto,
            graph: None,
            epochs: None,
            refine: false,
            backend: BackendChoice::Cpu,
        }
    }
}

impl GraphDomainParams {
    /// Checks the parameters: a graph method, a positive radius or k, at least one epoch.
    ///
    /// # Errors
    /// [`ParamError`] naming the first one out of range.
    pub fn check(&self) -> Result<(), ParamError> {
        ParamError::unless(
            self.method != DomainMethod::Banksy,
            "domains",
            "banksy",
            "stagate or graphst for a graph method",
        )?;
        match self.graph {
            Some(GraphKind::Radius(r)) => {
                ParamError::unless(r.is_finite() && r > 0.0, "radius", r, "a positive distance")?
            }
            Some(GraphKind::Knn(k)) => ParamError::unless(k >= 1, "graph_k", k, "at least 1")?,
            None => {}
        }
        ParamError::unless(
            self.epochs.is_none_or(|e| e >= 1),
            "epochs",
            format!("{:?}", self.epochs),
            "at least 1",
        )
    }
}

/// The published graph of each method on `coords`: STAGATE's radius graph with a radius of
/// 1.5 times the median nearest-neighbour distance (on a Visium lattice the first ring of six
/// spots, what its DLPFC tutorial's `rad_cutoff=150` px gives; imaging data: about the cells
/// touching), GraphST's 3 nearest cells (`construct_interaction`).
pub fn default_graph(method: DomainMethod, coords: ArrayView2<f32>) -> GraphKind {
    match method {
        DomainMethod::Graphst => GraphKind::Knn(3),
        _ => {
            let nn = crate::analysis::neighbors::exact_knn(coords, 2.min(coords.nrows()));
            let mut d: Vec<f32> = (0..coords.nrows())
                .filter_map(|i| nn.dists(i).iter().copied().find(|&d| d > 0.0))
                .collect();
            d.sort_by(f32::total_cmp);
            let median = d.get(d.len() / 2).copied().unwrap_or(1.0);
            GraphKind::Radius(1.5 * f64::from(median))
        }
    }
}

/// The result of [`run`].
#[derive(Debug, Clone)]
pub struct GraphDomains {
    /// The method.
    pub method: DomainMethod,
    /// Domain per cell.
    pub labels: Vec<u32>,
    /// Posterior probability of each cell's domain (before refinement).
    pub confidence: Vec<f32>,
    /// The latent clustered: STAGATE's `[n, 30]`, GraphST's 20 PCs of its output.
    pub latent: Array2<f32>,
    /// The input in words.
    pub input: String,
    /// The graph used and its statistics.
    pub graph: (GraphKind, GraphStats),
    /// Epochs trained and the last loss.
    pub epochs: usize,
    /// The last epoch's loss.
    pub loss: f64,
    /// Whether labels were refined.
    pub refined: bool,
    /// Seconds training and clustering.
    pub seconds: (f64, f64),
}

impl GraphDomains {
    /// The parameters and graph as JSON (written to `uns['cellscope_analysis']`).
    pub fn report(&self) -> serde_json::Value {
        let (kind, stats) = &self.graph;
        let graph = match kind {
            GraphKind::Radius(r) => {
                serde_json::json!({"radius": r, "unit": "obsm['spatial'] units"})
            }
            GraphKind::Knn(k) => serde_json::json!({"k": k}),
        };
        serde_json::json!({
            "method": self.method,
            "input": self.input,
            "graph": graph,
            "mean_neighbors": stats.mean_neighbors,
            "isolated": stats.isolated,
            "epochs": self.epochs,
            "final_loss": self.loss,
            "clustering": "Gaussian mixture, tied covariance (mclust EEE)",
            "refined": self.refined,
            "latent": self.method.latent_key(),
            "seconds_training": self.seconds.0,
            "seconds_clustering": self.seconds.1,
        })
    }
}

/// Trains the method on the chosen input over the spatial graph and clusters its latent into
/// `k` domains (weights, shuffles and the mixture seeded by `seed`). `analysed` is the representation the rest of the analysis uses and whether it
/// is a model's embedding (what [`DomainInput::Auto`] takes).
///
/// # Errors
/// [`JobError::Params`]; [`JobError::Input`] for a missing obsm key, a graph that leaves more
/// than half the cells isolated, or `k` above the number of cells; [`JobError::Cancelled`].
pub fn run(
    a: &AnnData,
    coords: ArrayView2<f32>,
    k: usize,
    analysed: (&Array2<f32>, &str, bool),
    p: &GraphDomainParams,
    seed: u64,
    h: &mut Handle<'_>,
) -> Result<GraphDomains, JobError> {
    p.check()?;
    let src = a.source.display();
    if k > coords.nrows() {
        return Err(JobError::Input(format!(
            "{src}: {k} spatial domains asked for, but the dataset has {} cells",
            coords.nrows()
        )));
    }
    let (x, input) = input(a, analysed, p)?;
    super::check_finite(x.view(), &a.source, &input)?;
    let kind = p.graph.unwrap_or_else(|| default_graph(p.method, coords));
    let graph = SpatialGraph::build(coords, kind);
    let stats = graph.stats();
    if stats.isolated * 2 > stats.n_cells {
        return Err(JobError::Input(format!(
            "{src}: the spatial graph ({kind:?}) leaves {} of {} cells without a neighbour \
             ({stats}); use a larger radius (obsm['spatial'] units) or --graph-k",
            stats.isolated, stats.n_cells
        )));
    }
    let epochs = p.epochs.unwrap_or(p.method.default_epochs());
    let (_, device, _) = crate::model::engine::select_device(p.backend)
        .map_err(|e| JobError::Input(format!("no device for {}: {e}", p.method.name())))?;
    let t0 = Instant::now();
    let cancel = h.cancel_flag().clone();
    let mut last = f64::NAN;
    let mut report = |e: usize, n: usize, loss: f64| {
        last = loss;
        h.report(Progress::Fit {
            step: Step::SpatialDomains,
            epoch: e,
            epochs: n,
            loss,
        });
    };
    let latent = match p.method {
        DomainMethod::Graphst => {
            let t = GraphTraining::graphst(epochs, seed);
            let emb = train_graphst(&x, &graph.adjacency, 64, &t, &device, &cancel, &mut report);
            emb.map(|e| crate::analysis::pca::pca(e.view(), 20, 42).scores)
        }
        _ => {
            let t = GraphTraining::stagate(epochs, seed);
            let g = graph.with_self_loops();
            train_stagate(&x, &g, [512, 30], &t, &device, &cancel, &mut report)
        }
    }
    .map_err(|e| match e {
        crate::model::train::TrainError::Cancelled => JobError::Cancelled,
        e => JobError::Input(format!("{src}: {} did not train: {e}", p.method.name())),
    })?;
    let trained = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    h.step(Step::SpatialDomains, 1.0);
    let fit = gmm_with(latent.view(), k, 1, seed, Covariance::Tied);
    let mut labels = fit.labels;
    if p.refine {
        labels = refine_labels(coords, &labels, 50);
    }
    Ok(GraphDomains {
        method: p.method,
        labels,
        confidence: fit.confidence,
        latent,
        input,
        graph: (kind, stats),
        epochs,
        loss: last,
        refined: p.refine,
        seconds: (trained, t1.elapsed().as_secs_f64()),
    })
}

/// The input matrix and its description.
fn input(
    a: &AnnData,
    analysed: (&Array2<f32>, &str, bool),
    p: &GraphDomainParams,
) -> Result<(Array2<f32>, String), JobError> {
    match &p.input {
        DomainInput::Auto if analysed.2 => Ok((analysed.0.clone(), analysed.1.to_string())),
        DomainInput::Auto if a.obsm.contains_key("X_cellscope") => {
            let m = &a.obsm["X_cellscope"];
            Ok((m.mapv(|v| v as f32), "obsm['X_cellscope']".into()))
        }
        DomainInput::Auto | DomainInput::Hvg => {
            Ok(gene_input(a, p.method == DomainMethod::Graphst))
        }
        DomainInput::Pca if a.obsm.contains_key("X_pca") => {
            Ok((a.obsm["X_pca"].mapv(|v| v as f32), "obsm['X_pca']".into()))
        }
        DomainInput::Pca => super::analyze::representation(a, Some("pca"), 0),
        DomainInput::Obsm(k) => super::analyze::representation(a, Some(k), 0),
    }
}

/// Genes kept by [`DomainInput::Hvg`].
pub const N_HVG: usize = 3000;

/// [`DomainInput::Hvg`]: `[n, genes]` dense, and its description. Highly variable genes are
/// the Seurat flavour on the log-normalised data (the methods' tutorials use `seurat_v3` on
/// counts, which cellscope does not have).
pub fn gene_input(a: &AnnData, scale: bool) -> (Array2<f32>, String) {
    let mut m = a.x.to_csr();
    let logged =
        m.data.iter().any(|&v| v < 0.0) || InputScale::detect(&m) == InputScale::LogNormalized;
    if !logged {
        normalize_total(&mut m, TargetSum::Fixed(1e4));
        log1p(&mut m);
    }
    let keep: Vec<usize> = if m.n_cols > N_HVG {
        let hvg = highly_variable_genes(
            &m,
            &HvgParams {
                n_top_genes: Some(N_HVG),
                ..HvgParams::default()
            },
        );
        (0..m.n_cols).filter(|&j| hvg.highly_variable[j]).collect()
    } else {
        (0..m.n_cols).collect()
    };
    let mut x = m.dense_columns(&keep);
    if scale {
        scale_no_centre(&mut x, 10.0);
    }
    let what = format!(
        "{} genes, log-normalised{}",
        keep.len(),
        if scale {
            ", scaled to unit variance"
        } else {
            ""
        }
    );
    (x, what)
}

/// `sc.pp.scale(zero_center=False, max_value)`: each column divided by its standard deviation
/// (unbiased, 1 where it is 0), then clipped at `max_value`.
fn scale_no_centre(x: &mut Array2<f32>, max_value: f32) {
    let n = x.nrows() as f64;
    for mut c in x.columns_mut() {
        let mean = c.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let var = c
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / (n - 1.0).max(1.0);
        let sd = if var > 0.0 { var.sqrt() } else { 1.0 };
        c.mapv_inplace(|v| ((f64::from(v) / sd) as f32).min(max_value));
    }
}
