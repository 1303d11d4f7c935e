//! Preprocessing on CSR matrices without densifying: `normalize_total`, `log1p`, and
//! `highly_variable_genes` (Seurat flavour), following scanpy 1.11
//! (`scanpy.pp.normalize_total`, `scanpy.pp.log1p`, `scanpy.pp.highly_variable_genes`).

use rayon::prelude::*;

use super::matrix::{CsrMatrix, PAR_ROWS};

/// Target of `normalize_total`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TargetSum {
    /// Each cell is scaled to this total (the SSL models of Richter et al. use 1e4).
    Fixed(f64),
    /// The median of the cells' totals (scanpy's default, `target_sum=None`; used by the
    /// reusability study on spatial panels). As scanpy 1.11 does for CSR input, the median is
    /// taken over all cells, empty ones included.
    Median,
}

/// Per-cell totals (row sums), shape `(n_rows,)`: accumulated in `f64`, stored as `f32` (as
/// scanpy's `_normalize_csr` does for `float32` data).
pub fn row_totals(m: &CsrMatrix) -> Vec<f32> {
    (0..m.n_rows)
        .into_par_iter()
        .with_min_len(PAR_ROWS)
        .map(|i| m.row(i).1.iter().map(|&v| f64::from(v)).sum::<f64>() as f32)
        .collect()
}

/// numpy's median: the middle value, or the mean of the two middle values; 0 when empty.
pub fn median(values: &[f32]) -> f32 {
    let mut v = values.to_vec();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f32::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Scales every cell (row) to `target` total counts, in place: `x_ij / (total_i / target)`. A
/// cell whose total is zero is left at zero. Returns the target used.
///
/// Formula and `float32` arithmetic: scanpy 1.11 `pp.normalize_total`
/// (`exclude_highly_expressed=False`), CSR path: the factor `total_i / target` and the division
/// are taken in `f32`, so results equal scanpy's to the last bit or one rounding.
pub fn normalize_total(m: &mut CsrMatrix, target: TargetSum) -> f64 {
    let totals = row_totals(m);
    let after = match target {
        TargetSum::Fixed(t) => t as f32,
        TargetSum::Median => median(&totals),
    };
    let (indptr, blocks) = m.row_ranges_mut();
    blocks.into_par_iter().for_each(|(rows, block)| {
        let base = indptr[rows.start] as usize;
        for i in rows {
            let factor = totals[i] / after;
            if factor == 0.0 || !factor.is_finite() {
                continue;
            }
            let (a, b) = (indptr[i] as usize - base, indptr[i + 1] as usize - base);
            for v in &mut block[a..b] {
                *v /= factor;
            }
        }
    });
    f64::from(after)
}

/// `ln(1 + x)` of every stored value, in place (zeros stay zero, so sparsity is kept).
///
/// Formula: scanpy `pp.log1p` (natural log, `base=None`).
pub fn log1p(m: &mut CsrMatrix) {
    m.data.par_chunks_mut(1 << 16).for_each(|c| {
        for v in c {
            *v = f64::from(*v).ln_1p() as f32;
        }
    });
}

/// What the values of an expression matrix are, judged from its stored values, and so what
/// brings them to the SSL models' input (`normalize_total` + `log1p` of counts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputScale {
    /// Non-negative integers: raw counts.
    Counts,
    /// Non-negative, non-integer, at most [`LOG_MAX`]: already `log1p` of normalised counts
    /// (scanpy's usual `X` or `raw.X`); `expm1` recovers values proportional to counts.
    LogNormalized,
    /// Non-negative, non-integer, larger values (e.g. volume-normalised MERFISH counts):
    /// treated as counts.
    Normalized,
}

/// Largest value taken for `log1p` data: `log1p(1e4 * 1e4)` is about 18.4, so normalised
/// log data stays below 20, while counts and normalised counts of expressed genes exceed it.
pub const LOG_MAX: f32 = 20.0;

impl InputScale {
    /// Judges `m` (which must be finite and non-negative; see [`check_counts`]).
    pub fn detect(m: &CsrMatrix) -> Self {
        if m.data.iter().all(|v| v.fract() == 0.0) {
            InputScale::Counts
        } else if m.data.iter().all(|&v| v <= LOG_MAX) {
            InputScale::LogNormalized
        } else {
            InputScale::Normalized
        }
    }

    /// Brings `m` to counts-like values in place (`expm1` for log-normalised data).
    pub fn to_counts_like(self, m: &mut CsrMatrix) {
        if self == InputScale::LogNormalized {
            for v in &mut m.data {
                *v = v.exp_m1();
            }
        }
    }
}

/// A stored value that is not a count (negative or not finite), where [`check_counts`] found it.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error(
    "value {value} at row {row}, column {column} is not a count (counts must be finite and >= 0)"
)]
pub struct NotCounts {
    /// The value.
    pub value: f32,
    /// Its row (cell), 0-based.
    pub row: usize,
    /// Its column (gene), 0-based.
    pub column: u32,
}

