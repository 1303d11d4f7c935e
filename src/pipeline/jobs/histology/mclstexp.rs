//! mclSTExp as jobs: train on sections with H&E images and measured spots, save and load the
//! model folder, predict a slide's expression from its image (at spots or on a tissue grid),
//! scored against measured expression when the query has it. The same jobs run the kNN
//! baseline ([`Method::Knn`]: the nearest training spots in standardised feature space).
//!
//! The model folder is written and read by [`super::store`].

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use ndarray::Array2;

use super::features::{
    FeatureParams, ImageSettings, Positions, features, resolve_encoder, spot_centres,
};
use crate::analysis::prediction::{ExpressionScores, expression_scores};
use crate::data::AnnData;
use crate::data::genes::{GeneAlignment, GeneList, genes_of};
use crate::data::preprocess::library_size_log10;
use crate::model::histology::mclstexp::{MclConfig, MclStExp};
use crate::model::histology::train::{
    MclTraining, SpotSet, column_scaling, image_queries, predict, predict_knn, spot_keys,
    standardise, train,
};
use crate::model::hub::Hub;
use crate::pipeline::jobs::{Handle, JobError, Progress, Step};

/// A section for training or evaluation: spots (`.h5ad` with counts, `obsm['spatial']` in the
/// image's pixels, obs `x`, `y` array positions) and its H&E image.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    /// The spots.
    pub data: PathBuf,
    /// The H&E image.
    pub image: PathBuf,
}

impl Section {
    /// `DATA.h5ad[:IMAGE]`; without an image, `STEM_HE.jpg` (or `.png`, `.tif`) beside the data,
    /// as the HER2+ sections in `../shared/data` are laid out.
    ///
    /// # Errors
    /// [`JobError::Input`] when no image is given and none lies beside the data.
    pub fn parse(spec: &str) -> Result<Self, JobError> {
        if let Some((d, i)) = spec.split_once(".h5ad:") {
            return Ok(Self {
                data: PathBuf::from(format!("{d}.h5ad")),
                image: PathBuf::from(i),
            });
        }
        let data = PathBuf::from(spec);
        let stem = data.with_extension("");
        ["jpg", "jpeg", "png", "tif", "tiff"]
            .iter()
            .map(|e| PathBuf::from(format!("{}_HE.{e}", stem.display())))
            .find(|p| p.is_file())
            .map(|image| Self {
                data: data.clone(),
                image,
            })
            .ok_or_else(|| {
                JobError::Input(format!(
                    "{spec}: no image given (DATA.h5ad:IMAGE) and no {}_HE.jpg beside it",
                    stem.display()
                ))
            })
    }
}

/// What maps image features to expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Method {
    /// mclSTExp's contrastive model (the default).
    MclStExp,
    /// The training spots nearest in standardised feature space, averaged (with
    /// `colour-texture` features: the colour-and-texture kNN baseline).
    Knn,
}

impl Method {
    /// Training spots averaged per query by default: mclSTExp's 200; 50 for the kNN.
    pub fn default_top_k(self) -> usize {
        match self {
            Method::MclStExp => 200,
            Method::Knn => 50,
        }
    }
}

/// Parameters of [`train_model`].
#[derive(Debug, Clone)]
pub struct TrainParams {
    /// Training sections.
    pub sections: Vec<Section>,
    /// What maps features to expression.
    pub method: Method,
    /// The gene panel (one symbol a line; `her2st_hvg_785.csv`).
    pub genes: PathBuf,
    /// Image settings.
    pub image: ImageSettings,
    /// Training recipe.
    pub training: MclTraining,
    /// Spots per batch when embedding the training spots as prediction keys (32, as
    /// `evel_her2st.py`).
    pub key_batch: usize,
    /// Compute device.
    pub device: Device,
    /// Whether image features use the cache.
    pub cache: bool,
}

