//! Scores of predicted expression against measured expression, as the histology-to-expression
//! papers report them (mclSTExp's `evel_her2st.py`): Pearson correlation per gene across the
//! section's spots, averaged over all genes (ACG), over the 50 genes of highest mean measured
//! expression (HEG) and the 50 of highest variance (HVG); MSE and MAE over all values.

use ndarray::Array2;

/// Genes in the HEG and HVG averages (mclSTExp: 50).
pub const TOP_GENES: usize = 50;

/// Scores of a prediction.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ExpressionScores {
    /// Pearson correlation per gene (`None` where the measured or the predicted values are
    /// constant: scipy's `pearsonr` gives NaN there and mclSTExp drops those genes).
    pub per_gene: Vec<Option<f64>>,
    /// Mean PCC over all genes with one.
    pub acg: f64,
    /// Mean PCC over the [`TOP_GENES`] genes of highest mean measured expression.
    pub heg: f64,
    /// Mean PCC over the [`TOP_GENES`] genes of highest measured variance.
    pub hvg: f64,
    /// Mean squared error over all values.
    pub mse: f64,
    /// Mean absolute error over all values.
    pub mae: f64,
}

/// Pearson correlation of two equally long vectors, `None` when either is constant or empty
/// (scipy's `pearsonr` gives NaN there).
pub fn pearson(a: &[f64], b: &[f64]) -> Option<f64> {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        let (dx, dy) = (x - ma, y - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    (saa > 0.0 && sbb > 0.0).then(|| sab / (saa * sbb).sqrt())
}

/// Mean of the `Some` values of `idx` (NaN when none).
fn mean_of(per_gene: &[Option<f64>], idx: impl Iterator<Item = usize>) -> f64 {
    let v: Vec<f64> = idx.filter_map(|g| per_gene[g]).collect();
    if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// The `k` columns of largest `key`, largest first.
fn top_columns(key: &[f64], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..key.len()).collect();
    idx.sort_by(|&a, &b| key[b].total_cmp(&key[a]));
    idx.truncate(k);
    idx
}

/// Scores `pred` against `truth` (both `[spots, genes]`).
///
/// # Panics
/// When the shapes differ.
pub fn expression_scores(truth: &Array2<f32>, pred: &Array2<f32>) -> ExpressionScores {
    assert_eq!(
        truth.dim(),
        pred.dim(),
        "prediction and measurement differ in shape"
    );
    let col = |m: &Array2<f32>, g: usize| -> Vec<f64> {
        m.column(g).iter().map(|&v| f64::from(v)).collect()
    };
    let genes = truth.ncols();
    let per_gene: Vec<Option<f64>> = (0..genes)
        .map(|g| pearson(&col(truth, g), &col(pred, g)))
        .collect();
    let (mut mean, mut var) = (vec![0.0; genes], vec![0.0; genes]);
    for g in 0..genes {
        let c = col(truth, g);
        let n = c.len().max(1) as f64;
        mean[g] = c.iter().sum::<f64>() / n;
        var[g] = c.iter().map(|v| (v - mean[g]).powi(2)).sum::<f64>() / n;
    }
    let n = truth.len().max(1) as f64;
    let diff = truth
        .iter()
        .zip(pred)
        .map(|(&t, &p)| f64::from(t) - f64::from(p));
    let (sq, abs) = diff.fold((0.0, 0.0), |(s, a), d| (s + d * d, a + d.abs()));
    ExpressionScores {
        acg: mean_of(&per_gene, 0..genes),
        heg: mean_of(&per_gene, top_columns(&mean, TOP_GENES).into_iter()),
        hvg: mean_of(&per_gene, top_columns(&var, TOP_GENES).into_iter()),
        mse: sq / n,
        mae: abs / n,
        per_gene,
    }
}
