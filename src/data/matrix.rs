//! The expression matrix types: compressed sparse rows and dense row-major, both `f32`.
//!
//! Values are held as `f32` whatever the file's dtype (float64 and integer counts are converted on
//! read), the precision the models consume. Rows are cells (obs), columns are genes (var), as in
//! AnnData's `X`.

use ndarray::Array2;
use rayon::prelude::*;

/// A compressed sparse row matrix, shape `(n_rows, n_cols)`, the layout of scipy's `csr_matrix`.
///
/// Invariants (checked by [`CsrMatrix::validate`]): `indptr.len() == n_rows + 1`, `indptr[0] == 0`,
/// `indptr` non-decreasing, `indptr[n_rows] == indices.len() == data.len()`, every index `< n_cols`.
#[derive(Debug, Clone, PartialEq)]
pub struct CsrMatrix {
    /// Number of rows (cells).
    pub n_rows: usize,
    /// Number of columns (genes).
    pub n_cols: usize,
    /// Row pointers, length `n_rows + 1`.
    pub indptr: Vec<u64>,
    /// Column index of each stored value, length `nnz`.
    pub indices: Vec<u32>,
    /// Stored values, length `nnz`.
    pub data: Vec<f32>,
}

/// What is wrong with a sparse matrix's arrays (see [`CsrMatrix::validate`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SparseProblem {
    /// `indptr` has the wrong length.
    IndptrLength {
        /// Expected `n_rows + 1` (or `n_cols + 1` for CSC).
        expected: usize,
        /// Found.
        found: usize,
    },
    /// `indptr[0] != 0` or `indptr[i] > indptr[i + 1]`.
    IndptrNotMonotonic {
        /// Row (or column) where it decreases.
        at: usize,
    },
    /// The last `indptr` entry differs from the number of stored values.
    IndptrEnd {
        /// `indptr` last entry.
        last: u64,
        /// `len(indices)`.
        nnz: usize,
    },
    /// `indices` and `data` have different lengths.
    LengthMismatch {
        /// `len(indices)`.
        indices: usize,
        /// `len(data)`.
        data: usize,
    },
    /// An index is not below the minor dimension.
    IndexOutOfRange {
        /// Position in `indices`.
        at: usize,
        /// The index.
        index: u32,
        /// The bound it must be below.
        bound: usize,
    },
}

impl std::fmt::Display for SparseProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::IndptrLength { expected, found } => {
                write!(
                    f,
                    "indptr has length {found}, expected {expected} (shape[0] + 1)"
                )
            }
            Self::IndptrNotMonotonic { at } => {
                write!(
                    f,
                    "indptr must start at 0 and never decrease; it does at entry {at}"
                )
            }
            Self::IndptrEnd { last, nnz } => write!(
                f,
                "indptr ends at {last} but indices/data hold {nnz} values"
            ),
            Self::LengthMismatch { indices, data } => write!(
                f,
                "indices has {indices} entries but data has {data}; they must be equal"
            ),
            Self::IndexOutOfRange { at, index, bound } => write!(
                f,
                "index {index} at position {at} is out of range (must be < {bound}, shape[1])"
            ),
        }
    }
}

/// Elements per parallel block when scanning arrays for bad values.
const SCAN_BLOCK: usize = 1 << 16;

/// One range of rows and its stored values ([`CsrMatrix::row_ranges_mut`]).
pub type RowRangeMut<'a> = (std::ops::Range<usize>, &'a mut [f32]);

/// Rows per task in row-parallel passes ([`CsrMatrix::row_ranges`]): with a few thousand
/// non-zeros per row, enough work per task to dwarf rayon's scheduling.
pub const PAR_ROWS: usize = 2048;

/// Position of the first element of `v` for which `bad` holds. Blocks of [`SCAN_BLOCK`] are
/// tested in parallel with a branch-free fold (which the compiler vectorises); only the first
/// failing block is searched element by element. Used on the big arrays a reader validates
/// (indices, values), where an early-exit `position` costs a branch per element.
pub(crate) fn position_bad<T: Sync>(v: &[T], bad: impl Fn(&T) -> bool + Sync) -> Option<usize> {
    let b = v
        .par_chunks(SCAN_BLOCK)
        .position_first(|c| c.iter().fold(false, |any, x| any | bad(x)))?;
    let base = b * SCAN_BLOCK;
    v[base..].iter().position(&bad).map(|k| base + k)
}

