//! Readers of the instruments' own outputs: 10x Xenium, Vizgen MERSCOPE (both of its
//! layouts), NanoString CosMx flat files, Slide-seq (RCTD's layout) and Stereo-seq GEM text.
//! Each gives an [`AnnData`] as the Python readers do (spatialdata-io, squidpy, stereopy):
//! cells in the matrix's order named by the vendor's cell ids, genes only in `X` (control
//! probes, codewords and blanks kept apart and counted), the cell table's numeric columns in
//! obs and the centroids in `obsm['spatial']` (unit in [`AnnData::spatial_units`]); plus a
//! [`VendorInfo`] of what was found.

pub mod cosmx;
mod counts;
pub mod merscope;
pub mod outlines;
pub mod slideseq;
pub mod stereoseq;
pub mod table;
pub mod xenium;

use std::collections::HashMap;
use std::path::Path;

use std::collections::BTreeMap;

use ndarray::Array2;

use super::anndata::{AnnData, MatrixEncoding, MatrixInfo};
use super::dataframe::{Column, DataFrame};
use super::error::{DataError, Result};
use super::matrix::{CsrMatrix, Matrix};
use table::Table;

/// An image an instrument wrote (a MERSCOPE mosaic, a Xenium morphology image) and where it
/// lies in the cells' micron coordinates: an axis-aligned scale and offset.
#[derive(Debug, Clone, PartialEq)]
pub struct VendorImage {
    /// What to call it in a list: stain and plane (`DAPI z3`), or the image's name.
    pub name: String,
    /// The TIFF.
    pub path: std::path::PathBuf,
    /// Microns per pixel of the full-resolution image.
    pub microns_per_pixel: f64,
    /// Micron coordinates of the image's top-left corner.
    pub origin: [f64; 2],
}

/// What a vendor reader found beside the matrix: the platform, its run metadata and the
/// features kept out of `X`.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
pub struct VendorInfo {
    /// The instrument (`10x Xenium`, `Vizgen MERSCOPE`).
    pub platform: String,
    /// Which files were read (the layout), e.g. `cells.parquet`.
    pub files: Vec<String>,
    /// Run metadata (software version, panel, pixel size in µm, ...), as text.
    pub metadata: Vec<(String, String)>,
    /// Feature kinds kept out of `X`, with how many features of each.
    pub controls: Vec<(String, usize)>,
    /// The images the folder holds for under the cells, one line each (name, file, size,
    /// pyramid levels, µm per pixel), or why one cannot be placed.
    pub images: Vec<String>,
}

