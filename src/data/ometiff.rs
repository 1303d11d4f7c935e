//! OME-TIFF images as microscopes and the Xenium instrument write them: grey 8- or 16-bit,
//! tiled or in strips, a resolution pyramid in SubIFDs (each level half the size of the one
//! before, the OME-TIFF 6 convention), uncompressed, LZW, Deflate or JPEG-2000 (Xenium's
//! morphology images), with the pixel size and channel name in the OME-XML.
//!
//! Only the chunks (tiles or strips) a region touches are read and decoded, so a level or a
//! window of a 60,000-pixel-wide image costs what it shows, never the whole file. The `tiff`
//! crate parses the directories; chunks are read here because it decodes neither SubIFD levels
//! nor JPEG-2000 (OpenJPEG through the `jpeg2k` crate does the latter).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use tiff::decoder::{Decoder, IfdDecoder};
use tiff::tags::{IfdPointer, Tag};

use super::error::DataError;

/// One resolution level of an image: its size and where its chunks lie in the file.
#[derive(Debug, Clone)]
pub struct Level {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Chunk size (tile width and height, or the image width and rows per strip).
    chunk: [u32; 2],
    /// Byte offset of each chunk, row-major over the chunk grid.
    offsets: Vec<u64>,
    /// Byte length of each chunk.
    counts: Vec<u64>,
    /// TIFF compression code (1 none, 5 LZW, 8 / 32946 Deflate, 34712 / 33003 / 33005 JPEG-2000).
    compression: u16,
    /// TIFF predictor (1 none, 2 horizontal differencing).
    predictor: u16,
    /// Bits per sample, 8 or 16.
    pub bits: u16,
}

/// An opened OME-TIFF (or plain grey TIFF): its levels and OME metadata. Reading a region
/// decodes only the chunks it covers.
#[derive(Debug)]
pub struct OmeTiff {
    /// The file.
    pub path: PathBuf,
    /// Level 0 (full resolution) first, then each SubIFD level.
    pub levels: Vec<Level>,
    /// The first channel's name in the OME-XML, if it has one.
    pub channel: Option<String>,
    /// Pixel size of level 0 in µm (x, y), from the OME-XML's `Pixels` `PhysicalSizeX/Y` and
    /// their units; `None` when the file does not say.
    pub pixel_size_um: Option<[f64; 2]>,
    big_endian: bool,
}

impl OmeTiff {
    /// Reads the directories of the first image (plane 0) and its SubIFD levels.
    ///
    /// # Errors
    /// [`DataError::Open`] when the file is missing or not a TIFF; [`DataError::Invalid`]
    /// naming the level and tag when a level is not one grey sample of 8 or 16 bits, has no
    /// chunk offsets, or uses a compression this reader does not decode.
    pub fn open(path: &Path) -> Result<Self, DataError> {
        let open_err = |reason: String| DataError::Open {
            file: path.to_path_buf(),
            reason,
        };
        let file = File::open(path).map_err(|e| open_err(e.to_string()))?;
        let mut dec = Decoder::new(std::io::BufReader::new(file))
            .map_err(|e| open_err(format!("not a TIFF file: {e}")))?;
        let big_endian = matches!(dec.byte_order(), tiff::tags::ByteOrder::BigEndian);
        let first = dec
            .ifd_pointer()
            .ok_or_else(|| open_err("no image directory".into()))?;
        let bad = |what: &str, e: tiff::TiffError| DataError::invalid(path, what, e.to_string());
        let dir = dec.read_directory(first).map_err(|e| bad("IFD 0", e))?;
        let mut tags = dec.read_directory_tags(&dir);
        let description = tags
            .find_tag(Tag::ImageDescription)
            .ok()
            .flatten()
            .and_then(|v| v.into_string().ok());
        // SubIFDs are typed IFD, IFD8, LONG or (BigTIFF writers) LONG8.
        let subs: Vec<IfdPointer> = match tags.find_tag(Tag::SubIfd) {
            Ok(Some(v)) => v
                .clone()
                .into_ifd_vec()
                .or_else(|_| {
                    v.into_u64_vec()
                        .map(|o| o.into_iter().map(IfdPointer).collect())
                })
                .map_err(|e| bad("IFD 0 SubIFDs", e))?,
            _ => Vec::new(),
        };
        let mut levels = vec![level(path, "level 0", &mut tags)?];
        for (i, p) in subs.into_iter().enumerate() {
            let name = format!("level {} (SubIFD {i})", i + 1);
            let d = dec.read_directory(p).map_err(|e| bad(&name, e))?;
            levels.push(level(path, &name, &mut dec.read_directory_tags(&d))?);
        }
        let (channel, pixel_size_um) = description.as_deref().map(ome_meta).unwrap_or_default();
        Ok(Self {
            path: path.to_path_buf(),
            levels,
            channel,
            pixel_size_um,
            big_endian,
        })
    }

