//! Slide-seq / Slide-seqV2 as distributed for RCTD and read by squidpy: a count table
//! (`*DGE*.csv`, genes x beads with the beads as columns, or beads x genes) and the bead
//! locations (`*BeadLocations*.csv`: `barcodes`, `xcoord`, `ycoord`).
//!
//! Beads are the observations, in the count table's order; `(xcoord, ycoord)` in
//! `obsm['spatial']`, in the file's units.

use std::path::Path;

use super::counts::{Layout, read_counts};
use super::table::Table;
use super::{VendorInfo, attach_cells, file_name, new_anndata};
use crate::data::anndata::AnnData;
use crate::data::error::{DataError, Result};
use crate::data::matrix::CsrMatrix;

/// The file in `dir` whose name contains `part` (case-insensitive) and ends with `.csv`.
fn find(dir: &Path, part: &str) -> Option<std::path::PathBuf> {
    let mut found: Vec<_> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let n = file_name(p).to_lowercase();
            p.is_file() && n.contains(&part.to_lowercase()) && n.ends_with(".csv")
        })
        .collect();
    found.sort();
    (found.len() == 1).then(|| found.remove(0))
}

/// Whether `dir` holds one `*BeadLocations*.csv` and one `*DGE*.csv`.
pub fn is_slideseq(dir: &Path) -> bool {
    find(dir, "beadlocations").is_some() && find(dir, "dge").is_some()
}

/// Reads a Slide-seq folder.
///
/// # Errors
/// A missing count table or bead locations, a count that is not a non-negative number, a bead
/// without a location, a table whose rows and columns are neither genes x beads nor beads x genes.
pub fn read_slideseq(dir: &Path) -> Result<(AnnData, VendorInfo)> {
    let dge = find(dir, "dge")
        .ok_or_else(|| DataError::missing(dir, "*DGE*.csv", "one count table (genes x beads)"))?;
    let beads_path = find(dir, "beadlocations")
        .ok_or_else(|| DataError::missing(dir, "*BeadLocations*.csv", "one bead-location table"))?;
    let beads = Table::read(&beads_path)?;
    let bead_ids = beads.text("barcodes")?;
    let barcodes: std::collections::HashSet<&str> = bead_ids.iter().map(String::as_str).collect();
    let t = read_counts(
        &dge,
        &Layout {
            id_columns: 1,
            name: &|r| r[0].trim().to_string(),
            skip_row: &|_| false,
            is_control: &|_| false,
        },
    )?;
    let beads_are_columns = t
        .columns
        .iter()
        .filter(|c| barcodes.contains(c.as_str()))
        .count();
    let beads_are_rows = t
        .rows
        .iter()
        .filter(|c| barcodes.contains(c.as_str()))
        .count();
    let (cells, genes, x, layout) = if beads_are_columns > 0 && beads_are_columns >= beads_are_rows
    {
        // Genes x beads: its CSR is the CSC of beads x genes.
        let x = CsrMatrix::from_csc(
            t.columns.len(),
            t.rows.len(),
            &t.x.indptr,
            &t.x.indices,
            &t.x.data,
        );
        (t.columns, t.rows, x, "genes x beads")
    } else if beads_are_rows > 0 {
        (t.rows, t.columns, t.x, "beads x genes")
    } else {
        return Err(DataError::invalid(
            &dge,
            "header",
            format!(
                "neither its columns nor its rows are the bead barcodes of {}",
                beads_path.display()
            ),
        ));
    };
    let mut adata = new_anndata(&dge, cells, genes, x);
    attach_cells(
        &mut adata,
        &beads,
        "barcodes",
        ["xcoord", "ycoord"],
        &["xcoord", "ycoord"],
    )?;
    adata.source = dir.to_path_buf();
    let info = VendorInfo {
        platform: "Slide-seq".into(),
        files: vec![file_name(&dge), file_name(&beads_path)],
        metadata: vec![("layout".into(), layout.into())],
        controls: Vec::new(),
        images: Vec::new(),
    };
    Ok((adata, info))
}
