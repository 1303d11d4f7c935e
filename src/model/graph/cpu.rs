//! STAGATE's training step on the CPU, written out by hand (the burn path, [`super::train`],
//! serves the GPU): the same arithmetic as `Train_STAGATE.py` (tests/it/model_stagate.rs checks
//! both paths against torch-geometric), with three savings that burn's autodiff cannot make:
//!
//! - the input stays sparse: `h = X W1` and `dW1 = X^T dh` touch only its non-zeros (6.5 % of
//!   DLPFC's 3,000 HVGs);
//! - the reconstruction `h4 = h3 W4` (`n x genes`, with `W4 = W1^T`) is never formed: the MSE
//!   and its gradients come from the Gram matrix `G = W4 W4^T` (`hidden x hidden`) and from
//!   `X W4^T = X W1 = h`, already computed: `|h4|^2 = sum_i h3_i G h3_i`, `<h4, X> = sum_i
//!   h3_i . h_i`, `dL/dh3 = c (h3 G - h)`, `dL/dW4 = c (h3^T h3 W4 - h3^T X)` with
//!   `c = 2 / (n genes)`;
//! - attention-weighted aggregation walks each cell's edges (by target forward, by source
//!   backward) instead of gathering an `edges x hidden` message tensor.
//!
//! Matrices are row-major `Vec<f32>`; products run on the `gemm` crate over rayon's threads.

use rayon::prelude::*;

use crate::data::matrix::CsrMatrix;
use crate::model::infer::sparse::{ROWS_PER_TASK, SparseWeights, sparse_first_layer};

use super::train::GraphTraining;

/// `a [m, k] (or a^T when ta, stored [k, m]) times b [k, n] (or b^T, stored [n, k])`.
#[allow(unsafe_code, clippy::too_many_arguments)]
pub(crate) fn mm(
    a: &[f32],
    ta: bool,
    b: &[f32],
    tb: bool,
    m: usize,
    k: usize,
    n: usize,
) -> Vec<f32> {
    assert_eq!(a.len(), m * k, "left shape");
    assert_eq!(b.len(), k * n, "right shape");
    let mut out = vec![0f32; m * n];
    let (ars, acs) = if ta { (1, m as isize) } else { (k as isize, 1) };
    let (brs, bcs) = if tb { (1, k as isize) } else { (n as isize, 1) };
    // SAFETY: `out` is [m, n] row-major; `a` holds m*k elements read at row stride `ars` and
    // column stride `acs` (transposed storage when `ta`), `b` k*n likewise; the lengths are
    // asserted above and `out` aliases neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            acs,
            ars,
            b.as_ptr(),
            bcs,
            brs,
            0.0f32,
            1.0f32,
            false,
            false,
            false,
            gemm::Parallelism::Rayon(0),
        );
    }
    out
}

/// `x w` for CSR `x` `[n, g]` and `w` `[g, d]`: `[n, d]`, through the CPU inference path's
/// tuned sparse kernel ([`sparse_first_layer`], `w` laid out afresh each call; about 2x a
/// plain row loop here). For `x^T d`, pass the transpose ([`transpose`]).
pub(crate) fn csr_mm(x: &CsrMatrix, w: &[f32], d: usize) -> Vec<f32> {
    let sw = SparseWeights::from_in_out(w, &[], x.n_cols, d);
    let rows = x.n_rows;
    let per = rows
        .div_ceil(rayon::current_num_threads().max(1))
        .clamp(1, ROWS_PER_TASK);
    let starts: Vec<usize> = (0..rows).step_by(per).collect();
    let parts: Vec<Vec<f32>> = starts
        .into_par_iter()
        .map(|r0| sparse_first_layer(x, r0..(r0 + per).min(rows), &sw))
        .collect();
    let out = parts.concat();
    assert_eq!(out.len(), rows * d, "output width");
    out
}

/// The edges grouped by target (forward) and by source (backward).
#[derive(Debug, Clone)]
pub struct EdgeIndex {
    n: usize,
    /// Per target: start of its edges in `in_src` / `in_edge`.
    in_ptr: Vec<usize>,
    in_src: Vec<u32>,
    /// Per source: start of its edges in `out_dst` / `out_edge` (edge ids in target order).
    out_ptr: Vec<usize>,
    out_dst: Vec<u32>,
    out_edge: Vec<u32>,
}