    /// The finest level whose width and height are both at most `max_side`, else the coarsest.
    pub fn level_fitting(&self, max_side: u32) -> usize {
        self.levels
            .iter()
            .position(|l| l.width.max(l.height) <= max_side)
            .unwrap_or(self.levels.len() - 1)
    }

    /// The pixels of a `[x, y, width, height]` window of `level` (row-major, `width * height`
    /// values; 8-bit samples keep their 0..255 values). Chunks are decoded in parallel.
    ///
    /// # Errors
    /// [`DataError::Invalid`] when the level does not exist, the window leaves the image, or a
    /// chunk cannot be read or decoded (naming the level and chunk).
    pub fn read_region(&self, level: usize, window: [u32; 4]) -> Result<Vec<u16>, DataError> {
        let l = self.levels.get(level).ok_or_else(|| {
            let n = self.levels.len();
            DataError::invalid(&self.path, "level", format!("level {level} of {n} levels"))
        })?;
        let [x, y, w, h] = window;
        if w == 0 || h == 0 || x + w > l.width || y + h > l.height {
            let msg = format!(
                "window {x},{y} {w}x{h} outside the level's {}x{} pixels",
                l.width, l.height
            );
            return Err(DataError::invalid(
                &self.path,
                &format!("level {level}"),
                msg,
            ));
        }
        let file = File::open(&self.path).map_err(|e| DataError::Io {
            file: self.path.clone(),
            source: e,
        })?;
        let [cw, ch] = l.chunk;
        let across = l.width.div_ceil(cw);
        let chunks: Vec<u32> = (y / ch..(y + h).div_ceil(ch))
            .flat_map(|cy| (x / cw..(x + w).div_ceil(cw)).map(move |cx| cy * across + cx))
            .collect();
        let decoded: Vec<(u32, Vec<u16>, usize)> = chunks
            .par_iter()
            .map(|&c| {
                let (px, stride) = self.chunk(&file, l, c, level)?;
                Ok((c, px, stride))
            })
            .collect::<Result<_, DataError>>()?;
        let mut out = vec![0u16; w as usize * h as usize];
        for (c, px, stride) in decoded {
            let (cx0, cy0) = ((c % across) * cw, (c / across) * ch);
            let rows = px.len() / stride.max(1);
            for row in y.max(cy0)..(y + h).min(cy0 + rows as u32) {
                let (a, b) = (x.max(cx0), (x + w).min(cx0 + cw).min(cx0 + stride as u32));
                if a >= b {
                    continue;
                }
                let src = (row - cy0) as usize * stride + (a - cx0) as usize;
                let dst = (row - y) as usize * w as usize + (a - x) as usize;
                let n = (b - a) as usize;
                out[dst..dst + n].copy_from_slice(&px[src..src + n]);
            }
        }
        Ok(out)
    }

