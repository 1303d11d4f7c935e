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
use super::{VendorInfo, attach_cells, file_name, new_anndata, one_ending};
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
    };
    Ok((adata, info))
}
