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

/// Categorical colouring of `labels`. Legend order: `categories` when given (a categorical
/// column's own order, which `uns['<key>_colors']` follows, as in scanpy), else numeric-looking
/// names numerically, the rest alphabetically. Colours: `uns` when it has enough entries, else
/// scanpy's default palettes.
pub fn categorical_coloring(
    labels: &[String],
    categories: Option<&[String]>,
    uns: Option<&[String]>,
) -> Coloring {
    let (codes, names) = crate::analysis::metrics::encode(labels);
    let mut order: Vec<usize> = (0..names.len()).collect();
    match categories {
        Some(cats) => order.sort_by_key(|&a| {
            cats.iter()
                .position(|c| *c == names[a])
                .unwrap_or(usize::MAX)
        }),
        None => order.sort_by(
            |&a, &b| match (names[a].parse::<f64>(), names[b].parse::<f64>()) {
                (Ok(x), Ok(y)) => x.total_cmp(&y),
                _ => names[a].cmp(&names[b]),
            },
        ),
    }
    let mut rank = vec![0usize; names.len()];
    order.iter().enumerate().for_each(|(r, &c)| rank[c] = r);
    let pal = categorical(names.len(), uns);
    let mut counts = vec![0usize; names.len()];
    codes.iter().for_each(|&c| counts[c as usize] += 1);
    let legend = order
        .iter()
        .map(|&c| LegendItem {
            name: names[c].clone(),
            color: pal[rank[c]],
            count: counts[c],
        })
        .collect();
    Coloring {
        colors: codes.iter().map(|&c| pal[rank[c as usize]]).collect(),
        codes: Some(codes.iter().map(|&c| rank[c as usize] as u32).collect()),
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
