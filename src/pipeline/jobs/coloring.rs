//! Colouring cells: categorical labels on scanpy's palettes (or the file's
//! `uns['<key>_colors']`) with a legend, continuous values (obs columns, genes, confidences) on
//! viridis clipped at the 99th percentile (scanpy's `vmax='p99'` habit) with a colour bar. Runs
//! off the UI thread ([`super::super::worker`]'s colouring thread) and for `cellscope plot`.

use egui::Color32;

use crate::data::AnnData;
use crate::data::dataframe::Column;
pub use crate::render::coloring::{Coloring, LegendItem, Ramp};
use crate::render::colors::categorical;

/// Integer codes of string labels, `(codes, names)` with `names[code]`, in the order legends
/// and tables show them: `categories` when given (names not in it last), else numeric-looking
/// names numerically (`"2"` before `"10"`), then the rest alphabetically. A total order, so
/// mixed names such as `"2"`, `"10"` and `"1a"` sort consistently.
pub fn encode_in_order<S: AsRef<str>>(
    labels: &[S],
    categories: Option<&[String]>,
) -> (Vec<u32>, Vec<String>) {
    let (codes, names) = crate::analysis::metrics::encode(labels);
    let mut order: Vec<usize> = (0..names.len()).collect();
    match categories {
        Some(cats) => order.sort_by_key(|&a| {
            cats.iter()
                .position(|c| *c == names[a])
                .unwrap_or(usize::MAX)
        }),
        // Numbers first (by value), then the rest (`encode` sorted them alphabetically).
        None => order.sort_by(|&a, &b| {
            match (names[a].parse::<f64>().ok(), names[b].parse::<f64>().ok()) {
                (Some(x), Some(y)) => x.total_cmp(&y),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => a.cmp(&b),
            }
        }),
    }
    let mut rank = vec![0u32; names.len()];
    order
        .iter()
        .enumerate()
        .for_each(|(r, &c)| rank[c] = r as u32);
    let mut sorted = names;
    let names = order
        .iter()
        .map(|&c| std::mem::take(&mut sorted[c]))
        .collect();
    (codes.iter().map(|&c| rank[c as usize]).collect(), names)
}

/// Categorical colouring of `labels`. Legend order: [`encode_in_order`] (`categories` is a
/// categorical column's own order, which `uns['<key>_colors']` follows, as in scanpy).
/// Colours: `uns` when it has enough entries, else scanpy's default palettes.
pub fn categorical_coloring(
    labels: &[String],
    categories: Option<&[String]>,
    uns: Option<&[String]>,
) -> Coloring {
    let (codes, names) = encode_in_order(labels, categories);
    let pal = categorical(names.len(), uns);
    let mut counts = vec![0usize; names.len()];
    codes.iter().for_each(|&c| counts[c as usize] += 1);
    let legend = names
        .into_iter()
        .zip(counts)
        .enumerate()
        .map(|(c, (name, count))| LegendItem {
            name,
            color: pal[c],
            count,
        })
        .collect();
    Coloring {
        colors: codes.iter().map(|&c| pal[c as usize]).collect(),
        codes: Some(codes),
        legend,
        range: None,
        values: None,
    }
}

