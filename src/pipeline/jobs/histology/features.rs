//! Image features of a slide's patches: square patches centred on spots (or on a grid over the
//! detected tissue), encoded by an image encoder ([`crate::model::vision`]) in batches, with
//! progress and cancel. Features are cached by content: the key is the SHA-256 of the image,
//! the encoder's identity (its file's SHA-256, or a built-in's name), the patch size, the
//! normalisation, the pooling and the patch centres, so a second run on the same slide is a
//! file read. The cache lies beside the slide
//! (`SLIDE.cellscope-features/`) when that folder can be written, else in cellscope's cache
//! folder (`$CELLSCOPE_CACHE`, `$XDG_CACHE_HOME/cellscope`, `~/.cache/cellscope`) under
//! `features/`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use ndarray::Array2;
use sha2::{Digest, Sha256};

use crate::data::slide::{SlideImage, spot_patches};
use crate::data::tissue::tissue_grid;
use crate::model::format::{hex, sha256_file};
use crate::model::hub::Hub;
use crate::model::vision::builtin::{Builtin, COLOUR_TEXTURE_DIM, colour_texture};
use crate::model::vision::{ImageEncoder, Normalization, Pooling, patches_tensor};
use crate::pipeline::jobs::{Handle, JobError, Step};

/// Where patches are cut.
#[derive(Debug, Clone, PartialEq)]
pub enum Positions {
    /// Centred on these points (level-0 pixels, e.g. `obsm['spatial']`).
    Spots(Vec<[f64; 2]>),
    /// A grid of non-overlapping patches over the tissue; a cell is kept when at least this
    /// fraction (0..1) of it is tissue ([`crate::data::tissue::tissue_grid`]).
    Grid {
        /// Minimum tissue fraction of a kept cell.
        min_tissue: f64,
    },
}

/// How patches become features: the encoder and what it is fed (shared by feature extraction,
/// training and prediction; a model folder records them).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ImageSettings {
    /// The encoder: a `.safetensors` / `.pth` file, an `hf://` name, or a built-in
    /// ([`Builtin::parse`]: `random:densenet121[:SEED]`, `random:resnet18[:SEED]`,
    /// `colour-texture`).
    pub encoder: PathBuf,
    /// Patch side in level-0 pixels (mclSTExp: 224).
    pub patch: u32,
    /// Input normalisation.
    pub normalization: Normalization,
    /// Where a DenseNet's feature is pooled.
    pub pooling: Pooling,
}

/// Parameters of [`features`].
#[derive(Debug, Clone)]
pub struct FeatureParams {
    /// The slide image (JPEG, PNG, TIFF).
    pub image: PathBuf,
    /// Where patches are cut.
    pub positions: Positions,
    /// The encoder and its input.
    pub settings: ImageSettings,
    /// Patches per batch.
    pub batch: usize,
    /// Compute device (burn CPU or wgpu).
    pub device: Device,
    /// Whether to read and write the cache.
    pub cache: bool,
}

impl FeatureParams {
    /// Patches of `image` at `positions` encoded as `settings` say, 16 per batch.
    pub fn new(
        image: &Path,
        positions: Positions,
        settings: &ImageSettings,
        device: &Device,
        cache: bool,
    ) -> Self {
        Self {
            image: image.to_path_buf(),
            positions,
            settings: settings.clone(),
            batch: 16,
            device: device.clone(),
            cache,
        }
    }

    /// Checks the parameters.
    ///
    /// # Errors
    /// [`JobError::Input`] for a zero patch size or batch, or a tissue fraction outside 0..1.
    pub fn validate(&self) -> Result<(), JobError> {
        if self.settings.patch == 0 || self.batch == 0 {
            return Err(JobError::Input(format!(
                "patch size ({}) and batch ({}) must be positive",
                self.settings.patch, self.batch
            )));
        }
        if let Positions::Grid { min_tissue } = self.positions
            && !(0.0..=1.0).contains(&min_tissue)
        {
            return Err(JobError::Input(format!(
                "minimum tissue fraction {min_tissue} is outside 0..1"
            )));
        }
        Ok(())
    }
}

