//! Tissue detection on slide thumbnails, to place patches where there is tissue on slides
//! without spots: HSV saturation, median-blurred, thresholded by Otsu's method, closed and with
//! holes filled (stained tissue is saturated, glass is grey-white; the approach of CLAM's
//! `segmentTissue`: saturation, median blur 7, Otsu, morphological closing).

use image::RgbImage;

use super::error::DataError;
use super::slide::SlideImage;

/// Longer side of the thumbnail tissue is detected on, in pixels.
pub const THUMBNAIL_SIDE: u32 = 1024;

/// Otsu's threshold of a 256-bin histogram: the level `t` maximising the between-class
/// variance of `[0, t]` and `(t, 255]` (Otsu 1979; `skimage.filters.threshold_otsu`
/// returns the same bin for integer images).
pub fn otsu_threshold(hist: &[u64; 256]) -> u8 {
    let total: u64 = hist.iter().sum();
    let sum: f64 = hist
        .iter()
        .enumerate()
        .map(|(i, &n)| i as f64 * n as f64)
        .sum();
    let (mut w0, mut sum0, mut best, mut best_t) = (0u64, 0.0f64, -1.0f64, 0u8);
    for (t, &n) in hist.iter().enumerate() {
        w0 += n;
        sum0 += t as f64 * n as f64;
        let w1 = total - w0;
        if w0 == 0 || w1 == 0 {
            continue;
        }
        let (m0, m1) = (sum0 / w0 as f64, (sum - sum0) / w1 as f64);
        let between = w0 as f64 * w1 as f64 * (m0 - m1) * (m0 - m1);
        if between > best {
            best = between;
            best_t = t as u8;
        }
    }
    best_t
}

/// HSV saturation of an RGB pixel on 0..255: `(max - min) / max`, 0 for black.
fn saturation(p: &image::Rgb<u8>) -> u8 {
    let max = p.0.iter().copied().max().unwrap_or(0);
    let min = p.0.iter().copied().min().unwrap_or(0);
    if max == 0 {
        0
    } else {
        ((max - min) as u32 * 255 / max as u32) as u8
    }
}

/// Median over a `(2r + 1)`-square window, clamped at the border.
fn median_filter(v: &[u8], w: usize, h: usize, r: usize) -> Vec<u8> {
    let mut out = vec![0u8; v.len()];
    let mut win = Vec::with_capacity((2 * r + 1) * (2 * r + 1));
    for y in 0..h {
        for x in 0..w {
            win.clear();
            for yy in y.saturating_sub(r)..(y + r + 1).min(h) {
                win.extend_from_slice(
                    &v[yy * w + x.saturating_sub(r)..yy * w + (x + r + 1).min(w)],
                );
            }
            let mid = win.len() / 2;
            out[y * w + x] = *win.select_nth_unstable(mid).1;
        }
    }
    out
}

/// Dilation (`grow`) or erosion of a mask by a `(2r + 1)`-square, separably; outside the
/// image counts as background for dilation and as foreground for erosion (so closing does not
/// eat the border).
fn morph(m: &[bool], w: usize, h: usize, r: usize, grow: bool) -> Vec<bool> {
    let pass = |src: &[bool], along_x: bool| -> Vec<bool> {
        let mut out = vec![false; src.len()];
        for y in 0..h {
            for x in 0..w {
                let (i, n) = if along_x { (x, w) } else { (y, h) };
                let at = |k: usize| {
                    if along_x {
                        src[y * w + k]
                    } else {
                        src[k * w + x]
                    }
                };
                let range = i.saturating_sub(r)..(i + r + 1).min(n);
                out[y * w + x] = if grow {
                    range.into_iter().any(at)
                } else {
                    range.into_iter().all(at)
                };
            }
        }
        out
    };
    pass(&pass(m, true), false)
}

/// Marks background regions not connected to the image border as foreground.
fn fill_holes(m: &mut [bool], w: usize, h: usize) {
    let mut outside = vec![false; m.len()];
    let mut stack: Vec<usize> = (0..w)
        .flat_map(|x| [x, (h - 1) * w + x])
        .chain((0..h).flat_map(|y| [y * w, y * w + w - 1]))
        .filter(|&i| !m[i])
        .collect();
    while let Some(i) = stack.pop() {
        if outside[i] || m[i] {
            continue;
        }
        outside[i] = true;
        let (x, y) = (i % w, i / w);
        if x > 0 {
            stack.push(i - 1);
        }
        if x + 1 < w {
            stack.push(i + 1);
        }
        if y > 0 {
            stack.push(i - w);
        }
        if y + 1 < h {
            stack.push(i + w);
        }
    }
    for (v, o) in m.iter_mut().zip(outside) {
        *v = !o;
    }
}

/// A tissue mask of a thumbnail (row-major, `width * height`): saturation median-blurred
/// (7 x 7), above Otsu's threshold, closed by a square of side `1 + 2 * side / 128` and with
/// holes filled (adipose and lumens inside the section count as tissue).
pub fn tissue_mask(thumb: &RgbImage) -> Vec<bool> {
    let (w, h) = (thumb.width() as usize, thumb.height() as usize);
    if w == 0 || h == 0 {
        return Vec::new();
    }
    let sat: Vec<u8> = thumb.pixels().map(saturation).collect();
    let sat = median_filter(&sat, w, h, 3);
    let mut hist = [0u64; 256];
    for &s in &sat {
        hist[s as usize] += 1;
    }
    let t = otsu_threshold(&hist);
    let m: Vec<bool> = sat.iter().map(|&s| s > t).collect();
    let r = w.max(h) / 128;
    let mut m = morph(&morph(&m, w, h, r, true), w, h, r, false);
    fill_holes(&mut m, w, h);
    m
}

/// Centres (level-0 pixels) of a grid of `size`-pixel patches covering the tissue: every
/// grid cell at least `min_tissue` (0..1) of whose area is tissue in the [`tissue_mask`] of a
/// [`THUMBNAIL_SIDE`] thumbnail, row by row.
///
/// # Errors
/// As [`SlideImage::thumbnail`].
pub fn tissue_grid(
    slide: &SlideImage,
    size: u32,
    min_tissue: f64,
) -> Result<Vec<[f64; 2]>, DataError> {
    let (thumb, scale) = slide.thumbnail(THUMBNAIL_SIDE.min(slide.width.max(slide.height)))?;
    let mask = tissue_mask(&thumb);
    let (tw, th) = thumb.dimensions();
    let to_thumb = |v: u32, max: u32| ((v as f64 * scale) as u32).min(max);
    let mut centres = Vec::new();
    let size = size.max(1);
    for gy in 0..slide.height / size {
        for gx in 0..slide.width / size {
            let (x0, y0) = (gx * size, gy * size);
            let (a, c) = (to_thumb(x0, tw - 1), to_thumb(y0, th - 1));
            let b = to_thumb(x0 + size, tw).max(a + 1);
            let d = to_thumb(y0 + size, th).max(c + 1);
            let n = ((b - a) * (d - c)) as usize;
            let on = (c..d)
                .flat_map(|ty| (a..b).map(move |tx| (ty * tw + tx) as usize))
                .filter(|&i| mask[i])
                .count();
            if on as f64 >= min_tissue * n as f64 {
                let half = size as f64 / 2.0;
                centres.push([x0 as f64 + half, y0 as f64 + half]);
            }
        }
    }
    Ok(centres)
}
