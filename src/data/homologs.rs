//! Homolog tables mapping a dataset's genes (e.g. mouse) onto a model's species (e.g. human)
//! before alignment (SSL_MODELS.md: "Mouse data: map mouse to human genes through an Ensembl
//! homolog table first"; SEED_METHODS.md, the reusability study's `ensembl_homologs.csv`).
//!
//! Two layouts are read:
//! - a two-column CSV `dataset gene, model gene` (symbols or Ensembl IDs; header optional);
//! - an Ensembl BioMart ortholog export, as the study used: `Gene stable ID`, `Gene name`,
//!   `<Species> gene stable ID`, `<Species> gene name`, `<Species> homology type`, ... (or the
//!   BioMart attribute names `ensembl_gene_id`, `external_gene_name`,
//!   `<species>_homolog_ensembl_gene`, `<species>_homolog_associated_gene_name`,
//!   `<species>_homolog_orthology_type`), of which only `ortholog_one2one` rows are kept. Target
//!   symbols are often empty there, so matching goes by Ensembl ID where the dataset and the
//!   model have IDs, by symbol for the rest.
//!
//! A table with more than two columns none of which can be understood is an error naming the
//! columns found (it used to be read silently as its first two columns).

use std::collections::HashMap;
use std::path::Path;

use super::error::{DataError, Result};
use super::genes::strip_version;

/// A homolog table: dataset gene -> model gene, by Ensembl ID and by symbol.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Homologs {
    /// Upper-case dataset symbol -> model symbol.
    pub(super) symbols: HashMap<String, String>,
    /// Upper-case, version-less dataset Ensembl ID -> model Ensembl ID.
    pub(super) ids: HashMap<String, String>,
    /// Rows used (one-to-one orthologs only for a BioMart table).
    pub rows: usize,
}

/// Column roles of a BioMart ortholog export.
#[derive(Debug, Default)]
struct Columns {
    source_id: Option<usize>,
    source_name: Option<usize>,
    target_id: Option<usize>,
    target_name: Option<usize>,
    kind: Option<usize>,
}

impl Columns {
    /// Roles from header names (case-insensitive), `None` when neither the IDs nor the names
    /// of both sides are found.
    fn from_header(names: &[String]) -> Option<Self> {
        let mut c = Columns::default();
        for (i, raw) in names.iter().enumerate() {
            let n = raw.trim().to_lowercase();
            let slot = match n.as_str() {
                "gene stable id" | "ensembl_gene_id" | "gene_id" => &mut c.source_id,
                "gene name" | "external_gene_name" | "gene_name" | "symbol" => &mut c.source_name,
                _ if n.ends_with(" gene stable id") || n.ends_with("_homolog_ensembl_gene") => {
                    &mut c.target_id
                }
                _ if n.ends_with(" gene name") || n.ends_with("_homolog_associated_gene_name") => {
                    &mut c.target_name
                }
                _ if n.ends_with(" homology type") || n.ends_with("_homolog_orthology_type") => {
                    &mut c.kind
                }
                _ => continue,
            };
            slot.get_or_insert(i);
        }
        let ids = c.source_id.is_some() && c.target_id.is_some();
        let names = c.source_name.is_some() && c.target_name.is_some();
        (ids || names).then_some(c)
    }
}

fn is_ensembl_id(s: &str) -> bool {
    s.len() > 4 && s.starts_with("ENS") && s.bytes().any(|b| b.is_ascii_digit())
}

