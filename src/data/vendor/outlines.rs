//! Cell outlines (segmentation boundaries) from the instruments' outputs, one closed ring per
//! cell in the cells' order, in the coordinates of `obsm['spatial']`:
//! - Xenium: `cell_boundaries.parquet` / `.csv.gz`, one row per vertex (`cell_id`,
//!   `vertex_x`, `vertex_y` in µm), a cell's vertices consecutive;
//! - MERSCOPE: `cell_boundaries.parquet` (post-processing tool) or `*_micron_space.parquet`
//!   (instrument), one row per cell and z-plane, `Geometry` a WKB polygon or multipolygon in µm;
//!   the first row of each cell is taken and, of a multipolygon, its first polygon's outer ring;
//!   without either, the instrument's per-FOV `cell_boundaries/*.hdf5`
//!   (`featuredata/<cell>/zIndex_<z>/p_0/coordinates`, `1 x n x 2` µm), the lowest plane of
//!   each cell;
//! - CosMx: `*-polygons.csv`, one row per vertex (`fov`, `cellID`, `x_global_px`,
//!   `y_global_px`).

use std::collections::HashMap;
use std::path::Path;

use super::one_ending;
use super::table::Table;
use crate::data::InputKind;
use crate::data::error::{DataError, Result};

/// One outline per cell: `vertices[offsets[i]..offsets[i + 1]]` is cell `i`'s ring (empty when
/// the file has none for it).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Outlines {
    /// `n_cells + 1` offsets into `vertices`.
    pub offsets: Vec<usize>,
    /// `(x, y)` vertices, in the coordinates of `obsm['spatial']`.
    pub vertices: Vec<[f64; 2]>,
}

impl Outlines {
    /// Cell `i`'s ring.
    pub fn ring(&self, i: usize) -> &[[f64; 2]] {
        &self.vertices[self.offsets[i]..self.offsets[i + 1]]
    }

