//! kBET per label (Büttner et al. 2018) as scib-metrics' `kbet_per_label` computes it for the
//! scib benchmark (Luecken et al. 2022): within each label, the subgraph of the kNN graph's
//! connectivities, a diffusion-map embedding of it (so every label gets neighbourhoods of the
//! same size `k0`), the `k0`-NN of each cell there and a chi-square test of its neighbours'
//! batch counts against the label's batch frequencies; the score is the share of cells whose
//! test accepts (p >= alpha), averaged over labels.
//!
//! Differences from scib-metrics, both where it is random: the neighbours in the diffusion
//! embedding are exact here (scib-metrics: pynndescent, approximate and randomised); the
//! eigenvectors come from a dense symmetric eigendecomposition (`faer`) up to [`DENSE_MAX`]
//! cells and from a seeded Lanczos iteration above, instead of ARPACK's randomly started
//! implicitly restarted Lanczos. With scib-metrics' search patched to exact, the two agree
//! (`tests/fixtures/analysis/make_scib_reference.py`).

use ndarray::Array2;
use rayon::prelude::*;

use super::neighbors::exact_knn;
use crate::data::matrix::CsrMatrix;

/// Significance level of the test (scib-metrics' default).
pub const ALPHA: f64 = 0.05;
/// Diffusion components (scib-metrics' `diffusion_n_comps`).
pub const DIFFUSION_COMPS: usize = 100;

/// kBET of each label (`None` where scib-metrics gives NaN: fewer than 10 cells or a single
/// batch) and their mean over the labels that have one (`nanmean`; `None` when none has).
/// `conn`: the symmetric connectivities of the kNN graph (`neighbors::fuzzy_connectivities`),
/// `labels` codes in sorted-name order (as `metrics::encode` gives, scib-metrics' `np.unique`
/// order), `batch` codes per cell.
///
/// scib-metrics' loop over the labels reassigns its `diffusion_n_comps` to
/// `min(diffusion_n_comps, cells - 1)` for each label it embeds, so a small label lowers the
/// number of diffusion components of every later one; that is reproduced here, so that the
/// scores agree.
pub fn kbet_per_label(
    conn: &CsrMatrix,
    labels: &[u32],
    batch: &[u32],
) -> (Option<f64>, Vec<Option<f64>>) {
    let n_labels = labels.iter().map(|&l| l as usize + 1).max().unwrap_or(0);
    let prepared: Vec<Prepared> = (0..n_labels as u32)
        .into_par_iter()
        .map(|l| {
            let cells: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == l).collect();
            prepare(conn, &cells, batch)
        })
        .collect();
    let mut n_comps = DIFFUSION_COMPS;
    let comps: Vec<usize> = prepared
        .iter()
        .map(|p| {
            if let Prepared::Diffuse { graph, .. } = p {
                n_comps = n_comps.min(graph.n_rows.saturating_sub(1));
            }
            n_comps
        })
        .collect();
    let scores: Vec<Option<f64>> = prepared
        .into_par_iter()
        .zip(comps)
        .map(|(p, c)| match p {
            Prepared::Skip => None,
            Prepared::Reject => Some(0.0),
            Prepared::Diffuse { graph, codes, k0 } => Some(diffuse_and_test(&graph, &codes, k0, c)),
        })
        .collect();
    let done: Vec<f64> = scores.iter().flatten().copied().collect();
    let mean = (!done.is_empty()).then(|| done.iter().sum::<f64>() / done.len() as f64);
    (mean, scores)
}

/// A label ready for its test.
enum Prepared {
    /// Fewer than 10 cells or one batch (NaN in scib-metrics).
    Skip,
    /// Too many cells in small pieces of the graph: 0 (100% rejection).
    Reject,
    /// The graph to embed, its cells' batch codes and the neighbourhood size `k0`.
    Diffuse {
        graph: CsrMatrix,
        codes: Vec<u32>,
        k0: usize,
    },
}