/// The checks a counts matrix must pass before `normalize_total`: finite and non-negative.
///
/// # Errors
/// [`NotCounts`] for the first offending value (row-major order).
pub fn check_counts(m: &CsrMatrix) -> Result<(), NotCounts> {
    for row in 0..m.n_rows {
        let (idx, val) = m.row(row);
        if let Some(k) = val.iter().position(|v| !v.is_finite() || *v < 0.0) {
            return Err(NotCounts {
                value: val[k],
                row,
                column: idx[k],
            });
        }
    }
    Ok(())
}

/// Result of [`highly_variable_genes`], one entry per gene (column).
#[derive(Debug, Clone, PartialEq)]
pub struct HvgResult {
    /// `log1p` of the mean of `expm1(X)` per gene (scanpy's `means`).
    pub means: Vec<f64>,
    /// `ln(var / mean)` of `expm1(X)` (`NaN` where the dispersion is 0) (`dispersions`).
    pub dispersions: Vec<f64>,
    /// Dispersion z-scored within its mean bin (`dispersions_norm`).
    pub dispersions_norm: Vec<f64>,
    /// Selected genes (`highly_variable`).
    pub highly_variable: Vec<bool>,
}

/// Parameters of [`highly_variable_genes`]; defaults are scanpy's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HvgParams {
    /// Keep this many genes with the highest normalised dispersion; `None` uses the cutoffs.
    pub n_top_genes: Option<usize>,
    /// Number of equal-width mean bins (`n_bins=20`).
    pub n_bins: usize,
    /// Lower mean cutoff (`min_mean=0.0125`).
    pub min_mean: f64,
    /// Upper mean cutoff (`max_mean=3`).
    pub max_mean: f64,
    /// Lower normalised dispersion cutoff (`min_disp=0.5`).
    pub min_disp: f64,
    /// Upper normalised dispersion cutoff (`max_disp=inf`).
    pub max_disp: f64,
}

impl Default for HvgParams {
    fn default() -> Self {
        Self {
            n_top_genes: None,
            n_bins: 20,
            min_mean: 0.0125,
            max_mean: 3.0,
            min_disp: 0.5,
            max_disp: f64::INFINITY,
        }
    }
}

/// Highly variable genes, Seurat flavour, on log-normalised data (scanpy
/// `pp.highly_variable_genes(flavor="seurat")`, single batch): per gene, mean and unbiased
/// variance of `expm1(X)` (taken in `f32` as scanpy does on `float32` data, accumulated in `f64`
/// with scanpy's one-pass formula), dispersion `ln(var/mean)`, genes binned by `log1p(mean)` into
/// `n_bins` equal-width bins (pandas `cut`), dispersions z-scored per bin (a bin with a single
/// gene gets mean 0 and standard deviation = its dispersion, as scanpy does).
pub fn highly_variable_genes(m: &CsrMatrix, p: &HvgParams) -> HvgResult {
    let n = m.n_rows as f64;
    let g = m.n_cols;
    // One pass over stored values, as scanpy's `sparse_mean_var_minor_axis`: sums of the
    // `f32` values and of their `f32` squares, accumulated in `f64`.
    let mut sum = vec![0f64; g];
    let mut sq = vec![0f64; g];
    for (&j, &v) in m.indices.iter().zip(&m.data) {
        let e = v.exp_m1();
        sum[j as usize] += f64::from(e);
        sq[j as usize] += f64::from(e * e);
    }
    let ddof = if m.n_rows > 1 { n / (n - 1.0) } else { 1.0 };
    let mut means = Vec::with_capacity(g);
    let mut dispersions = Vec::with_capacity(g);
    for j in 0..g {
        let mu = sum[j] / n;
        let var = (sq[j] / n - mu * mu) * ddof;
        let mu = if mu == 0.0 { 1e-12 } else { mu };
        let disp = var / mu;
        dispersions.push(if disp == 0.0 { f64::NAN } else { disp.ln() });
        means.push(mu.ln_1p());
    }
    // pandas.cut(means, bins=n_bins): equal-width edges over [min, max], the lowest edge moved
    // down by 0.1% of the range, right-closed intervals.
    let lo = means.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = means.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let nb = p.n_bins.max(1);
    let bin_of = |x: f64| -> usize {
        if hi <= lo {
            return 0;
        }
        let edges: Vec<f64> = (0..=nb)
            .map(|k| lo + (hi - lo) * k as f64 / nb as f64)
            .collect();
        // first edge k with x <= edges[k]; interval index k - 1.
        let k = edges.partition_point(|&e| e < x);
        k.clamp(1, nb) - 1
    };
    let bins: Vec<usize> = means.iter().map(|&x| bin_of(x)).collect();
    // Mean and sample std of the dispersions per bin, NaN skipped (pandas groupby).
    let mut s = vec![0f64; nb];
    let mut c = vec![0usize; nb];
    for (j, &b) in bins.iter().enumerate() {
        if !dispersions[j].is_nan() {
            s[b] += dispersions[j];
            c[b] += 1;
        }
    }
    let avg: Vec<f64> = (0..nb)
        .map(|b| {
            if c[b] > 0 {
                s[b] / c[b] as f64
            } else {
                f64::NAN
            }
        })
        .collect();
    let mut ss = vec![0f64; nb];
    for (j, &b) in bins.iter().enumerate() {
        if !dispersions[j].is_nan() {
            let d = dispersions[j] - avg[b];
            ss[b] += d * d;
        }
    }
    let mut avg = avg;
    let mut dev: Vec<f64> = (0..nb)
        .map(|b| {
            if c[b] > 1 {
                (ss[b] / (c[b] - 1) as f64).sqrt()
            } else {
                f64::NAN
            }
        })
        .collect();
    for b in 0..nb {
        if c[b] == 1 {
            dev[b] = avg[b];
            avg[b] = 0.0;
        }
    }
    let dispersions_norm: Vec<f64> = (0..g)
        .map(|j| (dispersions[j] - avg[bins[j]]) / dev[bins[j]])
        .collect();
    let highly_variable = match p.n_top_genes {
        Some(k) => {
            let mut v: Vec<f64> = dispersions_norm
                .iter()
                .copied()
                .filter(|x| !x.is_nan())
                .collect();
            v.sort_by(|a, b| b.total_cmp(a));
            let k = k.min(v.len()).max(1);
            let cut = v.get(k - 1).copied().unwrap_or(f64::INFINITY);
            dispersions_norm
                .iter()
                .map(|&x| if x.is_nan() { false } else { x >= cut })
                .collect()
        }
        None => (0..g)
            .map(|j| {
                let d = if dispersions_norm[j].is_nan() {
                    0.0
                } else {
                    dispersions_norm[j]
                };
                means[j] > p.min_mean && means[j] < p.max_mean && d > p.min_disp && d < p.max_disp
            })
            .collect(),
    };
    HvgResult {
        means,
        dispersions,
        dispersions_norm,
        highly_variable,
    }
}

