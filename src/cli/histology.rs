//! `cellscope histology`: image models on H&E slides. `features` cuts patches at spots (or on
//! a grid over the tissue), encodes them with an image encoder and writes the features as a
//! new .h5ad; `train` and `predict` are mclSTExp (or the feature kNN); `pretrain-encoder` trains
//! the small SimCLR encoder on the slides' own tiles.

use std::path::PathBuf;

use super::with_handle;
use crate::model::histology::train::MclTraining;
use crate::model::vision::{Normalization, Pooling};
use crate::pipeline::jobs::histology::features::{ImageSettings, spot_centres};
use crate::pipeline::jobs::histology::mclstexp::{
    Method, PredictParams, Section, TrainParams, predict_slide, train_model,
};
use crate::pipeline::jobs::histology::store::{load_model, save_model};
use crate::pipeline::jobs::histology::{FeatureParams, Positions, features, features_anndata};

/// `cellscope histology ...`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Image features of a slide's patches: X = features (one row per spot or tissue patch),
    /// obsm['spatial'] = patch centres (image pixels); cached beside the slide.
    Features(FeaturesArgs),
    /// Train mclSTExp on sections with H&E images and measured spots; writes a model folder.
    Train(TrainArgs),
    /// Predict a slide's expression from its H&E image with a trained model; writes a new
    /// .h5ad (X = prediction, layers['measured'] when the spots had expression).
    Predict(PredictArgs),
    /// Pre-train a small image encoder self-supervised (SimCLR) on tiles of the slides
    /// themselves, for machines without pretrained weights; writes a .safetensors encoder in
    /// timm's ResNet layout for --encoder.
    PretrainEncoder(PretrainEncoderArgs),
}

/// Arguments of `cellscope histology pretrain-encoder`.
#[derive(Debug, clap::Args)]
pub struct PretrainEncoderArgs {
    /// Slide images (JPEG, PNG, TIFF).
    #[arg(long, num_args = 1.., required = true)]
    images: Vec<PathBuf>,
    /// Tile side in full-resolution pixels.
    #[arg(long, default_value_t = 224)]
    tile: u32,
    /// Minimum tissue fraction of a tile.
    #[arg(long, default_value_t = 0.5)]
    min_tissue: f64,
    /// At most this many tiles.
    #[arg(long, default_value_t = 4000)]
    max_tiles: usize,
    /// Epochs.
    #[arg(long, default_value_t = 20)]
    epochs: usize,
    /// Tiles per batch.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Compute backend.
    #[arg(long, value_enum, default_value = "auto")]
    backend: super::BackendArg,
    /// The encoder file to write (.safetensors).
    #[arg(long)]
    out: PathBuf,
}

/// How patches become features (`train`).
#[derive(Debug, clap::Args)]
pub struct ImageArgs {
    /// The encoder: a timm / torchvision ResNet or DenseNet state dict (.safetensors, .pth),
    /// an hf:// name, random:densenet121[:SEED] or random:resnet18[:SEED] (torchvision's
    /// initialisation), or colour-texture (colour and texture statistics).
    #[arg(long)]
    encoder: PathBuf,
    /// Patch side in full-resolution pixels (mclSTExp: 224).
    #[arg(long, default_value_t = 224)]
    patch: u32,
    /// Normalise patches by ImageNet's mean and std (default: values / 255, as mclSTExp).
    #[arg(long)]
    imagenet: bool,
    /// A DenseNet's feature pooled after a final ReLU (default: torchvision's
    /// `model.features` pooled, as mclSTExp).
    #[arg(long)]
    pre_logits: bool,
}

impl ImageArgs {
    fn settings(&self) -> ImageSettings {
        ImageSettings {
            encoder: self.encoder.clone(),
            patch: self.patch,
            normalization: if self.imagenet {
                Normalization::ImageNet
            } else {
                Normalization::UnitRange
            },
            pooling: if self.pre_logits {
                Pooling::PreLogits
            } else {
                Pooling::Features
            },
        }
    }
}

