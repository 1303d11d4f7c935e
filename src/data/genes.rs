//! Aligning a dataset's genes to a model's gene list (SSL_MODELS.md, "Preprocessing"): match by
//! Ensembl ID when both sides have IDs, else by case-insensitive symbol; model genes absent from
//! the dataset are zero-filled, dataset genes unknown to the model are dropped. An optional
//! homolog table ([`Homologs`], e.g. mouse -> human) maps dataset genes first, by Ensembl ID
//! where the table, the dataset and the model have IDs, by symbol for the rest.

use std::collections::HashMap;
use std::path::Path;

use super::anndata::AnnData;
use super::error::{DataError, Result};

/// First values of a one-column gene list that are a header, not a gene (lower-cased): the
/// column names of scanpy/anndata exports (`index`, `var_names`, `gene_ids`, `feature_name`)
/// and the usual spreadsheet headers.
pub const LIST_HEADERS: &[&str] = &[
    "gene",
    "genes",
    "gene_name",
    "gene_names",
    "gene_symbol",
    "gene_symbols",
    "symbol",
    "symbols",
    "gene_id",
    "gene_ids",
    "feature",
    "features",
    "feature_name",
    "feature_id",
    "name",
    "names",
    "index",
    "var_names",
    "",
];

/// A model's input genes, in input order: Ensembl IDs (when known) and symbols.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneList {
    /// Ensembl IDs (`feature_id`), `None` when the list has symbols only.
    pub ids: Option<Vec<String>>,
    /// Symbols (`feature_name`); equal to the IDs when only IDs are known.
    pub symbols: Vec<String>,
}

impl GeneList {
    /// Number of genes (the model's input width).
    pub fn len(&self) -> usize {
        self.symbols.len()
    }

    /// True when the list is empty.
    pub fn is_empty(&self) -> bool {
        self.symbols.is_empty()
    }

    /// Reads a gene list from CSV or TSV (delimiter from the extension, `.tsv`/`.txt` = tab;
    /// parsed by the `csv` crate, quotes included), or from parquet (`.parquet`, see
    /// [`Self::read_parquet`]).
    /// With a header naming `feature_id` and/or `feature_name` (ssl_in_scg's `var.parquet`
    /// columns), those columns are used; otherwise the first column holds one gene per line
    /// (after a header line when the first value is a column name such as `gene`, `symbol` or
    /// `gene_ids`: [`LIST_HEADERS`]) and a value starting with `ENS` marks the list as IDs.
    ///
    /// # Errors
    /// Unreadable file, malformed CSV, empty list.
    pub fn read_csv(path: &Path) -> Result<Self> {
        if path.extension().and_then(|e| e.to_str()) == Some("parquet") {
            return Self::read_parquet(path);
        }
        let delim = match path.extension().and_then(|e| e.to_str()) {
            Some("tsv" | "txt") => b'\t',
            _ => b',',
        };
        let mut rdr = csv::ReaderBuilder::new()
            .delimiter(delim)
            .has_headers(false)
            .flexible(true)
            .trim(csv::Trim::All)
            .from_path(path)
            .map_err(|e| DataError::invalid(path, "genes", e.to_string()))?;
        let mut rows: Vec<Vec<String>> = Vec::new();
        for (k, rec) in rdr.records().enumerate() {
            let rec = rec
                .map_err(|e| DataError::invalid(path, &format!("line {}", k + 1), e.to_string()))?;
            if rec.iter().any(|f| !f.is_empty()) {
                rows.push(rec.iter().map(String::from).collect());
            }
        }
        let Some(header) = rows.first() else {
            return Err(DataError::invalid(path, "genes", "the gene list is empty"));
        };
        let id_col = header.iter().position(|h| h == "feature_id");
        let name_col = header.iter().position(|h| h == "feature_name");
        let list = if id_col.is_some() || name_col.is_some() {
            let get = |c: usize| -> Vec<String> {
                rows[1..]
                    .iter()
                    .map(|r| r.get(c).cloned().unwrap_or_default())
                    .collect()
            };
            let ids = id_col.map(get).filter(|v| v.iter().any(|s| !s.is_empty()));
            let symbols = match (name_col, &ids) {
                (Some(c), _) => get(c),
                (None, Some(ids)) => ids.clone(),
                (None, None) => Vec::new(),
            };
            Self { ids, symbols }
        } else {
            let first = header[0].to_ascii_lowercase();
            let skip = usize::from(LIST_HEADERS.contains(&first.as_str()));
            Self::from_names(rows[skip..].iter().map(|r| r[0].clone()).collect())
        };
        if list.is_empty() {
            return Err(DataError::invalid(
                path,
                "genes",
                "the gene list has no genes",
            ));
        }
        Ok(list)
    }

