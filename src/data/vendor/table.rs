//! The instruments' cell tables (CSV, gzip-compressed CSV or parquet) as named columns, with
//! typed accessors whose errors name the file, the column and the row. Parquet columns are read
//! column by column into numbers or text as stored; CSV fields stay text until asked for.

use std::borrow::Cow;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::data::error::{DataError, Result};

/// One column's values.
#[derive(Debug, Clone)]
enum Values {
    /// Text (CSV fields, parquet strings and bytes); an empty field is a missing value.
    Text(Vec<String>),
    /// Parquet integers without missing values.
    Int(Vec<i64>),
    /// Parquet floats, or integers with missing values (NaN).
    Float(Vec<f64>),
}

impl Values {
    fn len(&self) -> usize {
        match self {
            Self::Text(v) => v.len(),
            Self::Int(v) => v.len(),
            Self::Float(v) => v.len(),
        }
    }
}

/// A table read whole: column names and their values.
#[derive(Debug, Clone)]
pub struct Table {
    /// The file it came from.
    pub path: PathBuf,
    /// Column names, in file order.
    pub names: Vec<String>,
    /// `columns[c]`.
    columns: Vec<Values>,
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
            columns: columns.into_iter().map(Values::Text).collect(),
        })
    }

    fn read_parquet(path: &Path) -> Result<Self> {
        use parquet::file::reader::{FileReader, SerializedFileReader};
        let bad = |m: String| DataError::invalid(path, "parquet", m);
        let f = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
        let reader =
            SerializedFileReader::new(f).map_err(|e| bad(format!("not a parquet file: {e}")))?;
        let schema = reader.metadata().file_metadata().schema_descr_ptr();
        let names: Vec<String> = schema
            .columns()
            .iter()
            .map(|c| c.name().to_string())
            .collect();
        let mut columns: Vec<Option<Values>> = vec![None; names.len()];
        for g in 0..reader.num_row_groups() {
            let group = reader.get_row_group(g).map_err(|e| bad(e.to_string()))?;
            let rows = group.metadata().num_rows().max(0) as usize;
            for (c, col) in columns.iter_mut().enumerate() {
                let what = |e: parquet::errors::ParquetError| {
                    DataError::invalid(path, &format!("column {}", names[c]), e.to_string())
                };
                let descr = schema.column(c);
                if descr.max_rep_level() > 0 {
                    let m = "a nested (repeated) column; a cell table has flat columns".to_string();
                    return Err(DataError::invalid(path, &format!("column {}", names[c]), m));
                }
                let r = group.get_column_reader(c).map_err(what)?;
                parquet_column::read(r, rows, descr.max_def_level(), col).map_err(what)?;
            }
        }
        let columns = columns
            .into_iter()
            .map(|c| c.unwrap_or(Values::Text(Vec::new())))
            .collect();
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
            Some(c) => self.columns[c] = Values::Text(values),
            None => {
                self.names.push(name.to_string());
                self.columns.push(Values::Text(values));
            }
        }
    }

    /// Number of rows.
    pub fn n_rows(&self) -> usize {
        self.columns.first().map_or(0, Values::len)
    }

    fn column(&self, name: &str) -> Result<&Values> {
        self.names
            .iter()
            .position(|n| n == name)
            .map(|c| &self.columns[c])
            .ok_or_else(|| {
                DataError::missing(
                    &self.path,
                    name,
                    format!("a column {name:?}; the columns are {:?}", self.names),
                )
            })
    }

    /// The values of column `name` as text: numbers formatted (integers as integers, floats in
    /// their shortest round-trip form, missing values empty).
    ///
    /// # Errors
    /// No such column (the message lists the columns found).
    pub fn text(&self, name: &str) -> Result<Cow<'_, [String]>> {
        Ok(match self.column(name)? {
            Values::Text(v) => Cow::Borrowed(v.as_slice()),
            Values::Int(v) => Cow::Owned(v.iter().map(i64::to_string).collect()),
            Values::Float(v) => Cow::Owned(
                v.iter()
                    .map(|x| {
                        if x.is_nan() {
                            String::new()
                        } else {
                            x.to_string()
                        }
                    })
                    .collect(),
            ),
        })
    }

    /// Column `name` as numbers; an empty value is NaN.
    ///
    /// # Errors
    /// No such column, or a value that is not a number.
    pub fn floats(&self, name: &str) -> Result<Vec<f64>> {
        match self.column(name)? {
            Values::Text(v) => v
                .iter()
                .enumerate()
                .map(|(row, s)| parse_float(s).ok_or_else(|| self.not_a_number(name, row, s)))
                .collect(),
            Values::Int(v) => Ok(v.iter().map(|&x| x as f64).collect()),
            Values::Float(v) => Ok(v.clone()),
        }
    }

    /// Whether every value of column `name` is a number or empty.
    pub fn is_numeric(&self, name: &str) -> bool {
        match self.column(name) {
            Ok(Values::Text(v)) => v.iter().all(|s| parse_float(s).is_some()),
            Ok(_) => true,
            Err(_) => false,
        }
    }

    /// Whether every value of column `name` is missing (empty text or NaN).
    pub fn is_empty_column(&self, name: &str) -> bool {
        match self.column(name) {
            Ok(Values::Text(v)) => v.iter().all(|s| s.trim().is_empty()),
            Ok(Values::Float(v)) => v.iter().all(|x| x.is_nan()),
            Ok(Values::Int(v)) => v.is_empty(),
            Err(_) => false,
        }
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

/// Typed parquet column reading into [`Values`].
mod parquet_column {
    use parquet::column::reader::{ColumnReader, ColumnReaderImpl};
    use parquet::data_type::DataType;
    use parquet::errors::{ParquetError, Result};

    use super::Values;

    /// Reads `rows` records of one flat column, calling `push` with each value (`None` where
    /// missing).
    fn each<T: DataType>(
        r: &mut ColumnReaderImpl<T>,
        rows: usize,
        max_def: i16,
        mut push: impl FnMut(Option<&T::T>),
    ) -> Result<()> {
        let mut done = 0;
        while done < rows {
            let (mut defs, mut vals) = (Vec::new(), Vec::new());
            let levels = (max_def > 0).then_some(&mut defs);
            let (records, _, _) = r.read_records(rows - done, levels, None, &mut vals)?;
            if records == 0 {
                let m = format!("the column ends after {done} of {rows} rows");
                return Err(ParquetError::General(m));
            }
            if max_def == 0 {
                vals.iter().for_each(|v| push(Some(v)));
            } else {
                let mut it = vals.iter();
                for &d in &defs {
                    push(if d == max_def { it.next() } else { None });
                }
            }
            done += records;
        }
        Ok(())
    }

    /// Appends a row group's `rows` values of column reader `r` to `col` (created on the first
    /// group from the column's type).
    pub(super) fn read(
        r: ColumnReader,
        rows: usize,
        max_def: i16,
        col: &mut Option<Values>,
    ) -> Result<()> {
        let nan = f64::NAN;
        let mut ints: Vec<Option<i64>> = Vec::with_capacity(rows);
        let mut floats: Vec<f64> = Vec::with_capacity(rows);
        let mut text: Vec<String> = Vec::new();
        let mut bytes = |v: Option<&[u8]>| {
            text.push(
                v.map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default(),
            );
        };
        match r {
            ColumnReader::Int32ColumnReader(mut r) => {
                each(&mut r, rows, max_def, |v| {
                    ints.push(v.map(|&x| i64::from(x)))
                })?;
            }
            ColumnReader::Int64ColumnReader(mut r) => {
                each(&mut r, rows, max_def, |v| ints.push(v.copied()))?;
            }
            ColumnReader::BoolColumnReader(mut r) => {
                each(&mut r, rows, max_def, |v| {
                    ints.push(v.map(|&b| i64::from(b)))
                })?;
            }
            ColumnReader::FloatColumnReader(mut r) => {
                each(&mut r, rows, max_def, |v| {
                    floats.push(v.map_or(nan, |&x| f64::from(x)))
                })?;
            }
            ColumnReader::DoubleColumnReader(mut r) => {
                each(&mut r, rows, max_def, |v| {
                    floats.push(v.copied().unwrap_or(nan))
                })?;
            }
            ColumnReader::ByteArrayColumnReader(mut r) => {
                each(&mut r, rows, max_def, |v| bytes(v.map(|b| b.data())))?;
                append(col, Values::Text(text));
                return Ok(());
            }
            ColumnReader::FixedLenByteArrayColumnReader(mut r) => {
                each(&mut r, rows, max_def, |v| bytes(v.map(|b| b.data())))?;
                append(col, Values::Text(text));
                return Ok(());
            }
            ColumnReader::Int96ColumnReader(_) => {
                return Err(ParquetError::General(
                    "INT96 (timestamps) is not read".into(),
                ));
            }
        }
        let part = if ints.len() < floats.len() || (ints.is_empty() && floats.is_empty()) {
            Values::Float(floats)
        } else if ints.iter().all(Option::is_some) {
            Values::Int(ints.into_iter().flatten().collect())
        } else {
            Values::Float(
                ints.into_iter()
                    .map(|v| v.map_or(nan, |x| x as f64))
                    .collect(),
            )
        };
        append(col, part);
        Ok(())
    }

    /// Appends a row group's values to the column read so far.
    fn append(col: &mut Option<Values>, part: Values) {
        *col = Some(match (col.take(), part) {
            (None, p) => p,
            (Some(Values::Text(mut a)), Values::Text(b)) => {
                a.extend(b);
                Values::Text(a)
            }
            (Some(Values::Int(mut a)), Values::Int(b)) => {
                a.extend(b);
                Values::Int(a)
            }
            (Some(a), b) => Values::Float(floats_of(a).into_iter().chain(floats_of(b)).collect()),
        });
    }

    /// A numeric column's values as floats (text: NaN; never reached for text columns, whose
    /// type does not change between row groups).
    fn floats_of(v: Values) -> Vec<f64> {
        match v {
            Values::Int(v) => v.into_iter().map(|x| x as f64).collect(),
            Values::Float(v) => v,
            Values::Text(v) => v.iter().map(|_| f64::NAN).collect(),
        }
    }
}
