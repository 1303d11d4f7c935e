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
    /// The image to show under its spatial view, and where it goes ([`default_image`]).
    pub image: Option<(PathBuf, Placement)>,
    /// Every image the dataset offers for the underlay (name, file, placement): a MERSCOPE
    /// run's mosaics, one per stain and plane; empty otherwise.
    pub images: Vec<(String, PathBuf, Placement)>,
    /// The cells' outlines, when the instrument's output has them.
    pub outlines: Option<crate::data::vendor::outlines::Outlines>,
}

/// Where an image lies in the data's coordinates: its top-left pixel corner at `origin`, each
/// pixel `data_per_pixel` data units wide and high (an axis-aligned affine, as Visium's scale
/// factors and MERSCOPE's micron-to-mosaic transform are).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placement {
    /// Data units per image pixel.
    pub data_per_pixel: f64,
    /// Data coordinates of the image's top-left corner.
    pub origin: [f64; 2],
}

impl Placement {
    /// `data_per_pixel` units per pixel, the corner at the data's origin.
    pub fn scale(data_per_pixel: f64) -> Self {
        Self {
            data_per_pixel,
            origin: [0.0, 0.0],
        }
    }
}

/// Reads the dataset at `path` whole, its summary and its default underlay image.
///
/// # Errors
/// [`JobError::Data`] naming the file and the element that could not be read.
pub fn open(path: &Path, h: &mut Handle<'_>) -> Result<Opened, JobError> {
    h.step(Step::Open, 0.0);
    let (data, summary) = crate::data::summary::Summary::read(path)?;
    let mut summary = summary.to_string();
    // A damaged boundary file costs the outlines, not the dataset.
    let outlines = match summary_kind(path) {
        Some(kind) => {
            match crate::data::vendor::outlines::read_outlines(path, kind, &data.obs.index) {
                Ok(o) => o,
                Err(e) => {
                    summary.push_str(&format!("outlines: not read: {e}\n"));
                    None
                }
            }
        }
        None => None,
    };
    h.step(Step::Open, 1.0);
    Ok(Opened {
        data,
        summary,
        image: default_image(path),
        images: offered_images(path),
        outlines,
    })
}

/// A MERSCOPE run's mosaics with their placement (see [`Opened::images`]).
fn offered_images(path: &Path) -> Vec<(String, PathBuf, Placement)> {
    if crate::data::detect(path).ok() != Some(crate::data::InputKind::Merscope) {
        return Vec::new();
    }
    let all = crate::data::vendor::merscope::mosaics(path).unwrap_or_default();
    all.into_iter()
        .map(|m| {
            let p = Placement {
                data_per_pixel: m.microns_per_pixel,
                origin: m.origin,
            };
            (m.name, m.path, p)
        })
        .collect()
}

/// The input's kind when it is an instrument's output.
fn summary_kind(path: &Path) -> Option<crate::data::InputKind> {
    crate::data::detect(path).ok().filter(|k| k.is_vendor())
}

/// A decoded underlay image.
#[derive(Debug, Clone)]
pub struct Underlay {
    /// RGBA pixels, at most [`MAX_IMAGE_SIDE`] per side.
    pub image: image::RgbaImage,
    /// Where `image` lies (the file's placement, its scale times the downscaling).
    pub placement: Placement,
    /// Where it came from.
    pub path: PathBuf,
}

/// Decodes the image at `path` (PNG, JPEG, TIFF; 16-bit grey, as microscopes write, is
/// contrast-stretched: [`stretch_grey16`]) and downscales it to at most [`MAX_IMAGE_SIDE`]
/// pixels per side; `placement` is the file's.
///
/// # Errors
/// [`JobError::Input`] naming the file when it cannot be opened or decoded.
pub fn load_image(path: &Path, placement: Placement) -> Result<Underlay, JobError> {
    let bad = |what: &str, e: &dyn std::fmt::Display| {
        JobError::Input(format!("{}: cannot {what} image: {e}", path.display()))
    };
    let mut reader = image::ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .map_err(|e| bad("open", &e))?;
    reader.no_limits();
    let img = reader.decode().map_err(|e| bad("decode", &e))?;
    let img = match img {
        image::DynamicImage::ImageLuma16(g) => image::DynamicImage::ImageLuma8(stretch_grey16(&g)),
        other => other,
    };
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
        placement: Placement {
            data_per_pixel: placement.data_per_pixel / scale,
            origin: placement.origin,
        },
        path: path.to_path_buf(),
    })
}

