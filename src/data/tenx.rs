//! 10x Genomics inputs: Cell Ranger HDF5 matrices (v2 per-genome groups, v3 `matrix/` with
//! `features/`) and Space Ranger Visium folders, read as scanpy's `read_10x_h5` and
//! `read_visium` do.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use hdf5::{File, Group};
use ndarray::Array2;

use super::anndata::{AnnData, MatrixEncoding, MatrixInfo};
use super::dataframe::{Column, DataFrame};
use super::error::{DataError, Result};
use super::fastread;
use super::h5ad::open_hdf5;
use super::h5util::{checked, read_strings};
use super::matrix::{CsrMatrix, Matrix, validate_compressed};

fn h5<T>(file: &Path, path: &str, r: hdf5::Result<T>) -> Result<T> {
    r.map_err(|e| DataError::hdf5(file, path, e))
}

fn strings(file: &Path, g: &Group, group_path: &str, name: &str) -> Result<Vec<String>> {
    let path = format!("{group_path}/{name}");
    let ds = g
        .dataset(name)
        .map_err(|_| DataError::missing(file, &path, "a string dataset"))?;
    let ds = h5(file, &path, checked(ds))?;
    h5(file, &path, read_strings(&ds))
}

/// Reads a 10x Cell Ranger HDF5 matrix as cells x genes, `f32` counts.
///
/// v3 (`matrix/`): var_names are feature names, var has `gene_ids`, `feature_types`, `genome`;
/// only "Gene Expression" features are kept (scanpy's `gex_only=True`). v2 (one group per
/// genome): var_names are `gene_names`, var has `gene_ids`; with several genomes, `genome` must
/// name one.
///
/// # Errors
/// Not a 10x file, several genomes without a choice, malformed matrix arrays.
pub fn read_10x_h5(path: impl AsRef<Path>, genome: Option<&str>) -> Result<AnnData> {
    let path = path.as_ref();
    let f = open_hdf5(path)?;
    if f.link_exists("matrix") {
        read_v3(path, &f)
    } else {
        read_v2(path, &f, genome)
    }
}

fn read_csc_cells(path: &Path, g: &Group, gp: &str) -> Result<(usize, usize, CsrMatrix)> {
    let shape_path = format!("{gp}/shape");
    let shape: Vec<i64> = h5(
        path,
        &shape_path,
        g.dataset("shape")
            .and_then(checked)
            .and_then(|d| d.read_raw::<i64>()),
    )?;
    if shape.len() != 2 || shape.iter().any(|&s| s < 0) {
        return Err(DataError::invalid(
            path,
            &shape_path,
            format!("shape must be [n_genes, n_cells], found {shape:?}"),
        ));
    }
    let (n_genes, n_cells) = (shape[0] as usize, shape[1] as usize);
    let indptr_path = format!("{gp}/indptr");
    let ds = h5(path, &indptr_path, g.dataset("indptr").and_then(checked))?;
    if ds.size() != n_cells + 1 {
        return Err(DataError::invalid(
            path,
            &indptr_path,
            format!(
                "has {} entries, expected n_cells + 1 = {}",
                ds.size(),
                n_cells + 1
            ),
        ));
    }
    let indptr: Vec<u64> = h5(path, &indptr_path, ds.read_raw::<i64>())?
        .into_iter()
        .map(|p| p.max(0) as u64)
        .collect();
    // The two big arrays on all cores (pread and inflate per chunk, `fastread`), side by side;
    // the library reads them when their layout needs it.
    let idx_path = format!("{gp}/indices");
    let data_path = format!("{gp}/data");
    let (indices, data) = rayon::join(
        || -> Result<Vec<u32>> {
            let ds = h5(path, &idx_path, g.dataset("indices").and_then(checked))?;
            let fast = fastread::read_all::<u32>(path, &ds);
            let raw: Vec<i64> = match fast {
                Some(Ok(v)) => return Ok(v),
                Some(Err(e)) => return Err(e.at(path, &idx_path)),
                None => h5(path, &idx_path, ds.read_raw())?,
            };
            if let Some(k) = raw.iter().position(|&i| i < 0 || i > i64::from(u32::MAX)) {
                let m = format!("gene index {} at {k} is negative or too large", raw[k]);
                return Err(DataError::invalid(path, &idx_path, m));
            }
            Ok(raw.into_iter().map(|i| i as u32).collect())
        },
        || -> Result<Vec<f32>> {
            let ds = h5(path, &data_path, g.dataset("data").and_then(checked))?;
            match fastread::read_all::<f32>(path, &ds) {
                Some(v) => v.map_err(|e| e.at(path, &data_path)),
                None => h5(path, &data_path, ds.read_raw()),
            }
        },
    );
    let (indices, data) = (indices?, data?);
    if let Some(k) = crate::data::matrix::position_bad(&indices, |&i| i as usize >= n_genes) {
        return Err(DataError::invalid(
            path,
            &idx_path,
            format!("gene index {} at {k} out of range 0..{n_genes}", indices[k]),
        ));
    }
    // Stored as CSC of genes x cells = CSR of cells x genes.
    validate_compressed(n_cells, n_genes, &indptr, &indices, data.len())
        .map_err(|p| DataError::invalid(path, gp, p.to_string()))?;
    Ok((
        n_cells,
        n_genes,
        CsrMatrix {
            n_rows: n_cells,
            n_cols: n_genes,
            indptr,
            indices,
            data,
        },
    ))
}

