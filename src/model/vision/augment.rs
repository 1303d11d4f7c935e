//! Training augmentations of H&E patches, as mclSTExp's `dataset.py` composes them from
//! torchvision: `ColorJitter(0.5, 0.5, 0.5)` (brightness, contrast and saturation factors drawn
//! uniformly from [0.5, 1.5]; applied here in that fixed order, torchvision shuffles it),
//! `RandomHorizontalFlip()` (p = 0.5) and `RandomRotation(180)` (an angle uniform in
//! [-180°, 180°] about the centre, nearest neighbour, corners filled with black, torchvision's
//! defaults); plus a vertical flip for views that want it. Seeded: the same seed gives the same
//! patch.

use image::{Rgb, RgbImage};

use crate::data::rng::Rng;

/// What to draw.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Augment {
    /// Brightness, contrast and saturation factors in `[1 - jitter, 1 + jitter]` (0.5).
    pub jitter: f64,
    /// Probability of a horizontal flip (0.5).
    pub hflip: f64,
    /// Probability of a vertical flip (0: mclSTExp has none).
    pub vflip: f64,
    /// Largest rotation in degrees (180).
    pub max_degrees: f64,
}

impl Default for Augment {
    fn default() -> Self {
        Self {
            jitter: 0.5,
            hflip: 0.5,
            vflip: 0.0,
            max_degrees: 180.0,
        }
    }
}

impl Augment {
    /// An augmented copy of `p`.
    pub fn apply(&self, p: &RgbImage, rng: &mut Rng) -> RgbImage {
        let mut factor = || 1.0 + self.jitter * (2.0 * rng.uniform() - 1.0);
        let (b, c, s) = (factor(), factor(), factor());
        let mut out = colour_jitter(p, b, c, s);
        if rng.uniform() < self.hflip {
            image::imageops::flip_horizontal_in_place(&mut out);
        }
        if rng.uniform() < self.vflip {
            image::imageops::flip_vertical_in_place(&mut out);
        }
        let degrees = self.max_degrees * (2.0 * rng.uniform() - 1.0);
        if degrees != 0.0 {
            out = rotate(&out, degrees);
        }
        out
    }
}

/// ITU-R 601 grey level, as torchvision's `rgb_to_grayscale`.
fn grey(p: [f64; 3]) -> f64 {
    0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2]
}

/// torchvision's `adjust_brightness`, `adjust_contrast` (blend with the mean grey level) and
/// `adjust_saturation` (blend with the pixel's grey), in that order, clamped to 0..255.
pub fn colour_jitter(p: &RgbImage, brightness: f64, contrast: f64, saturation: f64) -> RgbImage {
    let clamp = |v: f64| v.clamp(0.0, 255.0);
    let px: Vec<[f64; 3]> = p
        .pixels()
        .map(|q| q.0.map(|v| clamp(f64::from(v) * brightness)))
        .collect();
    let mean = px.iter().map(|&q| grey(q)).sum::<f64>() / px.len().max(1) as f64;
    let mut out = RgbImage::new(p.width(), p.height());
    for (o, q) in out.pixels_mut().zip(px) {
        let c = q.map(|v| clamp(contrast * v + (1.0 - contrast) * mean));
        let g = grey(c);
        *o = Rgb(c.map(|v| clamp(saturation * v + (1.0 - saturation) * g).round() as u8));
    }
    out
}

/// Rotation by `degrees` (counter-clockwise) about the centre, nearest neighbour, black outside.
pub fn rotate(p: &RgbImage, degrees: f64) -> RgbImage {
    let (w, h) = (p.width(), p.height());
    let (cx, cy) = ((w as f64 - 1.0) / 2.0, (h as f64 - 1.0) / 2.0);
    let (sin, cos) = degrees.to_radians().sin_cos();
    RgbImage::from_fn(w, h, |x, y| {
        // The source of each output pixel: the inverse rotation.
        let (dx, dy) = (x as f64 - cx, y as f64 - cy);
        let sx = (cos * dx - sin * dy + cx).round();
        let sy = (sin * dx + cos * dy + cy).round();
        if sx >= 0.0 && sy >= 0.0 && sx < w as f64 && sy < h as f64 {
            *p.get_pixel(sx as u32, sy as u32)
        } else {
            Rgb([0, 0, 0])
        }
    })
}