/// One label's subgraph and neighbourhood size (`cells`: its cells, ascending), as
/// scib-metrics: `k0 = clamp(floor(mean cells per batch / 4), 10, 70)`; a disconnected subgraph
/// keeps its components of at least `3 k0` cells when they hold 75% of the cells.
fn prepare(conn: &CsrMatrix, cells: &[usize], batch: &[u32]) -> Prepared {
    let n = cells.len();
    let (codes, n_batches) = recode(cells.iter().map(|&i| batch[i]));
    if n < 10 || n_batches == 1 {
        return Prepared::Skip;
    }
    let quarter_mean = (n as f64 / n_batches as f64 / 4.0).floor() as usize;
    let mut k0 = quarter_mean.clamp(10, 70);
    let size_max = (1usize << 31) - 1;
    if k0 * n >= size_max {
        k0 = size_max / n;
    }
    let sub = subgraph(conn, cells);
    let comp = components(&sub);
    let n_comp = comp.iter().map(|&c| c + 1).max().unwrap_or(0);
    if n_comp == 1 {
        return Prepared::Diffuse {
            graph: sub,
            codes,
            k0,
        };
    }
    let mut size = vec![0usize; n_comp];
    comp.iter().for_each(|&c| size[c] += 1);
    let keep: Vec<usize> = (0..n).filter(|&i| size[comp[i]] >= 3 * k0).collect();
    if (keep.len() as f64) / (n as f64) < 0.75 {
        return Prepared::Reject;
    }
    Prepared::Diffuse {
        graph: subgraph(&sub, &keep),
        codes: keep.iter().map(|&i| codes[i]).collect(),
        k0,
    }
}

/// The diffusion embedding with `n_comps` components, the `k0 + 1` nearest cells (itself
/// included) and the acceptance rate; 0 where scib-metrics' search or embedding fails (fewer
/// cells than neighbours, an isolated cell).
fn diffuse_and_test(graph: &CsrMatrix, codes: &[u32], k0: usize, n_comps: usize) -> f64 {
    if k0 + 1 > graph.n_rows {
        return 0.0;
    }
    let Some(embedding) = diffusion_embedding(graph, n_comps) else {
        return 0.0;
    };
    let knn = exact_knn(embedding.view(), k0 + 1);
    let (codes, nb) = recode(codes.iter().copied());
    acceptance(&knn.indices, k0 + 1, &codes, nb, ALPHA)
}

/// Codes renumbered `0..` in order of first value (`pd.Categorical(...).codes` up to order,
/// which the test does not depend on), and how many there are.
fn recode(values: impl Iterator<Item = u32>) -> (Vec<u32>, usize) {
    let mut map = std::collections::BTreeMap::new();
    let v: Vec<u32> = values.collect();
    v.iter().for_each(|&b| {
        map.entry(b).or_insert(0u32);
    });
    for (i, c) in map.values_mut().enumerate() {
        *c = i as u32;
    }
    (v.iter().map(|b| map[b]).collect(), map.len())
}

/// The kBET acceptance rate (scib-metrics' `kbet`): per cell, the chi-square statistic of its
/// `k` neighbours' batch counts (itself included) against `k` times the batch frequencies,
/// `batches - 1` degrees of freedom; the share of cells with p-value >= `alpha`.
pub fn acceptance(indices: &[u32], k: usize, batch: &[u32], n_batches: usize, alpha: f64) -> f64 {
    let n = batch.len();
    let mut freq = vec![0f64; n_batches];
    batch.iter().for_each(|&b| freq[b as usize] += 1.0);
    let expected: Vec<f64> = freq.iter().map(|f| f / n as f64 * k as f64).collect();
    let dof = (n_batches - 1) as f64;
    let accepted = (0..n)
        .filter(|&i| {
            let mut obs = vec![0f64; n_batches];
            for &j in &indices[i * k..(i + 1) * k] {
                obs[batch[j as usize] as usize] += 1.0;
            }
            let stat: f64 = obs
                .iter()
                .zip(&expected)
                .map(|(o, e)| (o - e) * (o - e) / e)
                .sum();
            chi2_sf(dof, stat) >= alpha
        })
        .count();
    accepted as f64 / n.max(1) as f64
}

/// The chi-square survival function `1 - CDF(dof, x)` = the regularised upper incomplete gamma
/// `Q(dof / 2, x / 2)` (scib-metrics: `1 - gammainc`), from `statrs`.
pub fn chi2_sf(dof: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    statrs::function::gamma::checked_gamma_ur(dof / 2.0, x / 2.0).unwrap_or(0.0)
}

/// Rows and columns `keep` (ascending) of a square CSR matrix, renumbered `0..keep.len()`.
pub fn subgraph(m: &CsrMatrix, keep: &[usize]) -> CsrMatrix {
    let mut pos = vec![u32::MAX; m.n_rows];
    for (new, &old) in keep.iter().enumerate() {
        pos[old] = new as u32;
    }
    let mut trip = Vec::new();
    for (new, &old) in keep.iter().enumerate() {
        let (cols, vals) = m.row(old);
        for (&j, &v) in cols.iter().zip(vals) {
            if pos[j as usize] != u32::MAX {
                trip.push((new as u32, pos[j as usize], v));
            }
        }
    }
    CsrMatrix::from_triplets(keep.len(), &mut trip)
}