/// Continuous colouring of `values`: `ramp` from the minimum to the 99th percentile (values
/// above are clipped); non-finite values light grey.
pub fn continuous_coloring(values: Vec<f32>, ramp: Ramp) -> Coloring {
    let mut sorted: Vec<f32> = values.iter().copied().filter(|x| x.is_finite()).collect();
    sorted.sort_by(f32::total_cmp);
    let lo = sorted.first().copied().unwrap_or(0.0);
    let hi = sorted
        .get(((sorted.len() as f64 * 0.99) as usize).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or(1.0);
    let span = (hi - lo).max(f32::MIN_POSITIVE);
    let colors = values
        .iter()
        .map(|&x| {
            if x.is_finite() {
                ramp.at(((x - lo) / span).clamp(0.0, 1.0))
            } else {
                Color32::from_gray(200)
            }
        })
        .collect();
    Coloring {
        codes: None,
        colors,
        legend: Vec::new(),
        range: Some((lo, hi)),
        values: Some(values),
    }
}

/// Expression of gene `g` per cell from X, as scanpy would colour it: log-normalised
/// (`normalize_total` to the median total, then `log1p`) when X holds counts, X itself when it
/// holds negative (scaled) values; an imputed gene (`obsm['cellscope_imputed']`, already
/// log-normalised) when X lacks it. `None` when there is no such gene.
pub fn gene_values(d: &AnnData, g: &str) -> Option<Vec<f32>> {
    let Some(j) = d.var_names().iter().position(|v| v == g) else {
        let k = d.imputed_genes.iter().position(|v| v == g)?;
        let m = d.obsm.get(crate::export::tables::keys::IMPUTED)?;
        return Some(m.column(k).iter().map(|&v| v as f32).collect());
    };
    let x: std::borrow::Cow<'_, crate::data::matrix::CsrMatrix> = match &d.x {
        crate::data::matrix::Matrix::Csr(m) => std::borrow::Cow::Borrowed(m),
        dense => std::borrow::Cow::Owned(dense.to_csr()),
    };
    let mut v = vec![0f32; x.n_rows];
    let totals = crate::data::preprocess::row_totals(&x);
    let counts = !x.data.iter().any(|&y| y < 0.0);
    let med = crate::data::preprocess::median(&totals).max(f32::MIN_POSITIVE);
    for (i, out) in v.iter_mut().enumerate() {
        let (idx, val) = x.row(i);
        if let Ok(p) = idx.binary_search(&(j as u32)) {
            *out = if counts && totals[i] > 0.0 {
                (val[p] / totals[i] * med).ln_1p()
            } else {
                val[p]
            };
        }
    }
    Some(v)
}

/// The colouring of an obs column (categorical or string: categories; numeric: viridis) or,
/// failing that, of a gene's expression. `None` when `key` is neither.
pub fn obs_or_gene_coloring(d: &AnnData, key: &str) -> Option<Coloring> {
    if let Some(c) = d.obs.column(key) {
        let categories = match c {
            Column::Categorical { categories, .. } => Some(categories.as_slice()),
            _ => None,
        };
        let numeric = matches!(c, Column::Float(_) | Column::Int(_)) && categories.is_none();
        if numeric {
            let v = (0..c.len()).map(|i| c.value_f64(i) as f32).collect();
            return Some(continuous_coloring(v, Ramp::Viridis));
        }
        let labels: Vec<String> = (0..c.len()).map(|i| c.value_string(i)).collect();
        let uns = d.uns_colors.get(key).map(Vec::as_slice);
        return Some(categorical_coloring(&labels, categories, uns));
    }
    gene_values(d, key).map(|v| continuous_coloring(v, Ramp::Viridis))
}

/// What the points are coloured by.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum ColorBy {
    /// Leiden clusters from the pipeline.
    Leiden,
    /// Spatial domains from the pipeline.
    Domain,
    /// Spatial-domain posterior confidence (fades to grey).
    DomainConfidence,
    /// An obs column (categorical, or numeric on viridis).
    Obs(String),
    /// A gene's expression (viridis, clipped at the 99th percentile).
    Gene(String),
    /// Cell types predicted by label transfer; with `fade`, faded to grey by (1 - confidence).
    Predicted {
        /// Fade low-confidence cells.
        fade: bool,
    },
    /// Agreement of two obs labelings of the same classes (e.g. predicted vs annotated):
    /// match / mismatch.
    Agreement(String, String),
}

/// What a colouring may draw on: the dataset and the results computed so far (shared, read
/// only, so the colouring runs on its own thread while the window keeps drawing).
#[derive(Debug, Clone)]
pub struct ColorInputs {
    /// The dataset.
    pub data: std::sync::Arc<AnnData>,
    /// The pipeline's results, when it has run.
    pub analysis: Option<std::sync::Arc<super::analyze::Analysis>>,
    /// Predicted label and confidence per cell, when there are predictions.
    pub prediction: Option<std::sync::Arc<(Vec<String>, Vec<f32>)>>,
}

