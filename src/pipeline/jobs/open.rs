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
    /// run's mosaics, one per stain and plane, or a Xenium run's morphology images, one per
    /// stain; empty otherwise.
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
    let images = offered_images(path).unwrap_or_else(|e| {
        summary.push_str(&format!("image: not placed: {e}\n"));
        Vec::new()
    });
    // The instrument's first image, else the Visium or H&E one (the folder is read once).
    let image = match images.first() {
        Some((_, p, placement)) => Some((p.clone(), *placement)),
        None => tissue_image(path),
    };
    h.step(Step::Open, 1.0);
    Ok(Opened {
        data,
        summary,
        image,
        images,
        outlines,
    })
}

/// The images an instrument's folder offers with their placement (see [`Opened::images`]).
///
/// # Errors
/// The reader's [`crate::data::DataError`] when an image cannot be opened or placed.
fn offered_images(
    path: &Path,
) -> Result<Vec<(String, PathBuf, Placement)>, crate::data::DataError> {
    use crate::data::InputKind;
    let all = match crate::data::detect(path).ok() {
        Some(InputKind::Merscope) => crate::data::vendor::merscope::mosaics(path),
        Some(InputKind::Xenium) => crate::data::vendor::xenium::morphology(path),
        _ => return Ok(Vec::new()),
    };
    let mut all = all?;
    // DAPI first: the stain every run has and the one a viewer opens with.
    all.sort_by_key(|m| !m.name.starts_with("DAPI"));
    Ok(all
        .into_iter()
        .map(|m| {
            let p = Placement {
                data_per_pixel: m.microns_per_pixel,
                origin: m.origin,
            };
            (m.name, m.path, p)
        })
        .collect())
}

/// The input's kind when it is an instrument's output.
fn summary_kind(path: &Path) -> Option<crate::data::InputKind> {
    crate::data::detect(path).ok().filter(|k| k.is_vendor())
}

/// An image to decode for the underlay: the file, where its full-resolution pixels lie, and the
/// contrast limits for grey images of more than 8 bits.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageRequest {
    /// The image file.
    pub path: PathBuf,
    /// Its full-resolution placement in the data's coordinates.
    pub placement: Placement,
    /// Contrast limits (used for grey images only: stains, not H&E).
    pub contrast: Contrast,
}

impl ImageRequest {
    /// `path` at `placement` with the default contrast.
    pub fn new(path: PathBuf, placement: Placement) -> Self {
        Self {
            path,
            placement,
            contrast: Contrast::default(),
        }
    }
}

/// A decoded underlay image.
#[derive(Debug, Clone)]
pub struct Underlay {
    /// RGBA pixels, at most [`MAX_IMAGE_SIDE`] per side.
    pub image: image::RgbaImage,
    /// Where `image` lies (the file's placement, its scale times the downscaling).
    pub placement: Placement,
    /// What was asked for.
    pub request: ImageRequest,
    /// The grey values shown black and white (a grey image), for detail windows to match.
    pub grey_range: Option<[u16; 2]>,
    /// Whether the file is an OME-TIFF pyramid whose finer levels [`super::detail`] can read.
    pub pyramid: bool,
}

/// Contrast limits of a grey image (a fluorescence stain): the quantiles of its non-zero pixels
/// shown as black and as white (napari's and QuPath's auto-contrast use the same percentile
/// stretch).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Contrast {
    /// Quantile shown black, in [0, 1).
    pub low: f64,
    /// Quantile shown white, in (low, 1].
    pub high: f64,
}

impl Default for Contrast {
    /// The 0.5th and 99.5th percentiles.
    fn default() -> Self {
        Self {
            low: 0.005,
            high: 0.995,
        }
    }
}