    /// Reads ssl_in_scg's `var.parquet`: string columns `feature_id` (Ensembl IDs) and/or
    /// `feature_name` (symbols), one row per model input, in order.
    ///
    /// # Errors
    /// Not a parquet file, neither column present, a null or non-string value.
    pub fn read_parquet(path: &Path) -> Result<Self> {
        use parquet::file::reader::{FileReader, SerializedFileReader};
        use parquet::record::Field;
        let bad = |m: String| DataError::invalid(path, "var.parquet", m);
        let f = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
        let reader =
            SerializedFileReader::new(f).map_err(|e| bad(format!("not a parquet file: {e}")))?;
        let (mut ids, mut names) = (Vec::new(), Vec::new());
        let rows = reader.get_row_iter(None).map_err(|e| bad(e.to_string()))?;
        for (i, row) in rows.enumerate() {
            let row = row.map_err(|e| bad(e.to_string()))?;
            for (col, field) in row.get_column_iter() {
                let target = match col.as_str() {
                    "feature_id" => &mut ids,
                    "feature_name" => &mut names,
                    _ => continue,
                };
                match field {
                    Field::Str(s) => target.push(s.clone()),
                    other => {
                        return Err(bad(format!(
                            "row {i}, column {col}: expected a string, found {other}"
                        )));
                    }
                }
            }
        }
        let list = match (ids.is_empty(), names.is_empty()) {
            (true, true) => {
                return Err(bad(
                    "no feature_id or feature_name column (the ssl_in_scg gene order)".into(),
                ));
            }
            (false, true) => Self {
                symbols: ids.clone(),
                ids: Some(ids),
            },
            (true, false) => Self {
                ids: None,
                symbols: names,
            },
            (false, false) => Self {
                ids: Some(ids),
                symbols: names,
            },
        };
        Ok(list)
    }

    /// A list from plain names: IDs when they look like Ensembl IDs (`ENS...`), else symbols.
    pub fn from_names(names: Vec<String>) -> Self {
        let ids = looks_like_ensembl(&names).then(|| names.clone());
        Self {
            ids,
            symbols: names,
        }
    }
}

fn looks_like_ensembl(names: &[String]) -> bool {
    let n = names.len().min(200);
    n > 0 && names[..n].iter().filter(|s| s.starts_with("ENS")).count() * 2 > n
}

/// Ensembl ID without its version suffix (`ENSG00000141510.17` -> `ENSG00000141510`).
pub(super) fn strip_version(id: &str) -> &str {
    id.split('.').next().unwrap_or(id)
}

/// The dataset's genes: IDs from a var column (`gene_ids`, `gene_id`, `feature_id`,
/// `ensembl_id`) or from var_names when they are Ensembl IDs; symbols from var_names or a
/// column (`gene_symbol`, `feature_name`, `gene_name`, `symbol`).
pub fn dataset_genes(adata: &AnnData) -> GeneList {
    genes_of(&adata.var)
}

/// The genes of a `var` data frame (see [`dataset_genes`]).
pub fn genes_of(var: &super::dataframe::DataFrame) -> GeneList {
    let names = var.index.clone();
    let col = |keys: &[&str]| -> Option<Vec<String>> {
        keys.iter().find_map(|k| {
            var.column(k)
                .map(|c| (0..c.len()).map(|i| c.value_string(i)).collect())
        })
    };
    let id_col = col(&["gene_ids", "gene_id", "feature_id", "ensembl_id"]);
    let sym_col = col(&["gene_symbol", "feature_name", "gene_name", "symbol"]);
    let names_are_ids = looks_like_ensembl(&names);
    let ids = match id_col {
        Some(v) if looks_like_ensembl(&v) => Some(v),
        _ if names_are_ids => Some(names.clone()),
        _ => None,
    };
    let symbols = if names_are_ids {
        sym_col.unwrap_or_else(|| names.clone())
    } else {
        names
    };
    GeneList { ids, symbols }
}

/// How two gene lists were matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchKey {
    /// Ensembl IDs (version suffix ignored).
    EnsemblId,
    /// Case-insensitive symbols.
    Symbol,
}

