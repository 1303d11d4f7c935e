//! 10x Market Exchange (MEX) folders, as Cell Ranger, Space Ranger and Xenium write them beside
//! (or instead of) the HDF5 matrix: `matrix.mtx(.gz)` (MatrixMarket coordinate, features x
//! cells, 1-based), `features.tsv(.gz)` (id, name, type; Cell Ranger 2's `genes.tsv` has id and
//! name) and `barcodes.tsv(.gz)`.
//!
//! Read as scanpy's `read_10x_mtx` reads them: var_names the feature names, var `gene_ids` and
//! `feature_types`, only `Gene Expression` features kept (`gex_only=True`). The MatrixMarket
//! body is parsed here straight into cells x genes CSR with every index checked, rather than
//! through `sprs`, whose reader asserts (panics) on an index outside the declared shape.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use super::anndata::AnnData;
use super::error::{DataError, Result};
use super::matrix::CsrMatrix;

/// `stem` or `stem.gz` in `dir`, whichever exists.
fn find(dir: &Path, stem: &str) -> Option<PathBuf> {
    [format!("{stem}.gz"), stem.to_string()]
        .into_iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
}

/// Whether `dir` is a MEX folder (a `matrix.mtx(.gz)` and a `barcodes.tsv(.gz)`).
pub fn is_mex(dir: &Path) -> bool {
    find(dir, "matrix.mtx").is_some() && find(dir, "barcodes.tsv").is_some()
}

/// A text file, gunzipped when its name ends in `.gz`.
fn open_text(path: &Path) -> Result<Box<dyn BufRead>> {
    let f = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let r: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::MultiGzDecoder::new(f))
    } else {
        Box::new(f)
    };
    Ok(Box::new(BufReader::with_capacity(1 << 20, r)))
}

/// The tab-separated rows of a `.tsv(.gz)`.
fn rows(path: &Path) -> Result<Vec<Vec<String>>> {
    open_text(path)?
        .lines()
        .map(|l| {
            l.map(|l| l.split('\t').map(str::to_string).collect::<Vec<_>>())
                .map_err(|e| DataError::io(path, e))
        })
        .filter(|r| !matches!(r, Ok(v) if v.len() == 1 && v[0].is_empty()))
        .collect()
}

/// The features of a MEX folder: ids, names and types (`Gene Expression` where the file has no
/// type column).
///
/// # Errors
/// No `features.tsv(.gz)` / `genes.tsv(.gz)`, or a row with fewer than two columns.
pub fn features(dir: &Path) -> Result<[Vec<String>; 3]> {
    let path = find(dir, "features.tsv")
        .or_else(|| find(dir, "genes.tsv"))
        .ok_or_else(|| {
            DataError::missing(dir, "features.tsv.gz", "the feature list (id, name, type)")
        })?;
    let mut out: [Vec<String>; 3] = Default::default();
    for (i, r) in rows(&path)?.into_iter().enumerate() {
        if r.len() < 2 {
            let m = format!(
                "row {} has {} column(s); id and name expected",
                i + 1,
                r.len()
            );
            return Err(DataError::invalid(&path, "features", m));
        }
        let t = r
            .get(2)
            .cloned()
            .unwrap_or_else(|| "Gene Expression".into());
        out[0].push(r[0].clone());
        out[1].push(r[1].clone());
        out[2].push(t);
    }
    Ok(out)
}

/// Reads a MEX folder as cells x genes (`f32` counts), gene features only.
///
/// # Errors
/// A missing file; a MatrixMarket header that is not `coordinate` `integer`/`real` `general`;
/// a size line that disagrees with the feature or barcode lists; an entry with an index outside
/// the shape, a value that is not a finite number, or fewer entries than declared (each naming
/// the file and the line).
pub fn read_10x_mex(dir: &Path) -> Result<AnnData> {
    let mtx = find(dir, "matrix.mtx")
        .ok_or_else(|| DataError::missing(dir, "matrix.mtx.gz", "the MatrixMarket matrix"))?;
    let bc_path = find(dir, "barcodes.tsv")
        .ok_or_else(|| DataError::missing(dir, "barcodes.tsv.gz", "the cell barcodes"))?;
    let barcodes: Vec<String> = rows(&bc_path)?
        .into_iter()
        .map(|mut r| r.swap_remove(0))
        .collect();
    let [ids, names, types] = features(dir)?;
    let x = read_mtx(&mtx, names.len(), barcodes.len())?;
    let (x, var) = super::tenx::gene_expression_only(x, &names, &ids, &types, &[]);
    super::tenx::finish(&mtx, barcodes, var, x, "matrix")
}

