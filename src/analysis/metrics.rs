//! Classification, clustering and embedding-quality metrics, each defined as scikit-learn
//! 1.6 defines it (the committed `tests/fixtures/analysis/make_analysis_reference.py` checks
//! every one to 1e-9).
//!
//! Labels are dense integer codes (`u32`); use [`encode`] to turn strings into codes. Natural
//! logarithms throughout, as in `sklearn.metrics`.

use ndarray::ArrayView2;
use serde::Serialize;
use std::collections::BTreeMap;

use super::neighbors::exact_knn;

/// Codes for string labels: `(codes, names)` with `names` sorted (as `np.unique`), so that code
/// order equals sklearn's label order and ties broken "by smallest label" agree.
pub fn encode<S: AsRef<str>>(labels: &[S]) -> (Vec<u32>, Vec<String>) {
    let mut names: Vec<String> = labels.iter().map(|s| s.as_ref().to_string()).collect();
    names.sort();
    names.dedup();
    let index: BTreeMap<&str, u32> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i as u32))
        .collect();
    let codes = labels.iter().map(|s| index[s.as_ref()]).collect();
    (codes, names)
}

/// Number of classes spanned by codes (`max + 1`, 0 when empty).
fn n_codes(a: &[u32]) -> usize {
    a.iter().map(|&c| c as usize + 1).max().unwrap_or(0)
}

/// Contingency table `C[i][j]` = number of samples with `a == i` and `b == j`, shape
/// `(max(a)+1, max(b)+1)` (`sklearn.metrics.cluster.contingency_matrix` without empty rows).
///
/// # Panics
/// When `a` and `b` differ in length.
pub fn contingency(a: &[u32], b: &[u32]) -> Vec<Vec<u64>> {
    assert_eq!(a.len(), b.len(), "label vectors differ in length");
    let (na, nb) = (n_codes(a), n_codes(b));
    let mut c = vec![vec![0u64; nb]; na];
    for (&i, &j) in a.iter().zip(b) {
        c[i as usize][j as usize] += 1;
    }
    c
}

/// Adjusted Rand index (Hubert & Arabie 1985), `sklearn.metrics.adjusted_rand_score`: computed
/// from the pair confusion matrix in exact integer arithmetic; 1.0 for identical partitions.
pub fn adjusted_rand_index(truth: &[u32], pred: &[u32]) -> f64 {
    let c = contingency(truth, pred);
    let n = truth.len() as i128;
    let n_c: Vec<i128> = c.iter().map(|r| r.iter().sum::<u64>() as i128).collect();
    let mut n_k = vec![0i128; c.first().map_or(0, Vec::len)];
    let mut sum_squares = 0i128;
    for row in &c {
        for (j, &v) in row.iter().enumerate() {
            n_k[j] += v as i128;
            sum_squares += (v as i128) * (v as i128);
        }
    }
    let tp = sum_squares - n;
    let fp = c
        .iter()
        .map(|row| {
            row.iter()
                .zip(&n_k)
                .map(|(&v, &k)| v as i128 * k)
                .sum::<i128>()
        })
        .sum::<i128>()
        - sum_squares;
    let fne = n_c
        .iter()
        .zip(&c)
        .map(|(&nc, row)| nc * row.iter().map(|&v| v as i128).sum::<i128>())
        .sum::<i128>()
        - sum_squares;
    let tn = n * n - fp - fne - sum_squares;
    if fne == 0 && fp == 0 {
        return 1.0;
    }
    let num = 2.0 * ((tp * tn - fne * fp) as f64);
    let den = ((tp + fne) * (fne + tn) + (tp + fp) * (fp + tn)) as f64;
    num / den
}