    /// Chunk `c` of level `l` decoded: its samples and its row length.
    fn chunk(
        &self,
        file: &File,
        l: &Level,
        c: u32,
        level: usize,
    ) -> Result<(Vec<u16>, usize), DataError> {
        let what = format!("level {level} chunk {c}");
        let bad = |m: String| DataError::invalid(&self.path, &what, m);
        let (off, len) = match (l.offsets.get(c as usize), l.counts.get(c as usize)) {
            (Some(&o), Some(&n)) => (o, n),
            _ => return Err(bad("no offset or byte count for this chunk".into())),
        };
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        if off.checked_add(len).is_none_or(|end| end > size) {
            let m = format!("{len} bytes at offset {off} run past the file's {size} bytes");
            return Err(bad(m));
        }
        let mut raw = vec![0u8; len as usize];
        file.read_exact_at(&mut raw, off)
            .map_err(|e| bad(format!("cannot read {len} bytes at offset {off}: {e}")))?;
        let chunk_w = l.chunk[0] as usize;
        let (px, stride) = match l.compression {
            34712 | 33003 | 33005 => {
                let img = jpeg2k::Image::from_bytes(&raw)
                    .map_err(|e| bad(format!("JPEG-2000 tile cannot be decoded: {e}")))?;
                let comp = img
                    .components()
                    .first()
                    .ok_or_else(|| bad("JPEG-2000 tile without components".into()))?;
                let px = comp
                    .data()
                    .iter()
                    .map(|&v| v.clamp(0, 65_535) as u16)
                    .collect();
                (px, comp.width() as usize)
            }
            1 => (samples(&raw, l.bits, self.big_endian), chunk_w),
            5 => {
                let mut d = weezl::decode::Decoder::with_tiff_size_switch(weezl::BitOrder::Msb, 8);
                let bytes = d
                    .decode(&raw)
                    .map_err(|e| bad(format!("LZW data cannot be decoded: {e}")))?;
                (samples(&bytes, l.bits, self.big_endian), chunk_w)
            }
            8 | 32946 => {
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(
                    &mut flate2::read::ZlibDecoder::new(&raw[..]),
                    &mut bytes,
                )
                .map_err(|e| bad(format!("Deflate data cannot be decoded: {e}")))?;
                (samples(&bytes, l.bits, self.big_endian), chunk_w)
            }
            other => {
                return Err(bad(format!(
                    "compression {other} is not read (none, LZW, Deflate or JPEG-2000 are)"
                )));
            }
        };
        let mut px = px;
        if l.predictor == 2 && stride > 0 {
            for row in px.chunks_mut(stride) {
                for i in 1..row.len() {
                    row[i] = if l.bits == 8 {
                        (row[i] as u8).wrapping_add(row[i - 1] as u8) as u16
                    } else {
                        row[i].wrapping_add(row[i - 1])
                    };
                }
            }
        }
        Ok((px, stride))
    }
}

/// Unpacks 8- or 16-bit samples.
fn samples(bytes: &[u8], bits: u16, big_endian: bool) -> Vec<u16> {
    if bits == 8 {
        return bytes.iter().map(|&b| u16::from(b)).collect();
    }
    bytes
        .chunks_exact(2)
        .map(|b| {
            if big_endian {
                u16::from_be_bytes([b[0], b[1]])
            } else {
                u16::from_le_bytes([b[0], b[1]])
            }
        })
        .collect()
}

/// One level's geometry and chunk table from its directory's tags.
fn level(path: &Path, name: &str, t: &mut IfdDecoder<'_>) -> Result<Level, DataError> {
    let bad = |tag: &str, m: String| DataError::invalid(path, &format!("{name} {tag}"), m);
    let mut num = |tag: Tag, label: &str| -> Result<Option<u64>, DataError> {
        t.find_tag_unsigned::<u64>(tag)
            .map_err(|e| bad(label, e.to_string()))
    };
    let width = num(Tag::ImageWidth, "ImageWidth")?
        .ok_or_else(|| bad("ImageWidth", "missing".into()))? as u32;
    let height = num(Tag::ImageLength, "ImageLength")?
        .ok_or_else(|| bad("ImageLength", "missing".into()))? as u32;
    let samples = num(Tag::SamplesPerPixel, "SamplesPerPixel")?.unwrap_or(1);
    let bits = num(Tag::BitsPerSample, "BitsPerSample")?.unwrap_or(1) as u16;
    if samples != 1 || !(bits == 8 || bits == 16) {
        let m =
            format!("{samples} samples of {bits} bits; one grey sample of 8 or 16 bits expected");
        return Err(bad("SamplesPerPixel/BitsPerSample", m));
    }
    let compression = num(Tag::Compression, "Compression")?.unwrap_or(1) as u16;
    let predictor = num(Tag::Predictor, "Predictor")?.unwrap_or(1) as u16;
    let tiled = num(Tag::TileWidth, "TileWidth")?;
    let (chunk, off_tag, count_tag) = match tiled {
        Some(tw) => {
            let th = num(Tag::TileLength, "TileLength")?.unwrap_or(tw);
            (
                [tw as u32, th as u32],
                Tag::TileOffsets,
                Tag::TileByteCounts,
            )
        }
        None => {
            let rows = num(Tag::RowsPerStrip, "RowsPerStrip")?.unwrap_or(u64::from(height));
            (
                [width, (rows as u32).clamp(1, height.max(1))],
                Tag::StripOffsets,
                Tag::StripByteCounts,
            )
        }
    };
    let mut list = |tag: Tag, label: &str| -> Result<Vec<u64>, DataError> {
        match t.find_tag(tag) {
            Ok(Some(v)) => v.into_u64_vec().map_err(|e| bad(label, e.to_string())),
            Ok(None) => Err(bad(
                label,
                "missing: the chunks' byte offsets and counts".into(),
            )),
            Err(e) => Err(bad(label, e.to_string())),
        }
    };
    let offsets = list(off_tag, "chunk offsets")?;
    let counts = list(count_tag, "chunk byte counts")?;
    if chunk[0] == 0 || chunk[1] == 0 || width == 0 || height == 0 {
        let m = format!(
            "{width}x{height} pixels in chunks of {}x{}",
            chunk[0], chunk[1]
        );
        return Err(bad("size", format!("{m}: every size must be at least 1")));
    }
    let expected = u64::from(width.div_ceil(chunk[0])) * u64::from(height.div_ceil(chunk[1]));
    let expected = usize::try_from(expected).unwrap_or(usize::MAX);
    if offsets.len() != expected || counts.len() != expected {
        let m = format!(
            "{} offsets and {} byte counts for {expected} chunks",
            offsets.len(),
            counts.len()
        );
        return Err(bad("chunk table", m));
    }
    Ok(Level {
        width,
        height,
        chunk,
        offsets,
        counts,
        compression,
        predictor,
        bits,
    })
}