fn info(path: &str, m: &CsrMatrix) -> MatrixInfo {
    MatrixInfo {
        path: path.to_string(),
        encoding: MatrixEncoding::Csr,
        dtype: "float32".into(),
        shape: (m.n_rows, m.n_cols),
        stored: m.nnz() as u64,
    }
}

/// The `feature_type` of every feature of a 10x v3 matrix (`Gene Expression`, `Negative
/// Control Probe`, `Unassigned Codeword`, ...), in file order; empty for a v2 matrix.
///
/// # Errors
/// An unreadable file or `matrix/features/feature_type`.
pub fn feature_types(path: &Path) -> Result<Vec<String>> {
    let f = super::h5ad::open_hdf5(path)?;
    if !f.link_exists("matrix") {
        return Ok(Vec::new());
    }
    let fg = h5(path, "matrix/features", f.group("matrix/features"))?;
    strings(path, &fg, "matrix/features", "feature_type")
}

fn read_v3(path: &Path, f: &File) -> Result<AnnData> {
    let g = h5(path, "matrix", f.group("matrix"))?;
    let (_, n_genes, x) = read_csc_cells(path, &g, "matrix")?;
    let barcodes = strings(path, &g, "matrix", "barcodes")?;
    let fg = g
        .group("features")
        .map_err(|_| DataError::missing(path, "matrix/features", "the features group"))?;
    let ids = strings(path, &fg, "matrix/features", "id")?;
    let names = strings(path, &fg, "matrix/features", "name")?;
    let types = strings(path, &fg, "matrix/features", "feature_type")?;
    let genomes = strings(path, &fg, "matrix/features", "genome")?;
    for (what, v) in [
        ("id", &ids),
        ("name", &names),
        ("feature_type", &types),
        ("genome", &genomes),
    ] {
        if v.len() != n_genes {
            return Err(DataError::invalid(
                path,
                &format!("matrix/features/{what}"),
                format!("has {} entries, expected {n_genes} (shape[0])", v.len()),
            ));
        }
    }
    let (x, var) = gene_expression_only(x, &names, &ids, &types, &[("genome", &genomes)]);
    finish(path, barcodes, var, x, "matrix")
}

fn read_v2(path: &Path, f: &File, genome: Option<&str>) -> Result<AnnData> {
    let genomes: Vec<String> = h5(path, "/", f.member_names())?
        .into_iter()
        .filter(|n| f.group(n).map(|g| g.link_exists("indptr")).unwrap_or(false))
        .collect();
    let chosen = match (genome, genomes.as_slice()) {
        (_, []) => {
            return Err(DataError::missing(
                path,
                "/",
                "a 10x matrix: `matrix/` (v3) or a genome group with indptr (v2)",
            ));
        }
        (Some(g), _) => {
            if !genomes.iter().any(|x| x == g) {
                return Err(DataError::missing(
                    path,
                    g,
                    format!("genome group; the file has {genomes:?}"),
                ));
            }
            g.to_string()
        }
        (None, [one]) => one.clone(),
        (None, many) => {
            return Err(DataError::invalid(
                path,
                "/",
                format!("the file holds several genomes {many:?}; choose one with --genome"),
            ));
        }
    };
    let g = h5(path, &chosen, f.group(&chosen))?;
    let (_, n_genes, x) = read_csc_cells(path, &g, &chosen)?;
    let barcodes = strings(path, &g, &chosen, "barcodes")?;
    let ids = strings(path, &g, &chosen, "genes")?;
    let names = strings(path, &g, &chosen, "gene_names")?;
    if ids.len() != n_genes || names.len() != n_genes {
        return Err(DataError::invalid(
            path,
            &format!("{chosen}/genes"),
            format!("gene lists must have {n_genes} entries (shape[0])"),
        ));
    }
    let var = DataFrame {
        index: names,
        columns: vec![("gene_ids".into(), Column::Str(ids))],
    };
    finish(path, barcodes, var, x, &chosen)
}