/// Connected components of a symmetric graph (the strong components of scipy's
/// `connected_components(..., connection='strong')` on a symmetric matrix), numbered `0..`.
fn components(m: &CsrMatrix) -> Vec<usize> {
    let n = m.n_rows;
    let mut comp = vec![usize::MAX; n];
    let mut next = 0;
    let mut stack = Vec::new();
    for s in 0..n {
        if comp[s] != usize::MAX {
            continue;
        }
        comp[s] = next;
        stack.push(s);
        while let Some(i) = stack.pop() {
            for &j in m.row(i).0 {
                if comp[j as usize] == usize::MAX {
                    comp[j as usize] = next;
                    stack.push(j as usize);
                }
            }
        }
        next += 1;
    }
    comp
}

/// The diffusion-map embedding of scib-metrics' `diffusion_nn` (scanpy's diffusion maps):
/// [`diffusion_eigen`]'s eigenvalues `e` (+1e-8, float32 as scib-metrics) scaled to
/// `e / (1 - e)` except `e == 1`, eigenvectors times their scaled eigenvalue. `[n, n_comps]`;
/// `None` for an isolated cell (zero degree).
pub fn diffusion_embedding(x: &CsrMatrix, n_comps: usize) -> Option<Array2<f32>> {
    let (values, vectors) = diffusion_eigen(x, n_comps)?;
    let scaled: Vec<f32> = values
        .iter()
        .map(|&v| {
            let e = v as f32 + 1e-8;
            if e == 1.0 { e } else { e / (1.0 - e) }
        })
        .collect();
    let mut emb = vectors.mapv(|v| v as f32);
    for (mut col, s) in emb.columns_mut().into_iter().zip(&scaled) {
        col.mapv_inplace(|v| v * s);
    }
    Some(emb)
}

/// Subgraphs up to this many cells are decomposed densely; larger ones by Lanczos.
pub const DENSE_MAX: usize = 1000;

/// The diffusion operator's leading eigenpairs (scanpy's `_compute_transitions` and
/// `_compute_eigen`): density-normalised kernel `K = Q^-1 X Q^-1` (`q` = degrees), symmetric
/// transitions `T = Z^-1 K Z^-1` (`z = sqrt(row sums of K)`), the `n_comps` eigenpairs of
/// largest magnitude (ARPACK's `'LM'`) in decreasing order. Up to [`DENSE_MAX`] cells by a
/// dense symmetric eigendecomposition (`faer`), above by [`lanczos`] on the sparse operator.
/// Eigenvectors as columns `[n, n_comps]`. `None` for an isolated cell.
pub fn diffusion_eigen(x: &CsrMatrix, n_comps: usize) -> Option<(Vec<f64>, Array2<f64>)> {
    let t = transitions(x)?;
    if t.n <= DENSE_MAX {
        dense_eigen(&t, n_comps)
    } else {
        Some(lanczos(&t, n_comps, (2 * n_comps + 100).min(t.n), 0x6b62))
    }
}

/// A symmetric sparse operator in CSR form, `f64`.
pub struct SymCsr {
    /// Rows (= columns).
    pub n: usize,
    indptr: Vec<usize>,
    indices: Vec<u32>,
    values: Vec<f64>,
}

impl SymCsr {
    /// `y = T v`.
    fn apply(&self, v: &[f64]) -> Vec<f64> {
        (0..self.n)
            .into_par_iter()
            .map(|i| {
                let r = self.indptr[i]..self.indptr[i + 1];
                self.indices[r.clone()]
                    .iter()
                    .zip(&self.values[r])
                    .map(|(&j, &t)| t * v[j as usize])
                    .sum()
            })
            .collect()
    }
}

/// The symmetric transitions `T` of scanpy's diffusion maps; `None` for an isolated cell.
pub fn transitions(x: &CsrMatrix) -> Option<SymCsr> {
    let n = x.n_rows;
    let mut q = vec![0f64; n];
    for i in 0..n {
        let (cols, vals) = x.row(i);
        for (&j, &v) in cols.iter().zip(vals) {
            q[j as usize] += f64::from(v);
        }
    }
    if q.iter().any(|&d| d <= 0.0) {
        return None;
    }
    let mut indptr = vec![0usize];
    let (mut indices, mut values) = (Vec::new(), Vec::new());
    let mut z = vec![0f64; n];
    for i in 0..n {
        let (cols, vals) = x.row(i);
        for (&j, &v) in cols.iter().zip(vals) {
            let k = f64::from(v) / (q[i] * q[j as usize]);
            z[j as usize] += k;
            indices.push(j);
            values.push(k);
        }
        indptr.push(indices.len());
    }
    z.iter_mut().for_each(|v| *v = v.sqrt());
    for i in 0..n {
        for e in indptr[i]..indptr[i + 1] {
            values[e] /= z[i] * z[indices[e] as usize];
        }
    }
    Some(SymCsr {
        n,
        indptr,
        indices,
        values,
    })
}