/// Features of a slide's patches.
#[derive(Debug, Clone)]
pub struct Features {
    /// Patch centres (level-0 pixels), `[n][x, y]`.
    pub centres: Vec<[f64; 2]>,
    /// `[n, feature_dim]`.
    pub values: Array2<f32>,
    /// The encoder, in words ([`ImageEncoder::describe`]).
    pub encoder: String,
    /// The encoder's identity ([`resolve_encoder`]).
    pub encoder_id: String,
    /// The cache file (read or written).
    pub cache_file: Option<PathBuf>,
    /// Whether the features came from the cache.
    pub from_cache: bool,
}

/// Cuts the patches and encodes them, or reads the cache. Reports [`Step::Open`] (image),
/// [`Step::LoadModel`] (encoder) and [`Step::Embed`] (batches).
///
/// # Errors
/// [`JobError::Data`] for an unreadable image or spots outside it; [`JobError::Model`] for an
/// encoder file of another architecture; [`JobError::Hub`] for a failed download;
/// [`JobError::Input`] for bad parameters or no tissue found; [`JobError::Cancelled`].
pub fn features(p: &FeatureParams, hub: &Hub, h: &mut Handle<'_>) -> Result<Features, JobError> {
    p.validate()?;
    h.step(Step::Open, 0.0);
    // The image is decoded only when needed: for a grid, or when the cache misses (a JPEG is
    // decoded whole, seconds for a whole slide).
    let mut slide = None;
    let centres = match &p.positions {
        Positions::Spots(c) => c.clone(),
        Positions::Grid { min_tissue } => {
            let s = SlideImage::open(&p.image)?;
            let c = tissue_grid(&s, p.settings.patch, *min_tissue)?;
            slide = Some(s);
            c
        }
    };
    if centres.is_empty() {
        return Err(JobError::Input(format!(
            "{}: no patch positions (no spots, or no tissue detected)",
            p.image.display()
        )));
    }
    h.step(Step::Open, 1.0);
    let (encoder, id) = resolve_encoder(&p.settings.encoder, hub, h)?;
    let key = cache_key(p, &id, &centres)?;
    let cache_file = p.cache.then(|| cache_path(&p.image, hub, &key));
    if let Some(f) = &cache_file
        && let Some((values, encoder)) = read_cache(f, centres.len())
    {
        h.step(Step::Embed, 1.0);
        return Ok(Features {
            centres,
            values,
            encoder,
            encoder_id: id,
            cache_file: cache_file.clone(),
            from_cache: true,
        });
    }
    let slide = match slide {
        Some(s) => s,
        None => SlideImage::open(&p.image)?,
    };
    h.step(Step::LoadModel, 0.0);
    let net = match &encoder {
        Encoder::File(f) => Some(ImageEncoder::load(f, &p.device)?),
        Encoder::Builtin(b) => match b.state_dict() {
            Some(sd) => Some(ImageEncoder::from_state_dict(
                &sd,
                Path::new(&id),
                &p.device,
            )?),
            None => None,
        },
    };
    // An encoder trained on downsampled tiles (cellscope's SimCLR encoder) sees them so.
    let input_px = match &encoder {
        Encoder::File(f) => crate::model::vision::simclr::input_px(f),
        Encoder::Builtin(_) => None,
    };
    h.step(Step::LoadModel, 1.0);
    let values = encode(&slide, &centres, net.as_ref(), input_px, p, h)?;
    let encoder = match &net {
        Some(n) => n.describe(),
        None => format!("colour and texture statistics, {COLOUR_TEXTURE_DIM}-d"),
    };
    if let Some(f) = &cache_file {
        // A cache that cannot be written costs the next run time, not this one its result.
        let _ = write_cache(f, &values, &encoder);
    }
    Ok(Features {
        centres,
        values,
        encoder,
        encoder_id: id,
        cache_file,
        from_cache: false,
    })
}

/// An encoder named by `--encoder`: a built-in, or a local file (an `hf://` name fetched).
#[derive(Debug, Clone)]
pub enum Encoder {
    /// Random weights or colour-and-texture statistics ([`Builtin`]).
    Builtin(Builtin),
    /// A state dict.
    File(PathBuf),
}

