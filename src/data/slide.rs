//! Slide images (H&E, IF overviews) read region by region, for image models: spot patches
//! (tissue grids for slides without spots: [`super::tissue`]).
//!
//! Formats: TIFF and BigTIFF, tiled or stripped, 8-bit grey, RGB or RGBA, any compression the
//! `tiff` crate decodes (none, LZW, Deflate, JPEG); pyramids as successive directories (SVS,
//! generic pyramidal TIFF). A region of a TIFF decodes only the chunks it covers, so a slide
//! never loads whole. JPEG and PNG have no random access: they are decoded once, whole (a
//! 10k x 10k JPEG is 300 MB of RGB); convert larger images to tiled TIFF.
//!
//! Coordinates are level-0 pixels, x to the right, y down, as `obsm['spatial']` holds them for
//! Visium (full-resolution) and the ST arrays of HER2+ (`pixel_x`, `pixel_y`).

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use image::RgbImage;
use tiff::ColorType;
use tiff::decoder::{Decoder, DecodingResult};

use super::error::DataError;

/// An opened slide image.
pub struct SlideImage {
    /// The file.
    pub path: PathBuf,
    /// Level-0 width and height in pixels.
    pub width: u32,
    /// Level-0 height in pixels.
    pub height: u32,
    /// Width and height of each level, finest first (one entry for JPEG/PNG).
    pub levels: Vec<[u32; 2]>,
    source: Source,
}

enum Source {
    Decoded(RgbImage),
    Tiff(Box<Mutex<TiffSlide>>),
}

struct TiffSlide {
    dec: Decoder<BufReader<File>>,
    /// Directory index of each level.
    dirs: Vec<usize>,
    /// Samples per pixel of each level (1 grey, 3 RGB, 4 RGBA).
    samples: Vec<usize>,
}

impl std::fmt::Debug for SlideImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {}x{} px, {} level(s)",
            self.path.display(),
            self.width,
            self.height,
            self.levels.len()
        )
    }
}

impl SlideImage {
    /// Opens a slide: TIFF/BigTIFF by its directories (nothing decoded yet), JPEG or PNG
    /// decoded whole.
    ///
    /// # Errors
    /// [`DataError::Open`] when the file is missing, not an image, truncated or corrupt;
    /// [`DataError::Invalid`] when a TIFF level is not 8-bit grey, RGB or RGBA.
    pub fn open(path: &Path) -> Result<Self, DataError> {
        let open_err = |reason: String| DataError::Open {
            file: path.to_path_buf(),
            reason,
        };
        let reader = image::ImageReader::open(path)
            .map_err(|e| open_err(e.to_string()))?
            .with_guessed_format()
            .map_err(|e| open_err(e.to_string()))?;
        match reader.format() {
            Some(image::ImageFormat::Tiff) => Self::open_tiff(path),
            Some(_) => {
                let mut reader = reader;
                reader.no_limits();
                let img = reader
                    .decode()
                    .map_err(|e| open_err(format!("cannot decode the image: {e}")))?
                    .into_rgb8();
                let (width, height) = img.dimensions();
                Ok(Self {
                    path: path.to_path_buf(),
                    width,
                    height,
                    levels: vec![[width, height]],
                    source: Source::Decoded(img),
                })
            }
            None => Err(open_err(
                "not an image this reader knows (expected TIFF, JPEG or PNG)".into(),
            )),
        }
    }

    fn open_tiff(path: &Path) -> Result<Self, DataError> {
        let open_err = |reason: String| DataError::Open {
            file: path.to_path_buf(),
            reason,
        };
        let file = File::open(path).map_err(|e| open_err(e.to_string()))?;
        let mut dec = Decoder::new(BufReader::new(file))
            .map_err(|e| open_err(format!("not a TIFF file: {e}")))?;
        let (mut levels, mut dirs, mut samples) = (Vec::new(), Vec::new(), Vec::new());
        let mut index = 0;
        loop {
            let name = format!("directory {index}");
            let (w, h) = dec
                .dimensions()
                .map_err(|e| DataError::invalid(path, &name, e.to_string()))?;
            let spp = match dec.colortype() {
                Ok(ColorType::Gray(8)) => Some(1),
                Ok(ColorType::RGB(8)) | Ok(ColorType::YCbCr(8)) => Some(3),
                Ok(ColorType::RGBA(8)) => Some(4),
                Ok(other) if index == 0 => {
                    return Err(DataError::invalid(
                        path,
                        &name,
                        format!("{other:?} pixels; expected 8-bit grey, RGB or RGBA"),
                    ));
                }
                Err(e) if index == 0 => {
                    return Err(DataError::invalid(path, &name, e.to_string()));
                }
                _ => None,
            };
            // Pyramid levels shrink; a larger directory after a smaller one (a label or macro
            // image of some scanners) ends the pyramid.
            let shrinks = levels
                .last()
                .is_none_or(|&[pw, ph]: &[u32; 2]| w <= pw && h <= ph);
            match spp {
                Some(s) if shrinks => {
                    levels.push([w, h]);
                    dirs.push(index);
                    samples.push(s);
                }
                _ => {}
            }
            if !dec.more_images() {
                break;
            }
            index += 1;
            dec.next_image().map_err(|e| {
                DataError::invalid(path, &format!("directory {index}"), e.to_string())
            })?;
        }
        let [width, height] = levels[0];
        Ok(Self {
            path: path.to_path_buf(),
            width,
            height,
            levels,
            source: Source::Tiff(Box::new(Mutex::new(TiffSlide { dec, dirs, samples }))),
        })
    }