/// Which `k` of `values` have the largest magnitude, ordered by decreasing value (ARPACK's
/// `'LM'`, reversed as scanpy does).
fn leading(values: &[f64], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[b].abs().total_cmp(&values[a].abs()));
    order.truncate(k.min(values.len()));
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
    order
}

fn dense_eigen(t: &SymCsr, k: usize) -> Option<(Vec<f64>, Array2<f64>)> {
    let n = t.n;
    let mut m = faer::Mat::<f64>::zeros(n, n);
    for i in 0..n {
        for e in t.indptr[i]..t.indptr[i + 1] {
            m[(i, t.indices[e] as usize)] = t.values[e];
        }
    }
    let eig = m.self_adjoint_eigen(faer::Side::Lower).ok()?;
    let (u, s) = (eig.U(), eig.S().column_vector());
    let values: Vec<f64> = (0..n).map(|c| s[c]).collect();
    let order = leading(&values, k);
    let vecs = Array2::from_shape_fn((n, order.len()), |(i, c)| u[(i, order[c])]);
    Some((order.iter().map(|&c| values[c]).collect(), vecs))
}

/// The `k` eigenpairs of largest magnitude of `t` by the Lanczos method with full
/// reorthogonalisation (twice, Gram-Schmidt) over `m` steps from a seeded random start; a
/// fresh random direction continues the basis where the Krylov space closes (an invariant
/// subspace). The Ritz pairs of the `m x m` tridiagonal matrix (dense `faer`). Extremal
/// eigenvalues, which are the largest in magnitude, converge first; `m = 2k + 100` steps give
/// the diffusion spectrum's leading 100 within 1e-6 on real subgraphs
/// (`tests/it/analysis_scib.rs`).
pub fn lanczos(t: &SymCsr, k: usize, m: usize, seed: u64) -> (Vec<f64>, Array2<f64>) {
    let n = t.n;
    let m = m.clamp(1, n);
    let mut rng = crate::data::rng::Rng::new(seed);
    let mut basis: Vec<Vec<f64>> = Vec::with_capacity(m);
    let (mut alpha, mut beta) = (Vec::with_capacity(m), Vec::with_capacity(m));
    let random_unit = |rng: &mut crate::data::rng::Rng, basis: &[Vec<f64>]| {
        let mut v: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
        orthogonalise(&mut v, basis);
        let norm = dot(&v, &v).sqrt();
        v.iter_mut().for_each(|x| *x /= norm.max(1e-300));
        v
    };
    let mut v = random_unit(&mut rng, &basis);
    for j in 0..m {
        let mut w = t.apply(&v);
        let a = dot(&w, &v);
        basis.push(v);
        alpha.push(a);
        orthogonalise(&mut w, &basis);
        let b = dot(&w, &w).sqrt();
        if j + 1 == m {
            break;
        }
        if b < 1e-10 {
            beta.push(0.0);
            v = random_unit(&mut rng, &basis);
        } else {
            beta.push(b);
            v = w.iter().map(|x| x / b).collect();
        }
    }
    let mm = alpha.len();
    let mut tri = faer::Mat::<f64>::zeros(mm, mm);
    for i in 0..mm {
        tri[(i, i)] = alpha[i];
        if i + 1 < mm {
            tri[(i, i + 1)] = beta[i];
            tri[(i + 1, i)] = beta[i];
        }
    }
    let eig = tri
        .self_adjoint_eigen(faer::Side::Lower)
        .expect("eigendecomposition of a symmetric tridiagonal matrix");
    let (y, s) = (eig.U(), eig.S().column_vector());
    let values: Vec<f64> = (0..mm).map(|c| s[c]).collect();
    // Ritz vectors V y, only for the chosen pairs.
    let cols = leading(&values, k);
    let vecs = Array2::from_shape_fn((n, cols.len()), |(i, c)| {
        (0..mm).map(|j| basis[j][i] * y[(j, cols[c])]).sum()
    });
    (cols.iter().map(|&c| values[c]).collect(), vecs)
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Removes from `w` its components along the (orthonormal) `basis`, twice.
fn orthogonalise(w: &mut [f64], basis: &[Vec<f64>]) {
    for _ in 0..2 {
        let coef: Vec<f64> = basis.par_iter().map(|b| dot(w, b)).collect();
        for (b, c) in basis.iter().zip(coef) {
            w.iter_mut().zip(b).for_each(|(x, y)| *x -= c * y);
        }
    }
}