/// What the model folder's `histology.json` holds.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ModelInfo {
    /// `"cellscope-histology"`.
    pub format: String,
    /// What maps features to expression.
    pub method: Method,
    /// Network sizes.
    pub config: MclConfig,
    /// The panel, in output order.
    pub genes: Vec<String>,
    /// Image settings.
    pub image: ImageSettings,
    /// Identity of the encoder the features came from: its file's SHA-256, or a built-in's
    /// name ([`resolve_encoder`]).
    pub encoder_id: String,
    /// The encoder, in words.
    pub encoder_description: String,
    /// The recipe.
    pub training: MclTraining,
    /// Training sections (data files).
    pub sections: Vec<String>,
    /// Final epoch's mean loss (none for the kNN).
    pub final_loss: Option<f64>,
    /// Training spots averaged per query by default.
    pub top_k: usize,
}

/// A trained model: network, prediction reference and description.
pub struct HistologyModel {
    /// The network (mclSTExp only).
    pub net: Option<MclStExp>,
    /// Training spots' keys, `[n, d]`: mclSTExp's spot embeddings (256-d), or the kNN's
    /// standardised features.
    pub keys: Array2<f32>,
    /// The kNN's feature standardisation `(mean, sd)`.
    pub scaling: Option<(Vec<f32>, Vec<f32>)>,
    /// Their expression, `[n, genes]`.
    pub values: Array2<f32>,
    /// Description.
    pub info: ModelInfo,
}

/// A section's spots read for the panel: expression, positions, centres, names.
pub struct SectionSpots {
    /// mclSTExp's log-normalised expression of the panel genes, `[n, genes]`.
    pub expr: Array2<f32>,
    /// Array positions.
    pub positions: Vec<[u32; 2]>,
    /// Spot centres in image pixels.
    pub centres: Vec<[f64; 2]>,
    /// Spot names.
    pub names: Vec<String>,
    /// Panel genes the section lacks (zero-filled).
    pub missing: Vec<String>,
}

/// The panel's expression (zero-filled where the section lacks a gene), array positions and
/// centres of `a`.
///
/// # Errors
/// [`JobError::Input`] when the section shares no gene with the panel, or lacks
/// `obsm['spatial']` or obs `x` / `y`.
pub fn section_spots(a: &AnnData, panel: &GeneList) -> Result<SectionSpots, JobError> {
    let src = a.source.display();
    let al = GeneAlignment::new(panel, &genes_of(&a.var), None);
    let present: Vec<usize> = al.model_to_data.iter().flatten().copied().collect();
    if present.is_empty() {
        return Err(JobError::Input(format!(
            "{src}: shares no gene with the panel of {} genes (first: {})",
            panel.len(),
            panel.symbols.first().map_or("", String::as_str)
        )));
    }
    let cols = a.x.to_csr().dense_columns(&present);
    let mut counts = Array2::<f32>::zeros((a.n_obs(), panel.len()));
    let mut missing = Vec::new();
    let mut k = 0;
    for (g, m) in al.model_to_data.iter().enumerate() {
        if m.is_some() {
            counts.column_mut(g).assign(&cols.column(k));
            k += 1;
        } else {
            missing.push(panel.symbols[g].clone());
        }
    }
    let coord = |name: &str| -> Result<Vec<f64>, JobError> {
        let c = a
            .obs
            .column(name)
            .filter(|c| c.is_numeric())
            .ok_or_else(|| {
                JobError::Input(format!(
                    "{src}: no numeric obs column '{name}' (array position)"
                ))
            })?;
        Ok((0..a.n_obs()).map(|i| c.value_f64(i)).collect())
    };
    let (x, y) = (coord("x")?, coord("y")?);
    Ok(SectionSpots {
        expr: library_size_log10(&counts),
        positions: x
            .iter()
            .zip(&y)
            .map(|(&x, &y)| [x.max(0.0) as u32, y.max(0.0) as u32])
            .collect(),
        centres: spot_centres(a)?,
        names: a.obs_names().to_vec(),
        missing,
    })
}