/// `--method` of `histology train`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MethodArg {
    /// mclSTExp.
    Mclstexp,
    /// kNN in feature space.
    Knn,
}

/// Arguments of `cellscope histology train`.
#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// Training sections: DATA.h5ad[:IMAGE] (counts, obsm['spatial'] in the image's pixels,
    /// obs x, y array positions); without IMAGE, DATA_HE.jpg beside DATA.
    #[arg(long, num_args = 1.., required = true)]
    sections: Vec<String>,
    /// The gene panel (one symbol a line, e.g. her2st_hvg_785.csv).
    #[arg(long)]
    genes: PathBuf,
    /// What maps image features to expression: mclSTExp's contrastive model, or the nearest
    /// training spots in standardised feature space (with --encoder colour-texture: the
    /// colour-and-texture kNN baseline).
    #[arg(long, value_enum, default_value = "mclstexp")]
    method: MethodArg,
    #[command(flatten)]
    image: ImageArgs,
    /// Epochs (mclSTExp: 90).
    #[arg(long, default_value_t = 90)]
    epochs: usize,
    /// Spots per batch (mclSTExp: 128).
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    /// Adam learning rate (mclSTExp: 1e-4).
    #[arg(long, default_value_t = 1e-4)]
    lr: f64,
    /// Seed of the initial weights and the batch order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Compute backend.
    #[arg(long, value_enum, default_value = "auto")]
    backend: super::BackendArg,
    /// Neither read nor write the feature cache.
    #[arg(long)]
    no_cache: bool,
    /// The model folder to write (new).
    #[arg(long)]
    out: PathBuf,
}

/// Arguments of `cellscope histology predict`.
#[derive(Debug, clap::Args)]
pub struct PredictArgs {
    /// A model folder written by `histology train`.
    #[arg(long)]
    model: PathBuf,
    #[command(flatten)]
    slide: SlideArgs,
    /// Training spots averaged per patch (default: the model's: mclSTExp 200, kNN 50).
    #[arg(long)]
    top_k: Option<usize>,
    /// Compute backend.
    #[arg(long, value_enum, default_value = "auto")]
    backend: super::BackendArg,
    /// Neither read nor write the feature cache.
    #[arg(long)]
    no_cache: bool,
    /// The new .h5ad to write.
    #[arg(long)]
    out: PathBuf,
    /// Also write the scores as JSON here.
    #[arg(long)]
    metrics_json: Option<PathBuf>,
}

/// The slide and where its patches are cut (`features`, `predict`).
#[derive(Debug, clap::Args)]
pub struct SlideArgs {
    /// The slide image (JPEG, PNG, TIFF/BigTIFF, tiled or not).
    #[arg(long)]
    image: PathBuf,
    /// Spots whose obsm['spatial'] is in the image's full-resolution pixels (.h5ad); patches
    /// are centred on them. With measured expression, `predict` prints and stores per-gene
    /// Pearson correlations.
    #[arg(long, conflicts_with = "grid", required_unless_present = "grid")]
    spots: Option<PathBuf>,
    /// No spots: a grid of patches over the detected tissue (Otsu on saturation).
    #[arg(long)]
    grid: bool,
    /// Minimum tissue fraction of a grid patch.
    #[arg(long, default_value_t = 0.5)]
    min_tissue: f64,
}

impl SlideArgs {
    /// The image and the spots file, for the check that no output overwrites them.
    fn inputs(&self) -> Vec<&std::path::Path> {
        let mut v = vec![self.image.as_path()];
        v.extend(self.spots.as_deref());
        v
    }
}

/// Arguments of `cellscope histology features`.
#[derive(Debug, clap::Args)]
pub struct FeaturesArgs {
    #[command(flatten)]
    slide: SlideArgs,
    #[command(flatten)]
    image: ImageArgs,
    /// Patches per batch.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Compute backend (auto: a hardware GPU through wgpu when there is one, else the CPU).
    #[arg(long, value_enum, default_value = "auto")]
    backend: super::BackendArg,
    /// Neither read nor write the feature cache.
    #[arg(long)]
    no_cache: bool,
    /// The new .h5ad to write.
    #[arg(long)]
    out: PathBuf,
}

