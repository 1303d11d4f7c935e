//! A vs B on one dataset: each side's representation (a model's embedding or the PCA
//! baseline) goes through the same pipeline; the two labelings (predicted types when both
//! models classify, else Leiden clusters; or, when the comparison is of spatial domains, each
//! side's domains by its own method and input) are compared cell by cell after mapping each B
//! class to the A class it overlaps most, and scored against a ground truth when there is one.

use ndarray::Array2;

use super::analyze::{Analysis, AnalyzeParams, analyze, representation, score_clusters};
use super::{Handle, JobError, MISSING_LABELS};
use crate::analysis::Control;
use crate::analysis::metrics::encode;
use crate::data::AnnData;

/// What a side of the comparison runs on.
#[derive(Debug, Clone)]
pub enum SideSource {
    /// A model (cellscope folder or checkpoint with its genes).
    Model(std::path::PathBuf),
    /// The PCA (64) baseline of log-normalised expression.
    Pca,
}

/// How a side finds spatial domains when domains are compared: `None` for BANKSY, else a
/// graph method with its input.
pub type SideDomains = Option<super::domains::GraphDomainParams>;

/// One side's results.
#[derive(Debug, Clone)]
pub struct Side {
    /// Name shown in the window (model file name or "PCA baseline", and the domain method when
    /// domains are compared).
    pub name: String,
    /// Whether the labeling compared is the spatial domains.
    pub by_domains: bool,
    /// The pipeline's results on this side's representation.
    pub analysis: Analysis,
    /// Predicted types and confidences, when the model has a classifier head.
    pub predicted: Option<(Vec<String>, Vec<f32>)>,
}

impl Side {
    /// The labeling compared: predicted types when present, else Leiden clusters as strings.
    pub fn labels(&self) -> Vec<String> {
        match (&self.predicted, &self.analysis.domains) {
            (_, Some((d, _))) if self.by_domains => d.iter().map(u32::to_string).collect(),
            (Some((p, _)), _) => p.clone(),
            _ => self.analysis.leiden.iter().map(u32::to_string).collect(),
        }
    }
}

/// Maps each class of `b` to the class of `a` it shares most cells with (ties: the first in
/// sorted order), and returns `b` relabelled. With identical class sets (two classifiers) the
/// labels are compared as they are.
pub fn map_to(a: &[String], b: &[String]) -> Vec<String> {
    let (ac, an) = encode(a);
    let (bc, bn) = encode(b);
    if an == bn {
        return b.to_vec();
    }
    let mut overlap = vec![vec![0usize; an.len()]; bn.len()];
    for (&x, &y) in ac.iter().zip(&bc) {
        overlap[y as usize][x as usize] += 1;
    }
    let best: Vec<&String> = overlap
        .iter()
        .map(|row| {
            let k = (0..row.len()).fold(0, |best, k| if row[k] > row[best] { k } else { best });
            &an[k]
        })
        .collect();
    bc.iter().map(|&y| best[y as usize].clone()).collect()
}

/// The comparison of two sides.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// Side A and side B.
    pub sides: [Side; 2],
    /// A's labels.
    pub a_labels: Vec<String>,
    /// B's labels mapped onto A's classes ([`map_to`]).
    pub b_mapped: Vec<String>,
    /// B's own labels.
    pub b_labels: Vec<String>,
    /// Per cell: A and mapped B differ.
    pub disagree: Vec<bool>,
}

impl Comparison {
    /// Compares two finished sides.
    pub fn new(a: Side, b: Side) -> Self {
        let a_labels = a.labels();
        let b_labels = b.labels();
        let b_mapped = map_to(&a_labels, &b_labels);
        let disagree = a_labels
            .iter()
            .zip(&b_mapped)
            .map(|(x, y)| x != y)
            .collect();
        Comparison {
            sides: [a, b],
            a_labels,
            b_mapped,
            b_labels,
            disagree,
        }
    }

    /// Cells where the two labelings disagree.
    pub fn n_disagree(&self) -> usize {
        self.disagree.iter().filter(|&&d| d).count()
    }
}

/// Metrics of one side against a ground truth: ARI and NMI of its clusters (and of its
/// predictions), macro-F1 and accuracy of its predictions when their classes are the truth's.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SideMetrics {
    /// ARI of the Leiden clusters.
    pub leiden_ari: f64,
    /// NMI of the Leiden clusters.
    pub leiden_nmi: f64,
    /// Macro-F1 of the predicted types (when predicted).
    pub macro_f1: Option<f64>,
    /// Accuracy of the predicted types (when predicted).
    pub accuracy: Option<f64>,
    /// ARI of the spatial domains (when found).
    pub domain_ari: Option<f64>,
    /// NMI of the spatial domains (when found).
    pub domain_nmi: Option<f64>,
}