/// Trains mclSTExp on `p.sections` (features of each section's spots by the frozen encoder,
/// then the contrastive training; [`Progress::Fit`] per epoch under [`Step::Train`]).
///
/// # Errors
/// [`JobError::Data`] / [`JobError::Input`] for unreadable sections, a panel sharing no gene
/// with a section, missing positions; [`JobError::Model`] for an unusable encoder;
/// [`JobError::Train`] / [`JobError::Cancelled`].
pub fn train_model(
    p: &TrainParams,
    hub: &Hub,
    h: &mut Handle<'_>,
) -> Result<HistologyModel, JobError> {
    if p.sections.is_empty() {
        return Err(JobError::Input("no training sections".into()));
    }
    let panel = GeneList::read_csv(&p.genes)?;
    let (mut expr, mut positions, mut feats) = (Vec::new(), Vec::new(), Vec::new());
    let (mut description, mut encoder_id) = (String::new(), String::new());
    for s in &p.sections {
        h.check()?;
        let a = crate::data::open(&s.data)?;
        let spots = section_spots(&a, &panel)?;
        let at = Positions::Spots(spots.centres);
        let fp = FeatureParams::new(&s.image, at, &p.image, &p.device, p.cache);
        let f = features(&fp, hub, h)?;
        description = f.encoder.clone();
        encoder_id = f.encoder_id.clone();
        expr.push(spots.expr);
        positions.extend(spots.positions);
        feats.push(f.values);
    }
    let stack = |m: &[Array2<f32>]| {
        let views: Vec<_> = m.iter().map(|a| a.view()).collect();
        ndarray::concatenate(ndarray::Axis(0), &views).expect("same widths")
    };
    let set = SpotSet {
        expr: stack(&expr),
        positions,
        features: stack(&feats),
    };
    let config = MclConfig::published(panel.len(), set.features.ncols(), set.positions_needed());
    let mut final_loss = None;
    let (net, keys, scaling) = match p.method {
        Method::MclStExp => {
            let cancel = h.cancel_flag().clone();
            let mut report = |epoch, epochs, loss| {
                final_loss = Some(loss);
                h.report(Progress::Fit {
                    step: Step::Train,
                    epoch,
                    epochs,
                    loss,
                });
            };
            let net = train(&config, &set, &p.training, &p.device, &cancel, &mut report).map_err(
                |e| match e {
                    crate::model::train::TrainError::Cancelled => JobError::Cancelled,
                    e => JobError::Train(e),
                },
            )?;
            let keys = spot_keys(&net, &set, p.key_batch, &p.device);
            (Some(net), keys, None)
        }
        Method::Knn => {
            let (mean, sd) = column_scaling(&set.features);
            (
                None,
                standardise(&set.features, &mean, &sd),
                Some((mean, sd)),
            )
        }
    };
    Ok(HistologyModel {
        net,
        keys,
        scaling,
        values: set.expr,
        info: ModelInfo {
            format: "cellscope-histology".into(),
            method: p.method,
            top_k: p.method.default_top_k(),
            config,
            genes: panel.symbols,
            image: p.image.clone(),
            encoder_id,
            encoder_description: description,
            training: p.training,
            sections: p
                .sections
                .iter()
                .map(|s| s.data.display().to_string())
                .collect(),
            final_loss,
        },
    })
}

/// A prediction for one slide.
#[derive(Debug, Clone)]
pub struct Prediction {
    /// Predicted log-normalised expression, `[n, genes]`.
    pub values: Array2<f32>,
    /// Measured expression of the same spots, when the query had it.
    pub measured: Option<Array2<f32>>,
    /// Patch centres (image pixels).
    pub centres: Vec<[f64; 2]>,
    /// Spot or patch names.
    pub names: Vec<String>,
    /// Panel genes.
    pub genes: Vec<String>,
    /// Scores against `measured`, when there is a measurement.
    pub scores: Option<ExpressionScores>,
}

