//! Reading AnnData `.h5ad` files: the current on-disk specification (`encoding-type` /
//! `encoding-version` attributes, anndata >= 0.8) and the legacy layouts (anndata 0.7's
//! `__categories` and `h5sparse_format`; pre-0.7 compound `obs`/`var`/`obsm` datasets with
//! categories in `uns/<key>_categories`).
//!
//! Reference: anndata's "On-disk format" documentation (`anndata/_io/specs`).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use hdf5::types::TypeDescriptor;
use hdf5::{Dataset, File, Group, LocationType};
use ndarray::Array2;

use super::anndata::{AnnData, MatrixEncoding, MatrixInfo, RawInfo};
use super::dataframe::{Column, DataFrame};
use super::error::{DataError, Result};
use super::fastread;
use super::h5util::{
    CompoundColumn, attr_bool, attr_i64s, attr_string, attr_strings, is_string_type, member_kind,
    read_compound, read_strings,
};
use super::matrix::{CsrMatrix, Matrix, validate_compressed};

/// Applies a nullable array's mask (`true` = missing).
fn masked<T>(values: Vec<T>, mask: Vec<bool>) -> Vec<Option<T>> {
    values
        .into_iter()
        .zip(mask)
        .map(|(v, m)| (!m).then_some(v))
        .collect()
}

/// Values read per HDF5 call when converting index arrays block by block.
const INDEX_BLOCK: usize = 1 << 22;

/// An open `.h5ad` file, read element by element (nothing is loaded until asked for).
pub struct H5adReader {
    path: PathBuf,
    file: File,
}

/// Opens an HDF5 file for reading, turning the library's error into a message about the file.
///
/// # Errors
/// [`DataError::Open`] when the file is missing, unreadable, truncated or not HDF5.
pub fn open_hdf5(path: &Path) -> Result<File> {
    if !path.is_file() {
        return Err(DataError::Open {
            file: path.to_path_buf(),
            reason: "no such file".into(),
        });
    }
    super::h5util::open_read(path).map_err(|e| DataError::Open {
        file: path.to_path_buf(),
        reason: format!("not a readable HDF5 file (truncated or another format?): {e}"),
    })
}

fn numpy_dtype(t: &TypeDescriptor) -> Option<String> {
    Some(match t {
        TypeDescriptor::Float(s) => format!("float{}", *s as usize * 8),
        TypeDescriptor::Integer(s) => format!("int{}", *s as usize * 8),
        TypeDescriptor::Unsigned(s) => format!("uint{}", *s as usize * 8),
        TypeDescriptor::Boolean => "bool".into(),
        _ => return None,
    })
}

