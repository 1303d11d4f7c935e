//! Label transfer by k-nearest-neighbour vote, the zero-shot protocol of the reusability study
//! (Richter et al. 2024): k = 5, majority vote (`sklearn.neighbors.KNeighborsClassifier` with
//! uniform weights: ties go to the smallest class code, i.e. the alphabetically first name),
//! confidence = fraction of the k votes won by the predicted class.
//!
//! Within one dataset: a seeded 70/15/15 train/validation/test split (seed 42). Across datasets:
//! reference → query, with an optional user-written label map relating reference and query
//! class names.

use ndarray::ArrayView2;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::metrics::{Classification, classification};
use super::neighbors::{HnswIndex, KnnParams, exact_knn_between};
use crate::data::DataError;

/// kNN classification of `query` rows (`m x d`) against labelled `reference` rows (`n x d`,
/// codes `labels`, `n_classes` classes). Returns predicted codes and vote fractions.
///
/// # Panics
/// When `labels.len() != reference.nrows()` or the column counts differ.
pub fn knn_classify(
    reference: ArrayView2<f32>,
    labels: &[u32],
    n_classes: usize,
    query: ArrayView2<f32>,
    k: usize,
) -> (Vec<u32>, Vec<f32>) {
    assert_eq!(
        labels.len(),
        reference.nrows(),
        "one label per reference row"
    );
    assert_eq!(
        reference.ncols(),
        query.ncols(),
        "reference and query dimensions differ"
    );
    let p = KnnParams::default();
    let nn = if reference.nrows() <= 20_000 {
        exact_knn_between(reference, query, k)
    } else {
        HnswIndex::build(reference, &p).search(query, k, p.ef_search)
    };
    let mut pred = Vec::with_capacity(query.nrows());
    let mut conf = Vec::with_capacity(query.nrows());
    let mut votes = vec![0u32; n_classes];
    for i in 0..query.nrows() {
        votes.iter_mut().for_each(|v| *v = 0);
        for &j in nn.neighbors(i) {
            votes[labels[j as usize] as usize] += 1;
        }
        let (best, count) =
            votes.iter().enumerate().fold(
                (0usize, 0u32),
                |b, (c, &v)| if v > b.1 { (c, v) } else { b },
            );
        pred.push(best as u32);
        conf.push(count as f32 / nn.k as f32);
    }
    (pred, conf)
}

/// A label map between reference and query class names, read from a CSV with two columns
/// (reference label, query label; an optional header row `reference,query`). A reference label
/// may map to several query labels (one row each); a row with an empty query label marks a
/// reference class the query does not contain.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelMap {
    /// Accepted `(reference, query)` pairs.
    pub pairs: BTreeSet<(String, String)>,
    /// Reference labels in the file (mapped or not).
    pub reference_labels: BTreeSet<String>,
    /// For each query label, the reference label named first for it.
    pub canonical: BTreeMap<String, String>,
}

impl LabelMap {
    /// Reads a label map CSV.
    ///
    /// # Errors
    /// [`DataError`] naming the file and line when it cannot be read or a row does not have
    /// two fields, or when it holds no pair.
    pub fn read_csv(path: &Path) -> Result<Self, DataError> {
        let line_err =
            |line: usize, m: String| DataError::invalid(path, &format!("line {line}"), m);
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .comment(Some(b'#'))
            .from_path(path)
            .map_err(|e| DataError::invalid(path, "label map", format!("cannot read: {e}")))?;
        let mut map = LabelMap::default();
        for (line, rec) in rdr.records().enumerate() {
            let rec = rec.map_err(|e| line_err(line + 1, e.to_string()))?;
            if rec.len() != 2 {
                return Err(line_err(
                    line + 1,
                    format!(
                        "expected 2 fields (reference label, query label), found {}",
                        rec.len()
                    ),
                ));
            }
            let (r, q) = (rec[0].trim().to_string(), rec[1].trim().to_string());
            if line == 0 && r.eq_ignore_ascii_case("reference") && q.eq_ignore_ascii_case("query") {
                continue;
            }
            map.reference_labels.insert(r.clone());
            if !q.is_empty() {
                map.canonical.entry(q.clone()).or_insert_with(|| r.clone());
                map.pairs.insert((r, q));
            }
        }
        if map.pairs.is_empty() {
            return Err(DataError::invalid(
                path,
                "label map",
                "no (reference, query) pairs",
            ));
        }
        Ok(map)
    }

    /// Whether reference class `r` has at least one query counterpart.
    pub fn is_mapped(&self, r: &str) -> bool {
        self.pairs.iter().any(|(a, _)| a == r)
    }
}

/// Scores reference-label predictions against query labels.
///
/// With a map: cells whose query label is not in the map are left out; a prediction is correct
/// when `(prediction, truth)` is a mapped pair; for the per-class report the truth is expressed
/// in reference names (the prediction when correct, else the canonical reference label).
/// Without a map, names must match exactly and every cell counts. `exclude` lists truth labels
/// to leave out (e.g. `NA`, `Ambiguous`). Returns the scores, the class names they index, and
/// the number of cells scored.
pub fn score_predictions(
    predicted: &[String],
    truth: &[String],
    map: Option<&LabelMap>,
    exclude: &[&str],
) -> (Classification, Vec<String>, usize) {
    let mut t_names = Vec::new();
    let mut p_names = Vec::new();
    for (p, t) in predicted.iter().zip(truth) {
        if exclude.contains(&t.as_str()) {
            continue;
        }
        let t_ref = match map {
            Some(m) => match m.canonical.get(t) {
                None => continue,
                Some(c) => {
                    if m.pairs.contains(&(p.clone(), t.clone())) {
                        p.clone()
                    } else {
                        c.clone()
                    }
                }
            },
            None => t.clone(),
        };
        t_names.push(t_ref);
        p_names.push(p.clone());
    }
    let mut all: Vec<String> = t_names.iter().chain(&p_names).cloned().collect();
    all.sort();
    all.dedup();
    let code = |s: &String| all.binary_search(s).expect("name present") as u32;
    let t: Vec<u32> = t_names.iter().map(code).collect();
    let p: Vec<u32> = p_names.iter().map(code).collect();
    let n = t.len();
    (classification(&t, &p), all, n)
}
