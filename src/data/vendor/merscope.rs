//! Vizgen MERSCOPE output folders, both layouts:
//! - the instrument's (older): `<run>_cell_by_gene.csv` whose first header field is empty
//!   (the cell id column), `<run>_cell_metadata.csv` with an unnamed id column;
//! - the post-processing tool's: `cell_by_gene.csv` with first column `cell`,
//!   `cell_metadata.csv` with `EntityID`.
//!
//! Both have `center_x`, `center_y` (µm) and further per-cell columns (`fov`, `volume`,
//! bounding box, ...). As spatialdata-io's `merscope()`: the `Blank-*` codewords are kept out
//! of `X`, in `obsm['blank']` (cells x blanks, in file order), and counted in
//! [`VendorInfo::controls`]; the centres go to `obsm['spatial']`, the other numeric metadata to
//! obs.

use std::path::Path;

use super::counts::{Layout, read_counts};
use super::table::Table;
use super::{VendorImage, VendorInfo, attach_cells, file_name, new_anndata, one_ending};
use crate::data::anndata::AnnData;
use crate::data::dataframe::Column;
use crate::data::error::{DataError, Result};

/// Whether `dir` looks like a MERSCOPE output folder (one `*cell_by_gene.csv`).
pub fn is_merscope(dir: &Path) -> bool {
    one_ending(dir, "cell_by_gene.csv", "").is_ok()
}

/// Reads a MERSCOPE output folder (either layout); cells in `cell_by_gene.csv`'s order.
///
/// # Errors
/// A missing or ambiguous `*cell_by_gene.csv` / `*cell_metadata.csv`, a header that is neither
/// layout's, a count that is not a non-negative number, a cell without metadata.
pub fn read_merscope(dir: &Path) -> Result<(AnnData, VendorInfo)> {
    let counts_path = one_ending(
        dir,
        "cell_by_gene.csv",
        "the cell-by-gene counts (*cell_by_gene.csv)",
    )?;
    let meta_path = one_ending(
        dir,
        "cell_metadata.csv",
        "the cell metadata (*cell_metadata.csv)",
    )?;
    let counts = read_counts(
        &counts_path,
        &Layout {
            id_columns: 1,
            name: &|r| r[0].to_string(),
            skip_row: &|_| false,
            is_control: &|g| g.starts_with("Blank-"),
        },
    )?;
    let id_column = &counts.id_header[0];
    if !(id_column.is_empty() || id_column == "cell") {
        return Err(DataError::invalid(
            &counts_path,
            "header",
            format!(
                "starts {id_column:?}; expected the cell id column (an empty field, or `cell`) \
                 then one column per gene"
            ),
        ));
    }
    let layout = if id_column.is_empty() {
        "instrument (unnamed id column)"
    } else {
        "post-processing tool (EntityID)"
    };
    let meta = Table::read(&meta_path)?;
    let id = meta
        .names
        .first()
        .cloned()
        .filter(|n| n.is_empty() || n == "EntityID")
        .ok_or_else(|| {
            DataError::invalid(
                &meta_path,
                "header",
                format!(
                    "the first column is {:?}; expected the cell id column (unnamed, or EntityID)",
                    meta.names.first()
                ),
            )
        })?;
    let blank_totals = counts.control_totals();
    let mut adata = new_anndata(&counts_path, counts.rows, counts.columns, counts.x);
    attach_cells(
        &mut adata,
        &meta,
        &id,
        ["center_x", "center_y"],
        &["center_x", "center_y"],
    )?;
    let n_blank = counts.controls.ncols();
    if n_blank > 0 {
        adata.obsm.insert("blank".into(), counts.controls);
    }
    adata
        .obs
        .columns
        .push(("blank_counts".into(), Column::Float(blank_totals)));
    adata.source = dir.to_path_buf();
    adata.spatial_units = Some("µm".into());
    let info = VendorInfo {
        platform: "Vizgen MERSCOPE".into(),
        files: vec![file_name(&counts_path), file_name(&meta_path)],
        metadata: vec![("layout".into(), layout.into())],
        controls: if n_blank > 0 {
            vec![("Blank codeword".into(), n_blank)]
        } else {
            Vec::new()
        },
        images: match mosaics(dir) {
            Ok(m) => super::image_lines(dir, &m),
            Err(e) => vec![format!("not placed: {e}")],
        },
    };
    Ok((adata, info))
}