/// Checks the compressed-sparse invariants for `n_major` rows (CSR) or columns (CSC) and
/// `n_minor` columns (CSR) or rows (CSC).
///
/// # Errors
/// The first [`SparseProblem`] found.
pub fn validate_compressed(
    n_major: usize,
    n_minor: usize,
    indptr: &[u64],
    indices: &[u32],
    data_len: usize,
) -> Result<(), SparseProblem> {
    if indptr.len() != n_major + 1 {
        return Err(SparseProblem::IndptrLength {
            expected: n_major + 1,
            found: indptr.len(),
        });
    }
    if indices.len() != data_len {
        return Err(SparseProblem::LengthMismatch {
            indices: indices.len(),
            data: data_len,
        });
    }
    if indptr[0] != 0 {
        return Err(SparseProblem::IndptrNotMonotonic { at: 0 });
    }
    if let Some(at) = indptr.windows(2).position(|w| w[0] > w[1]) {
        return Err(SparseProblem::IndptrNotMonotonic { at: at + 1 });
    }
    let last = indptr[n_major];
    if last != indices.len() as u64 {
        return Err(SparseProblem::IndptrEnd {
            last,
            nnz: indices.len(),
        });
    }
    let bound = n_minor as u64;
    if let Some(at) = position_bad(indices, |&i| u64::from(i) >= bound) {
        return Err(SparseProblem::IndexOutOfRange {
            at,
            index: indices[at],
            bound: n_minor,
        });
    }
    Ok(())
}

impl CsrMatrix {
    /// Builds a CSR matrix after checking its invariants.
    ///
    /// # Errors
    /// The first [`SparseProblem`] found.
    pub fn new(
        n_rows: usize,
        n_cols: usize,
        indptr: Vec<u64>,
        indices: Vec<u32>,
        data: Vec<f32>,
    ) -> Result<Self, SparseProblem> {
        validate_compressed(n_rows, n_cols, &indptr, &indices, data.len())?;
        Ok(Self {
            n_rows,
            n_cols,
            indptr,
            indices,
            data,
        })
    }

    /// Checks the invariants listed on the type.
    ///
    /// # Errors
    /// The first [`SparseProblem`] found.
    pub fn validate(&self) -> Result<(), SparseProblem> {
        validate_compressed(
            self.n_rows,
            self.n_cols,
            &self.indptr,
            &self.indices,
            self.data.len(),
        )
    }

    /// Number of stored values.
    pub fn nnz(&self) -> usize {
        self.data.len()
    }

    /// Dense columns `cols` (indices into the columns, in that order), `n_rows x cols.len()`.
    ///
    /// # Panics
    /// If a column index is `>= n_cols`.
    pub fn dense_columns(&self, cols: &[usize]) -> Array2<f32> {
        let mut pos = vec![usize::MAX; self.n_cols];
        cols.iter().enumerate().for_each(|(k, &j)| pos[j] = k);
        let mut out = Array2::<f32>::zeros((self.n_rows, cols.len()));
        for i in 0..self.n_rows {
            let (idx, val) = self.row(i);
            for (&j, &v) in idx.iter().zip(val) {
                if pos[j as usize] != usize::MAX {
                    out[(i, pos[j as usize])] = v;
                }
            }
        }
        out
    }

    /// Column indices and values of row `i`.
    ///
    /// # Panics
    /// If `i >= n_rows`.
    pub fn row(&self, i: usize) -> (&[u32], &[f32]) {
        let (a, b) = (self.indptr[i] as usize, self.indptr[i + 1] as usize);
        (&self.indices[a..b], &self.data[a..b])
    }

    /// The rows split into consecutive ranges of up to [`PAR_ROWS`] rows, the unit of the
    /// row-parallel passes (preprocessing, gene alignment).
    pub fn row_ranges(&self) -> impl Iterator<Item = std::ops::Range<usize>> + use<> {
        let n = self.n_rows;
        (0..n)
            .step_by(PAR_ROWS)
            .map(move |r0| r0..(r0 + PAR_ROWS).min(n))
    }

    /// [`CsrMatrix::row_ranges`] with each range's stored values, mutable, so that ranges can be
    /// rescaled on different cores; `indptr` is returned alongside (values of row `i` in the
    /// range starting at `r0` are `values[indptr[i] - indptr[r0]..indptr[i + 1] - indptr[r0]]`).
    pub fn row_ranges_mut(&mut self) -> (&[u64], Vec<RowRangeMut<'_>>) {
        let ranges: Vec<_> = self.row_ranges().collect();
        let mut out = Vec::with_capacity(ranges.len());
        let mut rest = &mut self.data[..];
        for rows in ranges {
            let len = (self.indptr[rows.end] - self.indptr[rows.start]) as usize;
            let (block, tail) = std::mem::take(&mut rest).split_at_mut(len);
            out.push((rows, block));
            rest = tail;
        }
        (&self.indptr, out)
    }

