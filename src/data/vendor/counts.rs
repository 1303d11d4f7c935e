//! Wide count tables (one row per cell or per gene, one column per gene or per cell), as
//! MERSCOPE, CosMx and Slide-seq write them, read into a sparse matrix with the control
//! features (blanks, negative probes) split off.

use std::path::Path;

use ndarray::Array2;

use crate::data::error::{DataError, Result};
use crate::data::matrix::CsrMatrix;

/// How a table's rows and leading columns are read.
pub(crate) struct Layout<'a> {
    /// Leading columns that are not counts (ids, FOV).
    pub id_columns: usize,
    /// The row's name from its record (its leading columns).
    pub name: &'a dyn Fn(&csv::StringRecord) -> String,
    /// Rows to leave out (CosMx's background `cell_ID` 0).
    pub skip_row: &'a dyn Fn(&csv::StringRecord) -> bool,
    /// Count columns kept out of the matrix (control features).
    pub is_control: &'a dyn Fn(&str) -> bool,
}

/// A count table: rows, count columns (controls apart), the matrix `rows x columns`.
pub(crate) struct Counts {
    /// The header's leading fields (the id columns' names).
    pub id_header: Vec<String>,
    /// Row names.
    pub rows: Vec<String>,
    /// Count columns that are features.
    pub columns: Vec<String>,
    /// `rows x columns`.
    pub x: CsrMatrix,
    /// Control columns' names.
    pub control_names: Vec<String>,
    /// `rows x controls`.
    pub controls: Array2<f64>,
}

impl Counts {
    /// Per-row sums of the control columns.
    pub fn control_totals(&self) -> Vec<f64> {
        self.controls.rows().into_iter().map(|r| r.sum()).collect()
    }
}

/// Reads a wide count table with a header line.
///
/// # Errors
/// An unreadable file, a header with no count column, a row of the wrong length, a count that
/// is not a finite non-negative number.
pub(crate) fn read_counts(path: &Path, layout: &Layout<'_>) -> Result<Counts> {
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
    if header.len() <= layout.id_columns {
        return Err(DataError::invalid(
            path,
            "header",
            format!(
                "{} columns; expected {} id column(s) then one column per feature",
                header.len(),
                layout.id_columns
            ),
        ));
    }
    let names = &header[layout.id_columns..];
    let control: Vec<bool> = names.iter().map(|g| (layout.is_control)(g)).collect();
    let pick = |want: bool| -> Vec<String> {
        names
            .iter()
            .zip(&control)
            .filter(|(_, c)| **c == want)
            .map(|(g, _)| g.clone())
            .collect()
    };
    let (columns, control_names) = (pick(false), pick(true));
    let (mut rows, mut control_values) = (Vec::new(), Vec::new());
    let (mut indptr, mut indices, mut data) = (vec![0u64], Vec::new(), Vec::new());
    for (k, rec) in rdr.records().enumerate() {
        let line = k + 2;
        let rec =
            rec.map_err(|e| DataError::invalid(path, &format!("line {line}"), e.to_string()))?;
        if (layout.skip_row)(&rec) {
            continue;
        }
        rows.push((layout.name)(&rec));
        let mut col = 0u32;
        for (c, (v, &is_control)) in rec.iter().skip(layout.id_columns).zip(&control).enumerate() {
            let value = v
                .trim()
                .parse::<f32>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0);
            let value = value.ok_or_else(|| {
                DataError::invalid(
                    path,
                    &format!("line {line}, column {}", names[c]),
                    format!("expected a non-negative count, found {v:?}"),
                )
            })?;
            if is_control {
                control_values.push(f64::from(value));
            } else {
                if value != 0.0 {
                    indices.push(col);
                    data.push(value);
                }
                col += 1;
            }
        }
        indptr.push(indices.len() as u64);
    }
    let n = rows.len();
    let controls = Array2::from_shape_vec((n, control_names.len()), control_values)
        .map_err(|e| DataError::invalid(path, "control columns", e.to_string()))?;
    let x = CsrMatrix::new(n, columns.len(), indptr, indices, data)
        .map_err(|e| DataError::invalid(path, "counts", format!("{e:?}")))?;
    Ok(Counts {
        id_header: header[..layout.id_columns].to_vec(),
        rows,
        columns,
        x,
        control_names,
        controls,
    })
}
