//! Per-cell colourings as the views draw them and the figures export them: categorical labels
//! on scanpy's palettes (or the file's `uns['<key>_colors']`) with a legend, continuous values
//! on viridis clipped at the 99th percentile (scanpy's `vmax='p99'` habit) with a colour bar.

use egui::Color32;

use super::colors::{categorical, viridis};
use crate::data::AnnData;
use crate::data::dataframe::Column;

/// One legend entry.
#[derive(Debug, Clone, PartialEq)]
pub struct LegendItem {
    /// Category name.
    pub name: String,
    /// Its colour.
    pub color: Color32,
    /// Cells in it.
    pub count: usize,
}

/// Per-cell colouring: categories (codes into `legend`) or continuous values.
#[derive(Debug, Clone, Default)]
pub struct Coloring {
    /// Legend position of each cell's category (categorical colourings).
    pub codes: Option<Vec<u32>>,
    /// Colour of each cell.
    pub colors: Vec<Color32>,
    /// Categories in legend order (categorical colourings).
    pub legend: Vec<LegendItem>,
    /// Colour-bar range `(low, 99th percentile)` (continuous colourings).
    pub range: Option<(f32, f32)>,
    /// The continuous values coloured (kept for hover text and exports).
    pub values: Option<Vec<f32>>,
}

/// How continuous values are coloured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ramp {
    /// viridis.
    Viridis,
    /// Light grey to red (confidences).
    Confidence,
}

impl Ramp {
    /// The colour at `t` in `[0, 1]`.
    pub fn at(self, t: f32) -> Color32 {
        match self {
            Ramp::Viridis => viridis(t),
            Ramp::Confidence => {
                Color32::from_gray(200).lerp_to_gamma(Color32::from_rgb(200, 30, 30), t)
            }
        }
    }
}

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
/// holds negative (scaled) values. `None` when there is no such gene.
pub fn gene_values(d: &AnnData, g: &str) -> Option<Vec<f32>> {
    let j = d.var_names().iter().position(|v| v == g)?;
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