    /// Rows `r0..r1` as a new matrix (same columns).
    ///
    /// # Panics
    /// If `r0 > r1` or `r1 > n_rows`.
    pub fn slice_rows(&self, r0: usize, r1: usize) -> Self {
        let (a, b) = (self.indptr[r0] as usize, self.indptr[r1] as usize);
        Self {
            n_rows: r1 - r0,
            n_cols: self.n_cols,
            indptr: self.indptr[r0..=r1]
                .iter()
                .map(|p| p - self.indptr[r0])
                .collect(),
            indices: self.indices[a..b].to_vec(),
            data: self.data[a..b].to_vec(),
        }
    }

    /// Square CSR from `(row, col, value)` triplets (sorted here; duplicates are summed).
    pub fn from_triplets(n: usize, trip: &mut [(u32, u32, f32)]) -> CsrMatrix {
        trip.sort_unstable_by_key(|t| (t.0, t.1));
        let mut indptr = vec![0u64; n + 1];
        let mut indices = Vec::with_capacity(trip.len());
        let mut data: Vec<f32> = Vec::with_capacity(trip.len());
        let mut last: Option<(u32, u32)> = None;
        for &(i, j, v) in trip.iter() {
            if last == Some((i, j)) {
                *data.last_mut().expect("previous entry") += v;
                continue;
            }
            last = Some((i, j));
            indptr[i as usize + 1] += 1;
            indices.push(j);
            data.push(v);
        }
        for i in 0..n {
            indptr[i + 1] += indptr[i];
        }
        CsrMatrix {
            n_rows: n,
            n_cols: n,
            indptr,
            indices,
            data,
        }
    }

    /// Rows `rows` (any order, repeats allowed) as a new matrix (same columns).
    ///
    /// # Panics
    /// If a row index is out of range.
    pub fn select_rows(&self, rows: &[usize]) -> Self {
        let mut indptr = Vec::with_capacity(rows.len() + 1);
        indptr.push(0);
        let (mut indices, mut data) = (Vec::new(), Vec::new());
        for &r in rows {
            let (idx, val) = self.row(r);
            indices.extend_from_slice(idx);
            data.extend_from_slice(val);
            indptr.push(indices.len() as _);
        }
        Self {
            n_rows: rows.len(),
            n_cols: self.n_cols,
            indptr,
            indices,
            data,
        }
    }

    /// Converts a CSC matrix (`indptr` over columns, `indices` are rows) to CSR, shape
    /// `(n_rows, n_cols)`. Within each row, column indices come out sorted.
    pub fn from_csc(
        n_rows: usize,
        n_cols: usize,
        indptr: &[u64],
        indices: &[u32],
        data: &[f32],
    ) -> Self {
        let mut counts = vec![0u64; n_rows + 1];
        for &r in indices {
            counts[r as usize + 1] += 1;
        }
        for i in 0..n_rows {
            counts[i + 1] += counts[i];
        }
        let row_ptr = counts.clone();
        let mut next = counts;
        let mut out_idx = vec![0u32; indices.len()];
        let mut out_val = vec![0f32; data.len()];
        for c in 0..n_cols {
            for k in indptr[c] as usize..indptr[c + 1] as usize {
                let r = indices[k] as usize;
                let dst = next[r] as usize;
                out_idx[dst] = c as u32;
                out_val[dst] = data[k];
                next[r] += 1;
            }
        }
        Self {
            n_rows,
            n_cols,
            indptr: row_ptr,
            indices: out_idx,
            data: out_val,
        }
    }

    /// Converts a dense row-major matrix to CSR, keeping the non-zero entries.
    pub fn from_dense(x: &Array2<f32>) -> Self {
        let (n_rows, n_cols) = x.dim();
        let mut indptr = Vec::with_capacity(n_rows + 1);
        indptr.push(0u64);
        let mut indices = Vec::new();
        let mut data = Vec::new();
        for row in x.rows() {
            for (j, &v) in row.iter().enumerate() {
                if v != 0.0 {
                    indices.push(j as u32);
                    data.push(v);
                }
            }
            indptr.push(indices.len() as u64);
        }
        Self {
            n_rows,
            n_cols,
            indptr,
            indices,
            data,
        }
    }

