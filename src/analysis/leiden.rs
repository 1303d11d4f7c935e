//! Leiden community detection (Traag, Waltman & van Eck 2019) with the RB configuration model,
//! the quality `scanpy.tl.leiden` optimises through `leidenalg.RBConfigurationVertexPartition`:
//!
//! `Q = 1/(2m) sum_c [ e_c - resolution * K_c^2 / (2m) ]`
//!
//! where `e_c` is the weight inside community `c` (both directions) and `K_c` its total degree.
//! Fast local moving, refinement (greedy merges of well-connected singletons inside each
//! community, the θ → 0 limit of leidenalg's randomised merge), aggregation; iterations repeat
//! until the partition no longer changes (scanpy's `n_iterations=-1`). Seeded: node visiting
//! orders come from [`super::Rng`].

use super::{Cancelled, Control, Rng};
use crate::data::matrix::CsrMatrix;

/// Leiden parameters (defaults: scanpy's resolution 1, iterate to convergence, seed 0).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LeidenParams {
    /// Resolution `γ` of the RB configuration model.
    pub resolution: f64,
    /// Iterations of the whole algorithm; negative runs until nothing changes.
    pub n_iterations: i32,
    /// Seed for node orders.
    pub seed: u64,
}

impl Default for LeidenParams {
    fn default() -> Self {
        LeidenParams {
            resolution: 1.0,
            n_iterations: -1,
            seed: 0,
        }
    }
}

/// Weighted undirected graph in CSR (both directions stored), `f64` weights, self-loops allowed.
#[derive(Debug, Clone)]
struct Graph {
    indptr: Vec<usize>,
    indices: Vec<u32>,
    weights: Vec<f64>,
    strength: Vec<f64>,
    total: f64,
}

impl Graph {
    fn n(&self) -> usize {
        self.strength.len()
    }

    fn from_csr(g: &CsrMatrix) -> Self {
        let n = g.n_rows;
        let indptr: Vec<usize> = g.indptr.iter().map(|&v| v as usize).collect();
        let weights: Vec<f64> = g.data.iter().map(|&v| v as f64).collect();
        Self::build(indptr, g.indices.clone(), weights, n)
    }

    fn build(indptr: Vec<usize>, indices: Vec<u32>, weights: Vec<f64>, n: usize) -> Self {
        let mut strength = vec![0.0; n];
        for v in 0..n {
            strength[v] = weights[indptr[v]..indptr[v + 1]].iter().sum();
        }
        let total = strength.iter().sum();
        Graph {
            indptr,
            indices,
            weights,
            strength,
            total,
        }
    }

    /// Aggregates nodes by `group` (dense ids `0..g`).
    fn aggregate(&self, group: &[u32], g: usize) -> Graph {
        let mut members: Vec<Vec<u32>> = vec![Vec::new(); g];
        for (v, &c) in group.iter().enumerate() {
            members[c as usize].push(v as u32);
        }
        let mut indptr = vec![0usize; g + 1];
        let mut indices = Vec::new();
        let mut weights = Vec::new();
        let mut acc = vec![0.0f64; g];
        let mut touched: Vec<u32> = Vec::new();
        for (c, mem) in members.iter().enumerate() {
            for &v in mem {
                let v = v as usize;
                for e in self.indptr[v]..self.indptr[v + 1] {
                    let d = group[self.indices[e] as usize];
                    if acc[d as usize] == 0.0 {
                        touched.push(d);
                    }
                    acc[d as usize] += self.weights[e];
                }
            }
            touched.sort_unstable();
            for &d in &touched {
                indices.push(d);
                weights.push(acc[d as usize]);
                acc[d as usize] = 0.0;
            }
            touched.clear();
            indptr[c + 1] = indices.len();
        }
        Graph::build(indptr, indices, weights, g)
    }
}

/// RB-configuration quality of `membership` on `graph` (modularity at resolution 1), normalised
/// by the total weight `2m` as leidenalg's `Optimiser` reports modularity:
/// `(1/2m) sum_c (e_c - γ K_c^2 / 2m)`.
pub fn modularity(graph: &CsrMatrix, membership: &[u32], resolution: f64) -> f64 {
    let g = Graph::from_csr(graph);
    quality(&g, membership, resolution) / g.total
}

fn quality(g: &Graph, membership: &[u32], resolution: f64) -> f64 {
    let nc = membership
        .iter()
        .map(|&c| c as usize + 1)
        .max()
        .unwrap_or(0);
    let mut internal = vec![0.0; nc];
    let mut degree = vec![0.0; nc];
    for v in 0..g.n() {
        let c = membership[v] as usize;
        degree[c] += g.strength[v];
        for e in g.indptr[v]..g.indptr[v + 1] {
            if membership[g.indices[e] as usize] as usize == c {
                internal[c] += g.weights[e];
            }
        }
    }
    (0..nc)
        .map(|c| internal[c] - resolution * degree[c] * degree[c] / g.total)
        .sum()
}