/// Decodes the image at `path` (PNG, JPEG, TIFF, and OME-TIFF pyramids: the finest level that
/// fits, read through [`crate::data::ometiff`]; grey images, as microscopes write them,
/// are stretched to `contrast`: [`stretch_grey16`]) and downscales it to at most
/// [`MAX_IMAGE_SIDE`] pixels per side.
///
/// # Errors
/// [`JobError::Input`] naming the file when it cannot be opened or decoded.
pub fn load_image(request: &ImageRequest) -> Result<Underlay, JobError> {
    let (path, placement, contrast) = (&request.path, request.placement, request.contrast);
    let bad = |what: &str, e: &dyn std::fmt::Display| {
        JobError::Input(format!("{}: cannot {what} image: {e}", path.display()))
    };
    let name = path.to_string_lossy().to_lowercase();
    let mut range = None;
    let mut pyramid = false;
    let (img, full_width) = if name.ends_with(".ome.tif") || name.ends_with(".ome.tiff") {
        let t = crate::data::ometiff::OmeTiff::open(path).map_err(|e| bad("open", &e))?;
        let lv = t.level_fitting(MAX_IMAGE_SIDE);
        let l = &t.levels[lv];
        // Without a level near the texture size the whole image would be decoded at once.
        if l.width.max(l.height) > 4 * MAX_IMAGE_SIDE {
            let m = format!(
                "its smallest level is {}x{} pixels; a pyramid level of at most {} pixels a side \
                 is needed to show it",
                l.width,
                l.height,
                4 * MAX_IMAGE_SIDE
            );
            return Err(bad("show", &m));
        }
        let px = t
            .read_region(lv, [0, 0, l.width, l.height])
            .map_err(|e| bad("decode", &e))?;
        let g = image::ImageBuffer::from_raw(l.width, l.height, px)
            .ok_or_else(|| bad("decode", &"the level's pixel count"))?;
        let r = grey_range(&g, contrast);
        range = Some(r);
        pyramid = lv > 0;
        let grey = image::DynamicImage::ImageLuma8(stretch_between(&g, r));
        (grey, t.levels[0].width)
    } else {
        let mut reader = image::ImageReader::open(path)
            .and_then(|r| r.with_guessed_format())
            .map_err(|e| bad("open", &e))?;
        reader.no_limits();
        let img = reader.decode().map_err(|e| bad("decode", &e))?;
        let img = match img {
            image::DynamicImage::ImageLuma16(g) => {
                range = Some(grey_range(&g, contrast));
                image::DynamicImage::ImageLuma8(stretch_grey16(&g, contrast))
            }
            image::DynamicImage::ImageLuma8(g) => {
                let wide = g.as_raw().iter().map(|&v| u16::from(v)).collect();
                let g = image::ImageBuffer::from_raw(g.width(), g.height(), wide)
                    .expect("one value per pixel");
                range = Some(grey_range(&g, contrast));
                image::DynamicImage::ImageLuma8(stretch_grey16(&g, contrast))
            }
            other => other,
        };
        let w = img.width();
        (img, w)
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
    let scale = f64::from(rgba.width()) / f64::from(full_width);
    Ok(Underlay {
        image: rgba,
        placement: Placement {
            data_per_pixel: placement.data_per_pixel / scale,
            origin: placement.origin,
        },
        request: request.clone(),
        grey_range: range,
        pyramid,
    })
}

/// 16-bit grey to 8-bit with the `contrast` quantiles of the non-zero pixels mapped to 0 and 255
/// (a fluorescence image's useful range is a small part of 0..65,535).
pub fn stretch_grey16(
    g: &image::ImageBuffer<image::Luma<u16>, Vec<u16>>,
    contrast: Contrast,
) -> image::GrayImage {
    stretch_between(g, grey_range(g, contrast))
}

/// The grey values at the `contrast` quantiles of the non-zero pixels (black, white), from a
/// histogram: the same as indexing the sorted non-zero values.
pub fn grey_range(
    g: &image::ImageBuffer<image::Luma<u16>, Vec<u16>>,
    contrast: Contrast,
) -> [u16; 2] {
    let mut hist = vec![0u64; 65_536];
    for &v in g.as_raw() {
        hist[usize::from(v)] += 1;
    }
    hist[0] = 0;
    let n: u64 = hist.iter().sum();
    let at = |q: f64| {
        let k = (n.saturating_sub(1) as f64 * q.clamp(0.0, 1.0)) as u64;
        let mut seen = 0;
        hist.iter()
            .position(|&c| {
                seen += c;
                seen > k
            })
            .unwrap_or(0) as u16
    };
    [at(contrast.low), at(contrast.high)]
}

/// 16-bit grey to 8-bit with `range` (black, white) mapped to 0 and 255, one lookup per pixel.
pub fn stretch_between(
    g: &image::ImageBuffer<image::Luma<u16>, Vec<u16>>,
    range: [u16; 2],
) -> image::GrayImage {
    let (lo, hi) = (f64::from(range[0]), f64::from(range[1]));
    let span = (hi - lo).max(1.0);
    let lut: Vec<u8> = (0..65_536)
        .map(|v| ((f64::from(v) - lo) / span).clamp(0.0, 1.0))
        .map(|v| (v * 255.0).round() as u8)
        .collect();
    let px = g.as_raw().iter().map(|&v| lut[usize::from(v)]).collect();
    image::GrayImage::from_raw(g.width(), g.height(), px).expect("one byte per pixel")
}

/// The image shown under a dataset's spatial view by default: the first image an instrument's
/// folder offers (a MERSCOPE DAPI mosaic placed by its micron-to-pixel transform, a Xenium
/// morphology image by its pixel size), the Visium hires (else lowres) image placed with its
/// scale factor, or an H&E image beside an .h5ad named
/// `<stem>_HE.jpg` / `<stem>_HE.png` in the pixel frame of `obsm['spatial']`.
pub fn default_image(path: &Path) -> Option<(PathBuf, Placement)> {
    if let Some((_, p, placement)) = offered_images(path).ok()?.into_iter().next() {
        return Some((p, placement));
    }
    tissue_image(path)
}

/// The Visium hires (else lowres) image placed with its scale factor, or an H&E image beside an
/// .h5ad named `<stem>_HE.jpg` / `<stem>_HE.png` in the pixel frame of `obsm['spatial']`.
fn tissue_image(path: &Path) -> Option<(PathBuf, Placement)> {
    let kind = crate::data::detect(path).ok()?;
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

/// The dataset's default image ([`default_image`]) as scanpy and squidpy keep it in
/// `uns['spatial'][library_id]`: at most 2,000 pixels a side (Visium's hires size) as `hires`,
/// `tissue_hires_scalef` its pixels per `obsm['spatial']` unit, and for Visium the spot
/// diameter. `None` when there is no image, or when the image's corner is not the coordinates'
/// origin (a MERSCOPE mosaic): squidpy places images by scale alone.
///
/// # Errors
/// [`JobError::Input`] when the image cannot be decoded.
pub fn spatial_images(
    path: &Path,
    library_id: &str,
) -> Result<Option<crate::data::write::SpatialImages>, JobError> {
    let Some((file, placement)) = default_image(path) else {
        return Ok(None);
    };
    if placement.origin != [0.0, 0.0] {
        return Ok(None);
    }
    let u = load_image(&ImageRequest::new(file, placement))?;
    let (w, h) = u.image.dimensions();
    let f = (2000.0 / f64::from(w.max(h))).min(1.0);
    let rgb = image::DynamicImage::ImageRgba8(u.image)
        .resize(
            ((f64::from(w) * f) as u32).max(1),
            ((f64::from(h) * f) as u32).max(1),
            image::imageops::FilterType::Triangle,
        )
        .to_rgb8();
    let dpp = u.placement.data_per_pixel * f64::from(w) / f64::from(rgb.width());
    let mut scalefactors = vec![("tissue_hires_scalef".to_string(), 1.0 / dpp)];
    if crate::data::detect(path).ok() == Some(crate::data::InputKind::Visium)
        && let Ok(v) = crate::data::tenx::read_visium(path)
    {
        scalefactors.push(("spot_diameter_fullres".into(), v.spot_diameter_fullres));
    }
    Ok(Some(crate::data::write::SpatialImages {
        library_id: library_id.to_string(),
        images: vec![("hires".into(), rgb)],
        scalefactors,
    }))
}

#[cfg(test)]
mod tests {
    use super::{Contrast, stretch_grey16};

    /// A dim 16-bit ramp (values 1,000..1,999, as a fluorescence channel uses a small part of
    /// the range) spans 0..255 after the stretch, monotonically; zeros (no signal) stay black.
    #[test]
    fn grey16_is_stretched_to_its_percentiles() {
        let g = image::ImageBuffer::from_fn(1000, 2, |x, y| {
            image::Luma([if y == 0 { 1000 + x as u16 } else { 0 }])
        });
        let out = stretch_grey16(&g, Contrast::default());
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
