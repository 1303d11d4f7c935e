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

use std::collections::BTreeMap;
use std::path::Path;

use ndarray::Array2;

use super::table::Table;
use super::{VendorInfo, attach_cells, one_ending};
use crate::data::anndata::{AnnData, MatrixEncoding, MatrixInfo};
use crate::data::dataframe::{Column, DataFrame};
use crate::data::error::{DataError, Result};
use crate::data::matrix::{CsrMatrix, Matrix};

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
    let counts = read_cell_by_gene(&counts_path)?;
    let layout = if counts.id_column.is_empty() {
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
    let n_genes = counts.genes.len();
    let x_info = MatrixInfo {
        path: "X".into(),
        encoding: MatrixEncoding::Csr,
        dtype: "float32".into(),
        shape: (counts.cells.len(), n_genes),
        stored: counts.x.nnz() as u64,
    };
    let mut adata = AnnData {
        source: counts_path.clone(),
        obs: DataFrame {
            index: counts.cells,
            columns: Vec::new(),
        },
        var: DataFrame {
            index: counts.genes,
            columns: Vec::new(),
        },
        x: Matrix::Csr(counts.x),
        x_loaded: true,
        x_info,
        obsm: BTreeMap::new(),
        layers: Vec::new(),
        raw: None,
        uns_colors: BTreeMap::new(),
        imputed_genes: Vec::new(),
    };
    attach_cells(
        &mut adata,
        &meta,
        &id,
        ["center_x", "center_y"],
        &["center_x", "center_y"],
    )?;
    let n_blank = counts.blanks.ncols();
    if n_blank > 0 {
        adata.obsm.insert("blank".into(), counts.blanks);
    }
    adata
        .obs
        .columns
        .push(("blank_counts".into(), Column::Float(counts.blank_totals)));
    adata.source = dir.to_path_buf();
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

/// `cell_by_gene.csv` split into genes and blanks.
struct CellByGene {
    /// The id column's header (empty in the instrument's layout).
    id_column: String,
    cells: Vec<String>,
    genes: Vec<String>,
    x: CsrMatrix,
    /// `(cells, blanks)`, the `Blank-*` columns.
    blanks: Array2<f64>,
    blank_totals: Vec<f64>,
}

fn read_cell_by_gene(path: &Path) -> Result<CellByGene> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_path(path)
        .map_err(|e| DataError::invalid(path, "header", e.to_string()))?;
    let header: Vec<String> = rdr
        .headers()
        .map_err(|e| DataError::invalid(path, "header", e.to_string()))?
        .iter()
        .map(|s| s.trim().to_string())
        .collect();
    let id_column = header.first().cloned().unwrap_or_default();
    if !(id_column.is_empty() || id_column == "cell") || header.len() < 2 {
        return Err(DataError::invalid(
            path,
            "header",
            format!(
                "starts {:?}; expected the cell id column (an empty field, or `cell`) then one \
                 column per gene",
                &header[..header.len().min(3)]
            ),
        ));
    }
    let is_blank: Vec<bool> = header[1..]
        .iter()
        .map(|g| g.starts_with("Blank-"))
        .collect();
    let genes: Vec<String> = header[1..]
        .iter()
        .zip(&is_blank)
        .filter(|(_, b)| !**b)
        .map(|(g, _)| g.clone())
        .collect();
    let n_blank = is_blank.iter().filter(|&&b| b).count();
    let (mut cells, mut blank_values) = (Vec::new(), Vec::new());
    let (mut indptr, mut indices, mut data) = (vec![0u64], Vec::new(), Vec::new());
    for (k, rec) in rdr.records().enumerate() {
        let line = k + 2;
        let rec =
            rec.map_err(|e| DataError::invalid(path, &format!("line {line}"), e.to_string()))?;
        cells.push(rec[0].to_string());
        let mut gene = 0u32;
        for (c, (v, &blank)) in rec.iter().skip(1).zip(&is_blank).enumerate() {
            let value = v
                .trim()
                .parse::<f32>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0);
            let value = value.ok_or_else(|| {
                DataError::invalid(
                    path,
                    &format!("line {line}, column {}", header[c + 1]),
                    format!("expected a non-negative count, found {v:?}"),
                )
            })?;
            if blank {
                blank_values.push(f64::from(value));
            } else {
                if value != 0.0 {
                    indices.push(gene);
                    data.push(value);
                }
                gene += 1;
            }
        }
        indptr.push(indices.len() as u64);
    }
    let n = cells.len();
    let blanks = Array2::from_shape_vec((n, n_blank), blank_values)
        .map_err(|e| DataError::invalid(path, "Blank columns", e.to_string()))?;
    let blank_totals = blanks.rows().into_iter().map(|r| r.sum()).collect();
    let x = CsrMatrix::new(n, genes.len(), indptr, indices, data)
        .map_err(|e| DataError::invalid(path, "counts", format!("{e:?}")))?;
    Ok(CellByGene {
        id_column,
        cells,
        genes,
        x,
        blanks,
        blank_totals,
    })
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
