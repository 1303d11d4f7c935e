//! The `inspect` summary of an input: shape, X storage and what its values are (read and
//! checked as every job reads them), obs columns, obsm, layers, raw, uns colours, images.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::anndata::{AnnData, MatrixInfo};
use super::dataframe::{Column, DataFrame};
use super::error::Result;
use super::matrix::Matrix;
use super::preprocess::{NotCounts, check_counts};
use super::vendor::{self, VendorInfo};
use super::{InputKind, detect, h5ad, tenx};

/// What `cellscope inspect` prints, also shown in the Data panel.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The input path.
    pub path: PathBuf,
    /// Its kind.
    pub kind: InputKind,
    /// X's storage.
    pub x: MatrixInfo,
    /// obs (names and columns).
    pub obs: DataFrame,
    /// Number of genes.
    pub n_vars: usize,
    /// obsm keys with shapes.
    pub obsm: Vec<(String, (usize, usize))>,
    /// Layers.
    pub layers: Vec<MatrixInfo>,
    /// raw: `(n_vars, X storage)` when present.
    pub raw: Option<(usize, MatrixInfo)>,
    /// uns colour keys with the number of colours.
    pub uns_colors: Vec<(String, usize)>,
    /// Visium images: `(name, width, height, scale factor)`.
    pub images: Vec<(String, u32, u32, f64)>,
    /// Whether X holds raw counts (`Ok`) or the first value that is not one (log-normalised
    /// data, for instance): what `analyze` and `pretrain` will say about it.
    pub counts: std::result::Result<(), NotCounts>,
    /// Duplicated var names: how many, and the first (kept, as anndata keeps them with a
    /// warning; gene lookups use the first occurrence).
    pub duplicate_var_names: Option<(usize, String)>,
    /// What an instrument's output folder held besides the matrix (platform, run metadata,
    /// control features kept out of X).
    pub vendor: Option<VendorInfo>,
}

impl Summary {
    /// Reads any supported input whole, with every check a job makes (X's structure and
    /// finite values; see [`super::open`]), and summarises it.
    ///
    /// # Errors
    /// Any [`super::DataError`] from detecting or reading the input.
    pub fn of_path(path: &Path) -> Result<Self> {
        Ok(Self::read(path)?.1)
    }

    /// Reads any supported input whole, as [`super::open`] does, and returns it with its
    /// summary (one read for both).
    ///
    /// # Errors
    /// Any [`super::DataError`] from detecting or reading the input.
    pub fn read(path: &Path) -> Result<(AnnData, Self)> {
        let kind = detect(path)?;
        let (a, images) = match kind {
            InputKind::H5ad => (h5ad::read_h5ad(path)?, Vec::new()),
            InputKind::TenxH5 => (tenx::read_10x_h5(path, None)?, Vec::new()),
            InputKind::Visium => {
                let v = tenx::read_visium(path)?;
                let images = v
                    .images
                    .iter()
                    .map(|i| (i.name.clone(), i.size.0, i.size.1, i.scale))
                    .collect();
                (v.adata, images)
            }
            _ => {
                let (a, info) = vendor::read(path, kind)?;
                let mut summary = Self::of_anndata(kind, &a, Vec::new());
                summary.vendor = Some(info);
                return Ok((a, summary));
            }
        };
        let summary = Self::of_anndata(kind, &a, images);
        Ok((a, summary))
    }

    /// Reads a Stereo-seq GEM file binned at `bin` DNBs per spot side (stereopy's `bin_size`;
    /// [`Self::read`] uses bin50), with its summary.
    ///
    /// # Errors
    /// See [`vendor::stereoseq::read_gem`].
    pub fn read_gem_binned(path: &Path, bin: u32) -> Result<(AnnData, Self)> {
        let (a, info) = vendor::stereoseq::read_gem(path, bin)?;
        let mut summary = Self::of_anndata(InputKind::StereoSeq, &a, Vec::new());
        summary.vendor = Some(info);
        Ok((a, summary))
    }

    fn of_anndata(kind: InputKind, a: &AnnData, images: Vec<(String, u32, u32, f64)>) -> Self {
        Self {
            path: a.source.clone(),
            kind,
            x: a.x_info.clone(),
            obs: a.obs.clone(),
            n_vars: a.n_vars(),
            obsm: a.obsm.iter().map(|(k, v)| (k.clone(), v.dim())).collect(),
            layers: a.layers.clone(),
            raw: a.raw.as_ref().map(|r| (r.var.n_rows(), r.x.clone())),
            uns_colors: a
                .uns_colors
                .iter()
                .map(|(k, v)| (k.clone(), v.len()))
                .collect(),
            images,
            counts: match &a.x {
                Matrix::Csr(m) => check_counts(m),
                Matrix::Dense(_) => check_counts(&a.x.to_csr()),
            },
            duplicate_var_names: duplicates(&a.var.index),
            vendor: None,
        }
    }
}

/// How many names repeat an earlier one, and the first that does.
fn duplicates(names: &[String]) -> Option<(usize, String)> {
    let mut seen = std::collections::HashSet::with_capacity(names.len());
    let repeated: Vec<&String> = names.iter().filter(|n| !seen.insert(n.as_str())).collect();
    repeated
        .first()
        .map(|first| (repeated.len(), (*first).clone()))
}

fn matrix_line(m: &MatrixInfo) -> String {
    format!(
        "{}, {}, {} stored values ({:.2}% of entries)",
        m.encoding.name(),
        m.dtype,
        m.stored,
        100.0 * m.density()
    )
}

