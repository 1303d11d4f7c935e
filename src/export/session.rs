//! Sessions: what the explorer shows, saved as versioned JSON and reopened: the data file,
//! model and reference files (with their SHA-256, to warn when a file changed), pipeline
//! parameters, the colour choice and hidden categories, both cameras, the selection and the
//! user's annotations.

use std::path::{Path, PathBuf};

use super::{ExportError, write_atomic};
use crate::render::camera::Camera;

/// The session file format name.
pub const FORMAT: &str = "cellscope-session";
/// The current session version (readers accept this and older).
pub const VERSION: u32 = 1;

/// A file the session refers to, with its SHA-256 when it was saved.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FileRef {
    /// Path as opened.
    pub path: PathBuf,
    /// SHA-256 of the file (of `weights.safetensors` for a model folder), if readable.
    pub sha256: Option<String>,
}

impl FileRef {
    /// A reference to `path` with its current hash.
    pub fn of(path: &Path) -> Self {
        let main = ["weights.safetensors", "filtered_feature_bc_matrix.h5"]
            .iter()
            .map(|f| path.join(f))
            .find(|f| path.is_dir() && f.is_file())
            .unwrap_or_else(|| path.to_path_buf());
        FileRef {
            path: path.to_path_buf(),
            sha256: crate::model::format::sha256_file(&main).ok(),
        }
    }

    /// Whether the file still has the saved hash.
    pub fn unchanged(&self) -> bool {
        self.sha256.is_none() || FileRef::of(&self.path).sha256 == self.sha256
    }
}

/// Pipeline parameters kept in a session.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SessionParams {
    /// kNN neighbours.
    pub n_neighbors: usize,
    /// Leiden resolution.
    pub resolution: f64,
    /// Number of spatial domains.
    pub n_domains: usize,
    /// Seed.
    pub seed: u64,
}

/// A saved explorer session.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Session {
    /// Always [`FORMAT`].
    pub format: String,
    /// [`VERSION`] when written.
    pub version: u32,
    /// The dataset.
    pub data: FileRef,
    /// The loaded model, if any.
    pub model: Option<FileRef>,
    /// Label-transfer reference and its label column, if any.
    pub reference: Option<(FileRef, String)>,
    /// Pipeline parameters.
    pub params: SessionParams,
    /// The colour choice, as the window serialises it.
    pub color_by: serde_json::Value,
    /// Hidden legend categories.
    pub hidden: Vec<String>,
    /// Ground-truth column of the metrics panel.
    pub truth_key: Option<String>,
    /// Camera of each view (embedding, spatial).
    pub cameras: Vec<Option<Camera>>,
    /// Selected cells (indices).
    pub selection: Vec<usize>,
    /// Named selections.
    pub annotations: Vec<(String, Vec<usize>)>,
    /// Provenance (see [`super::provenance`]).
    pub provenance: serde_json::Value,
}

impl Session {
    /// Writes the session as pretty JSON, atomically.
    ///
    /// # Errors
    /// [`ExportError::Write`] naming `path`.
    pub fn save(&self, path: &Path) -> Result<(), ExportError> {
        let text = serde_json::to_string_pretty(self).map_err(|e| ExportError::write(path, e))?;
        write_atomic(path, text.as_bytes())
    }

    /// Reads a session.
    ///
    /// # Errors
    /// [`ExportError::Read`]: unreadable, not JSON, another format, a newer version, or values
    /// that are not a view (a camera that is not finite, a resolution that is not positive).
    pub fn load(path: &Path) -> Result<Self, ExportError> {
        let err = |message: String| ExportError::Read {
            file: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| err(format!("not JSON: {e}")))?;
        if v["format"] != FORMAT {
            return Err(err(format!("not a {FORMAT} file (format {})", v["format"])));
        }
        let version = v["version"].as_u64().unwrap_or(u64::MAX);
        if version > u64::from(VERSION) {
            return Err(err(format!(
                "session version {version} is newer than this cellscope reads ({VERSION})"
            )));
        }
        let s: Self =
            serde_json::from_value(v).map_err(|e| err(format!("malformed session: {e}")))?;
        for (k, c) in s.cameras.iter().enumerate() {
            if let Some(c) = c
                && !(c.center.iter().all(|v| v.is_finite())
                    && c.units_per_point.is_finite()
                    && c.units_per_point > 0.0)
            {
                return Err(err(format!(
                    "cameras[{k}]: centre {:?} and zoom {} are not a view (finite, zoom > 0)",
                    c.center, c.units_per_point
                )));
            }
        }
        if !(s.params.resolution.is_finite() && s.params.resolution > 0.0) {
            return Err(err(format!(
                "params.resolution is {}; it must be a positive number",
                s.params.resolution
            )));
        }
        Ok(s)
    }
}