/// Shannon entropy of a labelling in nats (`sklearn.metrics.cluster.entropy`).
pub fn entropy(labels: &[u32]) -> f64 {
    if labels.is_empty() {
        return 1.0;
    }
    let mut counts = vec![0u64; n_codes(labels)];
    for &l in labels {
        counts[l as usize] += 1;
    }
    let total = labels.len() as f64;
    let present: Vec<f64> = counts
        .into_iter()
        .filter(|&c| c > 0)
        .map(|c| c as f64)
        .collect();
    if present.len() == 1 {
        return 0.0;
    }
    -present
        .iter()
        .map(|&p| (p / total) * (p.ln() - total.ln()))
        .sum::<f64>()
}

/// Mutual information in nats (`sklearn.metrics.mutual_info_score`), clipped at 0.
pub fn mutual_information(a: &[u32], b: &[u32]) -> f64 {
    let c = contingency(a, b);
    let n = a.len() as f64;
    let pi: Vec<f64> = c.iter().map(|r| r.iter().sum::<u64>() as f64).collect();
    let mut pj = vec![0f64; c.first().map_or(0, Vec::len)];
    for row in &c {
        for (j, &v) in row.iter().enumerate() {
            pj[j] += v as f64;
        }
    }
    let mut mi = 0.0;
    for (i, row) in c.iter().enumerate() {
        for (j, &v) in row.iter().enumerate() {
            if v == 0 {
                continue;
            }
            let v = v as f64;
            let term =
                (v / n) * (v.ln() - n.ln()) + (v / n) * (-(pi[i] * pj[j]).ln() + 2.0 * n.ln());
            if term.abs() >= f64::EPSILON {
                mi += term;
            }
        }
    }
    mi.max(0.0)
}

fn n_distinct(a: &[u32]) -> usize {
    let mut seen = vec![false; n_codes(a)];
    a.iter().for_each(|&l| seen[l as usize] = true);
    seen.into_iter().filter(|&s| s).count()
}

/// Normalised mutual information with arithmetic normalisation,
/// `sklearn.metrics.normalized_mutual_info_score(average_method="arithmetic")`.
pub fn normalized_mutual_information(truth: &[u32], pred: &[u32]) -> f64 {
    let (nt, np) = (n_distinct(truth), n_distinct(pred));
    if (nt == 1 && np == 1) || (nt == 0 && np == 0) {
        return 1.0;
    }
    let mi = mutual_information(truth, pred);
    if mi == 0.0 {
        return 0.0;
    }
    mi / ((entropy(truth) + entropy(pred)) / 2.0)
}

/// Homogeneity, completeness and V-measure (beta = 1), Rosenberg & Hirschberg 2007,
/// `sklearn.metrics.homogeneity_completeness_v_measure`.
pub fn homogeneity_completeness_v(truth: &[u32], pred: &[u32]) -> (f64, f64, f64) {
    if truth.is_empty() {
        return (1.0, 1.0, 1.0);
    }
    let (hc, hk) = (entropy(truth), entropy(pred));
    let mi = mutual_information(truth, pred);
    let h = if hc != 0.0 { mi / hc } else { 1.0 };
    let c = if hk != 0.0 { mi / hk } else { 1.0 };
    let v = if h + c == 0.0 {
        0.0
    } else {
        2.0 * h * c / (h + c)
    };
    (h, c, v)
}

/// Per-class and averaged classification scores, as `sklearn.metrics.classification_report`
/// with `zero_division=0`. Classes are the union of codes seen in truth or prediction.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Classification {
    /// Class codes reported, ascending (index into the caller's class names).
    pub classes: Vec<u32>,
    /// Precision per class.
    pub precision: Vec<f64>,
    /// Recall per class.
    pub recall: Vec<f64>,
    /// F1 per class.
    pub f1: Vec<f64>,
    /// True count per class.
    pub support: Vec<u64>,
    /// Fraction correct.
    pub accuracy: f64,
    /// Unweighted mean of per-class F1 (not linfa's F1 of macro precision/recall).
    pub macro_f1: f64,
    /// F1 of pooled counts (equals accuracy for single-label multiclass).
    pub micro_f1: f64,
    /// Support-weighted mean of per-class F1.
    pub weighted_f1: f64,
    /// Confusion matrix `[truth][pred]` over `classes`.
    pub confusion: Vec<Vec<u64>>,
}