/// Labels of a categorical colouring, `None` for continuous ones or missing inputs.
fn labels_for(by: &ColorBy, x: &ColorInputs) -> Option<Vec<String>> {
    let d = &x.data;
    let ids = |v: &[u32]| v.iter().map(u32::to_string).collect();
    match by {
        ColorBy::Leiden => Some(ids(&x.analysis.as_ref()?.leiden)),
        ColorBy::Domain => Some(ids(&x.analysis.as_ref()?.domains.as_ref()?.0)),
        ColorBy::Predicted { .. } => x.prediction.as_ref().map(|p| p.0.clone()),
        ColorBy::Agreement(a, b) => {
            let (ca, cb) = (d.obs.column(a)?, d.obs.column(b)?);
            let same = |i| ca.value_string(i) == cb.value_string(i);
            Some(
                (0..ca.len())
                    .map(|i| if same(i) { "match" } else { "mismatch" }.to_string())
                    .collect(),
            )
        }
        ColorBy::Obs(k) => {
            let col = d.obs.column(k)?;
            (!col.is_numeric() || matches!(col, Column::Bool(_)))
                .then(|| (0..col.len()).map(|i| col.value_string(i)).collect())
        }
        _ => None,
    }
}

/// The colouring `by` asks for: categories on the file's or scanpy's palette (predictions
/// optionally faded to grey by confidence), numeric obs columns and genes on viridis,
/// domain confidence from grey to red; uniform grey when the inputs are missing (e.g. Leiden
/// before the pipeline ran). Gene values are log-normalised here ([`gene_values`]), which
/// takes a pass over X: call it off the UI thread.
pub fn color(by: &ColorBy, x: &ColorInputs) -> Coloring {
    let d = &x.data;
    if let Some(labels) = labels_for(by, x) {
        let (categories, uns) = match by {
            ColorBy::Obs(k) => (
                match d.obs.column(k) {
                    Some(Column::Categorical { categories, .. }) => Some(categories.as_slice()),
                    _ => None,
                },
                d.uns_colors.get(k).map(Vec::as_slice),
            ),
            _ => (None, None),
        };
        let mut c = categorical_coloring(&labels, categories, uns);
        if let (ColorBy::Predicted { fade: true }, Some(p)) = (by, &x.prediction) {
            for (c, &f) in c.colors.iter_mut().zip(&p.1) {
                *c = Color32::from_gray(200).lerp_to_gamma(*c, f.clamp(0.0, 1.0));
            }
        }
        return c;
    }
    let values: Option<Vec<f32>> = match by {
        ColorBy::Obs(k) => d
            .obs
            .column(k)
            .map(|c| (0..c.len()).map(|i| c.value_f64(i) as f32).collect()),
        ColorBy::Gene(g) => gene_values(d, g),
        ColorBy::DomainConfidence => x
            .analysis
            .as_ref()
            .and_then(|a| a.domains.as_ref())
            .map(|d| d.1.clone()),
        _ => None,
    };
    let ramp = if *by == ColorBy::DomainConfidence {
        Ramp::Confidence
    } else {
        Ramp::Viridis
    };
    match values {
        Some(v) => continuous_coloring(v, ramp),
        None => Coloring {
            colors: vec![Color32::from_gray(120); d.n_obs()],
            ..Default::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// Cluster numbers by value (`"2"` before `"10"`), names after them, codes following the
    /// names; a categorical column's order first when given; legend counts per name.
    #[test]
    fn labels_order_numbers_by_value_then_names() {
        let labels = strings(&["b", "10", "2", "1a", "2", "10", "b", "-1.5"]);
        let (codes, names) = encode_in_order(&labels, None);
        assert_eq!(names, strings(&["-1.5", "2", "10", "1a", "b"]));
        assert_eq!(codes, [4, 2, 1, 3, 1, 2, 4, 0]);
        let cats = strings(&["b", "2"]);
        let (codes, names) = encode_in_order(&labels, Some(&cats));
        assert_eq!(names, strings(&["b", "2", "-1.5", "10", "1a"]));
        assert_eq!(codes, [0, 3, 1, 4, 1, 3, 0, 2]);
        let c = categorical_coloring(&labels, None, None);
        let legend: Vec<(&str, usize)> = c
            .legend
            .iter()
            .map(|l| (l.name.as_str(), l.count))
            .collect();
        assert_eq!(
            legend,
            [("-1.5", 1), ("2", 2), ("10", 2), ("1a", 1), ("b", 2)]
        );
        assert_eq!(c.colors[0], c.legend[4].color);
    }
}