/// A dataset's genes mapped onto a model's input.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneAlignment {
    /// For each model gene (input unit), the dataset column that feeds it, or `None` (zero-fill).
    pub model_to_data: Vec<Option<usize>>,
    /// For each dataset column, the model input it feeds, or `None` (dropped).
    pub data_to_model: Vec<Option<u32>>,
    /// The key used.
    pub key: MatchKey,
    /// With a homolog table: model genes matched through it by Ensembl ID and by symbol.
    pub through_homologs: Option<(usize, usize)>,
}

/// The coverage report of an alignment.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Coverage {
    /// Model genes found in the dataset.
    pub matched: usize,
    /// Model input width.
    pub n_model: usize,
    /// Dataset genes.
    pub n_data: usize,
    /// With a homolog table: model genes matched through it by Ensembl ID and by symbol.
    pub through_homologs: Option<(usize, usize)>,
}

impl Coverage {
    /// `matched / n_model`: the fraction of the model's input that is not zero-filled.
    pub fn model_fraction(&self) -> f64 {
        self.matched as f64 / self.n_model.max(1) as f64
    }

    /// `matched / n_data`: the fraction of the dataset's genes the model sees.
    pub fn data_fraction(&self) -> f64 {
        self.matched as f64 / self.n_data.max(1) as f64
    }
}

impl std::fmt::Display for Coverage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} of {} model genes matched ({:.1}%; {:.1}% of the input zero-filled); {} of {} \
             dataset genes used ({:.1}%)",
            self.matched,
            self.n_model,
            100.0 * self.model_fraction(),
            100.0 * (1.0 - self.model_fraction()),
            self.matched,
            self.n_data,
            100.0 * self.data_fraction()
        )?;
        if let Some((by_id, by_symbol)) = self.through_homologs {
            write!(
                f,
                "; through the homolog table {by_id} by Ensembl ID, {by_symbol} by symbol"
            )?;
        }
        Ok(())
    }
}

pub use super::homologs::Homologs;

impl GeneAlignment {
    /// Aligns `data` (the dataset's genes) to `model` (the model's input genes).
    ///
    /// Ensembl IDs are used when both lists have them (and no homolog table is given), else
    /// case-insensitive symbols. When several dataset genes match one model gene, the first wins.
    pub fn new(model: &GeneList, data: &GeneList, homologs: Option<&Homologs>) -> Self {
        if let Some(h) = homologs {
            return Self::through(model, data, h);
        }
        let use_ids = model.ids.is_some() && data.ids.is_some();
        let (model_keys, data_keys, key): (Vec<String>, Vec<String>, MatchKey) = if use_ids {
            let norm =
                |v: &Vec<String>| v.iter().map(|s| strip_version(s).to_uppercase()).collect();
            (
                norm(model.ids.as_ref().unwrap_or(&model.symbols)),
                norm(data.ids.as_ref().unwrap_or(&data.symbols)),
                MatchKey::EnsemblId,
            )
        } else {
            let upper = |v: &Vec<String>| v.iter().map(|s| s.to_uppercase()).collect();
            (
                upper(&model.symbols),
                upper(&data.symbols),
                MatchKey::Symbol,
            )
        };
        let mut first: HashMap<&str, usize> = HashMap::with_capacity(data_keys.len());
        for (j, k) in data_keys.iter().enumerate() {
            first.entry(k.as_str()).or_insert(j);
        }
        let model_to_data: Vec<Option<usize>> = model_keys
            .iter()
            .map(|k| first.get(k.as_str()).copied())
            .collect();
        Self::from_model_side(model_to_data, data_keys.len(), key, None)
    }

