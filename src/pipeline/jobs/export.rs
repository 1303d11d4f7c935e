//! Outputs of the jobs: results written back into a new `.h5ad` (the one write-back,
//! [`crate::export::tables::write_results`], for the CLI and the window alike), metrics as
//! JSON, and figures of a dataset (`cellscope plot`). Every output is written to a temporary
//! file beside the target and renamed into place; an input is never overwritten.

use std::path::Path;

use super::coloring::{Ramp, obs_or_gene_coloring};
use super::{JobError, Step};
use crate::data::anndata::AnnData;
use crate::export::figure::{Figure, FigureSize, save_figure};
use crate::export::tables::Results;

/// Refuses an output path that is one of the inputs, before any work is done.
///
/// # Errors
/// [`JobError::Data`] naming the path.
pub fn check_output(inputs: &[&Path], out: &Path) -> Result<(), JobError> {
    for i in inputs {
        crate::data::write::check_not_input(i, out)?;
    }
    Ok(())
}

/// [`check_output`] for each output of a run, and no two outputs the same path (e.g.
/// `--metrics-json` equal to `--out`).
///
/// # Errors
/// [`JobError::Data`] naming the path.
pub fn check_outputs(inputs: &[&Path], outputs: &[&Path]) -> Result<(), JobError> {
    for (k, o) in outputs.iter().enumerate() {
        check_output(inputs, o)?;
        check_output(&outputs[..k], o)?;
    }
    Ok(())
}

/// Writes `adata` with `results` added to a new `.h5ad` at `out`.
///
/// # Errors
/// [`JobError::Export`]: `out` is the input, a length mismatch, HDF5 or I/O failures.
pub fn write_results(
    adata: &AnnData,
    results: &Results<'_>,
    out: &Path,
    h: &mut super::Handle<'_>,
) -> Result<(), JobError> {
    h.step(Step::Write, 0.0);
    crate::export::tables::write_results(adata, results, out)?;
    h.step(Step::Write, 1.0);
    Ok(())
}

/// Writes `value` as pretty JSON to `path`, atomically.
///
/// # Errors
/// [`JobError::Export`] naming the path.
pub fn write_json(path: &Path, value: &serde_json::Value) -> Result<(), JobError> {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    Ok(crate::export::write_atomic(path, text.as_bytes())?)
}

/// What `cellscope plot` draws.
#[derive(Debug, Clone)]
pub struct PlotParams {
    /// `spatial` or an obsm key with at least two columns (the first two are drawn).
    pub basis: String,
    /// An obs column or a gene.
    pub color: String,
    /// Size and resolution.
    pub size: FigureSize,
    /// Title (default `"<basis>: <color>"`).
    pub title: Option<String>,
}

/// A figure of the dataset at `data`: the cells at `basis` coloured by `color` (the colourings
/// the window uses), with a legend or colour bar and, for spatial, a scale bar; PNG or SVG by
/// the extension of `out`, with provenance.
///
/// # Errors
/// [`JobError::Input`]: no such basis or colour key; [`JobError::Data`]; [`JobError::Export`].
pub fn plot(data: &Path, p: &PlotParams, out: &Path) -> Result<(), JobError> {
    p.size.check()?;
    check_output(&[data], out)?;
    let a = crate::data::open(data)?;
    let (coords, y_down, units) = if p.basis == "spatial" {
        let s = a.default_spatial().ok_or_else(|| {
            JobError::Input(format!(
                "{}: no spatial coordinates (obsm['spatial'] or obs row/col)",
                data.display()
            ))
        })?;
        (a.spatial_coords(&s)?, true, Some("units".to_string()))
    } else {
        let m = a
            .obsm
            .get(&p.basis)
            .filter(|m| m.ncols() >= 2)
            .ok_or_else(|| {
                JobError::Input(format!(
                    "{}: obsm has no 2-D '{}' (it has: {})",
                    data.display(),
                    p.basis,
                    a.obsm.keys().cloned().collect::<Vec<_>>().join(", ")
                ))
            })?;
        (m.clone(), false, None)
    };
    let coloring = obs_or_gene_coloring(&a, &p.color).ok_or_else(|| {
        JobError::Input(format!(
            "{}: '{}' is neither an obs column ({}) nor a gene",
            data.display(),
            p.color,
            a.obs.column_names().join(", ")
        ))
    })?;
    let positions: Vec<[f32; 2]> = coords
        .outer_iter()
        .map(|r| [r[0] as f32, r[1] as f32])
        .collect();
    let order: Vec<u32> = (0..positions.len() as u32).collect();
    let fig = Figure {
        title: p
            .title
            .clone()
            .unwrap_or_else(|| format!("{}: {}", p.basis, p.color)),
        positions: &positions,
        colors: &coloring.colors,
        order: &order,
        legend: &coloring.legend,
        colorbar: coloring.range.map(|(lo, hi)| (lo, hi, Ramp::Viridis)),
        scale_bar: units,
        y_down,
        provenance: crate::export::provenance(
            &[("data", data)],
            serde_json::json!({"basis": p.basis, "color": p.color, "dpi": p.size.dpi,
                "width_in": p.size.width_in, "height_in": p.size.height_in}),
        ),
    };
    Ok(save_figure(&fig, &p.size, out)?)
}