/// Scores `side` against `truth` (missing labels left out).
pub fn side_metrics(side: &Side, truth: &[String]) -> SideMetrics {
    let (s, _) = score_clusters(truth, &side.analysis.leiden);
    let (macro_f1, accuracy) = match &side.predicted {
        Some((p, _)) => {
            let (c, _, _) =
                crate::analysis::transfer::score_predictions(p, truth, None, &MISSING_LABELS);
            (Some(c.macro_f1), Some(c.accuracy))
        }
        None => (None, None),
    };
    let domains = side
        .analysis
        .domains
        .as_ref()
        .map(|(d, _)| score_clusters(truth, d).0);
    SideMetrics {
        leiden_ari: s.ari,
        leiden_nmi: s.nmi,
        macro_f1,
        accuracy,
        domain_ari: domains.as_ref().map(|d| d.ari),
        domain_nmi: domains.as_ref().map(|d| d.nmi),
    }
}

/// Runs one side: the representation (embedding by the model, or PCA), the pipeline, and the
/// model's predictions when it classifies; with `domains` given, the side's spatial domains by
/// that method (the comparison is then of domains).
///
/// # Errors
/// Unreadable model, no shared genes, a graph method's errors, [`JobError::Cancelled`].
pub fn run_side(
    data: &AnnData,
    source: &SideSource,
    params: &AnalyzeParams,
    domains: Option<&SideDomains>,
    h: &mut Handle<'_>,
) -> Result<Side, JobError> {
    let (rep, name, predicted): (Array2<f32>, String, _) = match source {
        SideSource::Pca => {
            let (r, _) = representation(data, Some("pca"), params.seed)?;
            (r, "PCA baseline".into(), None)
        }
        SideSource::Model(path) => {
            let model = crate::model::load_model(path, None)?;
            let engine = super::model::engine(&model, crate::model::BackendChoice::Auto)?;
            let input = super::embed::EmbedInput::Data(data);
            let e = super::embed::embed(&model, &engine, input, &Default::default(), h)?;
            let predicted = if model.weights.head.is_some() {
                let (p, _) = super::train::predict(&model, data)?;
                Some((p.labels(&model), p.confidence))
            } else {
                None
            };
            let name = path.file_name().map_or_else(
                || path.display().to_string(),
                |f| f.to_string_lossy().to_string(),
            );
            (e.values, name, predicted)
        }
    };
    let coords = data.spatial_f32()?;
    super::check_finite(rep.view(), &data.source, &name)?;
    if let Some(c) = &coords {
        super::check_finite(c.view(), &data.source, "obsm['spatial']")?;
    }
    let graph = domains.and_then(Option::as_ref);
    let banksy = AnalyzeParams {
        spatial_domains: params.spatial_domains.filter(|_| graph.is_none()),
        ..params.clone()
    };
    let mut analysis = analyze(
        rep.view(),
        coords.as_ref().map(|c| c.view()),
        &banksy,
        &Control::with_cancel(h.cancel_flag().clone()),
        &mut |s, f| h.step(s, f),
    )?;
    let mut name = name;
    if let Some(d) = domains {
        let is_model = matches!(source, SideSource::Model(_));
        name = match (d, params.spatial_domains, &coords) {
            (Some(g), Some(k), Some(c)) => {
                let r = super::domains::run(
                    data,
                    c.view(),
                    k,
                    (&rep, &name, is_model),
                    g,
                    params.seed,
                    h,
                )?;
                analysis.domains = Some((r.labels, r.confidence));
                format!("{name}, {} on {}", g.method.name(), r.input)
            }
            _ => format!("{name}, BANKSY"),
        };
    }
    Ok(Side {
        name,
        by_domains: domains.is_some(),
        analysis,
        predicted,
    })
}

/// The A-vs-B job: both sides through the same pipeline, then compared cell by cell; with
/// `domains`, each side's spatial domains by its own method are what is compared.
///
/// # Errors
/// As [`run_side`]; [`JobError::Input`] when domains are compared on a dataset without
/// coordinates.
pub fn run(
    data: &AnnData,
    sides: &[SideSource; 2],
    params: &AnalyzeParams,
    domains: Option<&[SideDomains; 2]>,
    h: &mut Handle<'_>,
) -> Result<Comparison, JobError> {
    params.check()?;
    if let Some(d) = domains {
        if params.spatial_domains.is_none() || data.default_spatial().is_none() {
            return Err(JobError::Input(format!(
                "{}: comparing spatial domains needs coordinates in obsm['spatial']",
                data.source.display()
            )));
        }
        for g in d.iter().flatten() {
            g.check()?;
        }
    }
    let a = run_side(data, &sides[0], params, domains.map(|d| &d[0]), h)?;
    let b = run_side(data, &sides[1], params, domains.map(|d| &d[1]), h)?;
    Ok(Comparison::new(a, b))
}