impl EdgeIndex {
    /// From edge lists `src[e] -> dst[e]` over `n` cells.
    pub fn new(src: &[u32], dst: &[u32], n: usize) -> Self {
        let mut order: Vec<usize> = (0..src.len()).collect();
        order.sort_by_key(|&e| (dst[e], src[e]));
        let in_src: Vec<u32> = order.iter().map(|&e| src[e]).collect();
        let in_dst: Vec<u32> = order.iter().map(|&e| dst[e]).collect();
        let ptr = |keys: &[u32]| {
            let mut p = vec![0usize; n + 1];
            keys.iter().for_each(|&k| p[k as usize + 1] += 1);
            (0..n).for_each(|i| p[i + 1] += p[i]);
            p
        };
        let in_ptr = ptr(&in_dst);
        // Edge ids are positions in target order; group them by source.
        let mut by_src: Vec<u32> = (0..in_src.len() as u32).collect();
        by_src.sort_by_key(|&e| (in_src[e as usize], e));
        let out_ptr = ptr(&in_src);
        let out_dst = by_src.iter().map(|&e| in_dst[e as usize]).collect();
        EdgeIndex {
            n,
            in_ptr,
            in_src,
            out_ptr,
            out_dst,
            out_edge: by_src,
        }
    }

    /// `out_i = sum over edges j -> i of coef[e] h_j` (`h` `[n, d]`).
    fn aggregate(&self, coef: &[f32], h: &[f32], d: usize) -> Vec<f32> {
        let mut out = vec![0f32; self.n * d];
        let arch = pulp::Arch::new();
        out.par_chunks_mut(d).enumerate().for_each(|(i, o)| {
            arch.dispatch(|| {
                let r = self.in_ptr[i]..self.in_ptr[i + 1];
                for (&j, &c) in self.in_src[r.clone()].iter().zip(&coef[r]) {
                    let j = j as usize;
                    axpy(o, c, &h[j * d..(j + 1) * d]);
                }
            });
        });
        out
    }

    /// The transpose: `out_j = sum over edges j -> i of coef[e] g_i`.
    fn scatter_back(&self, coef: &[f32], g: &[f32], d: usize) -> Vec<f32> {
        let mut out = vec![0f32; self.n * d];
        let arch = pulp::Arch::new();
        out.par_chunks_mut(d).enumerate().for_each(|(j, o)| {
            arch.dispatch(|| {
                for p in self.out_ptr[j]..self.out_ptr[j + 1] {
                    let i = self.out_dst[p] as usize;
                    axpy(o, coef[self.out_edge[p] as usize], &g[i * d..(i + 1) * d]);
                }
            });
        });
        out
    }

    /// `<a_i, b_j>` per edge `j -> i`, in edge order.
    fn edge_dots(&self, a: &[f32], b: &[f32], d: usize) -> Vec<f32> {
        let arch = pulp::Arch::new();
        (0..self.n)
            .into_par_iter()
            .flat_map_iter(|i| {
                (self.in_ptr[i]..self.in_ptr[i + 1]).map(move |e| {
                    let j = self.in_src[e] as usize;
                    arch.dispatch(|| dot(&a[i * d..(i + 1) * d], &b[j * d..(j + 1) * d]))
                })
            })
            .collect()
    }
}

#[inline(always)]
fn axpy(o: &mut [f32], a: f32, x: &[f32]) {
    for (o, &x) in o.iter_mut().zip(x) {
        *o += a * x;
    }
}

/// A dot product in 16 lanes (so that it vectorises under `pulp`'s dispatch).
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for k in 0..16 {
            acc[k] += x[k] * y[k];
        }
    }
    acc.iter().sum::<f32>() + tail
}

fn elu(x: &[f32]) -> Vec<f32> {
    x.par_iter()
        .map(|&v| if v > 0.0 { v } else { v.exp_m1() })
        .collect()
}

/// `d * elu'(p)` elementwise from the output `y = elu(p)`: `elu'(p)` is 1 above 0, else
/// `exp(p) = y + 1`.
fn elu_back(d: &[f32], y: &[f32]) -> Vec<f32> {
    d.par_iter()
        .zip(y)
        .map(|(&d, &y)| if y > 0.0 { d } else { d * (y + 1.0) })
        .collect()
}

/// `h a` per row (`h` `[n, d]`).
fn row_dots(h: &[f32], a: &[f32]) -> Vec<f32> {
    h.par_chunks(a.len()).map(|r| dot(r, a)).collect()
}

/// The training input: `X` (`[n, genes]`), its transpose and `|X|^2`.
#[derive(Debug, Clone)]
pub struct SparseInput {
    /// `X`.
    pub x: CsrMatrix,
    xt: CsrMatrix,
    x2: f64,
}

impl SparseInput {
    /// From `x`.
    pub fn new(x: CsrMatrix) -> Self {
        let x2 = x.data.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
        SparseInput {
            xt: x.transpose(),
            x,
            x2,
        }
    }
}

