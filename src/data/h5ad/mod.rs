//! Reading AnnData `.h5ad` files: the current on-disk specification (`encoding-type` /
//! `encoding-version` attributes, anndata >= 0.8) and the legacy layouts (anndata 0.7's
//! `__categories` and `h5sparse_format`; pre-0.7 compound `obs`/`var`/`obsm` datasets with
//! categories in `uns/<key>_categories`).
//!
//! Reference: anndata's "On-disk format" documentation (`anndata/_io/specs`).
//!
//! [`H5adReader`] opens the file; its data frames (`obs`, `var`) are read in `frames.rs`, its
//! matrices (`X`, layers, raw, row blocks) in `matrices.rs`, the rest (obsm, uns colours, the
//! whole AnnData) here.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use hdf5::types::TypeDescriptor;
use hdf5::{Dataset, File, Group, LocationType};
use ndarray::Array2;

use crate::data::anndata::{AnnData, MatrixEncoding, MatrixInfo, RawInfo};
use crate::data::dataframe::{Column, DataFrame};
use crate::data::error::{DataError, Result};
use crate::data::fastread;
use crate::data::h5util::{
    CompoundColumn, attr_bool, attr_i64s, attr_string, attr_strings, is_string_type, member_kind,
    read_compound, read_strings,
};
use crate::data::matrix::{CsrMatrix, Matrix, validate_compressed};

mod frames;
mod matrices;

pub use matrices::RowBlocks;

/// Applies a nullable array's mask (`true` = missing).
pub(super) fn masked<T>(values: Vec<T>, mask: Vec<bool>) -> Vec<Option<T>> {
    values
        .into_iter()
        .zip(mask)
        .map(|(v, m)| (!m).then_some(v))
        .collect()
}

/// Values read per HDF5 call when converting index arrays block by block.
pub(super) const INDEX_BLOCK: usize = 1 << 22;

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
    crate::data::h5util::open_read(path).map_err(|e| DataError::Open {
        file: path.to_path_buf(),
        reason: format!("not a readable HDF5 file (truncated or another format?): {e}"),
    })
}

pub(super) fn numpy_dtype(t: &TypeDescriptor) -> Option<String> {
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

    pub(super) fn h5err(&self, path: &str) -> impl FnOnce(hdf5::Error) -> DataError + '_ {
        let p = path.to_string();
        move |e| DataError::hdf5(&self.path, &p, e)
    }

    pub(super) fn fast_err(&self, path: &str, e: fastread::FastReadError) -> DataError {
        e.at(&self.path, path)
    }

    pub(super) fn group(&self, path: &str) -> Result<Group> {
        self.file.group(path).map_err(self.h5err(path))
    }

    /// The dataset at `path`, its declared size checked ([`crate::data::h5util::checked`]).
    pub(super) fn dataset(&self, path: &str) -> Result<Dataset> {
        (self.file.dataset(path))
            .and_then(crate::data::h5util::checked)
            .map_err(self.h5err(path))
    }

    pub(super) fn kind(&self, path: &str) -> Option<LocationType> {
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
}

/// The `encoding-version`s cellscope reads, per `encoding-type` (anndata's on-disk
/// specification, <https://anndata.readthedocs.io/en/stable/fileformat-prose.html>; anndata 0.7
/// wrote `dataframe` 0.1.0, anndata >= 0.8 the others). A version not listed is from a newer
/// anndata whose layout may differ: anndata itself refuses an IOSpec it has no reader for.
const KNOWN_VERSIONS: &[(&str, &[&str])] = &[
    ("anndata", &["0.1.0"]),
    ("dataframe", &["0.1.0", "0.2.0"]),
    ("csr_matrix", &["0.1.0"]),
    ("csc_matrix", &["0.1.0"]),
    ("array", &["0.2.0"]),
    ("categorical", &["0.2.0"]),
];

impl H5adReader {
    /// Checks the `encoding-type` / `encoding-version` attributes of the element at `path`
    /// (`"/"` for the root): absent attributes are the legacy layouts and pass; a type other
    /// than `expected`, or a version of a known type that cellscope does not know, is refused.
    ///
    /// # Errors
    /// [`DataError::Invalid`] naming the element, the attribute and what is read.
    pub(super) fn check_spec(
        &self,
        loc: &hdf5::Location,
        path: &str,
        expected: &[&str],
    ) -> Result<()> {
        let Some(enc) = attr_string(loc, "encoding-type") else {
            return Ok(());
        };
        if !expected.contains(&enc.as_str()) {
            return Err(DataError::invalid(
                &self.path,
                path,
                format!(
                    "encoding-type is {enc:?}, expected {}",
                    expected.join(" or ")
                ),
            ));
        }
        let version = attr_string(loc, "encoding-version");
        let known = KNOWN_VERSIONS
            .iter()
            .find(|(t, _)| *t == enc)
            .map(|(_, v)| *v);
        if let (Some(v), Some(known)) = (version, known)
            && !known.contains(&v.as_str())
        {
            return Err(DataError::invalid(
                &self.path,
                path,
                format!(
                    "{enc} encoding-version {v:?} is not one cellscope reads ({}): written by a \
                     newer anndata? Re-save it with the anndata that reads it, or update cellscope",
                    known.join(", ")
                ),
            ));
        }
        Ok(())
    }

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
            if let Ok(ds) = g.dataset(&name).and_then(crate::data::h5util::checked)
                && let Ok(v) = read_strings(&ds)
            {
                out.insert(key.to_string(), v);
            }
        }
        out
    }

    /// The names of `obsm['cellscope_imputed']`'s columns: `uns['cellscope_imputed_genes']`, a
    /// JSON list of strings; empty when absent, unreadable or not as long as the matrix is wide.
    fn imputed_genes(&self, obsm: &BTreeMap<String, ndarray::Array2<f64>>) -> Vec<String> {
        let Some(m) = obsm.get("cellscope_imputed") else {
            return Vec::new();
        };
        let names: Option<Vec<String>> = self
            .file
            .dataset("uns/cellscope_imputed_genes")
            .and_then(crate::data::h5util::checked)
            .and_then(|d| d.read_scalar::<hdf5::types::VarLenUnicode>())
            .ok()
            .and_then(|s| serde_json::from_str(s.as_str()).ok());
        names.filter(|n| n.len() == m.ncols()).unwrap_or_default()
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
        self.check_spec(&self.file, "/", &["anndata"])?;
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
            imputed_genes: self.imputed_genes(&obsm),
            spatial_units: None,
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
