//! The instruments' cell tables (CSV, gzip-compressed CSV or parquet) as named text columns,
//! with typed accessors whose errors name the file, the column and the row.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::data::error::{DataError, Result};

/// A table read whole: column names and, per column, each row's value as text (parquet values
/// are formatted: integers as integers, floats in their shortest round-trip form, nulls empty).
#[derive(Debug, Clone)]
pub struct Table {
    /// The file it came from.
    pub path: PathBuf,
    /// Column names, in file order.
    pub names: Vec<String>,
    /// `columns[c][row]`.
    columns: Vec<Vec<String>>,
}

impl Table {
    /// Reads `path`: `.parquet`, `.csv.gz` or `.csv` (by its name). The first CSV line is the
    /// header; every line must have as many fields.
    ///
    /// # Errors
    /// An unreadable file, a malformed CSV line or parquet file.
    pub fn read(path: &Path) -> Result<Self> {
        let name = path.file_name().map(|n| n.to_string_lossy().to_lowercase());
        let name = name.unwrap_or_default();
        if name.ends_with(".parquet") {
            Self::read_parquet(path)
        } else {
            let f = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
            let reader: Box<dyn Read> = if name.ends_with(".gz") {
                Box::new(flate2::read::MultiGzDecoder::new(f))
            } else {
                Box::new(f)
            };
            Self::read_csv(path, reader)
        }
    }

    fn read_csv(path: &Path, reader: impl Read) -> Result<Self> {
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_reader(reader);
        let names: Vec<String> = rdr
            .headers()
            .map_err(|e| DataError::invalid(path, "header", e.to_string()))?
            .iter()
            .map(|s| s.trim().to_string())
            .collect();
        let mut columns = vec![Vec::new(); names.len()];
        for (k, rec) in rdr.records().enumerate() {
            let rec = rec
                .map_err(|e| DataError::invalid(path, &format!("line {}", k + 2), e.to_string()))?;
            for (col, v) in columns.iter_mut().zip(rec.iter()) {
                col.push(v.to_string());
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            names,
            columns,
        })
    }

    fn read_parquet(path: &Path) -> Result<Self> {
        use parquet::file::reader::{FileReader, SerializedFileReader};
        use parquet::record::Field;
        let bad = |m: String| DataError::invalid(path, "parquet", m);
        let f = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
        let reader =
            SerializedFileReader::new(f).map_err(|e| bad(format!("not a parquet file: {e}")))?;
        let names: Vec<String> = reader
            .metadata()
            .file_metadata()
            .schema_descr()
            .columns()
            .iter()
            .map(|c| c.name().to_string())
            .collect();
        let mut columns = vec![Vec::new(); names.len()];
        let rows = reader.get_row_iter(None).map_err(|e| bad(e.to_string()))?;
        for (i, row) in rows.enumerate() {
            let row = row.map_err(|e| bad(format!("row {i}: {e}")))?;
            for (c, (_, field)) in row.get_column_iter().enumerate() {
                let text = match field {
                    Field::Null => String::new(),
                    Field::Str(s) => s.clone(),
                    Field::Bytes(b) => String::from_utf8_lossy(b.data()).into_owned(),
                    Field::Double(v) => v.to_string(),
                    Field::Float(v) => v.to_string(),
                    other => other.to_string(),
                };
                if let Some(col) = columns.get_mut(c) {
                    col.push(text);
                }
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            names,
            columns,
        })
    }

    /// Adds (or replaces) column `name`.
    ///
    /// # Panics
    /// If `values` does not have one value per row.
    pub fn set_column(&mut self, name: &str, values: Vec<String>) {
        assert_eq!(values.len(), self.n_rows(), "one value per row");
        match self.names.iter().position(|n| n == name) {
            Some(c) => self.columns[c] = values,
            None => {
                self.names.push(name.to_string());
                self.columns.push(values);
            }
        }
    }

    /// Number of rows.
    pub fn n_rows(&self) -> usize {
        self.columns.first().map_or(0, Vec::len)
    }

    /// The values of column `name`.
    ///
    /// # Errors
    /// No such column (the message lists the columns found).
    pub fn text(&self, name: &str) -> Result<&[String]> {
        self.names
            .iter()
            .position(|n| n == name)
            .map(|c| self.columns[c].as_slice())
            .ok_or_else(|| {
                DataError::missing(
                    &self.path,
                    name,
                    format!("a column {name:?}; the columns are {:?}", self.names),
                )
            })
    }

    /// Column `name` as numbers; an empty value is NaN.
    ///
    /// # Errors
    /// No such column, or a value that is not a number.
    pub fn floats(&self, name: &str) -> Result<Vec<f64>> {
        self.text(name)?
            .iter()
            .enumerate()
            .map(|(row, v)| parse_float(v).ok_or_else(|| self.not_a_number(name, row, v)))
            .collect()
    }

    /// Whether every value of column `name` is a number or empty.
    pub fn is_numeric(&self, name: &str) -> bool {
        self.text(name)
            .is_ok_and(|v| v.iter().all(|s| parse_float(s).is_some()))
    }

    fn not_a_number(&self, name: &str, row: usize, v: &str) -> DataError {
        DataError::invalid(
            &self.path,
            &format!("column {name}, row {}", row + 1),
            format!("expected a number, found {v:?}"),
        )
    }
}

/// A decimal number, or NaN for an empty field.
fn parse_float(v: &str) -> Option<f64> {
    let v = v.trim();
    if v.is_empty() {
        Some(f64::NAN)
    } else {
        v.parse().ok()
    }
}