/// The first channel's name and the pixel size in µm from OME-XML (`None`s where it does not
/// say, or the text is not OME-XML).
fn ome_meta(xml: &str) -> (Option<String>, Option<[f64; 2]>) {
    let Ok(doc) = roxmltree::Document::parse(xml) else {
        return (None, None);
    };
    let Some(pixels) = doc
        .descendants()
        .find(|n| n.has_tag_name("Pixels") || n.tag_name().name() == "Pixels")
    else {
        return (None, None);
    };
    let channel = pixels
        .children()
        .find(|n| n.tag_name().name() == "Channel")
        .and_then(|c| c.attribute("Name"))
        .map(str::to_string);
    let size = |axis: &str| -> Option<f64> {
        let v: f64 = pixels
            .attribute(format!("PhysicalSize{axis}").as_str())?
            .parse()
            .ok()?;
        let unit = pixels
            .attribute(format!("PhysicalSize{axis}Unit").as_str())
            .unwrap_or("µm");
        let f = match unit {
            "µm" | "um" | "μm" | "micron" => 1.0,
            "nm" => 1e-3,
            "mm" => 1e3,
            _ => return None,
        };
        (v > 0.0 && v.is_finite()).then_some(v * f)
    };
    let px = match (size("X"), size("Y")) {
        (Some(x), Some(y)) => Some([x, y]),
        (Some(x), None) => Some([x, x]),
        _ => None,
    };
    (channel, px)
}

#[cfg(test)]
mod tests {
    use super::ome_meta;

    /// Pixel sizes are converted to µm from the unit the OME-XML names (µm by default), and a
    /// size in an unknown unit is not guessed.
    #[test]
    fn ome_pixel_size_and_channel() {
        let xml = |attrs: &str| {
            format!(
                r#"<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06"><Image><Pixels {attrs}><Channel Name="DAPI"/></Pixels></Image></OME>"#
            )
        };
        let (c, p) = ome_meta(&xml(r#"PhysicalSizeX="0.2125" PhysicalSizeY="0.2125""#));
        assert_eq!((c.as_deref(), p), (Some("DAPI"), Some([0.2125, 0.2125])));
        let (_, p) = ome_meta(&xml(r#"PhysicalSizeX="212.5" PhysicalSizeXUnit="nm""#));
        assert!((p.expect("size")[1] - 0.2125).abs() < 1e-12);
        assert_eq!(
            ome_meta(&xml(r#"PhysicalSizeX="1" PhysicalSizeXUnit="pc""#)).1,
            None
        );
        assert_eq!(ome_meta(&xml("")).1, None);
        assert_eq!(ome_meta("not xml"), (None, None));
    }
}
