//! Where data is loaded and written: AnnData `.h5ad` (read and write), 10x Cell Ranger HDF5,
//! Visium folders, the sparse matrix type, preprocessing, gene alignment and gene sets (GMT).
//!
//! Depends on nothing else in the crate.

pub mod anndata;
pub mod chunkindex;
pub mod dataframe;
pub mod error;
pub mod fastread;
pub mod gene_sets;
pub mod genes;
pub mod h5ad;
pub mod h5util;
pub mod homologs;
pub mod matrix;
pub mod mex;
pub mod ometiff;
pub mod part;
pub mod preprocess;
pub mod rng;
pub mod slide;
pub mod summary;
pub mod tenx;
pub mod tissue;
pub mod vendor;
pub mod write;

use std::path::Path;

pub use anndata::{AnnData, MatrixEncoding, MatrixInfo, SpatialSource};
pub use dataframe::{Column, DataFrame};
pub use error::{DataError, Result};
pub use matrix::{CsrMatrix, Matrix};

/// The kinds of input cellscope opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// An AnnData `.h5ad` file.
    H5ad,
    /// A 10x Cell Ranger HDF5 matrix (`.h5`).
    TenxH5,
    /// A Visium Space Ranger output folder.
    Visium,
    /// A 10x Xenium Onboard Analysis output folder ([`vendor::xenium`]).
    Xenium,
    /// A Vizgen MERSCOPE output folder, either layout ([`vendor::merscope`]).
    Merscope,
    /// A NanoString CosMx SMI flat-file folder ([`vendor::cosmx`]).
    Cosmx,
    /// A Slide-seq folder: counts and bead locations ([`vendor::slideseq`]).
    SlideSeq,
    /// A Stereo-seq GEM file, binned ([`vendor::stereoseq`]).
    StereoSeq,
}

impl InputKind {
    /// Whether this is an instrument's own output, read by [`vendor::read`].
    pub fn is_vendor(self) -> bool {
        !matches!(self, Self::H5ad | Self::TenxH5 | Self::Visium)
    }
}

/// Detects what `path` is: a folder with `filtered_feature_bc_matrix.h5` is Visium, one with
/// `cell_feature_matrix.h5` and a cell table Xenium, one with a `*cell_by_gene.csv` MERSCOPE; an HDF5
/// file with `matrix/` (and no AnnData root attributes) or a genome group is 10x; one with the
/// AnnData root attributes, `obs` or `X` is AnnData.
///
/// # Errors
/// Missing path, a folder without a Visium matrix, an unreadable or unrecognised file.
pub fn detect(path: &Path) -> Result<InputKind> {
    if path.is_dir() {
        if path.join("filtered_feature_bc_matrix.h5").is_file() || tenx::hd_bins(path).is_some() {
            return Ok(InputKind::Visium);
        }
        if vendor::xenium::is_xenium(path) {
            return Ok(InputKind::Xenium);
        }
        if vendor::merscope::is_merscope(path) {
            return Ok(InputKind::Merscope);
        }
        if vendor::cosmx::is_cosmx(path) {
            return Ok(InputKind::Cosmx);
        }
        if vendor::slideseq::is_slideseq(path) {
            return Ok(InputKind::SlideSeq);
        }
        return Err(DataError::missing(
            path,
            "filtered_feature_bc_matrix.h5",
            "a folder cellscope opens is a Visium output (filtered_feature_bc_matrix.h5 and \
             spatial/), a Xenium output (cell_feature_matrix.h5 and cells.parquet or \
             cells.csv.gz), a MERSCOPE output (*cell_by_gene.csv and *cell_metadata.csv), \
             CosMx flat files (*_exprMat_file.csv) or Slide-seq (*DGE*.csv and \
             *BeadLocations*.csv)",
        ));
    }
    if vendor::stereoseq::is_gem(path) {
        return Ok(InputKind::StereoSeq);
    }
    let f = h5ad::open_hdf5(path)?;
    let anndata_root = h5util::attr_string(&f, "encoding-type").as_deref() == Some("anndata");
    if f.link_exists("matrix") && !anndata_root {
        Ok(InputKind::TenxH5)
    } else if anndata_root || f.link_exists("obs") || f.link_exists("X") {
        // AnnData, even with obs or X missing: its reader names what is missing.
        Ok(InputKind::H5ad)
    } else {
        let any_genome = f
            .member_names()
            .unwrap_or_default()
            .iter()
            .any(|n| f.group(n).map(|g| g.link_exists("indptr")).unwrap_or(false));
        if any_genome {
            Ok(InputKind::TenxH5)
        } else {
            Err(DataError::invalid(
                path,
                "/",
                "not an AnnData .h5ad (no obs/X) nor a 10x matrix (no matrix/ or genome group)",
            ))
        }
    }
}

/// Opens any supported input as [`AnnData`] (Visium: with obs `in_tissue`, `array_row`,
/// `array_col` and `obsm['spatial']`; Xenium and MERSCOPE: the cell table in obs, centroids in
/// µm in `obsm['spatial']`).
///
/// # Errors
/// See [`detect`], [`h5ad::read_h5ad`], [`tenx::read_10x_h5`], [`tenx::read_visium`].
pub fn open(path: &Path) -> Result<AnnData> {
    match detect(path)? {
        InputKind::H5ad => h5ad::read_h5ad(path),
        InputKind::TenxH5 => tenx::read_10x_h5(path, None),
        InputKind::Visium => Ok(tenx::read_visium(path)?.adata),
        kind => Ok(vendor::read(path, kind)?.0),
    }
}