pub(crate) fn finish(
    path: &Path,
    barcodes: Vec<String>,
    var: DataFrame,
    x: CsrMatrix,
    gp: &str,
) -> Result<AnnData> {
    if barcodes.len() != x.n_rows {
        return Err(DataError::invalid(
            path,
            &format!("{gp}/barcodes"),
            format!(
                "has {} entries, expected n_cells = {}",
                barcodes.len(),
                x.n_rows
            ),
        ));
    }
    let x_info = info(gp, &x);
    Ok(AnnData {
        source: path.to_path_buf(),
        obs: DataFrame {
            index: barcodes,
            columns: Vec::new(),
        },
        var,
        x: Matrix::Csr(x),
        x_loaded: true,
        x_info,
        obsm: BTreeMap::new(),
        layers: Vec::new(),
        raw: None,
        uns_colors: BTreeMap::new(),
        imputed_genes: Vec::new(),
        spatial_units: None,
    })
}

/// The `Gene Expression` features of a 10x matrix (scanpy's `gex_only=True`): the other
/// columns of `x` dropped, var named by `names` with `gene_ids`, `feature_types` and the
/// `extra` per-feature columns (categorical), all indexed like the features.
pub(crate) fn gene_expression_only(
    x: CsrMatrix,
    names: &[String],
    ids: &[String],
    types: &[String],
    extra: &[(&str, &[String])],
) -> (CsrMatrix, DataFrame) {
    let keep: Vec<usize> = (0..names.len())
        .filter(|&j| types[j] == "Gene Expression")
        .collect();
    let x = if keep.len() == names.len() {
        x
    } else {
        subset_columns(x, &keep)
    };
    let pick = |v: &[String]| keep.iter().map(|&j| v[j].clone()).collect::<Vec<_>>();
    let mut columns = vec![
        ("gene_ids".to_string(), Column::Str(pick(ids))),
        (
            "feature_types".to_string(),
            Column::categorical_from_labels(&pick(types)),
        ),
    ];
    for (name, v) in extra {
        columns.push((name.to_string(), Column::categorical_from_labels(&pick(v))));
    }
    let var = DataFrame {
        index: pick(names),
        columns,
    };
    (x, var)
}

/// Keeps the listed columns of a CSR matrix (renumbered in the given order), compacting its
/// arrays in place: no second copy of a large matrix.
pub fn subset_columns(mut m: CsrMatrix, keep: &[usize]) -> CsrMatrix {
    let mut map = vec![u32::MAX; m.n_cols];
    for (new, &old) in keep.iter().enumerate() {
        map[old] = new as u32;
    }
    let (mut w, mut start) = (0usize, 0usize);
    for i in 0..m.n_rows {
        let end = m.indptr[i + 1] as usize;
        for k in start..end {
            let nj = map[m.indices[k] as usize];
            if nj != u32::MAX {
                m.indices[w] = nj;
                m.data[w] = m.data[k];
                w += 1;
            }
        }
        start = end;
        m.indptr[i + 1] = w as u64;
    }
    m.indices.truncate(w);
    m.data.truncate(w);
    m.n_cols = keep.len();
    m
}

/// A tissue image of a Visium folder.
#[derive(Debug, Clone)]
pub struct TissueImage {
    /// `hires` or `lowres`.
    pub name: String,
    /// The PNG path.
    pub path: PathBuf,
    /// Multiply full-resolution pixel coordinates by this to get this image's pixels
    /// (`tissue_hires_scalef` / `tissue_lowres_scalef`).
    pub scale: f64,
    /// Image width and height in pixels.
    pub size: (u32, u32),
}

