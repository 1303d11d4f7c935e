//! The in-memory AnnData object: `X`, `obs`, `var`, `obsm`, plus what is known of `layers`,
//! `raw` and `uns` colours.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ndarray::Array2;

use super::dataframe::{Column, DataFrame};
use super::error::{DataError, Result};
use super::matrix::Matrix;

/// How a matrix element is stored on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatrixEncoding {
    /// A 2-D HDF5 dataset (`encoding-type: array`, or a plain dataset in the legacy layout).
    Dense,
    /// A group with `data`/`indices`/`indptr` (`csr_matrix`, or legacy `h5sparse_format: csr`).
    Csr,
    /// Same, column-compressed (`csc_matrix`).
    Csc,
}

impl MatrixEncoding {
    /// The AnnData encoding-type name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Dense => "array",
            Self::Csr => "csr_matrix",
            Self::Csc => "csc_matrix",
        }
    }
}

/// What is known about a matrix element without reading its values.
#[derive(Debug, Clone, PartialEq)]
pub struct MatrixInfo {
    /// HDF5 path of the element (e.g. `X`, `layers/counts`, `raw/X`).
    pub path: String,
    /// Storage layout.
    pub encoding: MatrixEncoding,
    /// dtype of the values as numpy names it (`float32`, `int64`, ...).
    pub dtype: String,
    /// Shape `(n_obs, n_vars)`.
    pub shape: (usize, usize),
    /// Stored values: `nnz` for sparse, `n_obs * n_vars` for dense.
    pub stored: u64,
}

impl MatrixInfo {
    /// Fraction of stored entries among all entries (1.0 for dense).
    pub fn density(&self) -> f64 {
        let total = self.shape.0 as f64 * self.shape.1 as f64;
        if total == 0.0 {
            0.0
        } else {
            self.stored as f64 / total
        }
    }
}

/// `raw`: the unfiltered variables and matrix kept by scanpy before subsetting genes.
#[derive(Debug, Clone, PartialEq)]
pub struct RawInfo {
    /// `raw/var` (or legacy `raw.var`).
    pub var: DataFrame,
    /// `raw/X` (or legacy `raw.X`).
    pub x: MatrixInfo,
}

/// An annotated data matrix, as anndata's `AnnData`: `X` of shape `(n_obs, n_vars)`.
#[derive(Debug, Clone)]
pub struct AnnData {
    /// File it was read from (for messages and provenance).
    pub source: PathBuf,
    /// Cell annotations; its index holds `obs_names`.
    pub obs: DataFrame,
    /// Gene annotations; its index holds `var_names`.
    pub var: DataFrame,
    /// The expression matrix, shape `(n_obs, n_vars)`; an empty placeholder when `x_loaded` is
    /// false (see [`super::h5ad::H5adReader::read_metadata`]).
    pub x: Matrix,
    /// Whether `x` holds the values (false after a metadata-only read of a large file).
    pub x_loaded: bool,
    /// How `X` is stored on disk.
    pub x_info: MatrixInfo,
    /// Multi-dimensional cell annotations (`spatial`, `X_umap`, `X_pca`, ...), each `(n_obs, k)`.
    pub obsm: BTreeMap<String, Array2<f64>>,
    /// Layers, described (values are read on demand).
    pub layers: Vec<MatrixInfo>,
    /// `raw`, described, when present.
    pub raw: Option<RawInfo>,
    /// `uns['<key>_colors']`: colours per category of obs column `<key>`, as hex strings.
    pub uns_colors: BTreeMap<String, Vec<String>>,
    /// Names of the columns of `obsm['cellscope_imputed']` (from
    /// `uns['cellscope_imputed_genes']`, written by `cellscope impute`); empty when absent or
    /// when they do not match its width.
    pub imputed_genes: Vec<String>,
    /// The unit of `obsm['spatial']` when the reader knows it (`µm` for Xenium and MERSCOPE,
    /// `px` for Visium's full-resolution image and CosMx, `DNB` for Stereo-seq); the window's
    /// scale bar shows it.
    pub spatial_units: Option<String>,
}

/// Where spatial coordinates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpatialSource {
    /// An obsm key with at least two columns (the first two are x, y).
    Obsm(String),
    /// Two numeric obs columns: x, then y.
    ObsColumns(String, String),
}

impl AnnData {
    /// Number of observations (cells, spots).
    pub fn n_obs(&self) -> usize {
        self.obs.n_rows()
    }

    /// Number of variables (genes).
    pub fn n_vars(&self) -> usize {
        self.var.n_rows()
    }

    /// `obs_names`.
    pub fn obs_names(&self) -> &[String] {
        &self.obs.index
    }

    /// `var_names`.
    pub fn var_names(&self) -> &[String] {
        &self.var.index
    }

    /// The default spatial source: `obsm['spatial']` when present.
    pub fn default_spatial(&self) -> Option<SpatialSource> {
        self.obsm
            .contains_key("spatial")
            .then(|| SpatialSource::Obsm("spatial".into()))
    }

    /// The default spatial coordinates ([`Self::default_spatial`]) as `f32`, shape
    /// `(n_obs, 2)`; `None` when the dataset has none.
    ///
    /// # Errors
    /// As [`Self::spatial_coords`].
    pub fn spatial_f32(&self) -> Result<Option<Array2<f32>>> {
        self.default_spatial()
            .map(|s| self.spatial_coords(&s).map(|c| c.mapv(|v| v as f32)))
            .transpose()
    }

    /// Spatial coordinates, shape `(n_obs, 2)`, in the units of the source (µm or pixels).
    ///
    /// # Errors
    /// The obsm key or obs columns are missing, not numeric, or have fewer than two columns.
    pub fn spatial_coords(&self, source: &SpatialSource) -> Result<Array2<f64>> {
        match source {
            SpatialSource::Obsm(key) => {
                let a = self.obsm.get(key).ok_or_else(|| {
                    DataError::missing(
                        &self.source,
                        &format!("obsm/{key}"),
                        "an (n_obs, 2) array of coordinates",
                    )
                })?;
                if a.ncols() < 2 {
                    return Err(DataError::invalid(
                        &self.source,
                        &format!("obsm/{key}"),
                        format!("has {} column(s); coordinates need 2", a.ncols()),
                    ));
                }
                Ok(a.slice(ndarray::s![.., 0..2]).to_owned())
            }
            SpatialSource::ObsColumns(x, y) => {
                let get = |name: &str| -> Result<&Column> {
                    let c = self.obs.column(name).ok_or_else(|| {
                        DataError::missing(
                            &self.source,
                            &format!("obs/{name}"),
                            "a numeric obs column of coordinates",
                        )
                    })?;
                    if !c.is_numeric() {
                        return Err(DataError::invalid(
                            &self.source,
                            &format!("obs/{name}"),
                            format!("is {}, coordinates must be numeric", c.kind()),
                        ));
                    }
                    Ok(c)
                };
                let (cx, cy) = (get(x)?, get(y)?);
                let n = self.n_obs();
                Ok(Array2::from_shape_fn((n, 2), |(i, j)| {
                    if j == 0 {
                        cx.value_f64(i)
                    } else {
                        cy.value_f64(i)
                    }
                }))
            }
        }
    }
}
