//! Results back into AnnData and selected cells as CSV.
//!
//! Write-back goes through the data layer ([`crate::data::write::write_h5ad`]) into a new file
//! (never the input), readable by anndata and scanpy: `obsm['X_cellscope']` (embedding),
//! `obsm['X_umap']`, `obs['leiden']`, `obs['spatial_domain']` and
//! `obs['spatial_domain_confidence']`, `obs['cellscope_prediction']` and
//! `obs['cellscope_confidence']`, `obs['cellscope_annotation']` (the user's named selections;
//! cells in none are missing), and `uns['cellscope_provenance']` (JSON).

use std::path::Path;

use ndarray::Array2;

use super::{ExportError, write_atomic};
use crate::data::AnnData;
use crate::data::dataframe::Column;
use crate::data::write::{Additions, write_h5ad};

/// The obs, obsm and uns keys cellscope writes (defined once, used by every writer).
pub mod keys {
    /// obsm: the model's embedding.
    pub const EMBEDDING: &str = "X_cellscope";
    /// obsm: UMAP coordinates.
    pub const UMAP: &str = "X_umap";
    /// obsm: the PCA baseline's scores.
    pub const PCA: &str = "X_pca";
    /// obs: Leiden clusters.
    pub const LEIDEN: &str = "leiden";
    /// obs: spatial domains.
    pub const DOMAIN: &str = "spatial_domain";
    /// obs: spatial-domain posterior confidence.
    pub const DOMAIN_CONFIDENCE: &str = "spatial_domain_confidence";
    /// obs: predicted cell type (label transfer or a classifier).
    pub const PREDICTION: &str = "cellscope_prediction";
    /// obs: confidence of the prediction (vote fraction or probability).
    pub const CONFIDENCE: &str = "cellscope_confidence";
    /// obsm: class probabilities of a classifier, `n_obs x n_types`.
    pub const PROBABILITIES: &str = "cellscope_probabilities";
    /// obs: the user's named selections.
    pub const ANNOTATION: &str = "cellscope_annotation";
    /// obsm: imputed genes, `n_obs x genes` (their names in `uns['cellscope_imputed_genes']`).
    pub const IMPUTED: &str = "cellscope_imputed";
    /// uns: provenance JSON.
    pub const PROVENANCE: &str = "cellscope_provenance";
}

/// Results of an explorer session or a pipeline job to write back; each present field becomes
/// the element [`keys`] names.
#[derive(Debug, Default)]
pub struct Results<'a> {
    /// The model's embedding, `n_obs x d`.
    pub embedding: Option<&'a Array2<f32>>,
    /// The PCA baseline the analysis ran on, `n_obs x n_comps`.
    pub pca: Option<&'a Array2<f32>>,
    /// UMAP, `n_obs x 2`.
    pub umap: Option<&'a Array2<f32>>,
    /// Leiden cluster per cell.
    pub leiden: Option<&'a [u32]>,
    /// Spatial domain and its confidence per cell.
    pub domains: Option<(&'a [u32], &'a [f32])>,
    /// Predicted type and its confidence per cell.
    pub predicted: Option<(&'a [String], &'a [f32])>,
    /// Class probabilities, `n_obs x n_types`.
    pub probabilities: Option<&'a Array2<f32>>,
    /// Imputed genes, `n_obs x genes` (name them in `uns`).
    pub imputed: Option<&'a Array2<f32>>,
    /// A spatial-domain method's latent and its obsm key (`X_stagate`, `X_graphst`).
    pub latent: Option<(&'a str, &'a Array2<f32>)>,
    /// Named selections `(name, cell indices)`; a later one wins for cells in several.
    pub annotations: &'a [(String, Vec<usize>)],
    /// Provenance (see [`super::provenance`]), written to `uns['cellscope_provenance']`.
    pub provenance: serde_json::Value,
    /// Further uns entries as JSON text (e.g. `cellscope_analysis`: parameters and metrics).
    pub uns: Vec<(String, serde_json::Value)>,
    /// The tissue image for squidpy (`uns['spatial']`).
    pub spatial: Option<crate::data::write::SpatialImages>,
    /// Dense layers `(name, n_obs x n_vars)` (`measured` beside a predicted `X`).
    pub layers: Vec<(String, &'a Array2<f32>)>,
}

/// Cluster ids as a categorical column with string categories `"0"`, `"1"`, ... (scanpy's
/// `leiden` convention).
fn clusters(ids: &[u32]) -> Column {
    let labels: Vec<String> = ids.iter().map(u32::to_string).collect();
    let mut c = Column::categorical_from_labels(&labels);
    if let Column::Categorical {
        codes, categories, ..
    } = &mut c
    {
        // Numeric order ("2" before "10").
        let mut order: Vec<usize> = (0..categories.len()).collect();
        order.sort_by_key(|&k| categories[k].parse::<u64>().unwrap_or(u64::MAX));
        let mut new_code = vec![0i32; categories.len()];
        order
            .iter()
            .enumerate()
            .for_each(|(n, &o)| new_code[o] = n as i32);
        *categories = order.iter().map(|&o| categories[o].clone()).collect();
        codes
            .iter_mut()
            .filter(|c| **c >= 0)
            .for_each(|c| *c = new_code[*c as usize]);
    }
    c
}