    /// Number of cells.
    pub fn n_cells(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    /// Cells with an outline.
    pub fn n_outlined(&self) -> usize {
        self.offsets.windows(2).filter(|w| w[1] > w[0]).count()
    }

    /// Rings keyed by cell id, put in the order of `cells`.
    fn from_map(mut rings: HashMap<String, Vec<[f64; 2]>>, cells: &[String]) -> Self {
        let mut o = Self {
            offsets: vec![0],
            vertices: Vec::new(),
        };
        for c in cells {
            if let Some(r) = rings.remove(c) {
                o.vertices.extend(r);
            }
            o.offsets.push(o.vertices.len());
        }
        o
    }
}

/// The outlines of an instrument's output of `kind`, for `cells` (the obs names), or `None`
/// when it holds no boundary file this reader knows.
///
/// # Errors
/// A boundary file that cannot be read: missing columns, non-numeric vertices, bad WKB.
pub fn read_outlines(path: &Path, kind: InputKind, cells: &[String]) -> Result<Option<Outlines>> {
    let found = |names: &[&str]| names.iter().map(|n| path.join(n)).find(|p| p.is_file());
    let rings = match kind {
        InputKind::Xenium => match found(&["cell_boundaries.parquet", "cell_boundaries.csv.gz"]) {
            Some(f) => {
                let t = Table::read(&f)?;
                let ids = t.text("cell_id")?.into_owned();
                vertex_rows(&t, ids, ["vertex_x", "vertex_y"])?
            }
            None => return Ok(None),
        },
        InputKind::Merscope => {
            let file = found(&["cell_boundaries.parquet"])
                .or_else(|| one_ending(path, "_micron_space.parquet", "").ok());
            match file {
                Some(f) => wkb_rows(&f)?,
                None => match hdf5_rings(&path.join("cell_boundaries"))? {
                    Some(r) => r,
                    None => return Ok(None),
                },
            }
        }
        InputKind::Cosmx => match one_ending(path, "-polygons.csv", "").ok() {
            Some(f) => {
                let t = Table::read(&f)?;
                let (cell, fov) = (t.text("cellID")?, t.text("fov")?);
                let ids = (cell.iter().zip(fov.iter()))
                    .map(|(c, f)| format!("{}_{}", c.trim(), f.trim()))
                    .collect();
                vertex_rows(&t, ids, ["x_global_px", "y_global_px"])?
            }
            None => return Ok(None),
        },
        _ => return Ok(None),
    };
    Ok(Some(Outlines::from_map(rings, cells)))
}

/// Rings from a table of one vertex per row, grouped by the rows' cell `ids`.
fn vertex_rows(
    t: &Table,
    ids: Vec<String>,
    xy: [&str; 2],
) -> Result<HashMap<String, Vec<[f64; 2]>>> {
    let (x, y) = (t.floats(xy[0])?, t.floats(xy[1])?);
    let mut rings: HashMap<String, Vec<[f64; 2]>> = HashMap::new();
    for (r, id) in ids.into_iter().enumerate() {
        rings.entry(id).or_default().push([x[r], y[r]]);
    }
    Ok(rings)
}

/// Rings from MERSCOPE's parquet: `EntityID` and a WKB `Geometry` per row; the first row of
/// each cell.
fn wkb_rows(path: &Path) -> Result<HashMap<String, Vec<[f64; 2]>>> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;
    let bad = |m: String| DataError::invalid(path, "parquet", m);
    let f = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let reader =
        SerializedFileReader::new(f).map_err(|e| bad(format!("not a parquet file: {e}")))?;
    let mut rings = HashMap::new();
    for (i, row) in reader
        .get_row_iter(None)
        .map_err(|e| bad(e.to_string()))?
        .enumerate()
    {
        let row = row.map_err(|e| bad(format!("row {i}: {e}")))?;
        let (mut id, mut geometry) = (None, None);
        for (name, field) in row.get_column_iter() {
            match (name.as_str(), field) {
                ("EntityID", Field::Long(v)) => id = Some(v.to_string()),
                ("EntityID", Field::Str(v)) => id = Some(v.clone()),
                ("Geometry", Field::Bytes(b)) => geometry = Some(b.data().to_vec()),
                _ => {}
            }
        }
        let (Some(id), Some(g)) = (id, geometry) else {
            return Err(DataError::missing(
                path,
                &format!("row {i}"),
                "an EntityID and a WKB Geometry",
            ));
        };
        if let std::collections::hash_map::Entry::Vacant(e) = rings.entry(id) {
            let ring = wkb_outer_ring(&g).map_err(|e| {
                DataError::invalid(path, &format!("row {i}, Geometry"), e.to_string())
            })?;
            e.insert(ring);
        }
    }
    Ok(rings)
}

/// Rings from MERSCOPE's per-FOV HDF5 files in `dir` (`None` without any): each cell's
/// lowest `zIndex_<z>`, its `p_0/coordinates` (`1 x n x 2`).
fn hdf5_rings(dir: &Path) -> Result<Option<HashMap<String, Vec<[f64; 2]>>>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(None);
    };
    let mut files: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "hdf5"))
        .collect();
    if files.is_empty() {
        return Ok(None);
    }
    files.sort();
    let mut rings = HashMap::new();
    for f in files {
        let h = crate::data::h5ad::open_hdf5(&f)?;
        let err = |p: &str, e: hdf5::Error| DataError::hdf5(&f, p, e);
        let g = h.group("featuredata").map_err(|e| err("featuredata", e))?;
        for cell in g.member_names().map_err(|e| err("featuredata", e))? {
            let c = g.group(&cell).map_err(|e| err(&cell, e))?;
            let mut planes: Vec<(u32, String)> = c
                .member_names()
                .map_err(|e| err(&cell, e))?
                .into_iter()
                .filter_map(|n| Some((n.strip_prefix("zIndex_")?.parse().ok()?, n)))
                .collect();
            planes.sort();
            let Some((_, plane)) = planes.first() else {
                continue;
            };
            let path = format!("featuredata/{cell}/{plane}/p_0/coordinates");
            let ds = g
                .dataset(&format!("{cell}/{plane}/p_0/coordinates"))
                .and_then(crate::data::h5util::checked)
                .map_err(|e| err(&path, e))?;
            let v: Vec<f64> = ds.read_raw().map_err(|e| err(&path, e))?;
            if ds.shape().last() != Some(&2) {
                return Err(DataError::invalid(
                    &f,
                    &path,
                    format!("shape {:?}; expected (1, n, 2)", ds.shape()),
                ));
            }
            rings
                .entry(cell)
                .or_insert_with(|| v.chunks_exact(2).map(|p| [p[0], p[1]]).collect());
        }
    }
    Ok(Some(rings))
}

