//! Typed errors of the data layer.
//!
//! Every variant names the file and, where there is one, the HDF5 path or column, and says what was
//! expected, so a message can be shown to a user as it is.

use std::path::PathBuf;

/// An error reading, validating or writing a dataset.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be opened or read at all (missing, not HDF5, truncated, permissions).
    #[error("{file}: cannot open: {reason}")]
    Open {
        /// The file.
        file: PathBuf,
        /// What the operating system or HDF5 said.
        reason: String,
    },
    /// A required element is missing.
    #[error("{file}: missing {path}: {expected}")]
    Missing {
        /// The file.
        file: PathBuf,
        /// HDF5 path (or column name) that is absent.
        path: String,
        /// What should have been there.
        expected: String,
    },
    /// An element is present but malformed (wrong dtype, rank, length, attribute, ...).
    #[error("{file}: {path}: {message}")]
    Invalid {
        /// The file.
        file: PathBuf,
        /// HDF5 path (or column name) of the element.
        path: String,
        /// What is wrong and what was expected.
        message: String,
    },
    /// An HDF5 library error while reading or writing an element.
    #[error("{file}: {path}: HDF5 error: {source}")]
    Hdf5 {
        /// The file.
        file: PathBuf,
        /// HDF5 path of the element being accessed.
        path: String,
        /// The library's error.
        #[source]
        source: hdf5::Error,
    },
    /// Any other I/O error (CSV, images, JSON, renames).
    #[error("{file}: {source}")]
    Io {
        /// The file.
        file: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The output path is an input, or inside an input folder (inputs are never modified).
    #[error(
        "{file}: refusing to overwrite an input or to write inside an input folder; choose a new output path"
    )]
    WouldOverwriteInput {
        /// The path given for output.
        file: PathBuf,
    },
}

impl DataError {
    /// Shorthand for [`DataError::Invalid`].
    pub fn invalid(file: &std::path::Path, path: &str, message: impl Into<String>) -> Self {
        Self::Invalid {
            file: file.to_path_buf(),
            path: path.to_string(),
            message: message.into(),
        }
    }

    /// Shorthand for [`DataError::Missing`].
    pub fn missing(file: &std::path::Path, path: &str, expected: impl Into<String>) -> Self {
        Self::Missing {
            file: file.to_path_buf(),
            path: path.to_string(),
            expected: expected.into(),
        }
    }

    /// Shorthand for [`DataError::Hdf5`].
    pub fn hdf5(file: &std::path::Path, path: &str, source: hdf5::Error) -> Self {
        Self::Hdf5 {
            file: file.to_path_buf(),
            path: path.to_string(),
            source,
        }
    }

    /// Shorthand for [`DataError::Io`].
    pub fn io(file: &std::path::Path, source: std::io::Error) -> Self {
        Self::Io {
            file: file.to_path_buf(),
            source,
        }
    }
}

/// Result alias of the data layer.
pub type Result<T, E = DataError> = std::result::Result<T, E>;
