//! Exports: figures (PNG with DPI and provenance metadata, SVG), results written back into a
//! new `.h5ad`, selected cells as CSV, and sessions as versioned JSON. Every export carries its
//! provenance ([`provenance`]): cellscope version, SHA-256 of the input data and model files,
//! pipeline parameters and seed. Outputs are written to a temporary file beside the target and
//! renamed, so a failed export never leaves a partial file.

pub mod figure;
pub mod scoreboard;
pub mod session;
pub mod tables;

use std::path::Path;

use crate::data::part;

/// An export error, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Writing failed.
    #[error("{file}: {message}")]
    Write {
        /// The output file.
        file: String,
        /// What went wrong.
        message: String,
    },
    /// A figure size out of range (see [`figure::FigureSize::check`]).
    #[error("figure size {width_in} x {height_in} in at {dpi} dpi: {expected}")]
    FigureSize {
        /// Width in inches.
        width_in: f32,
        /// Height in inches.
        height_in: f32,
        /// Dots per inch.
        dpi: u32,
        /// What is accepted.
        expected: String,
    },
    /// No dataset is open, so there is nothing to export.
    #[error("open a dataset first")]
    NothingOpen,
    /// A file could not be read back (session).
    #[error("{file}: {message}")]
    Read {
        /// The file.
        file: String,
        /// What was wrong.
        message: String,
    },
}

impl ExportError {
    pub(crate) fn write(file: &Path, e: impl std::fmt::Display) -> Self {
        ExportError::Write {
            file: file.display().to_string(),
            message: e.to_string(),
        }
    }
}

/// Writes `bytes` to `path` atomically (temporary file in the same folder, then rename).
///
/// # Errors
/// [`ExportError::Write`] naming `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    let mut tmp = part::file(path, ".part").map_err(|e| ExportError::write(path, e))?;
    std::io::Write::write_all(&mut tmp, bytes).map_err(|e| ExportError::write(path, e))?;
    part::persist(tmp, path).map_err(|e| ExportError::write(path, e))?;
    Ok(())
}

/// The provenance block every export carries: cellscope version, the input files with their
/// SHA-256 (`files`: role and path, e.g. `("data", ...)`, `("model", ...)`), pipeline
/// parameters and seed (`parameters`, free JSON), and the time written (Unix seconds).
pub fn provenance(files: &[(&str, &Path)], parameters: serde_json::Value) -> serde_json::Value {
    let files: Vec<serde_json::Value> = files
        .iter()
        .map(|(role, p)| {
            // A folder (cellscope model, Visium output) is identified by its main file.
            let main = ["weights.safetensors", "filtered_feature_bc_matrix.h5"]
                .iter()
                .map(|f| p.join(f))
                .find(|f| p.is_dir() && f.is_file())
                .unwrap_or_else(|| p.to_path_buf());
            serde_json::json!({
                "role": role,
                "path": p.display().to_string(),
                "sha256": crate::model::format::sha256_file(&main).ok(),
            })
        })
        .collect();
    serde_json::json!({
        "cellscope_version": env!("CARGO_PKG_VERSION"),
        "written_unix_secs": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        "inputs": files,
        "parameters": parameters,
    })
}