/// The encoder `name` names and its identity: the SHA-256 of the file, or the built-in's
/// name. Features are comparable exactly when the identities are equal.
///
/// # Errors
/// [`JobError::Input`] for a malformed built-in name; [`JobError::Hub`] for a failed download;
/// [`JobError::Data`] for an unreadable file.
pub fn resolve_encoder(
    name: &Path,
    hub: &Hub,
    h: &mut Handle<'_>,
) -> Result<(Encoder, String), JobError> {
    if let Some(b) = Builtin::parse(&name.to_string_lossy()) {
        let b = b.map_err(|e| JobError::Input(e.to_string()))?;
        let id = b.id();
        return Ok((Encoder::Builtin(b), id));
    }
    let file = crate::pipeline::jobs::model::resolve_file(name, hub, h)?;
    let sha = sha256_file(&file).map_err(|e| crate::data::DataError::io(&file, e))?;
    Ok((Encoder::File(file), sha))
}

/// Encodes the patches at `centres` batch by batch (by `net`, or as colour and texture
/// statistics without one), downsampled to `input_px` first when the encoder asks for it.
fn encode(
    slide: &SlideImage,
    centres: &[[f64; 2]],
    net: Option<&ImageEncoder>,
    input_px: Option<u32>,
    p: &FeatureParams,
    h: &mut Handle<'_>,
) -> Result<Array2<f32>, JobError> {
    let d = net.map_or(COLOUR_TEXTURE_DIM, ImageEncoder::feature_dim);
    let mut values = Array2::<f32>::zeros((centres.len(), d));
    h.step(Step::Embed, 0.0);
    for (b, chunk) in centres.chunks(p.batch).enumerate() {
        h.check()?;
        let mut patches = spot_patches(slide, chunk, p.settings.patch)?;
        if let Some(px) = input_px {
            let fit = image::imageops::FilterType::Triangle;
            patches = patches
                .iter()
                .map(|q| image::imageops::resize(q, px, px, fit))
                .collect();
        }
        let f: Vec<f32> = match net {
            Some(net) => {
                let x = patches_tensor(&patches, p.settings.normalization, &p.device);
                crate::model::nets::tensor_values(net.features_with(x, p.settings.pooling))
            }
            None => patches.iter().flat_map(colour_texture).collect(),
        };
        let start = b * p.batch;
        for (i, row) in f.chunks(d).enumerate() {
            for (j, &v) in row.iter().enumerate() {
                values[[start + i, j]] = v;
            }
        }
        h.step(
            Step::Embed,
            (start + chunk.len()) as f32 / centres.len() as f32,
        );
    }
    Ok(values)
}

/// SHA-256 over the image's SHA-256, the encoder's identity ([`resolve_encoder`]), the patch size, the normalisation, the
/// pooling and the centres (floored to whole pixels, which is what the patches depend on).
fn cache_key(
    p: &FeatureParams,
    encoder_id: &str,
    centres: &[[f64; 2]],
) -> Result<String, JobError> {
    let image_sha = sha256_file(&p.image).map_err(|e| crate::data::DataError::io(&p.image, e))?;
    let mut hasher = Sha256::new();
    hasher.update(image_sha.as_bytes());
    hasher.update(encoder_id.as_bytes());
    let s = &p.settings;
    hasher.update(s.patch.to_le_bytes());
    hasher.update(format!("{:?} {:?}", s.normalization, s.pooling).as_bytes());
    for c in centres {
        hasher.update((c[0].floor() as i64).to_le_bytes());
        hasher.update((c[1].floor() as i64).to_le_bytes());
    }
    Ok(hex(&hasher.finalize()))
}

/// `SLIDE.cellscope-features/KEY.safetensors` when the slide's folder is writable, else the
/// cache folder's `features/KEY.safetensors`.
fn cache_path(image: &Path, hub: &Hub, key: &str) -> PathBuf {
    let name = format!("{key}.safetensors");
    let mut beside = image.as_os_str().to_owned();
    beside.push(".cellscope-features");
    let beside = PathBuf::from(beside);
    if std::fs::create_dir_all(&beside).is_ok() && writable(&beside) {
        return beside.join(name);
    }
    hub.cache.join("features").join(name)
}

