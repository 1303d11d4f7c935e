//! NanoString CosMx SMI flat files: `<run>_exprMat_file.csv` (`fov`, `cell_ID`, one column per
//! target; `cell_ID` 0 is each FOV's background, left out), `<run>_metadata_file.csv`
//! (`CenterX_global_px`, `CenterY_global_px`, areas, stain intensities), optionally
//! `*_fov_positions_file.csv` and `*-polygons.csv`.
//!
//! As squidpy's `read.nanostring`: cells named `<cell_ID>_<fov>`; the `NegPrb*` negative probes
//! kept out of `X` (in `obsm['negprobes']` and `obs['negprobe_counts']`); the global centres,
//! in pixels, in `obsm['spatial']`.

use std::path::Path;

use super::counts::{Layout, read_counts};
use super::table::Table;
use super::{VendorInfo, attach_cells, file_name, new_anndata, one_ending};
use crate::data::anndata::AnnData;
use crate::data::dataframe::Column;
use crate::data::error::{DataError, Result};

/// Whether `dir` looks like a CosMx flat-file export (one `*_exprMat_file.csv`).
pub fn is_cosmx(dir: &Path) -> bool {
    one_ending(dir, "_exprMat_file.csv", "").is_ok()
}

/// Reads a CosMx flat-file folder; cells in the expression matrix's order.
///
/// # Errors
/// A missing or ambiguous matrix or metadata file, a header without `fov` and `cell_ID`, a count
/// that is not a non-negative number, a cell without metadata.
pub fn read_cosmx(dir: &Path) -> Result<(AnnData, VendorInfo)> {
    let expr = one_ending(
        dir,
        "_exprMat_file.csv",
        "the expression matrix (*_exprMat_file.csv)",
    )?;
    let meta_path = one_ending(
        dir,
        "_metadata_file.csv",
        "the cell metadata (*_metadata_file.csv)",
    )?;
    let counts = read_counts(
        &expr,
        &Layout {
            id_columns: 2,
            name: &|r| format!("{}_{}", r[1].trim(), r[0].trim()),
            skip_row: &|r| r[1].trim() == "0",
            is_control: &|g| g.starts_with("NegPrb"),
        },
    )?;
    if counts.id_header != ["fov", "cell_ID"] {
        return Err(DataError::invalid(
            &expr,
            "header",
            format!(
                "starts {:?}; expected \"fov\", \"cell_ID\", then one column per target",
                counts.id_header
            ),
        ));
    }
    let mut meta = Table::read(&meta_path)?;
    let ids: Vec<String> = meta
        .text("cell_ID")?
        .iter()
        .zip(meta.text("fov")?.iter())
        .map(|(c, f)| format!("{}_{}", c.trim(), f.trim()))
        .collect();
    meta.set_column("cellscope_cell", ids);
    let totals = counts.control_totals();
    let n_neg = counts.control_names.len();
    let mut adata = new_anndata(&expr, counts.rows, counts.columns, counts.x);
    attach_cells(
        &mut adata,
        &meta,
        "cellscope_cell",
        ["CenterX_global_px", "CenterY_global_px"],
        &["CenterX_global_px", "CenterY_global_px"],
    )?;
    if n_neg > 0 {
        adata.obsm.insert("negprobes".into(), counts.controls);
    }
    adata
        .obs
        .columns
        .push(("negprobe_counts".into(), Column::Float(totals)));
    adata.source = dir.to_path_buf();
    adata.spatial_units = Some("px".into());
    let mut files = vec![file_name(&expr), file_name(&meta_path)];
    files.extend(
        one_ending(dir, "_fov_positions_file.csv", "")
            .ok()
            .map(|p| file_name(&p)),
    );
    let info = VendorInfo {
        platform: "NanoString CosMx SMI".into(),
        files,
        metadata: vec![("spatial_units".into(), "pixels (global)".into())],
        controls: if n_neg > 0 {
            vec![("Negative probe".into(), n_neg)]
        } else {
            Vec::new()
        },
        images: Vec::new(),
    };
    Ok((adata, info))
}