/// Classification scores of `pred` against `truth` (same length, same code space).
///
/// # Panics
/// When the lengths differ.
pub fn classification(truth: &[u32], pred: &[u32]) -> Classification {
    assert_eq!(truth.len(), pred.len(), "label vectors differ in length");
    let n = n_codes(truth).max(n_codes(pred));
    let mut present = vec![false; n];
    truth
        .iter()
        .chain(pred)
        .for_each(|&c| present[c as usize] = true);
    let classes: Vec<u32> = (0..n as u32).filter(|&c| present[c as usize]).collect();
    let mut slot = vec![usize::MAX; n];
    classes
        .iter()
        .enumerate()
        .for_each(|(i, &c)| slot[c as usize] = i);
    let m = classes.len();
    let mut confusion = vec![vec![0u64; m]; m];
    for (&t, &p) in truth.iter().zip(pred) {
        confusion[slot[t as usize]][slot[p as usize]] += 1;
    }
    let tp: Vec<u64> = (0..m).map(|i| confusion[i][i]).collect();
    let support: Vec<u64> = confusion.iter().map(|r| r.iter().sum()).collect();
    let predicted: Vec<u64> = (0..m)
        .map(|j| confusion.iter().map(|r| r[j]).sum())
        .collect();
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let precision: Vec<f64> = (0..m).map(|i| ratio(tp[i], predicted[i])).collect();
    let recall: Vec<f64> = (0..m).map(|i| ratio(tp[i], support[i])).collect();
    let f1: Vec<f64> = (0..m)
        .map(|i| {
            ratio(
                2 * tp[i],
                2 * tp[i] + (predicted[i] - tp[i]) + (support[i] - tp[i]),
            )
        })
        .collect();
    let total: u64 = support.iter().sum();
    let correct: u64 = tp.iter().sum();
    let accuracy = ratio(correct, total);
    let macro_f1 = if m == 0 {
        0.0
    } else {
        f1.iter().sum::<f64>() / m as f64
    };
    let weighted_f1 = if total == 0 {
        0.0
    } else {
        f1.iter()
            .zip(&support)
            .map(|(f, &s)| f * s as f64)
            .sum::<f64>()
            / total as f64
    };
    Classification {
        classes,
        precision,
        recall,
        f1,
        support,
        accuracy,
        macro_f1,
        micro_f1: ratio(2 * correct, 2 * total),
        weighted_f1,
        confusion,
    }
}

/// Mean silhouette coefficient with Euclidean distances (Rousseeuw 1987),
/// `sklearn.metrics.silhouette_score`: singletons score 0. Exact when `n <= max_exact`; beyond,
/// computed on a seeded random subset of `max_exact` cells (distances within the subset, as
/// sklearn's `sample_size`). Returns `(score, cells used)`; `None` with fewer than 2 clusters or
/// as many clusters as cells.
pub fn silhouette(
    x: ArrayView2<f32>,
    labels: &[u32],
    max_exact: usize,
    seed: u64,
) -> Option<(f64, usize)> {
    let n = x.nrows();
    let rows: Vec<usize> = if n <= max_exact {
        (0..n).collect()
    } else {
        let mut idx: Vec<usize> = (0..n).collect();
        let mut rng = super::Rng::new(seed);
        rng.shuffle(&mut idx);
        idx.truncate(max_exact);
        idx.sort_unstable();
        idx
    };
    let lab: Vec<u32> = rows.iter().map(|&r| labels[r]).collect();
    let k = n_codes(&lab);
    let mut sizes = vec![0usize; k];
    lab.iter().for_each(|&l| sizes[l as usize] += 1);
    let n_clusters = sizes.iter().filter(|&&s| s > 0).count();
    if n_clusters < 2 || n_clusters >= rows.len() {
        return None;
    }
    let sub = x.select(ndarray::Axis(0), &rows);
    let scores = super::scib::silhouette_samples(sub.view(), &lab);
    Some((scores.iter().sum::<f64>() / scores.len() as f64, rows.len()))
}