impl VendorInfo {
    /// The metadata entry `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// One line per placed image: name, file (relative to `dir`), size and levels when it is an
/// OME-TIFF, µm per pixel.
pub(crate) fn image_lines(dir: &Path, images: &[VendorImage]) -> Vec<String> {
    images
        .iter()
        .map(|m| {
            let file = m
                .path
                .strip_prefix(dir)
                .unwrap_or(&m.path)
                .display()
                .to_string();
            let size = crate::data::ometiff::OmeTiff::open(&m.path)
                .map(|t| {
                    let l = &t.levels[0];
                    format!(
                        ", {} x {} px, {} level(s)",
                        l.width,
                        l.height,
                        t.levels.len()
                    )
                })
                .unwrap_or_default();
            format!("{}: {file}{size}, {} µm/px", m.name, m.microns_per_pixel)
        })
        .collect()
}

/// Puts the cell table's numeric columns into obs (except `skip` and columns with no value,
/// such as the post-processing tool's empty `fov`) and `(x, y)` into
/// `obsm['spatial']`, matching the table's `id` column to the obs names; cells keep the
/// matrix's order.
///
/// # Errors
/// A missing column, a non-numeric coordinate, a matrix cell without a table row.
pub(crate) fn attach_cells(
    adata: &mut AnnData,
    cells: &Table,
    id: &str,
    xy: [&str; 2],
    skip: &[&str],
) -> Result<()> {
    let ids = cells.text(id)?;
    let row_of: HashMap<&str, usize> = ids
        .iter()
        .enumerate()
        .map(|(r, s)| (s.as_str(), r))
        .collect();
    let rows: Vec<usize> = adata
        .obs
        .index
        .iter()
        .map(|c| {
            row_of.get(c.as_str()).copied().ok_or_else(|| {
                DataError::invalid(
                    &cells.path,
                    id,
                    format!(
                        "no row for cell {c:?} of the matrix {} (the cell table and the matrix \
                         must come from the same run)",
                        adata.source.display()
                    ),
                )
            })
        })
        .collect::<Result<_>>()?;
    let (x, y) = (cells.floats(xy[0])?, cells.floats(xy[1])?);
    let mut spatial = Array2::<f64>::zeros((rows.len(), 2));
    for (i, &r) in rows.iter().enumerate() {
        spatial[[i, 0]] = x[r];
        spatial[[i, 1]] = y[r];
    }
    adata.obsm.insert("spatial".into(), spatial);
    for name in &cells.names {
        let empty = cells.is_empty_column(name);
        if name == id || skip.contains(&name.as_str()) || empty || !cells.is_numeric(name) {
            continue;
        }
        let v = cells.floats(name)?;
        let col = if v
            .iter()
            .all(|f| f.fract() == 0.0 && f.abs() < 2f64.powi(53))
        {
            Column::Int(rows.iter().map(|&r| v[r] as i64).collect())
        } else {
            Column::Float(rows.iter().map(|&r| v[r]).collect())
        };
        adata.obs.columns.retain(|(n, _)| n != name);
        adata.obs.columns.push((name.clone(), col));
    }
    Ok(())
}

/// Reads an instrument's output of `kind` (a vendor kind of [`super::InputKind`]).
///
/// # Errors
/// The reader's; `kind` not a vendor kind.
pub fn read(path: &Path, kind: super::InputKind) -> Result<(AnnData, VendorInfo)> {
    use super::InputKind as K;
    match kind {
        K::Xenium => xenium::read_xenium(path),
        K::Merscope => merscope::read_merscope(path),
        K::Cosmx => cosmx::read_cosmx(path),
        K::SlideSeq => slideseq::read_slideseq(path),
        K::StereoSeq => stereoseq::read_gem(path, stereoseq::DEFAULT_BIN),
        K::H5ad | K::TenxH5 | K::Visium => Err(DataError::invalid(
            path,
            "/",
            "not an instrument's output folder",
        )),
    }
}

/// The one file in `dir` whose name ends with `suffix`.
///
/// # Errors
/// None or several.
pub(crate) fn one_ending(dir: &Path, suffix: &str, what: &str) -> Result<std::path::PathBuf> {
    let mut found: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| DataError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().ends_with(suffix))
        })
        .collect();
    found.sort();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(DataError::missing(
            dir,
            &format!("*{suffix}"),
            what.to_string(),
        )),
        _ => Err(DataError::invalid(
            dir,
            &format!("*{suffix}"),
            format!("several files match ({found:?}); keep one run per folder"),
        )),
    }
}

/// An [`AnnData`] of counts `x` (`cells x genes`) read from `source`, with no obs columns yet.
pub(crate) fn new_anndata(
    source: &Path,
    cells: Vec<String>,
    genes: Vec<String>,
    x: CsrMatrix,
) -> AnnData {
    let x_info = MatrixInfo {
        path: "X".into(),
        encoding: MatrixEncoding::Csr,
        dtype: "float32".into(),
        shape: (x.n_rows, x.n_cols),
        stored: x.nnz() as u64,
    };
    AnnData {
        source: source.to_path_buf(),
        obs: DataFrame {
            index: cells,
            columns: Vec::new(),
        },
        var: DataFrame {
            index: genes,
            columns: Vec::new(),
        },
        x: Matrix::Csr(x),
        x_loaded: true,
        x_info,
        obsm: BTreeMap::new(),
        layers: Vec::new(),
        raw: None,
        uns_colors: BTreeMap::new(),
        imputed_genes: Vec::new(),
        spatial_units: None,
    }
}

/// The file name of `p`, as text.
pub(crate) fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