    /// The columns `keep` (ascending, in range), renumbered `0..keep.len()`.
    pub fn select_columns(&self, keep: &[usize]) -> Self {
        let mut pos = vec![u32::MAX; self.n_cols];
        for (new, &old) in keep.iter().enumerate() {
            pos[old] = new as u32;
        }
        let (mut indptr, mut indices, mut data) = (vec![0u64], Vec::new(), Vec::new());
        for i in 0..self.n_rows {
            let (idx, val) = self.row(i);
            for (&j, &v) in idx.iter().zip(val) {
                if pos[j as usize] != u32::MAX {
                    indices.push(pos[j as usize]);
                    data.push(v);
                }
            }
            indptr.push(indices.len() as u64);
        }
        CsrMatrix {
            n_rows: self.n_rows,
            n_cols: keep.len(),
            indptr,
            indices,
            data,
        }
    }

    /// The transpose, `(n_cols, n_rows)`, in CSR (so: this matrix in CSC), columns within each
    /// row in increasing order; one counting pass and one scatter over the stored values.
    pub fn transpose(&self) -> CsrMatrix {
        let mut indptr = vec![0u64; self.n_cols + 1];
        self.indices
            .iter()
            .for_each(|&g| indptr[g as usize + 1] += 1);
        (0..self.n_cols).for_each(|g| indptr[g + 1] += indptr[g]);
        let mut next: Vec<usize> = indptr.iter().map(|&p| p as usize).collect();
        let (mut indices, mut data) = (vec![0u32; self.nnz()], vec![0f32; self.nnz()]);
        for r in 0..self.n_rows {
            let (idx, val) = self.row(r);
            for (&g, &v) in idx.iter().zip(val) {
                let p = &mut next[g as usize];
                indices[*p] = r as u32;
                data[*p] = v;
                *p += 1;
            }
        }
        CsrMatrix {
            n_rows: self.n_cols,
            n_cols: self.n_rows,
            indptr,
            indices,
            data,
        }
    }

    /// Dense copy, shape `(n_rows, n_cols)`. Allocates `n_rows * n_cols` values.
    pub fn to_dense(&self) -> Array2<f32> {
        let mut out = Array2::<f32>::zeros((self.n_rows, self.n_cols));
        for i in 0..self.n_rows {
            let (idx, val) = self.row(i);
            let mut row = out.row_mut(i);
            for (&j, &v) in idx.iter().zip(val) {
                row[j as usize] += v;
            }
        }
        out
    }

    /// Bytes held by the three arrays (the in-memory size of X, used by the memory benchmark).
    pub fn heap_bytes(&self) -> usize {
        self.indptr.len() * 8 + self.indices.len() * 4 + self.data.len() * 4
    }
}

/// An expression matrix as held in memory.
#[derive(Debug, Clone, PartialEq)]
pub enum Matrix {
    /// Dense, row-major, shape `(n_obs, n_vars)`.
    Dense(Array2<f32>),
    /// Compressed sparse rows (a `csc_matrix` on disk is converted on read).
    Csr(CsrMatrix),
}

/// Summary numbers of a matrix used to compare it with another reader (e.g. Python anndata):
/// computed in `f64` over the `f32` values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Checksum {
    /// Number of stored entries (`nnz` for sparse, entries `!= 0` for dense).
    pub nonzero: u64,
    /// Sum of all values.
    pub sum: f64,
    /// Sum of squared values.
    pub sum_sq: f64,
    /// Sum of `value * (row_index + 1) * (col_index % 97 + 1)`, sensitive to positions.
    pub weighted: f64,
}

impl Matrix {
    /// Shape `(n_obs, n_vars)`.
    pub fn shape(&self) -> (usize, usize) {
        match self {
            Self::Dense(a) => a.dim(),
            Self::Csr(c) => (c.n_rows, c.n_cols),
        }
    }

    /// Bytes held by the matrix's arrays.
    pub fn heap_bytes(&self) -> usize {
        match self {
            Self::Dense(a) => a.len() * 4,
            Self::Csr(c) => c.heap_bytes(),
        }
    }

    /// Checksum over all values (see [`Checksum`]); explicit zeros in a sparse matrix do not count
    /// as non-zero.
    pub fn checksum(&self) -> Checksum {
        let mut c = Checksum {
            nonzero: 0,
            sum: 0.0,
            sum_sq: 0.0,
            weighted: 0.0,
        };
        let mut add = |i: usize, j: usize, v: f32| {
            if v != 0.0 {
                let v = f64::from(v);
                c.nonzero += 1;
                c.sum += v;
                c.sum_sq += v * v;
                c.weighted += v * (i as f64 + 1.0) * ((j % 97) as f64 + 1.0);
            }
        };
        match self {
            Self::Dense(a) => {
                for ((i, j), &v) in a.indexed_iter() {
                    add(i, j, v);
                }
            }
            Self::Csr(m) => {
                for i in 0..m.n_rows {
                    let (idx, val) = m.row(i);
                    for (&j, &v) in idx.iter().zip(val) {
                        add(i, j as usize, v);
                    }
                }
            }
        }
        c
    }