/// The mosaic to show under a MERSCOPE run's cells by default: of [`mosaics`], the first
/// DAPI one, else the first. `None` when the folder has no `images/` mosaic.
///
/// # Errors
/// See [`mosaics`].
pub fn mosaic(dir: &Path) -> Result<Option<VendorImage>> {
    let all = mosaics(dir)?;
    let dapi = all.iter().position(|m| m.name.starts_with("DAPI"));
    Ok(all.into_iter().nth(dapi.unwrap_or(0)))
}

/// Every mosaic in `images/` (`mosaic_<stain>_z<plane>.tif`, by file name), each placed by
/// `micron_to_mosaic_pixel_transform.csv` (the instrument's affine `pixel = s * micron + t`)
/// when present, else by `manifest.json` (`bbox_microns` over `mosaic_width_pixels`).
///
/// # Errors
/// A transform or manifest that cannot be read or is not an axis-aligned scale and shift.
pub fn mosaics(dir: &Path) -> Result<Vec<VendorImage>> {
    let images = dir.join("images");
    let Ok(entries) = std::fs::read_dir(&images) else {
        return Ok(Vec::new());
    };
    let mut tifs: Vec<std::path::PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let n = file_name(p);
            n.starts_with("mosaic_") && (n.ends_with(".tif") || n.ends_with(".tiff"))
        })
        .collect();
    if tifs.is_empty() {
        return Ok(Vec::new());
    }
    tifs.sort();
    let transform = images.join("micron_to_mosaic_pixel_transform.csv");
    let (microns_per_pixel, origin) = if transform.is_file() {
        read_transform(&transform)?
    } else {
        read_manifest(&images.join("manifest.json"))?
    };
    Ok(tifs
        .into_iter()
        .map(|path| {
            let n = file_name(&path);
            let stem = n
                .trim_start_matches("mosaic_")
                .split('.')
                .next()
                .unwrap_or_default();
            VendorImage {
                name: stem.replace('_', " "),
                path,
                microns_per_pixel,
                origin,
            }
        })
        .collect())
}

/// `(microns per pixel, origin)` from the 3 x 3 micron-to-pixel affine (whitespace-separated).
fn read_transform(path: &Path) -> Result<(f64, [f64; 2])> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    let m: Vec<f64> = text
        .split_whitespace()
        .map(str::parse)
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| DataError::invalid(path, "transform", format!("not numbers: {e}")))?;
    let ok = m.len() == 9
        && m[0] > 0.0
        && (m[0] - m[4]).abs() <= 1e-9 * m[0]
        && m[1] == 0.0
        && m[3] == 0.0;
    if !ok {
        return Err(DataError::invalid(
            path,
            "transform",
            format!(
                "expected a 3 x 3 scale-and-shift matrix (equal scales, no rotation), found {m:?}"
            ),
        ));
    }
    Ok((1.0 / m[0], [-m[2] / m[0], -m[5] / m[4]]))
}

/// `(microns per pixel, origin)` from `manifest.json`'s `bbox_microns` and mosaic size.
fn read_manifest(path: &Path) -> Result<(f64, [f64; 2])> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| DataError::invalid(path, "manifest.json", format!("not JSON: {e}")))?;
    let bbox: Option<Vec<f64>> = v["bbox_microns"]
        .as_array()
        .map(|a| a.iter().filter_map(serde_json::Value::as_f64).collect());
    match (bbox, v["mosaic_width_pixels"].as_f64()) {
        (Some(b), Some(w)) if b.len() == 4 && w > 0.0 && b[2] > b[0] => {
            Ok(((b[2] - b[0]) / w, [b[0], b[1]]))
        }
        _ => Err(DataError::invalid(
            path,
            "bbox_microns",
            "expected bbox_microns [x0, y0, x1, y1] and mosaic_width_pixels",
        )),
    }
}