/// Mean fraction of each cell's `k` nearest neighbours in `layout` (Euclidean, excluding the cell
/// itself) that share its label: the "15-NN label agreement" of a 2-D embedding (k = 15).
pub fn knn_label_agreement(layout: ArrayView2<f32>, labels: &[u32], k: usize) -> f64 {
    let knn = exact_knn(layout, k + 1);
    let n = layout.nrows();
    let total: f64 = (0..n)
        .map(|i| {
            let same = knn
                .neighbors(i)
                .iter()
                .skip(1)
                .filter(|&&j| labels[j as usize] == labels[i])
                .count();
            same as f64 / k as f64
        })
        .sum();
    total / n as f64
}

/// kNN preservation: mean fraction of each cell's `k` nearest neighbours in `high` (Euclidean,
/// self excluded) that are also among its `k` nearest neighbours in `layout`.
/// Both neighbour sets are exact: brute force in `high` (`O(n^2 d)`, meant for evaluation on
/// up to some tens of thousands of cells) and a k-d tree in a 2-D `layout`.
pub fn knn_preservation(high: ArrayView2<f32>, layout: ArrayView2<f32>, k: usize) -> f64 {
    let a = exact_knn(high, k + 1);
    let b = exact_knn(layout, k + 1);
    let n = high.nrows();
    let total: f64 = (0..n)
        .map(|i| {
            let bi = &b.neighbors(i)[1..];
            a.neighbors(i)[1..]
                .iter()
                .filter(|j| bi.contains(j))
                .count() as f64
                / k as f64
        })
        .sum();
    total / n as f64
}

/// Variance-weighted explained variance of a reconstruction,
/// `sklearn.metrics.explained_variance_score(multioutput="variance_weighted")`:
/// `1 - sum_j Var(y_j - yhat_j) / sum_j Var(y_j)` over outputs with non-zero variance.
/// Shapes `(n_samples, n_outputs)`, equal.
pub fn explained_variance_weighted(truth: ArrayView2<f32>, pred: ArrayView2<f32>) -> f64 {
    assert_eq!(truth.shape(), pred.shape(), "shapes differ");
    let n = truth.nrows() as f64;
    let (mut num, mut den) = (0.0, 0.0);
    for j in 0..truth.ncols() {
        let t = truth.column(j);
        let p = pred.column(j);
        let mt = t.iter().map(|&v| v as f64).sum::<f64>() / n;
        let md = t
            .iter()
            .zip(p)
            .map(|(&a, &b)| a as f64 - b as f64)
            .sum::<f64>()
            / n;
        let vt = t.iter().map(|&v| (v as f64 - mt).powi(2)).sum::<f64>() / n;
        let vd = t
            .iter()
            .zip(p)
            .map(|(&a, &b)| (a as f64 - b as f64 - md).powi(2))
            .sum::<f64>()
            / n;
        if vt != 0.0 {
            num += vd;
            den += vt;
        }
    }
    if den == 0.0 { 1.0 } else { 1.0 - num / den }
}

/// Clustering agreement scores of `pred` against `truth`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ClusterScores {
    /// Adjusted Rand index.
    pub ari: f64,
    /// Normalised mutual information (arithmetic).
    pub nmi: f64,
    /// Homogeneity.
    pub homogeneity: f64,
    /// Completeness.
    pub completeness: f64,
    /// V-measure.
    pub v_measure: f64,
}

/// All clustering agreement scores at once.
pub fn cluster_scores(truth: &[u32], pred: &[u32]) -> ClusterScores {
    let (homogeneity, completeness, v_measure) = homogeneity_completeness_v(truth, pred);
    ClusterScores {
        ari: adjusted_rand_index(truth, pred),
        nmi: normalized_mutual_information(truth, pred),
        homogeneity,
        completeness,
        v_measure,
    }
}