    /// The matrix as CSR (dense input is converted, sparse is cloned).
    pub fn to_csr(&self) -> CsrMatrix {
        match self {
            Self::Dense(a) => CsrMatrix::from_dense(a),
            Self::Csr(c) => c.clone(),
        }
    }

    /// First non-finite value as `(row, col)`, if any.
    pub fn first_non_finite(&self) -> Option<(usize, usize)> {
        match self {
            Self::Dense(a) => a
                .indexed_iter()
                .find(|(_, v)| !v.is_finite())
                .map(|(ij, _)| ij),
            Self::Csr(m) => {
                let k = position_bad(&m.data, |v| !v.is_finite())?;
                let row = m.indptr.partition_point(|&p| p <= k as u64) - 1;
                Some((row, m.indices[k] as usize))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ranges cover the rows in order, and each range's values are exactly its rows' values.
    #[test]
    fn row_ranges_split_values_by_row() {
        let n_rows = 2 * PAR_ROWS + 5;
        let mut indptr = vec![0u64];
        for r in 0..n_rows {
            indptr.push(indptr[r] + (r % 3) as u64);
        }
        let nnz = indptr[n_rows] as usize;
        let mut m = CsrMatrix {
            n_rows,
            n_cols: 3,
            indptr,
            indices: (0..nnz).map(|k| (k % 3) as u32).collect(),
            data: (0..nnz).map(|k| k as f32).collect(),
        };
        let want = m.clone();
        let (indptr, blocks) = m.row_ranges_mut();
        let ranges: Vec<_> = blocks.iter().map(|(r, _)| r.clone()).collect();
        assert_eq!(
            ranges,
            vec![0..PAR_ROWS, PAR_ROWS..2 * PAR_ROWS, 2 * PAR_ROWS..n_rows]
        );
        for (rows, values) in blocks {
            let base = indptr[rows.start] as usize;
            for i in rows {
                let (a, b) = (indptr[i] as usize - base, indptr[i + 1] as usize - base);
                assert_eq!(&values[a..b], want.row(i).1, "row {i}");
            }
        }
    }

    #[test]
    fn csc_to_csr_matches_dense() {
        // 3 x 4 matrix [[1,0,2,0],[0,0,3,0],[4,5,0,6]] in CSC.
        let indptr = [0u64, 2, 3, 5, 6];
        let indices = [0u32, 2, 2, 0, 1, 2];
        let data = [1f32, 4., 5., 2., 3., 6.];
        let csr = CsrMatrix::from_csc(3, 4, &indptr, &indices, &data);
        csr.validate().expect("valid");
        let dense = csr.to_dense();
        let expected = ndarray::arr2(&[[1f32, 0., 2., 0.], [0., 0., 3., 0.], [4., 5., 0., 6.]]);
        assert_eq!(dense, expected);
        assert_eq!(CsrMatrix::from_dense(&expected), csr);
    }

    #[test]
    fn validation_catches_each_problem() {
        let ok = CsrMatrix::new(2, 3, vec![0, 1, 2], vec![0, 2], vec![1., 2.]);
        assert!(ok.is_ok());
        assert!(matches!(
            CsrMatrix::new(2, 3, vec![0, 2, 1], vec![0, 2], vec![1., 2.]),
            Err(SparseProblem::IndptrNotMonotonic { at: 2 })
        ));
        assert!(matches!(
            CsrMatrix::new(2, 3, vec![0, 1], vec![0, 2], vec![1., 2.]),
            Err(SparseProblem::IndptrLength { .. })
        ));
        assert!(matches!(
            CsrMatrix::new(2, 3, vec![0, 1, 2], vec![0, 3], vec![1., 2.]),
            Err(SparseProblem::IndexOutOfRange { index: 3, .. })
        ));
        assert!(matches!(
            CsrMatrix::new(2, 3, vec![0, 1, 3], vec![0, 2], vec![1., 2.]),
            Err(SparseProblem::IndptrEnd { .. })
        ));
    }

    #[test]
    fn non_finite_position_is_reported() {
        let m = Matrix::Csr(
            CsrMatrix::new(
                3,
                3,
                vec![0, 1, 1, 3],
                vec![0, 1, 2],
                vec![1., 2., f32::NAN],
            )
            .expect("valid"),
        );
        assert_eq!(m.first_non_finite(), Some((2, 2)));
    }
}