    /// Alignment through a homolog table: a dataset gene whose Ensembl ID the table maps is
    /// matched to the model gene with that ID (when the model has IDs); every other dataset
    /// gene by its symbol mapped through the table (itself when absent), case-insensitively.
    /// A dataset gene feeds at most one model gene; the first match wins.
    fn through(model: &GeneList, data: &GeneList, h: &Homologs) -> Self {
        let mut by_id: HashMap<String, usize> = HashMap::new();
        let mut by_symbol: HashMap<String, usize> = HashMap::new();
        for j in 0..data.len() {
            let mapped = match (&data.ids, model.ids.is_some()) {
                (Some(ids), true) => h.map_id(&ids[j]),
                _ => None,
            };
            match mapped {
                Some(t) => by_id.entry(t.to_uppercase()).or_insert(j),
                None => by_symbol
                    .entry(h.map_symbol(&data.symbols[j]).to_uppercase())
                    .or_insert(j),
            };
        }
        let mut used = vec![false; data.len()];
        let (mut n_id, mut n_symbol) = (0, 0);
        let model_to_data: Vec<Option<usize>> = (0..model.len())
            .map(|m| {
                let id = model
                    .ids
                    .as_ref()
                    .and_then(|ids| by_id.get(&strip_version(&ids[m]).to_uppercase()))
                    .filter(|&&j| !used[j]);
                let (j, counter) = match id {
                    Some(&j) => (j, &mut n_id),
                    None => (
                        *by_symbol
                            .get(&model.symbols[m].to_uppercase())
                            .filter(|&&j| !used[j])?,
                        &mut n_symbol,
                    ),
                };
                used[j] = true;
                *counter += 1;
                Some(j)
            })
            .collect();
        let key = if n_id > 0 {
            MatchKey::EnsemblId
        } else {
            MatchKey::Symbol
        };
        Self::from_model_side(model_to_data, data.len(), key, Some((n_id, n_symbol)))
    }

    fn from_model_side(
        model_to_data: Vec<Option<usize>>,
        n_data: usize,
        key: MatchKey,
        through_homologs: Option<(usize, usize)>,
    ) -> Self {
        let mut data_to_model = vec![None; n_data];
        for (m, d) in model_to_data.iter().enumerate() {
            if let Some(d) = d {
                data_to_model[*d] = Some(m as u32);
            }
        }
        Self {
            model_to_data,
            data_to_model,
            key,
            through_homologs,
        }
    }

    /// The coverage report.
    pub fn coverage(&self) -> Coverage {
        Coverage {
            matched: self.model_to_data.iter().filter(|m| m.is_some()).count(),
            n_model: self.model_to_data.len(),
            n_data: self.data_to_model.len(),
            through_homologs: self.through_homologs,
        }
    }

    /// Maps a whole CSR matrix of dataset columns to the model's input space, shape
    /// `(n_rows, n_model_genes)`; unmatched model genes stay zero. Blocks of rows are mapped on
    /// all cores and joined in order, so the result does not depend on the thread count.
    pub fn map_matrix(&self, m: &super::matrix::CsrMatrix) -> super::matrix::CsrMatrix {
        use rayon::prelude::*;
        let blocks: Vec<(Vec<u64>, Vec<u32>, Vec<f32>)> = m
            .row_ranges()
            .collect::<Vec<_>>()
            .into_par_iter()
            .map(|rows| {
                let nnz = (m.indptr[rows.end] - m.indptr[rows.start]) as usize;
                let mut ends = Vec::with_capacity(rows.len());
                let (mut indices, mut data) = (Vec::with_capacity(nnz), Vec::with_capacity(nnz));
                let (mut ri, mut rv) = (Vec::new(), Vec::new());
                for i in rows {
                    let (idx, val) = m.row(i);
                    self.map_row(idx, val, &mut ri, &mut rv);
                    indices.extend_from_slice(&ri);
                    data.extend_from_slice(&rv);
                    ends.push(indices.len() as u64);
                }
                (ends, indices, data)
            })
            .collect();
        let nnz = blocks.iter().map(|b| b.1.len()).sum();
        let mut indptr = Vec::with_capacity(m.n_rows + 1);
        indptr.push(0u64);
        let (mut indices, mut data) = (Vec::with_capacity(nnz), Vec::with_capacity(nnz));
        for (ends, idx, val) in blocks {
            let base = indices.len() as u64;
            indptr.extend(ends.iter().map(|e| base + e));
            indices.extend_from_slice(&idx);
            data.extend_from_slice(&val);
        }
        super::matrix::CsrMatrix {
            n_rows: m.n_rows,
            n_cols: self.model_to_data.len(),
            indptr,
            indices,
            data,
        }
    }