/// STAGATE's weights in the CPU path: `W1 [genes, hidden]`, `a_src`, `a_dst [hidden]`,
/// `W2 [hidden, latent]`; the decoder's `W3 = W2^T` and `W4 = W1^T` are views of them.
#[derive(Debug, Clone, PartialEq)]
pub struct StagateWeights {
    /// `W1`, `[genes, hidden]` row-major.
    pub w1: Vec<f32>,
    /// `a_src`.
    pub att_src: Vec<f32>,
    /// `a_dst`.
    pub att_dst: Vec<f32>,
    /// `W2`, `[hidden, latent]` row-major.
    pub w2: Vec<f32>,
    /// `[genes, hidden, latent]`.
    pub widths: [usize; 3],
}

/// The gradients of one step: the encoder's, then the decoder views' (`dW3^T` in `W2`'s
/// layout, `dW4^T` in `W1`'s).
#[derive(Debug, Clone, PartialEq)]
pub struct StagateGrads {
    /// `dL/dW1` (encoder).
    pub w1: Vec<f32>,
    /// `dL/da_src`.
    pub att_src: Vec<f32>,
    /// `dL/da_dst`.
    pub att_dst: Vec<f32>,
    /// `dL/dW2` (encoder).
    pub w2: Vec<f32>,
    /// `(dL/dW3)^T`, `[hidden, latent]`.
    pub w3t: Vec<f32>,
    /// `(dL/dW4)^T`, `[genes, hidden]`.
    pub w4t: Vec<f32>,
}

impl StagateGrads {
    fn all_mut(&mut self) -> [&mut Vec<f32>; 6] {
        [
            &mut self.w1,
            &mut self.att_src,
            &mut self.att_dst,
            &mut self.w2,
            &mut self.w3t,
            &mut self.w4t,
        ]
    }
}

/// What the forward pass keeps for the backward.
struct Forward {
    h: Vec<f32>,
    coef: Vec<f32>,
    logit: Vec<f32>,
    h1: Vec<f32>,
    h2: Vec<f32>,
    g: Vec<f32>,
    h3: Vec<f32>,
}

impl StagateWeights {
    /// The forward pass up to `h3`.
    fn forward(&self, x: &CsrMatrix, e: &EdgeIndex) -> Forward {
        let [_, hd, lat] = self.widths;
        let n = x.n_rows;
        let h = csr_mm(x, &self.w1, hd);
        let (s, t) = (row_dots(&h, &self.att_src), row_dots(&h, &self.att_dst));
        // Per target: sigmoid logits, softmax over its edges (sigmoid < 1: no overflow).
        let per: Vec<(Vec<f32>, Vec<f32>)> = (0..n)
            .into_par_iter()
            .map(|i| {
                let r = e.in_ptr[i]..e.in_ptr[i + 1];
                let l: Vec<f32> = r
                    .map(|k| 1.0 / (1.0 + (-(s[e.in_src[k] as usize] + t[i])).exp()))
                    .collect();
                let w: Vec<f32> = l.iter().map(|v| v.exp()).collect();
                let den: f32 = w.iter().sum();
                (l, w.into_iter().map(|v| v / den).collect())
            })
            .collect();
        let (logit, coef): (Vec<f32>, Vec<f32>) = per
            .into_iter()
            .flat_map(|(l, c)| l.into_iter().zip(c))
            .unzip();
        let p1 = e.aggregate(&coef, &h, hd);
        let h1 = elu(&p1);
        let h2 = mm(&h1, false, &self.w2, false, n, hd, lat);
        let g = mm(&h2, false, &self.w2, true, n, lat, hd);
        let p3 = e.aggregate(&coef, &g, hd);
        let h3 = elu(&p3);
        Forward {
            h,
            coef,
            logit,
            h1,
            h2,
            g,
            h3,
        }
    }

    /// The latent `h2`, `[n, latent]` row-major.
    pub fn latent(&self, x: &CsrMatrix, e: &EdgeIndex) -> Vec<f32> {
        self.forward(x, e).h2
    }