/// The MatrixMarket coordinate matrix (features x cells) as cells x features CSR.
fn read_mtx(path: &Path, n_features: usize, n_cells: usize) -> Result<CsrMatrix> {
    let bad = |line: usize, m: String| DataError::invalid(path, &format!("line {line}"), m);
    let mut r = open_text(path)?;
    let (mut line, mut no) = (String::new(), 0usize);
    let mut next = |line: &mut String, no: &mut usize| -> Result<bool> {
        line.clear();
        *no += 1;
        Ok(r.read_line(line).map_err(|e| DataError::io(path, e))? > 0)
    };
    next(&mut line, &mut no)?;
    let header = line.to_lowercase();
    let h: Vec<&str> = header.split_whitespace().collect();
    let numeric = h.get(3).is_some_and(|t| *t == "integer" || *t == "real");
    if h.len() < 5
        || h[..3] != ["%%matrixmarket", "matrix", "coordinate"]
        || !numeric
        || h[4] != "general"
    {
        let m = format!(
            "header {:?}: `%%MatrixMarket matrix coordinate integer|real general` expected",
            line.trim()
        );
        return Err(bad(1, m));
    }
    while next(&mut line, &mut no)? && (line.starts_with('%') || line.trim().is_empty()) {}
    let size: Vec<usize> = line
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    if size.len() != 3 || size[0] != n_features || size[1] != n_cells {
        let m = format!(
            "size line {:?}: `{n_features} {n_cells} <entries>` expected ({n_features} features, \
             {n_cells} barcodes)",
            line.trim()
        );
        return Err(bad(no, m));
    }
    let entries = size[2];
    // The declared count only reserves up to 16 M entries: a damaged header must not allocate.
    let reserve = entries.min(1 << 24);
    let mut cell = Vec::with_capacity(reserve);
    let mut gene = Vec::with_capacity(reserve);
    let mut value = Vec::with_capacity(reserve);
    while value.len() < entries {
        if !next(&mut line, &mut no)? {
            let m = format!("the file ends after {} of {entries} entries", value.len());
            return Err(bad(no, m));
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.is_empty() {
            continue;
        }
        let i: usize = f[0].parse().unwrap_or(0);
        let j: usize = f.get(1).and_then(|v| v.parse().ok()).unwrap_or(0);
        let v: f32 = f.get(2).and_then(|v| v.parse().ok()).unwrap_or(f32::NAN);
        if f.len() != 3 || i == 0 || i > n_features || j == 0 || j > n_cells || !v.is_finite() {
            let m = format!(
                "{:?}: `feature cell value` with the feature in 1..={n_features}, the cell in \
                 1..={n_cells} and a finite value expected",
                line.trim()
            );
            return Err(bad(no, m));
        }
        gene.push((i - 1) as u32);
        cell.push((j - 1) as u32);
        value.push(v);
    }
    Ok(to_csr(n_cells, n_features, &cell, &gene, &value))
}

/// Triplets to CSR by a counting sort on the cell (stable: features keep file order within a
/// cell; 10x writes them ascending).
fn to_csr(
    n_cells: usize,
    n_features: usize,
    cell: &[u32],
    gene: &[u32],
    value: &[f32],
) -> CsrMatrix {
    let mut indptr = vec![0u64; n_cells + 1];
    for &c in cell {
        indptr[c as usize + 1] += 1;
    }
    for k in 0..n_cells {
        indptr[k + 1] += indptr[k];
    }
    let mut at: Vec<u64> = indptr[..n_cells].to_vec();
    let mut indices = vec![0u32; cell.len()];
    let mut data = vec![0f32; cell.len()];
    for ((&c, &g), &v) in cell.iter().zip(gene).zip(value) {
        let k = at[c as usize] as usize;
        indices[k] = g;
        data[k] = v;
        at[c as usize] += 1;
    }
    CsrMatrix {
        n_rows: n_cells,
        n_cols: n_features,
        indptr,
        indices,
        data,
    }
}
