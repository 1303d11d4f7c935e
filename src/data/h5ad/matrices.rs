//! Matrices of an `.h5ad`: `X`, layers and `raw/X` as dense arrays or CSR/CSC groups, read
//! whole or in row blocks (files larger than memory).

#[allow(clippy::wildcard_imports)]
use super::*;

impl H5adReader {
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
                self.check_spec(&ds, path, &["array"])?;
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
                self.check_spec(&g, path, &["csr_matrix", "csc_matrix"])?;
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
    /// As [`Self::matrix_info`], plus invalid sparse arrays ([`crate::data::matrix::SparseProblem`])
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
    pub(super) fn read_values(&self, path: &str) -> Result<Vec<f32>> {
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
    pub(super) fn read_indptr(&self, group: &str, n_major: usize) -> Result<Vec<u64>> {
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
    pub(super) fn read_indices(&self, path: &str) -> Result<Vec<u32>> {
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
                if let Some(at) = crate::data::matrix::position_bad(&v, |&i| i < 0) {
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
