//! Opening a dataset (.h5ad, 10x .h5, Visium folder) with its `cellscope inspect` summary and
//! the image to show under its spatial view, and decoding that image.

use std::path::{Path, PathBuf};

use super::{Handle, JobError, Step};
use crate::data::anndata::AnnData;

/// Largest image side uploaded as a texture (GPUs guarantee 8,192; lavapipe's default is
/// 8,192 too); larger images are downscaled when decoded.
pub const MAX_IMAGE_SIDE: u32 = 4096;

/// An opened dataset.
#[derive(Debug)]
pub struct Opened {
    /// The dataset.
    pub data: AnnData,
    /// Its `cellscope inspect` summary.
    pub summary: String,
    /// The image to show under its spatial view, with data units per image pixel
    /// ([`default_image`]).
    pub image: Option<(PathBuf, f64)>,
}

/// Reads the dataset at `path` whole, its summary and its default underlay image.
///
/// # Errors
/// [`JobError::Data`] naming the file and the element that could not be read.
pub fn open(path: &Path, h: &mut Handle<'_>) -> Result<Opened, JobError> {
    h.step(Step::Open, 0.0);
    let (data, summary) = crate::data::summary::Summary::read(path)?;
    h.step(Step::Open, 1.0);
    Ok(Opened {
        data,
        summary: summary.to_string(),
        image: default_image(path),
    })
}

/// A decoded underlay image.
#[derive(Debug, Clone)]
pub struct Underlay {
    /// RGBA pixels, at most [`MAX_IMAGE_SIDE`] per side.
    pub image: image::RgbaImage,
    /// Data units per pixel of `image` (the file's scale times the downscaling).
    pub data_per_pixel: f64,
    /// Where it came from.
    pub path: PathBuf,
}

/// Decodes the image at `path` (PNG, JPEG) and downscales it to at most [`MAX_IMAGE_SIDE`]
/// pixels per side; `data_per_pixel` is the file's pixel size in data units.
///
/// # Errors
/// [`JobError::Input`] naming the file when it cannot be opened or decoded.
pub fn load_image(path: &Path, data_per_pixel: f64) -> Result<Underlay, JobError> {
    let bad = |what: &str, e: &dyn std::fmt::Display| {
        JobError::Input(format!("{}: cannot {what} image: {e}", path.display()))
    };
    let mut reader = image::ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .map_err(|e| bad("open", &e))?;
    reader.no_limits();
    let img = reader.decode().map_err(|e| bad("decode", &e))?;
    let (w, h) = (img.width(), img.height());
    let f = (f64::from(MAX_IMAGE_SIDE) / f64::from(w.max(h))).min(1.0);
    let img = if f < 1.0 {
        img.resize(
            (f64::from(w) * f) as u32,
            (f64::from(h) * f) as u32,
            image::imageops::FilterType::Triangle,
        )
    } else {
        img
    };
    let rgba = img.to_rgba8();
    let scale = f64::from(rgba.width()) / f64::from(w);
    Ok(Underlay {
        image: rgba,
        data_per_pixel: data_per_pixel / scale,
        path: path.to_path_buf(),
    })
}

/// The image shown under a dataset's spatial view by default: the Visium hires (else lowres)
/// image placed with its scale factor, or an H&E image beside an .h5ad named
/// `<stem>_HE.jpg` / `<stem>_HE.png` in the pixel frame of `obsm['spatial']`. Returns the
/// image and data units per image pixel.
pub fn default_image(path: &Path) -> Option<(PathBuf, f64)> {
    if crate::data::detect(path).ok()? == crate::data::InputKind::Visium {
        let v = crate::data::tenx::read_visium(path).ok()?;
        let img = v
            .images
            .iter()
            .find(|i| i.name == "hires")
            .or(v.images.first())?;
        return Some((img.path.clone(), 1.0 / img.scale));
    }
    let stem = path.file_stem()?.to_string_lossy().to_string();
    ["jpg", "jpeg", "png"]
        .iter()
        .map(|e| path.with_file_name(format!("{stem}_HE.{e}")))
        .find(|p| p.exists())
        .map(|p| (p, 1.0))
}