/// Renumbers community ids to `0..k` by decreasing size (ties by first node), as scanpy orders
/// Leiden clusters; returns the number of communities.
fn renumber(membership: &mut [u32]) -> usize {
    let nc = membership
        .iter()
        .map(|&c| c as usize + 1)
        .max()
        .unwrap_or(0);
    let mut size = vec![0usize; nc];
    let mut first = vec![usize::MAX; nc];
    for (v, &c) in membership.iter().enumerate() {
        size[c as usize] += 1;
        first[c as usize] = first[c as usize].min(v);
    }
    let mut order: Vec<usize> = (0..nc).filter(|&c| size[c] > 0).collect();
    order.sort_by(|&a, &b| size[b].cmp(&size[a]).then(first[a].cmp(&first[b])));
    let mut map = vec![0u32; nc];
    for (new, &old) in order.iter().enumerate() {
        map[old] = new as u32;
    }
    membership.iter_mut().for_each(|c| *c = map[*c as usize]);
    order.len()
}

/// Fast local moving (Traag et al. 2019, Algorithm A.2). Returns whether any node moved.
fn move_nodes(g: &Graph, memb: &mut [u32], gamma: f64, rng: &mut Rng) -> bool {
    let n = g.n();
    let mut k_comm = vec![0.0f64; n];
    let mut size = vec![0usize; n];
    for v in 0..n {
        k_comm[memb[v] as usize] += g.strength[v];
        size[memb[v] as usize] += 1;
    }
    let mut empty: Vec<u32> = (0..n as u32).filter(|&c| size[c as usize] == 0).collect();
    let mut order: Vec<u32> = (0..n as u32).collect();
    rng.shuffle(&mut order);
    let mut queue: std::collections::VecDeque<u32> = order.into_iter().collect();
    let mut in_queue = vec![true; n];
    let mut w_to = vec![0.0f64; n];
    let mut touched: Vec<u32> = Vec::new();
    let mut moved = false;
    let two_m = g.total;
    while let Some(v) = queue.pop_front() {
        let v = v as usize;
        in_queue[v] = false;
        let old = memb[v] as usize;
        let kv = g.strength[v];
        for e in g.indptr[v]..g.indptr[v + 1] {
            let u = g.indices[e] as usize;
            if u == v {
                continue;
            }
            let c = memb[u];
            if w_to[c as usize] == 0.0 {
                touched.push(c);
            }
            w_to[c as usize] += g.weights[e];
        }
        k_comm[old] -= kv;
        size[old] -= 1;
        let gain = |w: f64, kc: f64| w - gamma * kv * kc / two_m;
        let mut best = old;
        let mut best_gain = gain(w_to[old], k_comm[old]);
        for &c in &touched {
            let c = c as usize;
            let gc = gain(w_to[c], k_comm[c]);
            if gc > best_gain {
                best_gain = gc;
                best = c;
            }
        }
        if best_gain < 0.0 {
            // An empty community (gain 0) beats every neighbour.
            best = if size[old] == 0 {
                old
            } else {
                empty.pop().map(|c| c as usize).unwrap_or(old)
            };
        }
        for &c in &touched {
            w_to[c as usize] = 0.0;
        }
        touched.clear();
        k_comm[best] += kv;
        size[best] += 1;
        if size[old] == 0 && best != old {
            empty.push(old as u32);
        }
        if best != old {
            memb[v] = best as u32;
            moved = true;
            for e in g.indptr[v]..g.indptr[v + 1] {
                let u = g.indices[e] as usize;
                if !in_queue[u] && memb[u] as usize != best {
                    in_queue[u] = true;
                    queue.push_back(u as u32);
                }
            }
        }
    }
    moved
}