/// The annotation column: each cell's selection name, missing (`-1`) for cells in none.
pub fn annotation_column(n: usize, annotations: &[(String, Vec<usize>)]) -> Column {
    let mut categories: Vec<String> = Vec::new();
    let mut codes = vec![-1i32; n];
    for (name, cells) in annotations {
        let k = match categories.iter().position(|c| c == name) {
            Some(k) => k,
            None => {
                categories.push(name.clone());
                categories.len() - 1
            }
        };
        for &i in cells {
            if let Some(c) = codes.get_mut(i) {
                *c = k as i32;
            }
        }
    }
    Column::Categorical {
        codes,
        categories,
        ordered: false,
    }
}

/// Writes `adata` plus `results` to a new `.h5ad` at `out`.
///
/// # Errors
/// [`ExportError::Write`]: `out` is the input, a length mismatch, HDF5 or I/O failures.
pub fn write_results(adata: &AnnData, r: &Results<'_>, out: &Path) -> Result<(), ExportError> {
    let floats = |v: &[f32]| Column::Float(v.iter().map(|&x| f64::from(x)).collect());
    let mut add = Additions::default();
    let obsm = [
        (keys::EMBEDDING, r.embedding),
        (keys::UMAP, r.umap),
        (keys::PCA, r.pca),
        (keys::PROBABILITIES, r.probabilities),
        (keys::IMPUTED, r.imputed),
    ];
    for (key, m) in obsm.into_iter().chain(r.latent.map(|(k, m)| (k, Some(m)))) {
        if let Some(m) = m {
            add.obsm.push((key.into(), m.clone()));
        }
    }
    if let Some(l) = r.leiden {
        add.obs.push((keys::LEIDEN.into(), clusters(l)));
    }
    if let Some((d, c)) = r.domains {
        add.obs.push((keys::DOMAIN.into(), clusters(d)));
        add.obs.push((keys::DOMAIN_CONFIDENCE.into(), floats(c)));
    }
    if let Some((p, c)) = r.predicted {
        add.obs
            .push((keys::PREDICTION.into(), Column::categorical_from_labels(p)));
        add.obs.push((keys::CONFIDENCE.into(), floats(c)));
    }
    if !r.annotations.is_empty() {
        add.obs.push((
            keys::ANNOTATION.into(),
            annotation_column(adata.n_obs(), r.annotations),
        ));
    }
    add.uns
        .push((keys::PROVENANCE.into(), r.provenance.to_string()));
    add.uns
        .extend(r.uns.iter().map(|(k, v)| (k.clone(), v.to_string())));
    add.spatial = r.spatial.clone();
    add.layers = r
        .layers
        .iter()
        .map(|(k, m)| (k.clone(), (*m).clone()))
        .collect();
    write_h5ad(adata, &add, out).map_err(|e| ExportError::write(out, e))
}

/// One CSV column: a name and a value per cell (all cells; rows are picked by the selection).
#[derive(Debug, Clone)]
pub struct CsvColumn {
    /// Header.
    pub name: String,
    /// Value per cell, as text.
    pub values: Vec<String>,
}

/// Writes the `selected` cells to CSV: `cell_id` then `columns`. The first line is a comment
/// with the provenance JSON (`pandas.read_csv(path, comment='#')` skips it).
///
/// # Errors
/// [`ExportError::Write`] naming `out`.
pub fn write_selection_csv(
    ids: &[String],
    selected: &[usize],
    columns: &[CsvColumn],
    provenance: &serde_json::Value,
    out: &Path,
) -> Result<(), ExportError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header = vec!["cell_id".to_string()];
    header.extend(columns.iter().map(|c| c.name.clone()));
    w.write_record(&header)
        .map_err(|e| ExportError::write(out, e))?;
    for &i in selected {
        let mut row = vec![ids.get(i).cloned().unwrap_or_default()];
        row.extend(
            columns
                .iter()
                .map(|c| c.values.get(i).cloned().unwrap_or_default()),
        );
        w.write_record(&row)
            .map_err(|e| ExportError::write(out, e))?;
    }
    let body = w.into_inner().map_err(|e| ExportError::write(out, e))?;
    let mut bytes = format!("# cellscope provenance: {provenance}\n").into_bytes();
    bytes.extend(body);
    write_atomic(out, &bytes)
}