fn column_line(name: &str, c: &Column) -> String {
    match c {
        Column::Categorical { .. } => {
            let counts = c.category_counts().unwrap_or_default();
            let missing = c.len() - counts.iter().map(|(_, n)| n).sum::<usize>();
            let shown: Vec<String> = counts
                .iter()
                .take(12)
                .map(|(k, n)| format!("{k}: {n}"))
                .collect();
            let more = if counts.len() > 12 {
                format!(", ... ({} more)", counts.len() - 12)
            } else {
                String::new()
            };
            let na = if missing > 0 {
                format!(", NaN: {missing}")
            } else {
                String::new()
            };
            format!(
                "{name}: categorical, {} categories [{}{more}{na}]",
                counts.len(),
                shown.join(", ")
            )
        }
        Column::Str(v) => {
            let mut u: Vec<&String> = v.iter().collect();
            u.sort();
            u.dedup();
            format!("{name}: string, {} unique values", u.len())
        }
        _ => {
            let vals: Vec<f64> = (0..c.len())
                .map(|i| c.value_f64(i))
                .filter(|v| !v.is_nan())
                .collect();
            let lo = vals.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let na = c.len() - vals.len();
            let na = if na > 0 {
                format!(", {na} missing")
            } else {
                String::new()
            };
            format!("{name}: {}, min {lo}, max {hi}{na}", c.kind())
        }
    }
}

/// Platform, files, the run metadata worth a line, and the features kept out of X.
fn vendor_lines(s: &mut String, v: &VendorInfo) {
    let _ = writeln!(s, "platform: {} (read {})", v.platform, v.files.join(", "));
    for key in [
        "layout",
        "spatial_units",
        "bin_size",
        "analysis_sw_version",
        "instrument_sw_version",
        "panel_name",
        "panel_organism",
        "pixel_size",
        "run_name",
        "region_name",
    ] {
        if let Some(value) = v.get(key) {
            let unit = if key == "pixel_size" { " µm" } else { "" };
            let _ = writeln!(s, "  {key}: {value}{unit}");
        }
    }
    for line in &v.images {
        let _ = writeln!(s, "  image {line}");
    }
    if v.controls.is_empty() {
        let _ = writeln!(s, "  control features: none");
    } else {
        let kinds: Vec<String> = v.controls.iter().map(|(k, n)| format!("{n} {k}")).collect();
        let _ = writeln!(s, "  control features kept out of X: {}", kinds.join(", "));
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            InputKind::H5ad => "AnnData .h5ad",
            InputKind::TenxH5 => "10x Cell Ranger HDF5",
            InputKind::Visium => "Visium Space Ranger folder",
            InputKind::Xenium => "10x Xenium output folder",
            InputKind::Merscope => "Vizgen MERSCOPE output folder",
            InputKind::Cosmx => "NanoString CosMx flat files",
            InputKind::SlideSeq => "Slide-seq counts and bead locations",
            InputKind::StereoSeq => "Stereo-seq GEM, binned",
        };
        let mut s = String::new();
        let _ = writeln!(s, "{} ({kind})", self.path.display());
        let _ = writeln!(
            s,
            "shape: {} x {} (n_obs x n_vars)",
            self.obs.n_rows(),
            self.n_vars
        );
        let _ = writeln!(s, "X: {}", matrix_line(&self.x));
        if let Some(v) = &self.vendor {
            vendor_lines(&mut s, v);
        }
        let _ = match &self.counts {
            Ok(()) => writeln!(s, "X values: finite, raw counts"),
            Err(e) => writeln!(s, "X values: finite, not raw counts ({e})"),
        };
        if let Some((n, first)) = &self.duplicate_var_names {
            let _ = writeln!(
                s,
                "warning: {n} var names repeat an earlier one (first {first:?}); kept as anndata \
                 keeps them, gene lookups use the first occurrence (anndata: \
                 var_names_make_unique())"
            );
        }
        let _ = writeln!(s, "obs: {} columns", self.obs.columns.len());
        for (n, c) in &self.obs.columns {
            let _ = writeln!(s, "  {}", column_line(n, c));
        }
        if self.obsm.is_empty() {
            let _ = writeln!(s, "obsm: none");
        } else {
            let _ = writeln!(s, "obsm:");
            for (k, (r, c)) in &self.obsm {
                let _ = writeln!(s, "  {k}: ({r}, {c})");
            }
        }
        if self.layers.is_empty() {
            let _ = writeln!(s, "layers: none");
        } else {
            let _ = writeln!(s, "layers:");
            for l in &self.layers {
                let name = l.path.strip_prefix("layers/").unwrap_or(&l.path);
                let _ = writeln!(s, "  {name}: {}", matrix_line(l));
            }
        }
        match &self.raw {
            Some((n, x)) => {
                let _ = writeln!(s, "raw: {n} vars, X {}", matrix_line(x));
            }
            None => {
                let _ = writeln!(s, "raw: none");
            }
        }
        if self.uns_colors.is_empty() {
            let _ = writeln!(s, "uns colours: none");
        } else {
            let keys: Vec<String> = self
                .uns_colors
                .iter()
                .map(|(k, n)| format!("{k}_colors ({n})"))
                .collect();
            let _ = writeln!(s, "uns colours: {}", keys.join(", "));
        }
        for (name, w, h, scale) in &self.images {
            let _ = writeln!(s, "image {name}: {w} x {h} px, scale factor {scale}");
        }
        f.write_str(s.trim_end())
    }
}