/// A Visium Space Ranger output folder, read as `scanpy.read_visium`.
#[derive(Debug, Clone)]
pub struct Visium {
    /// Spots x genes; obs has `in_tissue`, `array_row`, `array_col`; `obsm['spatial']` holds
    /// full-resolution pixel coordinates (x = column, y = row), as scanpy stores them.
    pub adata: AnnData,
    /// Available images (`hires`, `lowres`).
    pub images: Vec<TissueImage>,
    /// Spot diameter in full-resolution pixels (`spot_diameter_fullres`).
    pub spot_diameter_fullres: f64,
    /// The whole `scalefactors_json.json`.
    pub scalefactors: BTreeMap<String, f64>,
}

/// The header of Space Ranger 2.x's `tissue_positions.csv`.
const POSITIONS_HEADER: [&str; 6] = [
    "barcode",
    "in_tissue",
    "array_row",
    "array_col",
    "pxl_row_in_fullres",
    "pxl_col_in_fullres",
];

/// Reads a Visium folder: `filtered_feature_bc_matrix.h5`, `spatial/tissue_positions_list.csv`
/// (Space Ranger 1.x, no header), `spatial/tissue_positions.csv` (2.x, header) or
/// `spatial/tissue_positions.parquet` (Visium HD; a run's `binned_outputs/` folder, or the
/// folder holding it, reads its bins as [`hd_bins`] chooses),
/// `spatial/scalefactors_json.json`, and the image sizes of `tissue_{hires,lowres}_image.png`.
///
/// # Errors
/// A missing matrix, positions or scale-factor file; a spot without a position; malformed CSV
/// (a 2.x header other than Space Ranger's, a value that is not a finite number).
pub fn read_visium(dir: impl AsRef<Path>) -> Result<Visium> {
    let bins = hd_bins(dir.as_ref());
    let dir = bins.as_deref().unwrap_or(dir.as_ref());
    let h5_path = dir.join("filtered_feature_bc_matrix.h5");
    let mut adata = read_10x_h5(&h5_path, None)?;
    let spatial = dir.join("spatial");
    let (pos_path, pos) = positions(dir, &spatial)?;
    let n = adata.n_obs();
    let mut in_tissue = Vec::with_capacity(n);
    let mut arow = Vec::with_capacity(n);
    let mut acol = Vec::with_capacity(n);
    let mut xy = Array2::<f64>::zeros((n, 2));
    for (i, bc) in adata.obs.index.iter().enumerate() {
        let p = pos.get(bc).ok_or_else(|| {
            DataError::invalid(
                &pos_path,
                &format!("barcode {bc:?}"),
                format!(
                    "no position row for this barcode of {} (cell {i})",
                    h5_path.display()
                ),
            )
        })?;
        in_tissue.push(p[0] as i64);
        arow.push(p[1] as i64);
        acol.push(p[2] as i64);
        // Space Ranger: column 5 = pxl_row_in_fullres, column 6 = pxl_col_in_fullres; scanpy
        // stores obsm['spatial'] = (pxl_col, pxl_row), i.e. (x, y).
        xy[[i, 0]] = p[4];
        xy[[i, 1]] = p[3];
    }
    adata.obs.columns = vec![
        ("in_tissue".into(), Column::Int(in_tissue)),
        ("array_row".into(), Column::Int(arow)),
        ("array_col".into(), Column::Int(acol)),
    ];
    adata.obsm.insert("spatial".into(), xy);
    adata.spatial_units = Some("px".into());

    let sf_path = spatial.join("scalefactors_json.json");
    let text = std::fs::read_to_string(&sf_path).map_err(|e| DataError::io(&sf_path, e))?;
    let scalefactors: BTreeMap<String, f64> = serde_json::from_str(&text)
        .map_err(|e| DataError::invalid(&sf_path, "scalefactors", e.to_string()))?;
    let mut images = Vec::new();
    for name in ["hires", "lowres"] {
        let p = spatial.join(format!("tissue_{name}_image.png"));
        let Some(&scale) = scalefactors.get(&format!("tissue_{name}_scalef")) else {
            continue;
        };
        if p.is_file() {
            let size = image::image_dimensions(&p)
                .map_err(|e| DataError::invalid(&p, "image", e.to_string()))?;
            images.push(TissueImage {
                name: name.into(),
                path: p,
                scale,
                size,
            });
        }
    }
    Ok(Visium {
        spot_diameter_fullres: scalefactors
            .get("spot_diameter_fullres")
            .copied()
            .unwrap_or(f64::NAN),
        adata,
        images,
        scalefactors,
    })
}