/// Parameters of [`predict_slide`].
#[derive(Debug, Clone)]
pub struct PredictParams {
    /// The slide image.
    pub image: PathBuf,
    /// The spots (with or without measured expression), or `None` for a tissue grid.
    pub spots: Option<PathBuf>,
    /// Minimum tissue fraction of a grid patch.
    pub min_tissue: f64,
    /// Training spots averaged per query (default: the model's, [`Method::default_top_k`]).
    pub top_k: Option<usize>,
    /// Compute device.
    pub device: Device,
    /// Whether image features use the cache.
    pub cache: bool,
}

/// Predicts the panel's expression on a slide: image features at the spots (or a tissue
/// grid), projected into the joint space, averaged over the model's `top_k` nearest training
/// spots ([`predict`]).
///
/// # Errors
/// [`JobError::Input`] for a zero `top_k`, or when the encoder is not the one the model was
/// trained with (its identity differs), or as [`train_model`]'s reading of sections.
pub fn predict_slide(
    m: &HistologyModel,
    p: &PredictParams,
    hub: &Hub,
    h: &mut Handle<'_>,
) -> Result<Prediction, JobError> {
    if p.top_k == Some(0) {
        return Err(JobError::Input(
            "top-k must be at least 1 (training spots averaged per patch)".into(),
        ));
    }
    let (_, id) = resolve_encoder(&m.info.image.encoder, hub, h)?;
    if id != m.info.encoder_id {
        return Err(JobError::Input(format!(
            "{}: not the image encoder the model was trained with (identity {id}, expected {}); features of another encoder would not match the model",
            m.info.image.encoder.display(),
            m.info.encoder_id
        )));
    }
    let panel = GeneList::from_names(m.info.genes.clone());
    let (centres, names, measured) = match &p.spots {
        Some(path) => {
            let a = crate::data::open(path)?;
            let s = section_spots(&a, &panel)?;
            let measured = (s.missing.len() < panel.len()).then_some(s.expr);
            (Positions::Spots(s.centres), s.names, measured)
        }
        None => (
            Positions::Grid {
                min_tissue: p.min_tissue,
            },
            Vec::new(),
            None,
        ),
    };
    let fp = FeatureParams::new(&p.image, centres, &m.info.image, &p.device, p.cache);
    let f = features(&fp, hub, h)?;
    h.step(Step::Predict, 0.0);
    let top_k = p.top_k.unwrap_or(m.info.top_k);
    let values = match (&m.net, &m.scaling) {
        (Some(net), _) => predict(
            &image_queries(net, &f.values, &p.device),
            &m.keys,
            &m.values,
            top_k,
        ),
        (None, Some((mean, sd))) => {
            predict_knn(&standardise(&f.values, mean, sd), &m.keys, &m.values, top_k)
        }
        (None, None) => {
            return Err(JobError::Input(
                "the model has neither a network nor a feature scaling".into(),
            ));
        }
    };
    h.step(Step::Predict, 1.0);
    let names = if names.is_empty() {
        (0..values.nrows()).map(|i| format!("patch_{i}")).collect()
    } else {
        names
    };
    let scores = measured.as_ref().map(|t| expression_scores(t, &values));
    Ok(Prediction {
        scores,
        values,
        measured,
        centres: f.centres,
        names,
        genes: m.info.genes.clone(),
    })
}

/// A prediction as an AnnData ([`super::features::patches_anndata`]): `X` the predicted
/// expression, var the panel.
///
/// # Errors
/// As [`super::features::patches_anndata`].
pub fn prediction_anndata(p: &Prediction, image: &Path) -> Result<AnnData, JobError> {
    let names = Some(p.names.clone());
    super::features::patches_anndata(&p.values, p.genes.clone(), &p.centres, names, image)
}