/// Refinement (Traag et al. 2019, Algorithm A.3 with greedy merges): a partition of each
/// community of `memb` into well-connected sub-communities.
fn refine(g: &Graph, memb: &[u32], gamma: f64, rng: &mut Rng) -> Vec<u32> {
    let n = g.n();
    let two_m = g.total;
    let nc = memb.iter().map(|&c| c as usize + 1).max().unwrap_or(0);
    let mut k_s = vec![0.0f64; nc];
    for v in 0..n {
        k_s[memb[v] as usize] += g.strength[v];
    }
    // Weight from each node to the rest of its own community.
    let mut w_in_s = vec![0.0f64; n];
    for v in 0..n {
        for e in g.indptr[v]..g.indptr[v + 1] {
            let u = g.indices[e] as usize;
            if u != v && memb[u] == memb[v] {
                w_in_s[v] += g.weights[e];
            }
        }
    }
    let mut refined: Vec<u32> = (0..n as u32).collect();
    let mut singleton = vec![true; n];
    let mut k_r: Vec<f64> = g.strength.clone();
    let mut ext_r: Vec<f64> = w_in_s.clone(); // weight from refined community to rest of S
    let mut order: Vec<u32> = (0..n as u32).collect();
    rng.shuffle(&mut order);
    let mut w_to = vec![0.0f64; n];
    let mut touched: Vec<u32> = Vec::new();
    for &v in &order {
        let v = v as usize;
        if !singleton[v] {
            continue;
        }
        let s = memb[v] as usize;
        let kv = g.strength[v];
        if w_in_s[v] < gamma * kv * (k_s[s] - kv) / two_m {
            continue;
        }
        for e in g.indptr[v]..g.indptr[v + 1] {
            let u = g.indices[e] as usize;
            if u == v || memb[u] as usize != s {
                continue;
            }
            let r = refined[u];
            if w_to[r as usize] == 0.0 {
                touched.push(r);
            }
            w_to[r as usize] += g.weights[e];
        }
        let own = refined[v] as usize;
        let mut best = own;
        let mut best_gain = 0.0;
        for &r in &touched {
            let r = r as usize;
            if r == own {
                continue;
            }
            if ext_r[r] < gamma * k_r[r] * (k_s[s] - k_r[r]) / two_m {
                continue;
            }
            let gain = w_to[r] - gamma * kv * k_r[r] / two_m;
            if gain > best_gain {
                best_gain = gain;
                best = r;
            }
        }
        if best != own {
            let w = w_to[best];
            k_r[best] += kv;
            ext_r[best] = ext_r[best] + w_in_s[v] - 2.0 * w;
            k_r[own] = 0.0;
            refined[v] = best as u32;
            singleton[v] = false;
            // The community v joined is no longer a singleton either.
            for e in g.indptr[v]..g.indptr[v + 1] {
                let u = g.indices[e] as usize;
                if refined[u] as usize == best {
                    singleton[u] = false;
                }
            }
        }
        for &r in &touched {
            w_to[r as usize] = 0.0;
        }
        touched.clear();
    }
    refined
}

/// Leiden clustering of a symmetric weighted graph (`n x n` CSR, e.g. UMAP connectivities).
/// Returns cluster ids `0..k` ordered by decreasing size, and the modularity-type quality of
/// [`modularity`] at the requested resolution.
///
/// # Errors
/// [`Cancelled`] when `control` is cancelled between levels.
pub fn leiden(
    graph: &CsrMatrix,
    p: &LeidenParams,
    control: &Control,
) -> Result<(Vec<u32>, f64), Cancelled> {
    let base = Graph::from_csr(graph);
    let n = base.n();
    let mut rng = Rng::new(p.seed);
    let mut membership: Vec<u32> = (0..n as u32).collect();
    if base.total == 0.0 {
        renumber(&mut membership);
        return Ok((membership, 0.0));
    }
    let mut iteration = 0;
    loop {
        control.check()?;
        let before = membership.clone();
        // One Leiden iteration starting from the current partition.
        let mut g = base.clone();
        let mut memb = membership.clone();
        let mut node_of: Vec<u32> = (0..n as u32).collect(); // original node -> aggregate node
        let mut changed = false;
        loop {
            control.check()?;
            changed |= move_nodes(&g, &mut memb, p.resolution, &mut rng);
            let n_comm = renumber(&mut memb);
            if n_comm == g.n() {
                break;
            }
            let mut refined = refine(&g, &memb, p.resolution, &mut rng);
            let mut n_ref = renumber(&mut refined);
            if n_ref == g.n() {
                // Refinement merged nothing: aggregate on the partition itself.
                refined = memb.clone();
                n_ref = n_comm;
            }
            // Aggregate on the refined partition; the aggregate starts from the unrefined one.
            let mut agg_memb = vec![0u32; n_ref];
            for v in 0..g.n() {
                agg_memb[refined[v] as usize] = memb[v];
            }
            g = g.aggregate(&refined, n_ref);
            for x in node_of.iter_mut() {
                *x = refined[*x as usize];
            }
            memb = agg_memb;
        }
        membership = node_of.iter().map(|&a| memb[a as usize]).collect();
        renumber(&mut membership);
        iteration += 1;
        let same = membership == before || !changed;
        if same || (p.n_iterations >= 0 && iteration >= p.n_iterations) {
            break;
        }
    }
    let q = quality(&base, &membership, p.resolution) / base.total;
    Ok((membership, q))
}