    /// The MSE of the reconstruction and every gradient of it (`x2` = `|X|^2`).
    pub fn gradients(&self, input: &SparseInput, e: &EdgeIndex) -> (f64, StagateGrads) {
        let (x, xt) = (&input.x, &input.xt);
        let [genes, hd, lat] = self.widths;
        let n = x.n_rows;
        let f = self.forward(x, e);
        let (loss, dh3, w4t) = if genes > hd {
            self.reconstruction_gram(input, &f)
        } else {
            self.reconstruction_direct(x, &f)
        };
        // Decoder layer 3 (tied attention), then the encoder.
        let dp3 = elu_back(&dh3, &f.h3);
        let dg = e.scatter_back(&f.coef, &dp3, hd);
        let mut dcoef = e.edge_dots(&dp3, &f.g, hd);
        let w3t = mm(&dg, true, &f.h2, false, hd, n, lat);
        let dh2 = mm(&dg, false, &self.w2, false, n, hd, lat);
        let w2 = mm(&f.h1, true, &dh2, false, hd, n, lat);
        let dh1 = mm(&dh2, false, &self.w2, true, n, lat, hd);
        let dp1 = elu_back(&dh1, &f.h1);
        let mut dh = e.scatter_back(&f.coef, &dp1, hd);
        dcoef
            .par_iter_mut()
            .zip(e.edge_dots(&dp1, &f.h, hd))
            .for_each(|(a, b)| *a += b);
        let (ds, dt) = attention_back(e, &f.coef, &f.logit, &dcoef);
        dh.par_chunks_mut(hd).enumerate().for_each(|(i, r)| {
            axpy(r, ds[i], &self.att_src);
            axpy(r, dt[i], &self.att_dst);
        });
        let att_src = mm(&f.h, true, &ds, false, hd, n, 1);
        let att_dst = mm(&f.h, true, &dt, false, hd, n, 1);
        let w1 = csr_mm(xt, &dh, hd);
        let grads = StagateGrads {
            w1,
            att_src,
            att_dst,
            w2,
            w3t,
            w4t,
        };
        (loss, grads)
    }
}