impl Homologs {
    /// Reads a homolog table (either layout, see the module docs).
    ///
    /// # Errors
    /// [`DataError`] naming the file: unreadable, a two-column row with an empty field, a wider
    /// table whose columns cannot be understood (the columns found are listed), no usable row.
    pub fn read_csv(path: &Path) -> Result<Self> {
        let bad = |what: &str, m: String| DataError::invalid(path, what, m);
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_path(path)
            .map_err(|e| bad("homolog table", format!("cannot read: {e}")))?;
        let mut records = rdr.records();
        let first: Vec<String> = match records.next() {
            Some(r) => r
                .map_err(|e| bad("line 1", e.to_string()))?
                .iter()
                .map(str::to_string)
                .collect(),
            None => return Err(bad("homolog table", "the file is empty".into())),
        };
        let mut h = Homologs::default();
        if first.len() > 2 {
            let cols = Columns::from_header(&first).ok_or_else(|| {
                bad(
                    "header",
                    format!(
                        "cannot tell which columns hold the genes: found {first:?}; expected a \
                         two-column table (dataset gene, model gene) or an Ensembl BioMart \
                         ortholog export ('Gene stable ID', 'Gene name', '<Species> gene \
                         stable ID', '<Species> gene name', '<Species> homology type')"
                    ),
                )
            })?;
            for (k, r) in records.enumerate() {
                let r = r.map_err(|e| bad(&format!("line {}", k + 2), e.to_string()))?;
                h.add_biomart_row(&cols, &r);
            }
        } else {
            h.add_pair(path, 1, &first)?;
            for (k, r) in records.enumerate() {
                let r = r.map_err(|e| bad(&format!("line {}", k + 2), e.to_string()))?;
                let row: Vec<String> = r.iter().map(str::to_string).collect();
                h.add_pair(path, k + 2, &row)?;
            }
        }
        if h.rows == 0 {
            return Err(bad(
                "homolog table",
                "no usable row (one-to-one orthologs)".into(),
            ));
        }
        Ok(h)
    }

    /// A BioMart row: one-to-one orthologs only (when the table says), IDs and names kept
    /// where present.
    fn add_biomart_row(&mut self, c: &Columns, r: &csv::StringRecord) {
        let get = |i: Option<usize>| i.and_then(|i| r.get(i)).map(str::trim).unwrap_or("");
        if c.kind.is_some() && get(c.kind) != "ortholog_one2one" {
            return;
        }
        let mut used = false;
        let (sid, tid) = (get(c.source_id), get(c.target_id));
        if !sid.is_empty() && !tid.is_empty() {
            let key = strip_version(sid).to_uppercase();
            self.ids
                .entry(key)
                .or_insert_with(|| strip_version(tid).to_string());
            used = true;
        }
        let (sn, tn) = (get(c.source_name), get(c.target_name));
        if !sn.is_empty() && !tn.is_empty() {
            self.symbols
                .entry(sn.to_uppercase())
                .or_insert_with(|| tn.to_string());
            used = true;
        }
        self.rows += usize::from(used);
    }

    /// A two-column row (a header row is read as a pair too, harmlessly).
    fn add_pair(&mut self, path: &Path, line: usize, row: &[String]) -> Result<()> {
        let field = |i: usize| row.get(i).map(|s| s.trim()).unwrap_or("");
        let (a, b) = (field(0), field(1));
        if row.iter().all(|s| s.trim().is_empty()) {
            return Ok(());
        }
        if a.is_empty() || b.is_empty() {
            return Err(DataError::invalid(
                path,
                &format!("line {line}"),
                "expected two comma-separated columns: dataset gene, model gene",
            ));
        }
        if is_ensembl_id(a) && is_ensembl_id(b) {
            let key = strip_version(a).to_uppercase();
            self.ids
                .entry(key)
                .or_insert_with(|| strip_version(b).to_string());
        } else {
            self.symbols
                .entry(a.to_uppercase())
                .or_insert_with(|| b.to_string());
        }
        self.rows += 1;
        Ok(())
    }

    /// The model gene for a dataset symbol (the symbol itself when the table lacks it).
    pub(super) fn map_symbol(&self, g: &str) -> String {
        self.symbols
            .get(&g.to_uppercase())
            .cloned()
            .unwrap_or_else(|| g.to_string())
    }

    /// The model gene's Ensembl ID for a dataset Ensembl ID, when the table has it.
    pub(super) fn map_id(&self, id: &str) -> Option<&str> {
        self.ids
            .get(&strip_version(id).to_uppercase())
            .map(String::as_str)
    }

    /// Whether the table maps Ensembl IDs.
    pub fn has_ids(&self) -> bool {
        !self.ids.is_empty()
    }
}