impl H5adReader {
    /// Opens the file.
    ///
    /// # Errors
    /// [`DataError::Open`] when it is not a readable HDF5 file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = open_hdf5(&path)?;
        Ok(Self { path, file })
    }

    /// The file path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The underlying HDF5 file.
    pub fn file(&self) -> &File {
        &self.file
    }

    fn h5err(&self, path: &str) -> impl FnOnce(hdf5::Error) -> DataError + '_ {
        let p = path.to_string();
        move |e| DataError::hdf5(&self.path, &p, e)
    }

    fn fast_err(&self, path: &str, e: fastread::FastReadError) -> DataError {
        match e {
            fastread::FastReadError::OutOfRange { at } => DataError::invalid(
                &self.path,
                path,
                format!("value at position {at} is negative or out of range for its kind"),
            ),
            fastread::FastReadError::Corrupt(m) => DataError::invalid(&self.path, path, m),
        }
    }

    fn group(&self, path: &str) -> Result<Group> {
        self.file.group(path).map_err(self.h5err(path))
    }

    fn dataset(&self, path: &str) -> Result<Dataset> {
        self.file.dataset(path).map_err(self.h5err(path))
    }

    fn kind(&self, path: &str) -> Option<LocationType> {
        // `link_exists` on a nested path needs every parent to exist.
        let mut parent = String::new();
        for part in path.split('/') {
            let here = if parent.is_empty() {
                part.to_string()
            } else {
                format!("{parent}/{part}")
            };
            if !self.file.link_exists(&here) {
                return None;
            }
            parent = here;
        }
        self.file.loc_type_by_name(path).ok()
    }

    // ----------------------------------------------------------------------------------------
    // Data frames
    // ----------------------------------------------------------------------------------------

    /// Reads `obs`.
    ///
    /// # Errors
    /// Missing or malformed `obs` (index, a column's dtype or length, categorical codes).
    pub fn read_obs(&self) -> Result<DataFrame> {
        self.read_dataframe("obs")
    }

    /// Reads `var`.
    ///
    /// # Errors
    /// As [`Self::read_obs`].
    pub fn read_var(&self) -> Result<DataFrame> {
        self.read_dataframe("var")
    }

    /// Reads a data frame element (`obs`, `var`, `raw/var`, legacy `raw.var`).
    ///
    /// # Errors
    /// Missing element, malformed index or column.
    pub fn read_dataframe(&self, path: &str) -> Result<DataFrame> {
        match self.kind(path) {
            None => Err(DataError::missing(
                &self.path,
                path,
                "a data frame (group with _index, or legacy compound dataset)",
            )),
            Some(LocationType::Dataset) => self.read_compound_dataframe(path),
            Some(_) => self.read_group_dataframe(path),
        }
    }

    fn read_group_dataframe(&self, path: &str) -> Result<DataFrame> {
        let g = self.group(path)?;
        if let Some(enc) = attr_string(&g, "encoding-type")
            && enc != "dataframe"
        {
            return Err(DataError::invalid(
                &self.path,
                path,
                format!("encoding-type is {enc:?}, expected \"dataframe\""),
            ));
        }
        let index_name = attr_string(&g, "_index").unwrap_or_else(|| "_index".to_string());
        let index_path = format!("{path}/{index_name}");
        let index_ds = self.dataset(&index_path)?;
        if index_ds.ndim() != 1 {
            return Err(DataError::invalid(
                &self.path,
                &index_path,
                format!("index must be 1-D, found {} dimensions", index_ds.ndim()),
            ));
        }
        let index = match index_ds.dtype().and_then(|t| t.to_descriptor()) {
            Ok(t) if is_string_type(&t) => {
                read_strings(&index_ds).map_err(self.h5err(&index_path))?
            }
            Ok(TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_)) => index_ds
                .read_raw::<i64>()
                .map_err(self.h5err(&index_path))?
                .into_iter()
                .map(|v| v.to_string())
                .collect(),
            _ => {
                return Err(DataError::invalid(
                    &self.path,
                    &index_path,
                    "index must hold strings",
                ));
            }
        };
        let order = attr_strings(&g, "column-order").unwrap_or_else(|| {
            let mut names = g.member_names().unwrap_or_default();
            names.retain(|n| n != &index_name && n != "__categories");
            names
        });
        let mut df = DataFrame {
            index,
            columns: Vec::with_capacity(order.len()),
        };
        for name in order {
            let col_path = format!("{path}/{name}");
            let col = self.read_column(&g, path, &name)?;
            if col.len() != df.n_rows() {
                return Err(DataError::invalid(
                    &self.path,
                    &col_path,
                    format!(
                        "column has {} rows but the index has {}",
                        col.len(),
                        df.n_rows()
                    ),
                ));
            }
            df.columns.push((name, col));
        }
        Ok(df)
    }

    fn read_column(&self, frame: &Group, frame_path: &str, name: &str) -> Result<Column> {
        let path = format!("{frame_path}/{name}");
        match member_kind(frame, name) {
            None => Err(DataError::missing(
                &self.path,
                &path,
                "a column listed in column-order",
            )),
            Some(LocationType::Group) => {
                let g = self.group(&path)?;
                let enc = attr_string(&g, "encoding-type").unwrap_or_default();
                match enc.as_str() {
                    "categorical" => {
                        let codes = self.read_i32_codes(&format!("{path}/codes"))?;
                        let categories = self.read_labels(&format!("{path}/categories"))?;
                        let ordered = attr_bool(&g, "ordered").unwrap_or(false);
                        self.check_codes(&path, &codes, categories.len())?;
                        Ok(Column::Categorical {
                            codes,
                            categories,
                            ordered,
                        })
                    }
                    "nullable-integer" => {
                        let values = self
                            .dataset(&format!("{path}/values"))?
                            .read_raw::<i64>()
                            .map_err(self.h5err(&path))?;
                        let mask = self.read_mask(&path, values.len())?;
                        Ok(Column::NullableInt(masked(values, mask)))
                    }
                    "nullable-boolean" => {
                        let values = self.read_bools(&format!("{path}/values"))?;
                        let mask = self.read_mask(&path, values.len())?;
                        Ok(Column::NullableBool(masked(values, mask)))
                    }
                    "nullable-string-array" => {
                        let values = self.read_labels(&format!("{path}/values"))?;
                        let mask = self.read_mask(&path, values.len())?;
                        Ok(Column::Str(
                            masked(values, mask)
                                .into_iter()
                                .map(|v| v.unwrap_or_else(|| "nan".to_string()))
                                .collect(),
                        ))
                    }
                    other => Err(DataError::invalid(
                        &self.path,
                        &path,
                        format!(
                            "unsupported column encoding-type {other:?} (expected categorical, \
                             nullable-integer, nullable-boolean, string-array or array)"
                        ),
                    )),
                }
            }
            Some(_) => {
                let ds = self.dataset(&path)?;
                if ds.ndim() != 1 {
                    return Err(DataError::invalid(
                        &self.path,
                        &path,
                        format!("column must be 1-D, found {} dimensions", ds.ndim()),
                    ));
                }
                // anndata 0.7: codes dataset + `__categories/<name>` (referenced by an attribute).
                let legacy_cats = format!("{frame_path}/__categories/{name}");
                if self.kind(&legacy_cats).is_some() {
                    let codes = self.read_i32_codes(&path)?;
                    let categories = self.read_labels(&legacy_cats)?;
                    self.check_codes(&path, &codes, categories.len())?;
                    let ordered = attr_bool(&ds, "ordered").unwrap_or(false);
                    return Ok(Column::Categorical {
                        codes,
                        categories,
                        ordered,
                    });
                }
                self.read_plain_column(&ds, &path)
            }
        }
    }

    fn read_plain_column(&self, ds: &Dataset, path: &str) -> Result<Column> {
        let t = ds
            .dtype()
            .and_then(|t| t.to_descriptor())
            .map_err(self.h5err(path))?;
        Ok(match t {
            t if is_string_type(&t) => Column::Str(read_strings(ds).map_err(self.h5err(path))?),
            TypeDescriptor::Float(_) => {
                Column::Float(ds.read_raw::<f64>().map_err(self.h5err(path))?)
            }
            TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_) => {
                Column::Int(ds.read_raw::<i64>().map_err(self.h5err(path))?)
            }
            TypeDescriptor::Boolean | TypeDescriptor::Enum(_) => {
                Column::Bool(self.read_bools(path)?)
            }
            other => {
                return Err(DataError::invalid(
                    &self.path,
                    path,
                    format!("unsupported column dtype {other:?}"),
                ));
            }
        })
    }

    fn read_bools(&self, path: &str) -> Result<Vec<bool>> {
        let ds = self.dataset(path)?;
        match ds.read_raw::<bool>() {
            Ok(v) => Ok(v),
            Err(_) => Ok(ds
                .read_raw::<i8>()
                .map_err(self.h5err(path))?
                .into_iter()
                .map(|v| v != 0)
                .collect()),
        }
    }

    fn read_mask(&self, path: &str, n: usize) -> Result<Vec<bool>> {
        let mask = self.read_bools(&format!("{path}/mask"))?;
        if mask.len() != n {
            return Err(DataError::invalid(
                &self.path,
                &format!("{path}/mask"),
                format!("mask has {} entries, values have {n}", mask.len()),
            ));
        }
        Ok(mask)
    }

    fn read_i32_codes(&self, path: &str) -> Result<Vec<i32>> {
        let ds = self.dataset(path)?;
        match ds.dtype().and_then(|t| t.to_descriptor()) {
            Ok(TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_)) => {}
            _ => {
                return Err(DataError::invalid(
                    &self.path,
                    path,
                    "categorical codes must be integers",
                ));
            }
        }
        ds.read_raw::<i32>().map_err(self.h5err(path))
    }

    /// Reads labels (category names): strings as they are, numbers printed as pandas prints them.
    fn read_labels(&self, path: &str) -> Result<Vec<String>> {
        let ds = self.dataset(path)?;
        let t = ds
            .dtype()
            .and_then(|t| t.to_descriptor())
            .map_err(self.h5err(path))?;
        Ok(match t {
            t if is_string_type(&t) => read_strings(&ds).map_err(self.h5err(path))?,
            TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_) => ds
                .read_raw::<i64>()
                .map_err(self.h5err(path))?
                .iter()
                .map(i64::to_string)
                .collect(),
            TypeDescriptor::Float(_) => ds
                .read_raw::<f64>()
                .map_err(self.h5err(path))?
                .iter()
                .map(f64::to_string)
                .collect(),
            TypeDescriptor::Boolean => ds
                .read_raw::<bool>()
                .map_err(self.h5err(path))?
                .iter()
                .map(|b| if *b { "True" } else { "False" }.to_string())
                .collect(),
            other => {
                return Err(DataError::invalid(
                    &self.path,
                    path,
                    format!("unsupported category dtype {other:?}"),
                ));
            }
        })
    }

    fn check_codes(&self, path: &str, codes: &[i32], n_categories: usize) -> Result<()> {
        if let Some(bad) = codes
            .iter()
            .find(|&&c| c < -1 || (c >= 0 && c as usize >= n_categories))
        {
            return Err(DataError::invalid(
                &self.path,
                path,
                format!(
                    "categorical code {bad} is out of range: {n_categories} categories, codes \
                     must be -1 (missing) or 0..{n_categories}"
                ),
            ));
        }
        Ok(())
    }

    /// The pre-0.7 layout: a compound dataset whose `index` field holds the names; a field is
    /// categorical when `uns/<field>_categories` exists.
    fn read_compound_dataframe(&self, path: &str) -> Result<DataFrame> {
        let ds = self.dataset(path)?;
        let fields = read_compound(&ds).map_err(self.h5err(path))?;
        let mut index = None;
        let mut columns = Vec::new();
        for (name, col) in fields {
            if name == "index" || name == "_index" {
                index = Some(match col {
                    CompoundColumn::Strings(v) => v,
                    CompoundColumn::Ints(v) => v.iter().map(i64::to_string).collect(),
                    _ => {
                        return Err(DataError::invalid(
                            &self.path,
                            &format!("{path}/index"),
                            "index field must hold strings",
                        ));
                    }
                });
                continue;
            }
            let cats_path = format!("uns/{name}_categories");
            let column = match col {
                CompoundColumn::Ints(codes) if path == "obs" || path == "var" => {
                    if self.kind(&cats_path).is_some() {
                        let categories = self.read_labels(&cats_path)?;
                        let codes: Vec<i32> = codes.iter().map(|&c| c as i32).collect();
                        self.check_codes(&format!("{path}/{name}"), &codes, categories.len())?;
                        Column::Categorical {
                            codes,
                            categories,
                            ordered: false,
                        }
                    } else {
                        Column::Int(codes)
                    }
                }
                CompoundColumn::Ints(v) => Column::Int(v),
                CompoundColumn::Strings(v) => Column::Str(v),
                CompoundColumn::Floats(v) => Column::Float(v),
                CompoundColumn::Bools(v) => Column::Bool(v),
                CompoundColumn::FloatRows(..) => continue,
            };
            columns.push((name, column));
        }
        let index = index.ok_or_else(|| {
            DataError::missing(
                &self.path,
                &format!("{path}/index"),
                "an index field of names",
            )
        })?;
        Ok(DataFrame { index, columns })
    }

    // ----------------------------------------------------------------------------------------
    // Matrices
    // ----------------------------------------------------------------------------------------

    /// Describes a matrix element (`X`, `layers/<name>`, `raw/X`, `raw.X`) without reading values.
    ///
    /// # Errors
    /// Missing element; a dataset that is not 2-D numeric; a sparse group without a valid
    /// `shape`, or with unknown encoding.
    pub fn matrix_info(&self, path: &str) -> Result<MatrixInfo> {
        match self.kind(path) {
            None => Err(DataError::missing(
                &self.path,
                path,
                "a matrix (2-D dataset or csr_matrix/csc_matrix group)",
            )),
            Some(LocationType::Dataset) => {
                let ds = self.dataset(path)?;
                let t = ds
                    .dtype()
                    .and_then(|t| t.to_descriptor())
                    .map_err(self.h5err(path))?;
                let dtype = numpy_dtype(&t).ok_or_else(|| {
                    DataError::invalid(
                        &self.path,
                        path,
                        format!("matrix values must be numeric, found {t:?}"),
                    )
                })?;
                let shape = ds.shape();
                if shape.len() != 2 {
                    return Err(DataError::invalid(
                        &self.path,
                        path,
                        format!("matrix must be 2-D (n_obs, n_vars), found shape {shape:?}"),
                    ));
                }
                Ok(MatrixInfo {
                    path: path.to_string(),
                    encoding: MatrixEncoding::Dense,
                    dtype,
                    shape: (shape[0], shape[1]),
                    stored: shape[0] as u64 * shape[1] as u64,
                })
            }
            Some(_) => {
                let g = self.group(path)?;
                let (encoding, shape_attr) = match (
                    attr_string(&g, "encoding-type").as_deref(),
                    attr_string(&g, "h5sparse_format").as_deref(),
                ) {
                    (Some("csr_matrix"), _) => (MatrixEncoding::Csr, "shape"),
                    (Some("csc_matrix"), _) => (MatrixEncoding::Csc, "shape"),
                    (None, Some("csr")) => (MatrixEncoding::Csr, "h5sparse_shape"),
                    (None, Some("csc")) => (MatrixEncoding::Csc, "h5sparse_shape"),
                    (enc, fmt) => {
                        return Err(DataError::invalid(
                            &self.path,
                            path,
                            format!(
                                "group is not a sparse matrix (encoding-type {enc:?}, \
                                 h5sparse_format {fmt:?}); expected csr_matrix or csc_matrix"
                            ),
                        ));
                    }
                };
                let shape = attr_i64s(&g, shape_attr).ok_or_else(|| {
                    DataError::missing(
                        &self.path,
                        &format!("{path}@{shape_attr}"),
                        "a shape attribute of two integers",
                    )
                })?;
                if shape.len() != 2 || shape.iter().any(|&s| s < 0) {
                    return Err(DataError::invalid(
                        &self.path,
                        &format!("{path}@{shape_attr}"),
                        format!("shape must be two non-negative integers, found {shape:?}"),
                    ));
                }
                let data = self.dataset(&format!("{path}/data"))?;
                let t = data
                    .dtype()
                    .and_then(|t| t.to_descriptor())
                    .map_err(self.h5err(path))?;
                let dtype = numpy_dtype(&t).ok_or_else(|| {
                    DataError::invalid(
                        &self.path,
                        &format!("{path}/data"),
                        format!("matrix values must be numeric, found {t:?}"),
                    )
                })?;
                Ok(MatrixInfo {
                    path: path.to_string(),
                    encoding,
                    dtype,
                    shape: (shape[0] as usize, shape[1] as usize),
                    stored: data.size() as u64,
                })
            }
        }
    }

    /// Reads a whole matrix element as `f32` (CSC is converted to CSR).
    ///
    /// # Errors
    /// As [`Self::matrix_info`], plus invalid sparse arrays ([`super::matrix::SparseProblem`])
    /// and read errors.
    pub fn read_matrix(&self, path: &str) -> Result<Matrix> {
        let info = self.matrix_info(path)?;
        match info.encoding {
            MatrixEncoding::Dense => {
                let ds = self.dataset(path)?;
                let v = match fastread::read_all::<f32>(&self.path, &ds) {
                    Some(v) => v.map_err(|e| self.fast_err(path, e))?,
                    None => fastread::read_library::<f32>(&ds).map_err(self.h5err(path))?,
                };
                let a = Array2::from_shape_vec(info.shape, v)
                    .map_err(|e| DataError::invalid(&self.path, path, e.to_string()))?;
                Ok(Matrix::Dense(a))
            }
            MatrixEncoding::Csr | MatrixEncoding::Csc => {
                let (n_major, n_minor) = if info.encoding == MatrixEncoding::Csr {
                    (info.shape.0, info.shape.1)
                } else {
                    (info.shape.1, info.shape.0)
                };
                let indptr = self.read_indptr(path, n_major)?;
                // The two big arrays are read side by side: one lists its chunks through the
                // library while the other's bytes are copied.
                let (indices, data) = rayon::join(
                    || self.read_indices(&format!("{path}/indices")),
                    || self.read_values(&format!("{path}/data")),
                );
                let (indices, data) = (indices?, data?);
                validate_compressed(n_major, n_minor, &indptr, &indices, data.len())
                    .map_err(|p| DataError::invalid(&self.path, path, p.to_string()))?;
                if info.encoding == MatrixEncoding::Csr {
                    Ok(Matrix::Csr(CsrMatrix {
                        n_rows: n_major,
                        n_cols: n_minor,
                        indptr,
                        indices,
                        data,
                    }))
                } else {
                    Ok(Matrix::Csr(CsrMatrix::from_csc(
                        info.shape.0,
                        info.shape.1,
                        &indptr,
                        &indices,
                        &data,
                    )))
                }
            }
        }
    }

    /// Reads a sparse `data` array as `f32`.
    fn read_values(&self, path: &str) -> Result<Vec<f32>> {
        let ds = self.dataset(path)?;
        if ds.ndim() != 1 {
            return Err(DataError::invalid(&self.path, path, "data must be 1-D"));
        }
        match fastread::read_all::<f32>(&self.path, &ds) {
            Some(v) => v.map_err(|e| self.fast_err(path, e)),
            None => fastread::read_library::<f32>(&ds).map_err(self.h5err(path)),
        }
    }

    /// Reads `indptr` after checking its length against the declared shape (so an absurd shape
    /// attribute never causes an absurd allocation).
    fn read_indptr(&self, group: &str, n_major: usize) -> Result<Vec<u64>> {
        let path = format!("{group}/indptr");
        let ds = self.dataset(&path)?;
        if ds.ndim() != 1 || ds.size() != n_major + 1 {
            return Err(DataError::invalid(
                &self.path,
                &path,
                format!(
                    "indptr has shape {:?}, expected ({},) from the shape attribute",
                    ds.shape(),
                    n_major + 1
                ),
            ));
        }
        if let Some(v) = fastread::read_all::<u64>(&self.path, &ds) {
            return v.map_err(|e| self.fast_err(&path, e));
        }
        let v = ds.read_raw::<i64>().map_err(self.h5err(&path))?;
        if let Some(at) = v.iter().position(|&p| p < 0) {
            return Err(DataError::invalid(
                &self.path,
                &path,
                format!("negative entry at {at}"),
            ));
        }
        Ok(v.into_iter().map(|p| p as u64).collect())
    }

    /// Reads a sparse `indices` array as `u32`, rejecting negative values. int32 files are read
    /// in place; wider types block by block, so memory stays at the output's size.
    fn read_indices(&self, path: &str) -> Result<Vec<u32>> {
        let ds = self.dataset(path)?;
        if ds.ndim() != 1 {
            return Err(DataError::invalid(&self.path, path, "indices must be 1-D"));
        }
        if let Some(v) = fastread::read_all::<u32>(&self.path, &ds) {
            return v.map_err(|e| self.fast_err(path, e));
        }
        let t = ds
            .dtype()
            .and_then(|t| t.to_descriptor())
            .map_err(self.h5err(path))?;
        match t {
            TypeDescriptor::Integer(hdf5::types::IntSize::U4) => {
                let v = fastread::read_library::<i32>(&ds).map_err(self.h5err(path))?;
                if let Some(at) = super::matrix::position_bad(&v, |&i| i < 0) {
                    return Err(DataError::invalid(
                        &self.path,
                        path,
                        format!("negative index {} at position {at}", v[at]),
                    ));
                }
                // Same size and alignment: reinterpreted in place, no second buffer.
                Ok(bytemuck::cast_vec(v))
            }
            TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_) => {
                let n = ds.size();
                let mut out = Vec::with_capacity(n);
                let mut start = 0;
                while start < n {
                    let end = (start + INDEX_BLOCK).min(n);
                    let block = ds
                        .read_slice_1d::<i64, _>(start..end)
                        .map_err(self.h5err(path))?;
                    for (k, &i) in block.iter().enumerate() {
                        if !(0..=i64::from(u32::MAX)).contains(&i) {
                            return Err(DataError::invalid(
                                &self.path,
                                path,
                                format!("index {i} at position {} is out of range", start + k),
                            ));
                        }
                        out.push(i as u32);
                    }
                    start = end;
                }
                Ok(out)
            }
            other => Err(DataError::invalid(
                &self.path,
                path,
                format!("indices must be integers, found {other:?}"),
            )),
        }
    }

    /// Reads rows `start..end` of a CSR or dense matrix element, memory bounded by the block.
    ///
    /// CSC cannot be sliced by rows without reading everything; it is refused here (read it whole
    /// with [`Self::read_matrix`]).
    ///
    /// # Errors
    /// Out-of-range rows, CSC storage, malformed arrays, read errors.
    pub fn read_row_block(
        &self,
        info: &MatrixInfo,
        indptr: &[u64],
        start: usize,
        end: usize,
    ) -> Result<CsrMatrix> {
        let path = info.path.as_str();
        if start > end || end > info.shape.0 {
            return Err(DataError::invalid(
                &self.path,
                path,
                format!("row block {start}..{end} outside 0..{}", info.shape.0),
            ));
        }
        match info.encoding {
            MatrixEncoding::Dense => {
                let ds = self.dataset(path)?;
                let a: Array2<f32> = ds
                    .read_slice_2d(ndarray::s![start..end, ..])
                    .map_err(self.h5err(path))?;
                Ok(CsrMatrix::from_dense(&a))
            }
            MatrixEncoding::Csr => {
                let (a, b) = (indptr[start] as usize, indptr[end] as usize);
                let idx_path = format!("{path}/indices");
                let indices: Vec<i64> = self
                    .dataset(&idx_path)?
                    .read_slice_1d(a..b)
                    .map_err(self.h5err(&idx_path))?
                    .to_vec();
                let data_path = format!("{path}/data");
                let data: Vec<f32> = self
                    .dataset(&data_path)?
                    .read_slice_1d(a..b)
                    .map_err(self.h5err(&data_path))?
                    .to_vec();
                let n_cols = info.shape.1 as i64;
                if let Some(k) = indices.iter().position(|&i| i < 0 || i >= n_cols) {
                    return Err(DataError::invalid(
                        &self.path,
                        &idx_path,
                        format!("index {} at position {} is out of range", indices[k], a + k),
                    ));
                }
                let local: Vec<u64> = indptr[start..=end]
                    .iter()
                    .map(|&p| p - indptr[start])
                    .collect();
                CsrMatrix::new(
                    end - start,
                    info.shape.1,
                    local,
                    indices.into_iter().map(|i| i as u32).collect(),
                    data,
                )
                .map_err(|p| DataError::invalid(&self.path, path, p.to_string()))
            }
            MatrixEncoding::Csc => Err(DataError::invalid(
                &self.path,
                path,
                "row blocks need csr_matrix or dense storage; this matrix is csc_matrix",
            )),
        }
    }

    /// Reads the row pointer of a CSR element for [`Self::read_row_block`] (empty for dense).
    ///
    /// # Errors
    /// Malformed `indptr`.
    pub fn row_pointer(&self, info: &MatrixInfo) -> Result<Vec<u64>> {
        match info.encoding {
            MatrixEncoding::Csr => {
                let p = self.read_indptr(&info.path, info.shape.0)?;
                if p.first() != Some(&0) || p.windows(2).any(|w| w[0] > w[1]) {
                    return Err(DataError::invalid(
                        &self.path,
                        &format!("{}/indptr", info.path),
                        "indptr must start at 0 and never decrease",
                    ));
                }
                if p.last().copied() != Some(info.stored) {
                    return Err(DataError::invalid(
                        &self.path,
                        &format!("{}/indptr", info.path),
                        "indptr must end at the number of stored values",
                    ));
                }
                Ok(p)
            }
            _ => Ok(Vec::new()),
        }
    }

    // ----------------------------------------------------------------------------------------
    // obsm, layers, raw, uns
    // ----------------------------------------------------------------------------------------

    /// Reads `obsm`: every 2-D numeric array (group of datasets, or legacy compound dataset).
    /// Data-frame entries of obsm are skipped.
    ///
    /// # Errors
    /// An entry whose first dimension is not `n_obs`, or read errors.
    pub fn read_obsm(&self, n_obs: usize) -> Result<BTreeMap<String, Array2<f64>>> {
        let mut out = BTreeMap::new();
        match self.kind("obsm") {
            None => {}
            Some(LocationType::Dataset) => {
                let ds = self.dataset("obsm")?;
                for (name, col) in read_compound(&ds).map_err(self.h5err("obsm"))? {
                    if let CompoundColumn::FloatRows(v, w) = col {
                        let a =
                            Array2::from_shape_vec((v.len() / w.max(1), w), v).map_err(|e| {
                                DataError::invalid(
                                    &self.path,
                                    &format!("obsm/{name}"),
                                    e.to_string(),
                                )
                            })?;
                        out.insert(name, a);
                    }
                }
            }
            Some(_) => {
                let g = self.group("obsm")?;
                for name in g.member_names().map_err(self.h5err("obsm"))? {
                    let path = format!("obsm/{name}");
                    if member_kind(&g, &name) != Some(LocationType::Dataset) {
                        continue;
                    }
                    let ds = self.dataset(&path)?;
                    let a = match ds.ndim() {
                        2 => ds.read_2d::<f64>().map_err(self.h5err(&path))?,
                        1 => {
                            let v = ds.read_raw::<f64>().map_err(self.h5err(&path))?;
                            let n = v.len();
                            Array2::from_shape_vec((n, 1), v)
                                .map_err(|e| DataError::invalid(&self.path, &path, e.to_string()))?
                        }
                        d => {
                            return Err(DataError::invalid(
                                &self.path,
                                &path,
                                format!("obsm entries must be 2-D, found {d} dimensions"),
                            ));
                        }
                    };
                    out.insert(name, a);
                }
            }
        }
        for (name, a) in &out {
            if a.nrows() != n_obs {
                return Err(DataError::invalid(
                    &self.path,
                    &format!("obsm/{name}"),
                    format!("has {} rows, expected n_obs = {n_obs}", a.nrows()),
                ));
            }
        }
        Ok(out)
    }

    /// Describes every layer.
    ///
    /// # Errors
    /// A malformed layer.
    pub fn layer_infos(&self) -> Result<Vec<MatrixInfo>> {
        if self.kind("layers") != Some(LocationType::Group) {
            return Ok(Vec::new());
        }
        let g = self.group("layers")?;
        g.member_names()
            .map_err(self.h5err("layers"))?
            .into_iter()
            .map(|n| self.matrix_info(&format!("layers/{n}")))
            .collect()
    }

    /// Describes `raw` (current `raw/` group or legacy `raw.X` / `raw.var`).
    ///
    /// # Errors
    /// A malformed raw element.
    pub fn raw_info(&self) -> Result<Option<RawInfo>> {
        let (x, var) = if self.kind("raw/X").is_some() {
            ("raw/X", "raw/var")
        } else if self.kind("raw.X").is_some() {
            ("raw.X", "raw.var")
        } else {
            return Ok(None);
        };
        Ok(Some(RawInfo {
            x: self.matrix_info(x)?,
            var: self.read_dataframe(var)?,
        }))
    }

    /// Reads `uns['<key>_colors']` entries.
    pub fn uns_colors(&self) -> BTreeMap<String, Vec<String>> {
        let mut out = BTreeMap::new();
        let Ok(g) = self.file.group("uns") else {
            return out;
        };
        for name in g.member_names().unwrap_or_default() {
            let Some(key) = name.strip_suffix("_colors") else {
                continue;
            };
            if let Ok(ds) = g.dataset(&name)
                && let Ok(v) = read_strings(&ds)
            {
                out.insert(key.to_string(), v);
            }
        }
        out
    }

    /// Reads everything [`AnnData`] holds and checks it is consistent: X's shape equals
    /// `(len(obs), len(var))`, names are unique, values are finite, n_obs and n_vars > 0.
    ///
    /// # Errors
    /// Any [`DataError`] above, naming the element.
    pub fn read(&self) -> Result<AnnData> {
        // obs/var strings go through the HDF5 library while X's bytes are read around it.
        let (a, x) = rayon::join(|| self.read_metadata(), || self.read_matrix("X"));
        let (mut a, x) = (a?, x?);
        if let Some((i, j)) = x.first_non_finite() {
            return Err(DataError::invalid(
                &self.path,
                "X",
                format!("non-finite value (NaN or Inf) at row {i}, column {j}"),
            ));
        }
        a.x = x;
        a.x_loaded = true;
        Ok(a)
    }

    /// Reads everything but X's values (obs, var, obsm, and X's description): for writing
    /// results back next to a matrix too large to load. `x` is an empty placeholder and
    /// `x_loaded` is false.
    ///
    /// # Errors
    /// As [`Self::read`], without the checks on X's values.
    pub fn read_metadata(&self) -> Result<AnnData> {
        let obs = self.read_obs()?;
        let var = self.read_var()?;
        let x_info = self.matrix_info("X")?;
        self.check_shape(&x_info, &obs, &var)?;
        let obsm = self.read_obsm(obs.n_rows())?;
        Ok(AnnData {
            source: self.path.clone(),
            layers: self.layer_infos()?,
            raw: self.raw_info()?,
            uns_colors: self.uns_colors(),
            x: Matrix::Csr(CsrMatrix {
                n_rows: 0,
                n_cols: 0,
                indptr: vec![0],
                indices: Vec::new(),
                data: Vec::new(),
            }),
            x_loaded: false,
            obs,
            var,
            x_info,
            obsm,
        })
    }

    /// Checks X's declared shape against obs/var, that neither is empty, and that obs names are
    /// unique.
    ///
    /// # Errors
    /// [`DataError::Invalid`] naming X, `obs/_index` or `var/_index`.
    pub fn check_shape(&self, x: &MatrixInfo, obs: &DataFrame, var: &DataFrame) -> Result<()> {
        if x.shape != (obs.n_rows(), var.n_rows()) {
            return Err(DataError::invalid(
                &self.path,
                &x.path,
                format!(
                    "shape {:?} disagrees with obs ({} rows) and var ({} rows)",
                    x.shape,
                    obs.n_rows(),
                    var.n_rows()
                ),
            ));
        }
        if obs.n_rows() == 0 {
            return Err(DataError::invalid(
                &self.path,
                "obs",
                "has zero cells (n_obs = 0)",
            ));
        }
        if var.n_rows() == 0 {
            return Err(DataError::invalid(
                &self.path,
                "var",
                "has zero genes (n_vars = 0)",
            ));
        }
        // Duplicate gene symbols are common in real data (scanpy keeps them with a warning);
        // duplicate cell names make selections and write-back ambiguous, so they are refused.
        let mut seen = HashSet::with_capacity(obs.n_rows());
        if let Some(dup) = obs.index.iter().find(|n| !seen.insert(n.as_str())) {
            return Err(DataError::invalid(
                &self.path,
                "obs/_index",
                format!(
                    "duplicate obs name {dup:?}; cell names must be unique \
                     (anndata: obs_names_make_unique())"
                ),
            ));
        }
        Ok(())
    }
}