    /// The `w x h` region whose top-left corner is level-0 pixel `(x, y)`, as RGB; pixels
    /// outside the image are black (0), as PIL's `Image.crop` pads, which mclSTExp's patches
    /// use.
    ///
    /// # Errors
    /// [`DataError::Invalid`] when a TIFF chunk cannot be read or decoded (naming the chunk).
    pub fn read_region(&self, x: i64, y: i64, w: u32, h: u32) -> Result<RgbImage, DataError> {
        self.read_level_region(0, x, y, w, h)
    }

    /// As [`Self::read_region`], in `level`'s pixels.
    ///
    /// # Errors
    /// As [`Self::read_region`]; [`DataError::Invalid`] for a level that does not exist.
    pub fn read_level_region(
        &self,
        level: usize,
        x: i64,
        y: i64,
        w: u32,
        h: u32,
    ) -> Result<RgbImage, DataError> {
        let &[lw, lh] = self.levels.get(level).ok_or_else(|| {
            let n = self.levels.len();
            DataError::invalid(&self.path, "level", format!("level {level} of {n} levels"))
        })?;
        let mut out = RgbImage::new(w, h);
        // The part of the region inside the image.
        let (x0, y0) = (x.max(0), y.max(0));
        let (x1, y1) = ((x + w as i64).min(lw as i64), (y + h as i64).min(lh as i64));
        if x0 >= x1 || y0 >= y1 {
            return Ok(out);
        }
        let inside = [x0 as u32, y0 as u32, (x1 - x0) as u32, (y1 - y0) as u32];
        let dst = [(x0 - x) as u32, (y0 - y) as u32];
        match &self.source {
            Source::Decoded(img) => {
                for r in 0..inside[3] {
                    for c in 0..inside[2] {
                        let p = *img.get_pixel(inside[0] + c, inside[1] + r);
                        out.put_pixel(dst[0] + c, dst[1] + r, p);
                    }
                }
            }
            Source::Tiff(t) => {
                let mut t = t.lock().unwrap_or_else(|p| p.into_inner());
                t.copy_region(&self.path, level, inside, dst, &mut out)?;
            }
        }
        Ok(out)
    }

    /// The whole image at the coarsest level whose longer side is at least `min_side` (or
    /// level 0), resized so that its longer side is `min_side`; returns the image and its scale
    /// (thumbnail pixels per level-0 pixel).
    ///
    /// # Errors
    /// As [`Self::read_level_region`].
    pub fn thumbnail(&self, min_side: u32) -> Result<(RgbImage, f64), DataError> {
        let level = self
            .levels
            .iter()
            .rposition(|l| l[0].max(l[1]) >= min_side)
            .unwrap_or(0);
        let [lw, lh] = self.levels[level];
        let img = self.read_level_region(level, 0, 0, lw, lh)?;
        let scale = min_side as f64 / self.width.max(self.height) as f64;
        let (tw, th) = (
            ((self.width as f64 * scale).round() as u32).max(1),
            ((self.height as f64 * scale).round() as u32).max(1),
        );
        let img = image::imageops::resize(&img, tw, th, image::imageops::FilterType::Triangle);
        Ok((img, scale))
    }
}