    /// Maps one sparse dataset row to the model's input space (dropping unmatched genes);
    /// output indices are sorted. Rows whose mapped indices come out increasing (a dataset in
    /// the model's gene order) are not sorted again.
    pub fn map_row(
        &self,
        indices: &[u32],
        values: &[f32],
        out_idx: &mut Vec<u32>,
        out_val: &mut Vec<f32>,
    ) {
        out_idx.clear();
        out_val.clear();
        for (&j, &v) in indices.iter().zip(values) {
            if let Some(m) = self.data_to_model[j as usize] {
                out_idx.push(m);
                out_val.push(v);
            }
        }
        if out_idx.is_sorted() {
            return;
        }
        let mut pairs: Vec<(u32, f32)> = out_idx
            .iter()
            .copied()
            .zip(out_val.iter().copied())
            .collect();
        pairs.sort_unstable_by_key(|p| p.0);
        for (k, (m, v)) in pairs.into_iter().enumerate() {
            out_idx[k] = m;
            out_val[k] = v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_win_and_versions_are_ignored() {
        let model = GeneList {
            ids: Some(vec!["ENSG1".into(), "ENSG2".into(), "ENSG3".into()]),
            symbols: vec!["A".into(), "B".into(), "C".into()],
        };
        let data = GeneList {
            ids: Some(vec!["ENSG3.4".into(), "ENSG9".into(), "ENSG1.1".into()]),
            symbols: vec!["c".into(), "z".into(), "a".into()],
        };
        let al = GeneAlignment::new(&model, &data, None);
        assert_eq!(al.key, MatchKey::EnsemblId);
        assert_eq!(al.model_to_data, vec![Some(2), None, Some(0)]);
        let c = al.coverage();
        assert_eq!((c.matched, c.n_model, c.n_data), (2, 3, 3));
        let (mut i, mut v) = (Vec::new(), Vec::new());
        al.map_row(&[0, 1, 2], &[5.0, 6.0, 7.0], &mut i, &mut v);
        assert_eq!(i, vec![0, 2]);
        assert_eq!(v, vec![7.0, 5.0]);
    }

    /// Several row blocks, rows in and out of the model's order, an unmatched gene: equal to mapping
    /// each row on its own.
    #[test]
    fn map_matrix_equals_row_by_row() {
        let n = 40;
        let model = GeneList::from_names((0..n).map(|g| format!("G{g}")).collect());
        // The dataset lists the model's genes backwards, one extra gene in the middle.
        let mut names: Vec<String> = (0..n).rev().map(|g| format!("g{g}")).collect();
        names.insert(n / 2, "extra".into());
        let al = GeneAlignment::new(&model, &GeneList::from_names(names), None);
        let mut m = super::super::matrix::CsrMatrix {
            n_rows: 5_000,
            n_cols: n + 1,
            indptr: vec![0],
            indices: Vec::new(),
            data: Vec::new(),
        };
        for r in 0..m.n_rows {
            for j in (0..=n).filter(|j| (r * 7 + j * 3) % (1 + r % 5) == 0) {
                m.indices.push(j as u32);
                m.data.push((r * 100 + j) as f32);
            }
            m.indptr.push(m.indices.len() as u64);
        }
        let got = al.map_matrix(&m);
        assert_eq!((got.n_rows, got.n_cols), (m.n_rows, n));
        let (mut i, mut v) = (Vec::new(), Vec::new());
        for r in 0..m.n_rows {
            let (idx, val) = m.row(r);
            al.map_row(idx, val, &mut i, &mut v);
            assert!(i.windows(2).all(|w| w[0] < w[1]), "row {r} sorted");
            assert_eq!(got.row(r), (&i[..], &v[..]), "row {r}");
            // Unmatched "extra" dropped; each value lands on its gene.
            for (&g, &x) in i.iter().zip(&v) {
                let j = if (g as usize) < n / 2 {
                    n - g as usize
                } else {
                    n - 1 - g as usize
                };
                assert_eq!(x, (r * 100 + j) as f32, "row {r} gene {g}");
            }
        }
    }

    #[test]
    fn symbols_case_insensitive_with_homologs() {
        let model = GeneList::from_names(vec!["CD3E".into(), "GAPDH".into()]);
        let data = GeneList::from_names(vec!["Gapdh".into(), "Cd3e".into(), "Xist".into()]);
        let al = GeneAlignment::new(&model, &data, None);
        assert_eq!(al.key, MatchKey::Symbol);
        assert_eq!(al.model_to_data, vec![Some(1), Some(0)]);
        let h = Homologs {
            symbols: [("XIST".to_string(), "CD3E".to_string())]
                .into_iter()
                .collect(),
            ..Default::default()
        };
        let al = GeneAlignment::new(&model, &data, Some(&h));
        // Cd3e maps to itself (no homolog entry), Xist -> CD3E: the first match (Cd3e) wins.
        assert_eq!(al.model_to_data, vec![Some(1), Some(0)]);
    }
}
