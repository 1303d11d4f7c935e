//! 10x Xenium Onboard Analysis output folders: `cell_feature_matrix.h5` (10x HDF5), the cell
//! table `cells.parquet` / `cells.csv.gz` (`cell_id`, `x_centroid`, `y_centroid` in µm, counts,
//! areas) and, when present, the run metadata `experiment.xenium` (JSON).
//!
//! As spatialdata-io's `xenium()` and scanpy's 10x reader: only `Gene Expression` features in
//! `X` (negative control probes and codewords are counted in [`VendorInfo::controls`]; the
//! cell table's per-cell control counts stay in obs), the centroids in `obsm['spatial']` and
//! not in obs.

use std::path::Path;

use super::table::Table;
use super::{VendorInfo, attach_cells, file_name};
use crate::data::anndata::AnnData;
use crate::data::error::{DataError, Result};
use crate::data::tenx;

/// The cell tables a Xenium folder may hold, preferred first.
const CELL_TABLES: [&str; 3] = ["cells.parquet", "cells.csv.gz", "cells.csv"];

/// Whether `dir` looks like a Xenium output folder (a `cell_feature_matrix.h5` and a cell table).
pub fn is_xenium(dir: &Path) -> bool {
    dir.join("cell_feature_matrix.h5").is_file()
        && CELL_TABLES.iter().any(|t| dir.join(t).is_file())
}

/// Reads a Xenium output folder; cells in the matrix's order, named by `cell_id`.
///
/// # Errors
/// A missing matrix or cell table, a cell of the matrix without a row in the table, a
/// non-numeric centroid, malformed `experiment.xenium` JSON.
pub fn read_xenium(dir: &Path) -> Result<(AnnData, VendorInfo)> {
    let h5 = dir.join("cell_feature_matrix.h5");
    if !h5.is_file() {
        return Err(DataError::missing(
            dir,
            "cell_feature_matrix.h5",
            "a Xenium folder holds cell_feature_matrix.h5 (the cell-feature matrix)",
        ));
    }
    let mut adata = tenx::read_10x_h5(&h5, None)?;
    let table = CELL_TABLES
        .iter()
        .map(|t| dir.join(t))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            DataError::missing(
                dir,
                "cells.parquet",
                "the cell table (cells.parquet or cells.csv.gz)",
            )
        })?;
    let cells = Table::read(&table)?;
    attach_cells(
        &mut adata,
        &cells,
        "cell_id",
        ["x_centroid", "y_centroid"],
        &["x_centroid", "y_centroid"],
    )?;
    let mut info = VendorInfo {
        platform: "10x Xenium".into(),
        files: vec!["cell_feature_matrix.h5".into(), file_name(&table)],
        ..VendorInfo::default()
    };
    for t in tenx::feature_types(&h5)? {
        if t == "Gene Expression" {
            continue;
        }
        match info.controls.iter_mut().find(|(k, _)| *k == t) {
            Some((_, n)) => *n += 1,
            None => info.controls.push((t, 1)),
        }
    }
    let experiment = dir.join("experiment.xenium");
    if experiment.is_file() {
        info.metadata = read_experiment(&experiment)?;
        info.files.push("experiment.xenium".into());
    }
    adata.source = dir.to_path_buf();
    adata.spatial_units = Some("µm".into());
    Ok((adata, info))
}

/// The top-level scalar entries of `experiment.xenium` (run, panel, `pixel_size` in µm,
/// software versions), as text, sorted by key.
///
/// # Errors
/// An unreadable file or one that is not a JSON object.
pub fn read_experiment(path: &Path) -> Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| DataError::invalid(path, "experiment.xenium", format!("not JSON: {e}")))?;
    let obj = v.as_object().ok_or_else(|| {
        DataError::invalid(
            path,
            "experiment.xenium",
            "expected a JSON object of run metadata",
        )
    })?;
    Ok(obj
        .iter()
        .filter_map(|(k, v)| {
            let text = match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                _ => return None,
            };
            Some((k.clone(), text))
        })
        .collect())
}