/// The outer ring of a WKB polygon (type 3), or of a multipolygon's (type 6) first polygon.
fn wkb_outer_ring(b: &[u8]) -> std::result::Result<Vec<[f64; 2]>, WkbError> {
    let mut r = Wkb {
        b,
        at: 0,
        little: true,
    };
    r.order()?;
    match r.u32()? {
        3 => r.polygon_ring(),
        6 => {
            if r.u32()? == 0 {
                return Ok(Vec::new());
            }
            r.order()?;
            match r.u32()? {
                3 => r.polygon_ring(),
                t => Err(WkbError::Member(t)),
            }
        }
        t => Err(WkbError::Type(t)),
    }
}

/// Why a WKB geometry could not be read.
#[derive(Debug, thiserror::Error)]
enum WkbError {
    /// Fewer bytes than the geometry declares.
    #[error("WKB ends at byte {at} of {len}")]
    Truncated {
        /// Where the next value would start.
        at: usize,
        /// The geometry's length in bytes.
        len: usize,
    },
    /// A byte-order marker other than 0 (big) or 1 (little endian).
    #[error("WKB byte order {0}; expected 0 or 1")]
    ByteOrder(u8),
    /// Neither a polygon nor a multipolygon.
    #[error("WKB geometry type {0}; expected a polygon (3) or multipolygon (6)")]
    Type(u32),
    /// A multipolygon whose first member is not a polygon.
    #[error("a multipolygon member of WKB type {0}; expected 3")]
    Member(u32),
    /// More points than the bytes can hold.
    #[error("a ring of {points} points in {len} bytes")]
    RingTooLong {
        /// Declared points.
        points: usize,
        /// The geometry's length in bytes.
        len: usize,
    },
}

/// A cursor over WKB bytes.
struct Wkb<'a> {
    b: &'a [u8],
    at: usize,
    little: bool,
}

impl Wkb<'_> {
    fn take<const N: usize>(&mut self) -> std::result::Result<[u8; N], WkbError> {
        let s = self
            .b
            .get(self.at..self.at + N)
            .ok_or(WkbError::Truncated {
                at: self.at,
                len: self.b.len(),
            })?;
        self.at += N;
        Ok(s.try_into().unwrap_or([0; N]))
    }

    fn order(&mut self) -> std::result::Result<(), WkbError> {
        self.little = match self.take::<1>()?[0] {
            0 => false,
            1 => true,
            o => return Err(WkbError::ByteOrder(o)),
        };
        Ok(())
    }

    fn u32(&mut self) -> std::result::Result<u32, WkbError> {
        let v = self.take::<4>()?;
        Ok(if self.little {
            u32::from_le_bytes(v)
        } else {
            u32::from_be_bytes(v)
        })
    }

    fn f64(&mut self) -> std::result::Result<f64, WkbError> {
        let v = self.take::<8>()?;
        Ok(if self.little {
            f64::from_le_bytes(v)
        } else {
            f64::from_be_bytes(v)
        })
    }

    /// A polygon body (after its type): its first (outer) ring.
    fn polygon_ring(&mut self) -> std::result::Result<Vec<[f64; 2]>, WkbError> {
        if self.u32()? == 0 {
            return Ok(Vec::new());
        }
        let n = self.u32()? as usize;
        if n > (self.b.len() - self.at) / 16 {
            return Err(WkbError::RingTooLong {
                points: n,
                len: self.b.len(),
            });
        }
        (0..n).map(|_| Ok([self.f64()?, self.f64()?])).collect()
    }
}
