//! `cellscope analyze`: the analysis job on a file; prints the metrics, writes the results.

use std::path::PathBuf;

use super::BackendArg;
use super::with_handle;
use crate::analysis::spatial_graph::GraphKind;
use crate::export::tables::Results;
use crate::pipeline::jobs::analyze::{AnalyzeJob, AnalyzeOutput, AnalyzeParams};
use crate::pipeline::jobs::domains::{DomainInput, DomainMethod, GraphDomainParams};

/// Arguments of `cellscope analyze`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The input (.h5ad, 10x .h5, or Visium folder).
    data: PathBuf,
    /// Representation: an obsm key (X_cellscope, X_pca, ...), `pca` for the PCA (64) of the
    /// log-normalised expression, or `X`. Default: X_cellscope when present, else `pca`.
    #[arg(long)]
    use_rep: Option<String>,
    /// Neighbours in the kNN graph (the cell itself included, as scanpy counts).
    #[arg(long, default_value_t = 15)]
    n_neighbors: usize,
    /// Leiden resolution (RB configuration model).
    #[arg(long, default_value_t = 1.0)]
    resolution: f64,
    /// Number of spatial domains to find (needs obsm['spatial']).
    #[arg(long)]
    spatial_domains: Option<usize>,
    /// How the spatial domains are found: BANKSY-style features and a mixture, or a graph
    /// network trained on the slide (STAGATE, GraphST) and a tied-covariance mixture.
    #[arg(long, value_enum, default_value_t = DomainMethod::Banksy)]
    domains: DomainMethod,
    /// Input of STAGATE / GraphST: `auto` (X_cellscope when present, else `hvg`), `hvg`
    /// (3,000 highly variable genes, log-normalised), `pca` / `X_pca`, or an obsm key.
    #[arg(long, default_value = "auto")]
    domain_rep: DomainInput,
    /// Radius graph for STAGATE / GraphST, in obsm['spatial'] units (µm for imaging
    /// platforms, full-resolution pixels for Visium). Default: STAGATE 1.5x the median
    /// nearest-neighbour distance.
    #[arg(long, conflicts_with = "graph_k")]
    radius: Option<f64>,
    /// kNN graph for STAGATE / GraphST (default for GraphST: 3).
    #[arg(long)]
    graph_k: Option<usize>,
    /// Training epochs of STAGATE / GraphST (default: 1,000 / 600, as their code).
    #[arg(long)]
    epochs: Option<usize>,
    /// Relabel each cell by the majority of its 50 nearest cells (GraphST's refinement).
    #[arg(long)]
    refine: bool,
    /// Compute backend of STAGATE / GraphST.
    #[arg(long, value_enum, default_value_t = BackendArg::Cpu)]
    backend: BackendArg,
    /// Ground-truth obs column for the metrics (ARI, NMI, ...); missing values (NA, nan,
    /// empty, Ambiguous) are left out.
    #[arg(long)]
    label_key: Option<String>,
    /// Seed for UMAP, Leiden, PCA and domains.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    out: super::Outputs,
}

/// Runs `cellscope analyze`.
///
/// # Errors
/// The job's error.
pub fn run(a: Args) -> anyhow::Result<()> {
    a.out.check(&[&a.data])?;
    let params = AnalyzeParams {
        n_neighbors: a.n_neighbors,
        resolution: a.resolution,
        spatial_domains: a.spatial_domains,
        umap: crate::analysis::umap::UmapParams {
            seed: a.seed,
            ..Default::default()
        },
        seed: a.seed,
        ..Default::default()
    };
    let job = AnalyzeJob {
        use_rep: a.use_rep,
        matrix: None,
        params,
        label_key: a.label_key,
        graph_domains: (a.domains != DomainMethod::Banksy).then(|| GraphDomainParams {
            method: a.domains,
            input: a.domain_rep.clone(),
            graph: a
                .radius
                .map(GraphKind::Radius)
                .or(a.graph_k.map(GraphKind::Knn)),
            epochs: a.epochs,
            refine: a.refine,
            backend: a.backend.into(),
        }),
    };
    job.params.check()?;
    if let Some(g) = &job.graph_domains {
        g.check()?;
        anyhow::ensure!(
            job.params.spatial_domains.is_some(),
            "--domains {} needs --spatial-domains K",
            g.method.name().to_lowercase()
        );
    }
    let data = crate::data::open(&a.data)?;
    let o = with_handle(|h| crate::pipeline::jobs::analyze::run(&data, &job, h))?;
    print_scores(&o);
    let report = o.report(&job.params);
    let res = &o.analysis;
    let results = Results {
        umap: Some(&res.umap),
        pca: o.is_pca().then_some(&*o.representation),
        leiden: Some(&res.leiden),
        domains: res
            .domains
            .as_ref()
            .map(|(d, c)| (d.as_slice(), c.as_slice())),
        latent: o
            .graph_domains
            .as_ref()
            .and_then(|g| g.method.latent_key().map(|k| (k, &g.latent))),
        provenance: crate::export::provenance(&[("data", &a.data)], report.clone()),
        uns: vec![("cellscope_analysis".into(), report.clone())],
        ..Default::default()
    };
    let metrics = a.out.metrics_json.as_deref().map(|m| (m, &report));
    super::write_back(&data, &results, &a.out.out, metrics)
}

fn print_scores(o: &AnalyzeOutput) {
    let (rep, res) = (&o.representation, &o.analysis);
    eprintln!(
        "representation: {}, {} x {}",
        o.name,
        rep.nrows(),
        rep.ncols()
    );
    let n_clusters = res.leiden.iter().max().map_or(0, |m| m + 1);
    eprintln!(
        "Leiden: {n_clusters} clusters, modularity {:.4}",
        res.modularity
    );
    if let Some(g) = &o.graph_domains {
        let (kind, stats) = &g.graph;
        eprintln!(
            "{} on {}: graph {kind:?}: {stats}; {} epochs, final loss {:.4}, {:.1} s",
            g.method.name(),
            g.input,
            g.epochs,
            g.loss,
            g.seconds.0
        );
    }
    let Some(s) = &o.scores else {
        return;
    };
    let key = &s.label_key;
    let (l, n) = &s.leiden;
    println!(
        "leiden vs {key}: ARI {:.4}  NMI {:.4}  homogeneity {:.4}  completeness {:.4}  V {:.4}  ({n} cells)",
        l.ari, l.nmi, l.homogeneity, l.completeness, l.v_measure
    );
    if let Some((sil, used)) = s.silhouette {
        println!("silhouette of {key} on the representation: {sil:.4} ({used} cells)");
    }
    println!("15-NN label agreement of the UMAP: {:.4}", s.umap_agreement);
    let (k, n) = &s.knn_classifier;
    println!(
        "kNN classifier (k = 5, 70/15/15 split, seed 42), test set of {n}: accuracy {:.4}  macro-F1 {:.4}  weighted-F1 {:.4}",
        k.accuracy, k.macro_f1, k.weighted_f1
    );
    if let Some((d, n)) = &s.domains {
        println!(
            "spatial_domain vs {key}: ARI {:.4}  NMI {:.4}  ({n} cells)",
            d.ari, d.nmi
        );
    }
}