/// Runs `cellscope histology ...`.
///
/// # Errors
/// Unreadable inputs, an output equal to an input, the job's error.
pub fn run(c: Command) -> anyhow::Result<()> {
    match c {
        Command::Features(a) => run_features(a),
        Command::Train(a) => run_train(a),
        Command::Predict(a) => run_predict(a),
        Command::PretrainEncoder(a) => run_pretrain_encoder(a),
    }
}

fn run_features(a: FeaturesArgs) -> anyhow::Result<()> {
    crate::pipeline::jobs::export::check_output(&a.slide.inputs(), &a.out)?;
    let (positions, names) = match &a.slide.spots {
        Some(s) => {
            let spots = crate::data::open(s)?;
            let c = spot_centres(&spots)?;
            (Positions::Spots(c), Some(spots.obs_names().to_vec()))
        }
        None => (
            Positions::Grid {
                min_tissue: a.slide.min_tissue,
            },
            None,
        ),
    };
    let (_, device, _) = crate::model::engine::select_device(a.backend.into())?;
    let settings = a.image.settings();
    let params = FeatureParams {
        batch: a.batch,
        ..FeatureParams::new(&a.slide.image, positions, &settings, &device, !a.no_cache)
    };
    let hub = crate::model::hub::Hub::from_env();
    let f = with_handle(|h| features(&params, &hub, h))?;
    println!(
        "{} patches of {} px, {} {}",
        f.values.nrows(),
        settings.patch,
        f.encoder,
        if f.from_cache { "(from the cache)" } else { "" }
    );
    if let Some(c) = &f.cache_file {
        eprintln!("feature cache: {}", c.display());
    }
    let adata = features_anndata(&f, &a.slide.image, names)?;
    let results = crate::export::tables::Results {
        provenance: serde_json::json!({
            "cellscope_version": env!("CARGO_PKG_VERSION"),
            "image": a.slide.image.display().to_string(),
            "encoder": settings.encoder.display().to_string(),
            "architecture": f.encoder,
            "patch_px": settings.patch,
            "normalization": format!("{:?}", settings.normalization),
            "pooling": format!("{:?}", settings.pooling),
        }),
        ..Default::default()
    };
    super::write_back(&adata, &results, &a.out, None)
}

fn run_train(a: TrainArgs) -> anyhow::Result<()> {
    let sections = a
        .sections
        .iter()
        .map(|s| Section::parse(s))
        .collect::<Result<Vec<_>, _>>()?;
    let mut inputs: Vec<&std::path::Path> = vec![a.genes.as_path()];
    for s in &sections {
        inputs.push(&s.data);
        inputs.push(&s.image);
    }
    crate::pipeline::jobs::export::check_output(&inputs, &a.out)?;
    let (_, device, _) = crate::model::engine::select_device(a.backend.into())?;
    let p = TrainParams {
        sections,
        method: match a.method {
            MethodArg::Mclstexp => Method::MclStExp,
            MethodArg::Knn => Method::Knn,
        },
        genes: a.genes.clone(),
        image: a.image.settings(),
        training: MclTraining {
            epochs: a.epochs,
            batch: a.batch_size,
            lr: a.lr,
            seed: a.seed,
            ..MclTraining::default()
        },
        key_batch: 32,
        device,
        cache: !a.no_cache,
    };
    let hub = crate::model::hub::Hub::from_env();
    let m = with_handle(|h| train_model(&p, &hub, h))?;
    println!(
        "trained {:?} on {} spots of {} sections, {} genes, {}{}",
        m.info.method,
        m.keys.nrows(),
        p.sections.len(),
        m.info.genes.len(),
        m.info.encoder_description,
        m.info
            .final_loss
            .map_or(String::new(), |l| format!("; final loss {l:.4}"))
    );
    save_model(&m, &a.out)?;
    eprintln!("wrote {}", a.out.display());
    Ok(())
}