fn writable(dir: &Path) -> bool {
    tempfile::tempfile_in(dir).is_ok()
}

/// The cached features, when the file is there, readable and holds `n` rows.
fn read_cache(f: &Path, n: usize) -> Option<(Array2<f32>, String)> {
    let bytes = std::fs::read(f).ok()?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).ok()?;
    let encoder = meta.metadata().as_ref()?.get("encoder")?.clone();
    let st = safetensors::SafeTensors::deserialize(&bytes).ok()?;
    let t = st.tensor("features").ok()?;
    let shape = t.shape().to_vec();
    if shape.len() != 2 || shape[0] != n || t.dtype() != safetensors::Dtype::F32 {
        return None;
    }
    let v: Vec<f32> = t
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Some((
        Array2::from_shape_vec((shape[0], shape[1]), v).ok()?,
        encoder,
    ))
}

/// Writes the features atomically (a part file renamed into place).
fn write_cache(f: &Path, values: &Array2<f32>, encoder: &str) -> std::io::Result<()> {
    if let Some(dir) = f.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let named = vec![(
        "features".to_string(),
        vec![values.nrows(), values.ncols()],
        values.iter().copied().collect(),
    )];
    let meta = HashMap::from([("encoder".to_string(), encoder.to_string())]);
    crate::model::histology::weights::write_safetensors(f, &named, Some(meta))
}

/// The features as an AnnData ([`patches_anndata`], var `f0`, `f1`, ...).
///
/// # Errors
/// As [`patches_anndata`].
pub fn features_anndata(
    f: &Features,
    image: &Path,
    names: Option<Vec<String>>,
) -> Result<crate::data::AnnData, JobError> {
    let var = (0..f.values.ncols()).map(|j| format!("f{j}")).collect();
    patches_anndata(&f.values, var, &f.centres, names, image)
}

/// Values per patch as an AnnData: `X` = `values` (`[n, var.len()]`), obs names `names` (the
/// spots') or `patch_0`, `patch_1`, ..., `obsm['spatial']` the patch centres in the image's
/// level-0 pixels; `image` is recorded as the source.
///
/// # Errors
/// [`JobError::Input`] when `names` or `centres` do not hold one entry per row.
pub fn patches_anndata(
    values: &Array2<f32>,
    var: Vec<String>,
    centres: &[[f64; 2]],
    names: Option<Vec<String>>,
    image: &Path,
) -> Result<crate::data::AnnData, JobError> {
    let n = values.nrows();
    let names = names.unwrap_or_else(|| (0..n).map(|i| format!("patch_{i}")).collect());
    if names.len() != n || centres.len() != n {
        return Err(JobError::Input(format!(
            "{} names and {} centres for {n} patches",
            names.len(),
            centres.len()
        )));
    }
    let x = crate::data::matrix::CsrMatrix::from_dense(values);
    let mut a = crate::data::vendor::new_anndata(image, names, var, x);
    let sp = Array2::from_shape_fn((n, 2), |(i, k)| centres[i][k]);
    a.obsm.insert("spatial".into(), sp);
    a.spatial_units = Some("px".into());
    Ok(a)
}

/// Spot centres of `a`: the first two columns of `obsm['spatial']` (the image's level-0 pixels
/// for HER2+ ST and Visium's full-resolution frame).
///
/// # Errors
/// [`JobError::Input`] naming the file when `obsm['spatial']` is missing or narrower than 2.
pub fn spot_centres(a: &crate::data::AnnData) -> Result<Vec<[f64; 2]>, JobError> {
    let sp = a
        .obsm
        .get("spatial")
        .filter(|m| m.ncols() >= 2)
        .ok_or_else(|| {
            JobError::Input(format!(
                "{}: no obsm['spatial'] (spot centres in the image's pixels)",
                a.source.display()
            ))
        })?;
    Ok(sp.rows().into_iter().map(|r| [r[0], r[1]]).collect())
}
