//! Readers of the instruments' own output folders: 10x Xenium and Vizgen MERSCOPE (both of
//! its layouts). Each gives an [`AnnData`] as the Python readers do (spatialdata-io, squidpy):
//! cells in the matrix's order named by the vendor's cell ids, genes only in `X` (control
//! probes, codewords and blanks kept apart and counted), the cell table's numeric columns in
//! obs and the centroids in µm in `obsm['spatial']`; plus a [`VendorInfo`] of what was found.

pub mod merscope;
pub mod table;
pub mod xenium;

use std::collections::HashMap;
use std::path::Path;

use ndarray::Array2;

use super::anndata::AnnData;
use super::dataframe::Column;
use super::error::{DataError, Result};
use table::Table;

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
        let empty = cells.text(name)?.iter().all(|v| v.trim().is_empty());
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