/// The bins of a Visium HD run to read when `dir` is its `binned_outputs/` folder or the
/// folder holding one: `square_008um` (the resolution 10x recommends and spatialdata-io's
/// `visium_hd` reads by default), else the first `square_*um` there. `None` otherwise.
pub fn hd_bins(dir: &Path) -> Option<PathBuf> {
    let outputs = if dir.join("binned_outputs").is_dir() {
        dir.join("binned_outputs")
    } else {
        dir.to_path_buf()
    };
    let preferred = outputs.join("square_008um");
    if preferred.join("filtered_feature_bc_matrix.h5").is_file() {
        return Some(preferred);
    }
    let mut all: Vec<PathBuf> = std::fs::read_dir(&outputs)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
            name.is_some_and(|n| n.starts_with("square_"))
                && p.join("filtered_feature_bc_matrix.h5").is_file()
        })
        .collect();
    all.sort();
    all.into_iter().next()
}

/// Spot positions by barcode (`in_tissue`, `array_row`, `array_col`, `pxl_row_in_fullres`,
/// `pxl_col_in_fullres`) from Visium HD's `tissue_positions.parquet`, else Space Ranger 2.x's
/// `tissue_positions.csv` (header), else 1.x's `tissue_positions_list.csv` (no header).
fn positions(dir: &Path, spatial: &Path) -> Result<(PathBuf, HashMap<String, [f64; 5]>)> {
    let parquet = spatial.join("tissue_positions.parquet");
    if parquet.is_file() {
        let t = super::vendor::table::Table::read(&parquet)?;
        let barcodes = t.text("barcode")?;
        let cols: Vec<Vec<f64>> = POSITIONS_HEADER[1..]
            .iter()
            .map(|c| t.floats(c))
            .collect::<Result<_>>()?;
        if let Some((c, i)) = (0..cols.len())
            .flat_map(|c| (0..t.n_rows()).map(move |i| (c, i)))
            .find(|&(c, i)| !cols[c][i].is_finite())
        {
            let m = format!("row {i}: expected a finite number, found {}", cols[c][i]);
            return Err(DataError::invalid(&parquet, POSITIONS_HEADER[c + 1], m));
        }
        let pos = (0..t.n_rows())
            .map(|i| (barcodes[i].clone(), std::array::from_fn(|c| cols[c][i])))
            .collect();
        return Ok((parquet, pos));
    }
    let (pos_path, header) = if spatial.join("tissue_positions.csv").is_file() {
        (spatial.join("tissue_positions.csv"), true)
    } else if spatial.join("tissue_positions_list.csv").is_file() {
        (spatial.join("tissue_positions_list.csv"), false)
    } else {
        return Err(DataError::missing(
            dir,
            "spatial/tissue_positions_list.csv",
            "spot positions (tissue_positions_list.csv or tissue_positions.csv)",
        ));
    };
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(header)
        .from_path(&pos_path)
        .map_err(|e| DataError::invalid(&pos_path, "positions", e.to_string()))?;
    if header {
        let got = rdr
            .headers()
            .map_err(|e| DataError::invalid(&pos_path, "header", e.to_string()))?;
        let got: Vec<&str> = got.iter().map(str::trim).collect();
        if got != POSITIONS_HEADER {
            return Err(DataError::invalid(
                &pos_path,
                "header",
                format!(
                    "columns are {got:?}, expected Space Ranger's {POSITIONS_HEADER:?} \
                     (columns are read by position, as scanpy.read_visium does)"
                ),
            ));
        }
    }
    let mut pos: HashMap<String, [f64; 5]> = HashMap::new();
    for (k, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(|e| {
            DataError::invalid(&pos_path, &format!("line {}", k + 1), e.to_string())
        })?;
        if rec.len() < 6 {
            return Err(DataError::invalid(
                &pos_path,
                &format!("line {}", k + 1),
                "expected 6 columns: barcode, in_tissue, array_row, array_col, pxl_row, pxl_col",
            ));
        }
        let mut v = [0f64; 5];
        for (c, slot) in v.iter_mut().enumerate() {
            let value = rec[c + 1].trim().parse::<f64>();
            *slot = value.ok().filter(|v| v.is_finite()).ok_or_else(|| {
                DataError::invalid(
                    &pos_path,
                    &format!("line {}, column {}", k + 1 + usize::from(header), c + 2),
                    format!("expected a finite number, found {:?}", &rec[c + 1]),
                )
            })?;
        }
        pos.insert(rec[0].to_string(), v);
    }
    Ok((pos_path, pos))
}
