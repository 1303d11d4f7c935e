//! A zoomed-in window of a pyramidal underlay (a Xenium morphology OME-TIFF) read at the finest
//! level that fits the view, so that cells show their stain's texture when the whole image's
//! texture (at most [`super::open::MAX_IMAGE_SIDE`] pixels) is coarser than the screen.

use super::JobError;
use super::open::{ImageRequest, Placement, stretch_between};
use crate::data::ometiff::OmeTiff;

/// A decoded window of an image.
#[derive(Debug, Clone)]
pub struct Detail {
    /// Grey pixels as RGBA.
    pub image: image::RgbaImage,
    /// Where the window lies in the data's coordinates.
    pub placement: Placement,
    /// The pyramid level read (0 = full resolution).
    pub level: usize,
}

/// What to read: the image (as its whole was asked for), the data window `[x0, y0, x1, y1]`
/// to cover, the most pixels per side to decode, and the grey values the whole image shows
/// black and white (so the window matches it).
#[derive(Debug, Clone, PartialEq)]
pub struct DetailRequest {
    /// The image, its full-resolution placement and contrast.
    pub image: ImageRequest,
    /// Data window to cover: left, top, right, bottom.
    pub window: [f64; 4],
    /// At most this many decoded pixels per side.
    pub max_side: u32,
    /// Grey values shown black and white.
    pub grey_range: [u16; 2],
}

/// Reads the window at the finest pyramid level whose pixels over it fit `max_side`, clipped to
/// the image. `Ok(None)` when the window misses the image or no level is finer than
/// `coarsest_useful` data units per pixel (the whole image's texture already shows that much).
///
/// # Errors
/// [`JobError::Input`] naming the file when it cannot be opened or a chunk cannot be decoded.
pub fn load_detail(r: &DetailRequest, coarsest_useful: f64) -> Result<Option<Detail>, JobError> {
    let path = &r.image.path;
    let bad = |e: &dyn std::fmt::Display| JobError::Input(format!("{}: {e}", path.display()));
    let t = OmeTiff::open(path).map_err(|e| bad(&e))?;
    let p = r.image.placement;
    let w0 = f64::from(t.levels[0].width);
    let pick = t.levels.iter().enumerate().find_map(|(k, l)| {
        let dpp = p.data_per_pixel * w0 / f64::from(l.width);
        let to_px = |d: f64, o: f64, n: u32| ((d - o) / dpp).clamp(0.0, f64::from(n));
        let x0 = to_px(r.window[0], p.origin[0], l.width).floor() as u32;
        let y0 = to_px(r.window[1], p.origin[1], l.height).floor() as u32;
        let x1 = to_px(r.window[2], p.origin[0], l.width).ceil() as u32;
        let y1 = to_px(r.window[3], p.origin[1], l.height).ceil() as u32;
        let fits = (x1 - x0).max(y1 - y0) <= r.max_side;
        fits.then_some((
            k,
            dpp,
            [x0, y0, x1.saturating_sub(x0), y1.saturating_sub(y0)],
        ))
    });
    let Some((level, dpp, win)) = pick else {
        return Ok(None);
    };
    if win[2] == 0 || win[3] == 0 || dpp >= coarsest_useful {
        return Ok(None);
    }
    let px = t.read_region(level, win).map_err(|e| bad(&e))?;
    let g = image::ImageBuffer::from_raw(win[2], win[3], px).ok_or_else(|| bad(&"pixel count"))?;
    let grey = image::DynamicImage::ImageLuma8(stretch_between(&g, r.grey_range));
    Ok(Some(Detail {
        image: grey.to_rgba8(),
        placement: Placement {
            data_per_pixel: dpp,
            origin: [
                p.origin[0] + f64::from(win[0]) * dpp,
                p.origin[1] + f64::from(win[1]) * dpp,
            ],
        },
        level,
    }))
}