/// 16-bit grey to 8-bit with the 0.5th and 99.5th percentiles of the non-zero pixels mapped to
/// 0 and 255 (a fluorescence image's useful range is a small part of 0..65,535; the percentile
/// stretch is what napari's and QuPath's auto-contrast do).
pub fn stretch_grey16(g: &image::ImageBuffer<image::Luma<u16>, Vec<u16>>) -> image::GrayImage {
    let mut values: Vec<u16> = g.as_raw().iter().copied().filter(|&v| v > 0).collect();
    values.sort_unstable();
    let at = |q: f64| {
        values
            .get(((values.len().saturating_sub(1)) as f64 * q) as usize)
            .copied()
            .unwrap_or(0)
    };
    let (lo, hi) = (f64::from(at(0.005)), f64::from(at(0.995)));
    let span = (hi - lo).max(1.0);
    image::GrayImage::from_fn(g.width(), g.height(), |x, y| {
        let v = (f64::from(g.get_pixel(x, y)[0]) - lo) / span;
        image::Luma([(v.clamp(0.0, 1.0) * 255.0).round() as u8])
    })
}

/// The image shown under a dataset's spatial view by default: the Visium hires (else lowres)
/// image placed with its scale factor, a MERSCOPE mosaic placed by its micron-to-pixel
/// transform ([`crate::data::vendor::merscope::mosaic`]), or an H&E image beside an .h5ad named
/// `<stem>_HE.jpg` / `<stem>_HE.png` in the pixel frame of `obsm['spatial']`.
pub fn default_image(path: &Path) -> Option<(PathBuf, Placement)> {
    let kind = crate::data::detect(path).ok()?;
    if kind == crate::data::InputKind::Merscope {
        let m = crate::data::vendor::merscope::mosaic(path).ok()??;
        return Some((
            m.path,
            Placement {
                data_per_pixel: m.microns_per_pixel,
                origin: m.origin,
            },
        ));
    }
    if kind == crate::data::InputKind::Visium {
        let v = crate::data::tenx::read_visium(path).ok()?;
        let img = v
            .images
            .iter()
            .find(|i| i.name == "hires")
            .or(v.images.first())?;
        return Some((img.path.clone(), Placement::scale(1.0 / img.scale)));
    }
    let stem = path.file_stem()?.to_string_lossy().to_string();
    ["jpg", "jpeg", "png"]
        .iter()
        .map(|e| path.with_file_name(format!("{stem}_HE.{e}")))
        .find(|p| p.exists())
        .map(|p| (p, Placement::scale(1.0)))
}

#[cfg(test)]
mod tests {
    use super::stretch_grey16;

    /// A dim 16-bit ramp (values 1,000..1,999, as a fluorescence channel uses a small part of
    /// the range) spans 0..255 after the stretch, monotonically; zeros (no signal) stay black.
    #[test]
    fn grey16_is_stretched_to_its_percentiles() {
        let g = image::ImageBuffer::from_fn(1000, 2, |x, y| {
            image::Luma([if y == 0 { 1000 + x as u16 } else { 0 }])
        });
        let out = stretch_grey16(&g);
        let row: Vec<u8> = (0..1000).map(|x| out.get_pixel(x, 0)[0]).collect();
        assert_eq!((row[0], row[999]), (0, 255));
        assert!(row.windows(2).all(|w| w[0] <= w[1]), "monotonic");
        assert!(
            row[500] > 100 && row[500] < 155,
            "mid-grey in the middle: {}",
            row[500]
        );
        assert_eq!(out.get_pixel(10, 1)[0], 0);
    }
}
