//! Gene sets from MSigDB-style GMT files (`name<TAB>description<TAB>gene1<TAB>gene2...` per
//! line), the format of the gene programmes ssl_in_scg masks (SSL_MODELS.md).

use std::path::Path;

use super::error::{DataError, Result};

/// One gene set of a GMT file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneSet {
    /// The set's name (first field).
    pub name: String,
    /// Its description or URL (second field).
    pub description: String,
    /// Gene symbols as written (later fields, trimmed, empty ones dropped).
    pub genes: Vec<String>,
}

/// Reads every gene set of a GMT file; blank lines are skipped.
///
/// # Errors
/// [`DataError::Io`] for an unreadable file; [`DataError::Invalid`] naming the line that has
/// fewer than three tab-separated fields.
pub fn read_gmt(path: &Path) -> Result<Vec<GeneSet>> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    let mut sets = Vec::new();
    for (ln, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 3 {
            return Err(DataError::invalid(
                path,
                &format!("line {}", ln + 1),
                format!(
                    "expected name<TAB>description<TAB>genes..., found {} field(s)",
                    f.len()
                ),
            ));
        }
        sets.push(GeneSet {
            name: f[0].to_string(),
            description: f[1].to_string(),
            genes: f[2..]
                .iter()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
        });
    }
    Ok(sets)
}