fn run_predict(a: PredictArgs) -> anyhow::Result<()> {
    let mut inputs = a.slide.inputs();
    inputs.push(a.model.as_path());
    let mut outputs = vec![a.out.as_path()];
    outputs.extend(a.metrics_json.as_deref());
    crate::pipeline::jobs::export::check_outputs(&inputs, &outputs)?;
    let (_, device, _) = crate::model::engine::select_device(a.backend.into())?;
    let m = load_model(&a.model, &device)?;
    let p = PredictParams {
        image: a.slide.image.clone(),
        spots: a.slide.spots.clone(),
        min_tissue: a.slide.min_tissue,
        top_k: a.top_k,
        device,
        cache: !a.no_cache,
    };
    let hub = crate::model::hub::Hub::from_env();
    let pred = with_handle(|h| predict_slide(&m, &p, &hub, h))?;
    println!(
        "predicted {} genes at {} positions",
        pred.genes.len(),
        pred.values.nrows()
    );
    if let Some(s) = &pred.scores {
        println!(
            "Pearson per gene: mean over all genes (ACG) {:.4}, 50 most expressed (HEG) {:.4}, 50 most variable (HVG) {:.4}; MSE {:.4}, MAE {:.4}",
            s.acg, s.heg, s.hvg, s.mse, s.mae
        );
    }
    let adata =
        crate::pipeline::jobs::histology::mclstexp::prediction_anndata(&pred, &a.slide.image)?;
    let mut layers = Vec::new();
    if let Some(t) = &pred.measured {
        layers.push(("measured".to_string(), t));
    }
    let metrics = pred.scores.as_ref().map(|s| {
        serde_json::json!({
            "acg": s.acg, "heg": s.heg, "hvg": s.hvg, "mse": s.mse, "mae": s.mae,
            "pcc_per_gene": pred.genes.iter().zip(&s.per_gene).map(|(g, r)| (g.clone(), *r)).collect::<std::collections::BTreeMap<_, _>>(),
        })
    });
    let mut uns = Vec::new();
    if let Some(m) = &metrics {
        uns.push(("cellscope_histology_scores".to_string(), m.clone()));
    }
    let results = crate::export::tables::Results {
        provenance: serde_json::json!({
            "cellscope_version": env!("CARGO_PKG_VERSION"),
            "method": format!("{:?}", m.info.method),
            "model": a.model.display().to_string(),
            "image": a.slide.image.display().to_string(),
            "spots": a.slide.spots.as_ref().map(|s| s.display().to_string()),
            "top_k": a.top_k.unwrap_or(m.info.top_k),
            "encoder": m.info.encoder_description,
        }),
        uns,
        layers,
        ..Default::default()
    };
    let json = match (&a.metrics_json, &metrics) {
        (Some(p), Some(v)) => Some((p.as_path(), v)),
        _ => None,
    };
    super::write_back(&adata, &results, &a.out, json)
}

fn run_pretrain_encoder(a: PretrainEncoderArgs) -> anyhow::Result<()> {
    let inputs: Vec<&std::path::Path> = a.images.iter().map(PathBuf::as_path).collect();
    crate::pipeline::jobs::export::check_output(&inputs, &a.out)?;
    let (_, device, _) = crate::model::engine::select_device(a.backend.into())?;
    let p = crate::pipeline::jobs::histology::encoder::EncoderParams {
        images: a.images.clone(),
        tile: a.tile,
        min_tissue: a.min_tissue,
        max_tiles: a.max_tiles,
        training: crate::model::vision::simclr::SimClrTraining {
            epochs: a.epochs,
            batch: a.batch_size,
            seed: a.seed,
            ..Default::default()
        },
        device,
    };
    let e = with_handle(|h| crate::pipeline::jobs::histology::encoder::pretrain_encoder(&p, h))?;
    println!(
        "pre-trained the SimCLR encoder on {} tiles, final loss {:.4}",
        e.tiles, e.final_loss
    );
    crate::model::vision::simclr::save(&e.net, &a.out)
        .map_err(|err| crate::data::DataError::io(&a.out, err))?;
    eprintln!("wrote {}", a.out.display());
    Ok(())
}