impl StagateWeights {
    /// The MSE of `h4 = h3 W1^T` against `X` and its gradients `(dL/dh3, (dL/dW4)^T)` through
    /// the Gram matrix of `W4 = W1^T` (`X W4^T = h`): `2 n hidden^2 + 2 hidden^2 genes` flops
    /// instead of `3 n hidden genes`, for inputs wider than the hidden layer.
    fn reconstruction_gram(&self, input: &SparseInput, f: &Forward) -> (f64, Vec<f32>, Vec<f32>) {
        let (x, xt, x2) = (&input.x, &input.xt, input.x2);
        let [genes, hd, _] = self.widths;
        let n = x.n_rows;
        let c = 2.0 / (n * genes) as f32;
        // The reconstruction through the Gram matrix of W4 = W1^T.
        let gram = mm(&self.w1, true, &self.w1, false, hd, genes, hd);
        let q = mm(&f.h3, false, &gram, false, n, hd, hd);
        let (h4sq, h4x): (f64, f64) = (0..n)
            .into_par_iter()
            .map(|i| {
                let r = i * hd..(i + 1) * hd;
                let h3 = &f.h3[r.clone()];
                (
                    f64::from(dot(&q[r.clone()], h3)),
                    f64::from(dot(h3, &f.h[r])),
                )
            })
            .reduce(|| (0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
        let loss = (h4sq - 2.0 * h4x + x2) / (n * genes) as f64;
        let dh3: Vec<f32> = q.par_iter().zip(&f.h).map(|(&q, &h)| c * (q - h)).collect();
        // dW4^T = c (W1 (h3^T h3) - X^T h3), [genes, hidden].
        let h3h3 = mm(&f.h3, true, &f.h3, false, hd, n, hd);
        let mut w4t = mm(&self.w1, false, &h3h3, false, genes, hd, hd);
        let xth3 = csr_mm(xt, &f.h3, hd);
        w4t.par_iter_mut()
            .zip(&xth3)
            .for_each(|(a, &b)| *a = c * (*a - b));
        (loss, dh3, w4t)
    }

    /// The same as [`Self::reconstruction_gram`] with `h4` formed, for narrow inputs (an
    /// embedding, PCs).
    fn reconstruction_direct(&self, x: &CsrMatrix, f: &Forward) -> (f64, Vec<f32>, Vec<f32>) {
        let [genes, hd, _] = self.widths;
        let n = x.n_rows;
        let c = 2.0 / (n * genes) as f32;
        let mut r = mm(&f.h3, false, &self.w1, true, n, hd, genes);
        for i in 0..n {
            let (idx, val) = x.row(i);
            for (&j, &v) in idx.iter().zip(val) {
                r[i * genes + j as usize] -= v;
            }
        }
        let loss = r.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / (n * genes) as f64;
        r.iter_mut().for_each(|v| *v *= c);
        let dh3 = mm(&r, false, &self.w1, false, n, genes, hd);
        let w4t = mm(&r, true, &f.h3, false, genes, n, hd);
        (loss, dh3, w4t)
    }
}

/// Through the softmax over each target's edges and the sigmoid: the gradients of the
/// per-cell attention logits `s = h a_src` (summed over a cell's outgoing edges) and
/// `t = h a_dst` (over its incoming edges).
fn attention_back(
    e: &EdgeIndex,
    coef: &[f32],
    logit: &[f32],
    dcoef: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let dz: Vec<Vec<f32>> = (0..e.n)
        .into_par_iter()
        .map(|i| {
            let r = e.in_ptr[i]..e.in_ptr[i + 1];
            let inner: f32 = r.clone().map(|k| coef[k] * dcoef[k]).sum();
            r.map(|k| coef[k] * (dcoef[k] - inner) * logit[k] * (1.0 - logit[k]))
                .collect()
        })
        .collect();
    let dz: Vec<f32> = dz.concat();
    let dt: Vec<f32> = (0..e.n)
        .map(|i| dz[e.in_ptr[i]..e.in_ptr[i + 1]].iter().sum())
        .collect();
    let ds: Vec<f32> = (0..e.n)
        .map(|j| {
            (e.out_ptr[j]..e.out_ptr[j + 1])
                .map(|p| dz[e.out_edge[p] as usize])
                .sum()
        })
        .collect();
    (ds, dt)
}

/// Adam's state for one parameter (PyTorch's `torch.optim.Adam`, L2 weight decay).
#[derive(Debug, Clone)]
struct Moments {
    m: Vec<f32>,
    v: Vec<f32>,
}

impl Moments {
    fn new(len: usize) -> Self {
        Moments {
            m: vec![0.0; len],
            v: vec![0.0; len],
        }
    }

    /// One update of `p` with gradient `g` at step `t` (1-based).
    fn step(&mut self, p: &mut [f32], g: &[f32], t: i32, o: &GraphTraining) {
        let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
        let (lr, wd) = (o.lr as f32, o.weight_decay as f32);
        let bc1 = 1.0 - b1.powi(t);
        let bc2 = (1.0 - b2.powi(t)).sqrt();
        p.par_iter_mut()
            .zip(g)
            .zip(self.m.par_iter_mut().zip(self.v.par_iter_mut()))
            .for_each(|((p, &g), (m, v))| {
                let g = g + wd * *p;
                *m = b1 * *m + (1.0 - b1) * g;
                *v = b2 * *v + (1.0 - b2) * g * g;
                *p -= lr / bc1 * *m / (v.sqrt() / bc2 + eps);
            });
    }
}

/// STAGATE training on the CPU: weights and the six parameters' Adam states.
#[derive(Debug, Clone)]
pub struct StagateCpu {
    /// The weights.
    pub weights: StagateWeights,
    moments: [Moments; 6],
    t: i32,
    opts: GraphTraining,
}

impl StagateCpu {
    /// Training from `weights` with the recipe `opts`.
    pub fn new(weights: StagateWeights, opts: GraphTraining) -> Self {
        let [g, hd, lat] = weights.widths;
        let sizes = [g * hd, hd, hd, hd * lat, hd * lat, g * hd];
        StagateCpu {
            weights,
            moments: sizes.map(Moments::new),
            t: 0,
            opts,
        }
    }

    /// One step of `Train_STAGATE.py` (as [`super::train::StagateTrainer::step`]): gradients,
    /// the global norm of all six clipped, Adam in STAGATE's order with the decoder views'
    /// updates landing in the encoder's weights. Returns the loss before the step.
    pub fn step(&mut self, input: &SparseInput, e: &EdgeIndex) -> f64 {
        let (loss, mut g) = self.weights.gradients(input, e);
        if let Some(max) = self.opts.clip {
            let norm = g
                .all_mut()
                .iter()
                .map(|v| v.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>())
                .sum::<f64>()
                .sqrt();
            if norm > max {
                let f = (max / (norm + 1e-6)) as f32;
                for v in g.all_mut() {
                    v.iter_mut().for_each(|x| *x *= f);
                }
            }
        }
        self.t += 1;
        let (t, o) = (self.t, self.opts);
        let w = &mut self.weights;
        let [m1, ms, md, m2, m3, m4] = &mut self.moments;
        m1.step(&mut w.w1, &g.w1, t, &o);
        ms.step(&mut w.att_src, &g.att_src, t, &o);
        md.step(&mut w.att_dst, &g.att_dst, t, &o);
        m2.step(&mut w.w2, &g.w2, t, &o);
        // The decoder's views: their Adam state is elementwise, so W^T's layout serves.
        m3.step(&mut w.w2, &g.w3t, t, &o);
        m4.step(&mut w.w1, &g.w4t, t, &o);
        loss
    }
}
