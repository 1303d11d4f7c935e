//! 10x Xenium Onboard Analysis output folders: `cell_feature_matrix.h5` (10x HDF5; else the
//! `cell_feature_matrix/` MEX folder), the cell
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

/// Whether `dir` looks like a Xenium output folder (a `cell_feature_matrix.h5` or
/// `cell_feature_matrix/` MEX folder, and a cell table).
pub fn is_xenium(dir: &Path) -> bool {
    let matrix = dir.join("cell_feature_matrix.h5").is_file()
        || crate::data::mex::is_mex(&dir.join("cell_feature_matrix"));
    matrix && CELL_TABLES.iter().any(|t| dir.join(t).is_file())
}

/// Reads a Xenium output folder; cells in the matrix's order, named by `cell_id`.
///
/// # Errors
/// A missing matrix or cell table, a malformed MEX folder, a cell of the matrix without a row
/// in the table, a non-numeric centroid, malformed `experiment.xenium` JSON.
pub fn read_xenium(dir: &Path) -> Result<(AnnData, VendorInfo)> {
    let h5 = dir.join("cell_feature_matrix.h5");
    let mex = dir.join("cell_feature_matrix");
    let (mut adata, types, matrix_file) = if h5.is_file() {
        let a = tenx::read_10x_h5(&h5, None)?;
        (a, tenx::feature_types(&h5)?, "cell_feature_matrix.h5")
    } else if crate::data::mex::is_mex(&mex) {
        let a = crate::data::mex::read_10x_mex(&mex)?;
        let [_, _, types] = crate::data::mex::features(&mex)?;
        (a, types, "cell_feature_matrix/")
    } else {
        return Err(DataError::missing(
            dir,
            "cell_feature_matrix.h5",
            "a Xenium folder holds cell_feature_matrix.h5 or the cell_feature_matrix/ MEX folder",
        ));
    };
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
        files: vec![matrix_file.into(), file_name(&table)],
        ..VendorInfo::default()
    };
    for t in types {
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
    info.images = match morphology(dir) {
        Ok(images) => super::image_lines(dir, &images),
        Err(e) => vec![format!("not placed: {e}")],
    };
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

/// The morphology images of a Xenium folder, placed in the cells' micron frame: Onboard
/// Analysis 2.x's `morphology_focus/morphology_focus_NNNN.ome.tif` (one per stain, named by
/// the OME-XML's channel name, DAPI first), else 1.x's `morphology_focus.ome.tif` and
/// `morphology_mip.ome.tif`. Pixel (0, 0) of the full-resolution level is the micron origin and
/// a pixel is `pixel_size` µm wide, as spatialdata-io places them (a scale, no translation);
/// the pixel size comes from the file's OME-XML, else `experiment.xenium`'s `pixel_size`.
/// Empty when the folder has no morphology image.
///
/// # Errors
/// An image that cannot be opened as a TIFF, or one whose pixel size neither its OME-XML nor an
/// `experiment.xenium` beside it gives ([`DataError::Missing`] naming the image).
pub fn morphology(dir: &Path) -> Result<Vec<super::VendorImage>> {
    let focus = dir.join("morphology_focus");
    let mut files: Vec<std::path::PathBuf> = match std::fs::read_dir(&focus) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| file_name(p).ends_with(".ome.tif"))
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    if files.is_empty() {
        files = ["morphology_focus.ome.tif", "morphology_mip.ome.tif"]
            .iter()
            .map(|f| dir.join(f))
            .filter(|p| p.is_file())
            .collect();
    }
    let experiment = dir.join("experiment.xenium");
    let run_pixel = if experiment.is_file() {
        read_experiment(&experiment)?
            .into_iter()
            .find(|(k, _)| k == "pixel_size")
            .and_then(|(_, v)| v.parse::<f64>().ok())
    } else {
        None
    };
    files
        .into_iter()
        .map(|path| {
            let tif = crate::data::ometiff::OmeTiff::open(&path)?;
            let microns_per_pixel =
                tif.pixel_size_um
                    .map(|p| p[0])
                    .or(run_pixel)
                    .ok_or_else(|| {
                        DataError::missing(
                            &path,
                            "OME-XML Pixels PhysicalSizeX",
                            "the pixel size in µm (in the image's OME-XML, or experiment.xenium's \
                     pixel_size beside it); without it the image cannot be placed under the cells",
                        )
                    })?;
            let stem = file_name(&path).trim_end_matches(".ome.tif").to_string();
            let name = match tif.channel {
                Some(c) if files_in_focus(&path) => c,
                _ => stem,
            };
            Ok(super::VendorImage {
                name,
                path,
                microns_per_pixel,
                origin: [0.0, 0.0],
            })
        })
        .collect()
}

/// Whether `path` is one of 2.x's per-stain files (inside `morphology_focus/`).
fn files_in_focus(path: &Path) -> bool {
    path.parent()
        .and_then(|p| p.file_name())
        .is_some_and(|n| n == "morphology_focus")
}