/// Reads a whole `.h5ad` file.
///
/// # Errors
/// See [`H5adReader::read`].
pub fn read_h5ad(path: impl AsRef<Path>) -> Result<AnnData> {
    H5adReader::open(path)?.read()
}

/// Row blocks of a matrix element, read one at a time (see [`H5adReader::row_blocks`]).
pub struct RowBlocks<'a> {
    reader: &'a H5adReader,
    info: MatrixInfo,
    indptr: Vec<u64>,
    next: usize,
    block_rows: usize,
}

impl RowBlocks<'_> {
    /// The element being streamed.
    pub fn info(&self) -> &MatrixInfo {
        &self.info
    }
}

impl Iterator for RowBlocks<'_> {
    /// `(first row, block)`; the block is CSR of shape `(rows in block, n_vars)`.
    type Item = Result<(usize, CsrMatrix)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.info.shape.0 {
            return None;
        }
        let start = self.next;
        let end = (start + self.block_rows).min(self.info.shape.0);
        self.next = end;
        Some(
            self.reader
                .read_row_block(&self.info, &self.indptr, start, end)
                .map(|b| (start, b)),
        )
    }
}

impl H5adReader {
    /// Streams a CSR or dense matrix element (`X`, a layer) in blocks of `block_rows` rows.
    /// Memory: the row pointer (8 bytes per row) plus one block; the file is never loaded whole.
    ///
    /// # Errors
    /// As [`Self::matrix_info`]; CSC storage; a malformed `indptr`.
    pub fn row_blocks(&self, path: &str, block_rows: usize) -> Result<RowBlocks<'_>> {
        let info = self.matrix_info(path)?;
        if info.encoding == MatrixEncoding::Csc {
            return Err(DataError::invalid(
                &self.path,
                path,
                "row blocks need csr_matrix or dense storage; this matrix is csc_matrix",
            ));
        }
        let indptr = self.row_pointer(&info)?;
        Ok(RowBlocks {
            reader: self,
            info,
            indptr,
            next: 0,
            block_rows: block_rows.max(1),
        })
    }
}