impl TiffSlide {
    /// Copies `inside` (`[x, y, w, h]` in `level`'s pixels) into `out` at `dst`, decoding only
    /// the chunks it covers.
    fn copy_region(
        &mut self,
        path: &Path,
        level: usize,
        inside: [u32; 4],
        dst: [u32; 2],
        out: &mut RgbImage,
    ) -> Result<(), DataError> {
        let name = format!("level {level}");
        let bad = |e: tiff::TiffError| DataError::invalid(path, &name, e.to_string());
        self.dec.seek_to_image(self.dirs[level]).map_err(bad)?;
        let spp = self.samples[level];
        let (iw, _) = self.dec.dimensions().map_err(bad)?;
        let (cw, ch) = self.dec.chunk_dimensions();
        let across = iw.div_ceil(cw);
        let [x, y, w, h] = inside;
        for cy in y / ch..(y + h).div_ceil(ch) {
            for cx in x / cw..(x + w).div_ceil(cw) {
                // Strips span the width: one chunk per row band.
                let index = match self.dec.get_chunk_type() {
                    tiff::decoder::ChunkType::Strip => cy,
                    tiff::decoder::ChunkType::Tile => cy * across + cx,
                };
                let (dw, dh) = self.dec.chunk_data_dimensions(index);
                let data = match self.dec.read_chunk(index) {
                    Ok(DecodingResult::U8(v)) => v,
                    Ok(_) => return Err(DataError::invalid(path, &name, "not 8-bit samples")),
                    Err(e) => {
                        let msg = format!("chunk {index}: {e}");
                        return Err(DataError::invalid(path, &name, msg));
                    }
                };
                // Chunk origin in level pixels (strips start at column 0).
                let (ox, oy) = match self.dec.get_chunk_type() {
                    tiff::decoder::ChunkType::Strip => (0, cy * ch),
                    tiff::decoder::ChunkType::Tile => (cx * cw, cy * ch),
                };
                // Rows in the decoded buffer are `dw` pixels wide for strips and for tiles as
                // the `tiff` crate returns them (padding removed).
                let stride = dw as usize * spp;
                let (rx0, rx1) = (x.max(ox), (x + w).min(ox + dw));
                let (ry0, ry1) = (y.max(oy), (y + h).min(oy + dh));
                for py in ry0..ry1 {
                    for px in rx0..rx1 {
                        let i = (py - oy) as usize * stride + (px - ox) as usize * spp;
                        let p = match spp {
                            1 => [data[i]; 3],
                            _ => [data[i], data[i + 1], data[i + 2]],
                        };
                        out.put_pixel(dst[0] + px - x, dst[1] + py - y, image::Rgb(p));
                    }
                }
                if matches!(self.dec.get_chunk_type(), tiff::decoder::ChunkType::Strip) {
                    break;
                }
            }
        }
        Ok(())
    }
}

/// The top-left corner of a `size`-pixel square patch centred on `centre` (level-0 pixels):
/// `floor(centre) - size / 2`, so a 224-px patch spans `[x - 112, x + 112)` as mclSTExp's
/// `img.crop((x - 112, y - 112, x + 112, y + 112))` on `np.floor(pixel_x, pixel_y)`.
pub fn patch_origin(centre: [f64; 2], size: u32) -> [i64; 2] {
    let half = (size / 2) as i64;
    [
        centre[0].floor() as i64 - half,
        centre[1].floor() as i64 - half,
    ]
}

/// Square patches centred on `centres` (level-0 pixels), `size` pixels a side, padded with
/// black outside the image.
///
/// # Errors
/// [`DataError::Invalid`] naming the spot when more than half of a patch lies outside the
/// image (the spots were placed on another image), or as [`SlideImage::read_region`].
pub fn spot_patches(
    slide: &SlideImage,
    centres: &[[f64; 2]],
    size: u32,
) -> Result<Vec<RgbImage>, DataError> {
    centres
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            check_inside(slide, i, c)?;
            let [x, y] = patch_origin(c, size);
            slide.read_region(x, y, size, size)
        })
        .collect()
}

/// A spot whose centre lies outside the image: its patch would be mostly padding.
fn check_inside(slide: &SlideImage, i: usize, c: [f64; 2]) -> Result<(), DataError> {
    let inside =
        c[0] >= 0.0 && c[1] >= 0.0 && c[0] < slide.width as f64 && c[1] < slide.height as f64;
    if inside {
        return Ok(());
    }
    Err(DataError::invalid(
        &slide.path,
        "spot positions",
        format!(
            "spot {i} at ({:.0}, {:.0}) lies outside the {}x{} image: is this the image the spots were placed on (obsm['spatial'] in its full-resolution pixels)?",
            c[0], c[1], slide.width, slide.height
        ),
    ))
}