/// mclSTExp's expression input (its `dataset.py`: scprep's `library_size_normalize`, rescaled
/// to the median library size, then `scprep.transform.log`, base 10, pseudocount 1): each
/// spot's counts over the panel genes divided by their total and multiplied by the median total
/// of the section's spots, then `log10(1 + x)`. Spots with no counts stay zero.
pub fn library_size_log10(counts: &ndarray::Array2<f32>) -> ndarray::Array2<f32> {
    let totals: Vec<f32> = counts.rows().into_iter().map(|r| r.iter().sum()).collect();
    let m = f64::from(median(&totals));
    let mut out = counts.clone();
    for (mut r, &t) in out.rows_mut().into_iter().zip(&totals) {
        let scale = if t > 0.0 { m / f64::from(t) } else { 0.0 };
        r.mapv_inplace(|v| (1.0 + f64::from(v) * scale).log10() as f32);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> CsrMatrix {
        // [[1, 0, 3], [0, 0, 0], [2, 2, 0]]
        CsrMatrix::new(
            3,
            3,
            vec![0, 2, 2, 4],
            vec![0, 2, 0, 1],
            vec![1., 3., 2., 2.],
        )
        .expect("valid")
    }

    #[test]
    fn normalize_total_fixed_and_zero_rows() {
        let mut m = small();
        let t = normalize_total(&mut m, TargetSum::Fixed(10.0));
        assert_eq!(t, 10.0);
        assert_eq!(m.data, vec![2.5, 7.5, 5.0, 5.0]);
        assert_eq!(row_totals(&m), vec![10.0f32, 0.0, 10.0]);
    }

    #[test]
    fn normalize_total_median_over_all_cells() {
        let mut m = small();
        // totals 4, 0, 4 -> median over all cells (scanpy's CSR path) = 4
        let t = normalize_total(&mut m, TargetSum::Median);
        assert_eq!(t, 4.0);
        assert_eq!(m.data, vec![1., 3., 2., 2.]);
        assert_eq!(median(&[0.0, 0.0, 4.0, 6.0]), 2.0);
    }

    #[test]
    fn log1p_keeps_sparsity() {
        let mut m = small();
        log1p(&mut m);
        assert_eq!(m.nnz(), 4);
        assert!((m.data[0] - 2f32.ln()).abs() < 1e-7);
    }

    #[test]
    fn counts_check_rejects_negative() {
        let mut m = small();
        m.data[3] = -1.0;
        let e = check_counts(&m).expect_err("negative");
        assert!(e.to_string().contains("row 2"), "{e}");
    }
}
