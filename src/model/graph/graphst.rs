//! GraphST's graph autoencoder with its contrastive term (Long et al. 2023; SEED_METHODS.md),
//! as the PyPI package `GraphST` 1.1.1 computes it (`model.py`: `Encoder`, `AvgReadout`,
//! `Discriminator`; `GraphST.py`: `train`):
//!
//! - encoder `z = A (x W1)` (the hidden representation), embedding `emb = ReLU(z)`; decoder
//!   `h = A (z W2)` reconstructs `x` (no activation); `A` is the normalised adjacency
//!   `D^-1/2 S D^-1/2 + I` of the symmetrised kNN graph `S` ([`normalized_adjacency`]);
//! - corruption: the same encoder on `x` with its rows shuffled (`emb_a`);
//! - readout: `g = sigmoid(l2normalise(M emb / rowsum(M)))`, `M` the directed kNN graph plus
//!   the identity (`graph_neigh`), likewise `g_a` from `emb_a`;
//! - discriminator: bilinear `s(e, c) = e^T B c + b`; `ret = [s(emb, g), s(emb_a, g)]`,
//!   `ret_a = [s(emb_a, g_a), s(emb, g_a)]`, each scored by BCE-with-logits against `[1, 0]`;
//! - loss `10 MSE(x, h) + BCE(ret) + BCE(ret_a)` (`alpha = 10`, `beta = 1`).
//!
//! GraphST clusters the reconstruction `h` (its `obsm['emb']`) after a 20-component PCA.

use burn::module::{Module, Param, ParamId};
use burn::tensor::activation::{relu, sigmoid, softplus};
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::{Init, WeightedEdges};
use crate::data::matrix::CsrMatrix;

/// GraphST's default weights of the loss terms (`alpha`, `beta`).
pub const ALPHA: f64 = 10.0;
/// See [`ALPHA`].
pub const BETA: f64 = 1.0;

/// The network's parameters.
#[derive(Module, Debug)]
pub struct GraphSt {
    /// `W1`, `[in, hidden]`.
    pub weight1: Param<Tensor<2>>,
    /// `W2`, `[hidden, in]`.
    pub weight2: Param<Tensor<2>>,
    /// The bilinear discriminator's weight `B`, `[hidden, hidden]` (`nn.Bilinear`'s
    /// `weight[0]`).
    pub disc_weight: Param<Tensor<2>>,
    /// Its bias, `[1]`.
    pub disc_bias: Param<Tensor<1>>,
}

/// The graphs GraphST uses, on the device.
#[derive(Debug, Clone)]
pub struct GraphStGraphs {
    /// `A = D^-1/2 S D^-1/2 + I` for the encoder and decoder.
    pub adj: WeightedEdges,
    /// `M / rowsum(M)`, `M` = kNN graph + I, for the readout.
    pub readout: WeightedEdges,
}

impl GraphStGraphs {
    /// Both graphs from the directed kNN adjacency (`n x n`, no self-loops; rows are cells,
    /// columns their neighbours: `graph_neigh` without its identity).
    pub fn new(knn: &CsrMatrix, device: &Device) -> Self {
        GraphStGraphs {
            adj: WeightedEdges::from_csr(&normalized_adjacency(knn), device),
            readout: WeightedEdges::from_csr(&readout_matrix(knn), device),
        }
    }
}

/// `D^-1/2 S D^-1/2 + I` with `S = min(K + K^T, 1)` (`construct_interaction` then
/// `preprocess_adj`, GraphST's dense path for Visium-like data), as CSR.
pub fn normalized_adjacency(knn: &CsrMatrix) -> CsrMatrix {
    let n = knn.n_rows;
    let mut trip: Vec<(u32, u32, f32)> = Vec::with_capacity(2 * knn.data.len() + n);
    for i in 0..n {
        for &j in knn.row(i).0 {
            trip.push((i as u32, j, 1.0));
            trip.push((j, i as u32, 1.0));
        }
    }
    trip.sort_unstable_by_key(|&(i, j, _)| (i, j));
    trip.dedup_by_key(|&mut (i, j, _)| (i, j));
    let mut degree = vec![0f64; n];
    for &(i, _, _) in &trip {
        degree[i as usize] += 1.0;
    }
    let inv = |d: f64| if d > 0.0 { 1.0 / d.sqrt() } else { 0.0 };
    for t in &mut trip {
        t.2 = (inv(degree[t.0 as usize]) * inv(degree[t.1 as usize])) as f32;
    }
    trip.extend((0..n as u32).map(|i| (i, i, 1.0)));
    CsrMatrix::from_triplets(n, &mut trip)
}

/// `(K + I) / rowsum(K + I)`: the readout's neighbourhood mean (`AvgReadout` with
/// `graph_neigh`).
pub fn readout_matrix(knn: &CsrMatrix) -> CsrMatrix {
    let n = knn.n_rows;
    let mut trip: Vec<(u32, u32, f32)> = Vec::with_capacity(knn.data.len() + n);
    for i in 0..n {
        let nb = knn.row(i).0;
        let w = 1.0 / (nb.iter().filter(|&&j| j as usize != i).count() + 1) as f32;
        trip.push((i as u32, i as u32, w));
        trip.extend(
            nb.iter()
                .filter(|&&j| j as usize != i)
                .map(|&j| (i as u32, j, w)),
        );
    }
    CsrMatrix::from_triplets(n, &mut trip)
}

/// What one forward pass gives.
#[derive(Debug, Clone)]
pub struct GraphStOutput {
    /// `z = A x W1`, `[n, hidden]` (GraphST's `hiden_emb`).
    pub hidden: Tensor<2>,
    /// `h = A z W2`, `[n, in]` (GraphST's `emb`, what it clusters).
    pub reconstruction: Tensor<2>,
    /// `ret`, `[n, 2]`.
    pub ret: Tensor<2>,
    /// `ret_a`, `[n, 2]`.
    pub ret_a: Tensor<2>,
}

impl GraphSt {
    /// A freshly initialised network for `n_in` features and `hidden` units (GraphST: 64):
    /// `W1`, `W2` and the bilinear weight `xavier_uniform_`, bias 0 (`model.py`), seeded.
    pub fn init(n_in: usize, hidden: usize, seed: u64, device: &Device) -> Self {
        let mut init = Init::new(seed);
        let m = |v: Vec<f32>, r: usize, c: usize| {
            Param::from_tensor(Tensor::from_data(TensorData::new(v, [r, c]), device))
        };
        let w1 = init.xavier_uniform(n_in * hidden, (hidden, n_in));
        let w2 = init.xavier_uniform(hidden * n_in, (n_in, hidden));
        // nn.Bilinear's weight is `[1, hidden, hidden]`: fan_in = hidden^2, fan_out = hidden.
        let b = init.xavier_uniform(hidden * hidden, (hidden * hidden, hidden));
        GraphSt {
            weight1: m(w1, n_in, hidden),
            weight2: m(w2, hidden, n_in),
            disc_weight: m(b, hidden, hidden),
            disc_bias: Param::from_tensor(Tensor::zeros([1], device)),
        }
    }

    /// The forward pass on `x` (`[n, in]`) and its row permutation `perm` (`x[perm]` is the
    /// corrupted view).
    pub fn forward(&self, x: Tensor<2>, perm: Tensor<1, Int>, g: &GraphStGraphs) -> GraphStOutput {
        // The corrupted view's projection is the real one's rows shuffled:
        // `x[perm] W1 = (x W1)[perm]`, so the wide product is done once.
        let xw = x.matmul(self.weight1.val());
        let z = g.adj.matmul(xw.clone());
        // `A (z W2) = (A z) W2`: propagating the 64-wide `z` costs far less than the
        // genes-wide `z W2`.
        let h = g.adj.matmul(z.clone()).matmul(self.weight2.val());
        let emb = relu(z.clone());
        let emb_a = relu(g.adj.matmul(xw.select(0, perm)));
        let summary = |e: &Tensor<2>| sigmoid(l2_normalize(g.readout.matmul(e.clone())));
        let (s, s_a) = (summary(&emb), summary(&emb_a));
        let ret = Tensor::cat(vec![self.bilinear(&emb, &s), self.bilinear(&emb_a, &s)], 1);
        let ret_a = Tensor::cat(
            vec![self.bilinear(&emb_a, &s_a), self.bilinear(&emb, &s_a)],
            1,
        );
        GraphStOutput {
            hidden: z,
            reconstruction: h,
            ret,
            ret_a,
        }
    }

    /// `e^T B c + b` per row, `[n, 1]`.
    fn bilinear(&self, e: &Tensor<2>, c: &Tensor<2>) -> Tensor<2> {
        (e.clone().matmul(self.disc_weight.val()) * c.clone()).sum_dim(1)
            + self.disc_bias.val().reshape([1, 1])
    }

    /// The parameters by rank (for clipping norms and weight decay): the three matrices, the
    /// bias.
    pub fn param_ids(&self) -> (Vec<ParamId>, Vec<ParamId>) {
        (
            vec![self.weight1.id, self.weight2.id, self.disc_weight.id],
            vec![self.disc_bias.id],
        )
    }
}

/// GraphST's loss of a forward pass on `x`: `alpha MSE(x, h) + beta (BCE(ret) + BCE(ret_a))`,
/// BCE-with-logits against the labels `[1, 0]` per row, averaged over all `2n` logits
/// (`nn.BCEWithLogitsLoss`).
pub fn loss(x: Tensor<2>, out: &GraphStOutput) -> Tensor<1> {
    let d = out.reconstruction.clone() - x;
    let mse = (d.clone() * d).mean();
    let bce = |r: &Tensor<2>| {
        let [n, _] = r.dims();
        let pos = r.clone().slice([0..n, 0..1]);
        let neg = r.clone().slice([0..n, 1..2]);
        // label 1: softplus(-x); label 0: softplus(x).
        (softplus(pos.neg(), 1.0).sum() + softplus(neg, 1.0).sum()) / (2 * n) as f64
    };
    mse * ALPHA + (bce(&out.ret) + bce(&out.ret_a)) * BETA
}

/// `F.normalize(x, p=2, dim=1)`: rows divided by `max(|row|, 1e-12)`.
fn l2_normalize(x: Tensor<2>) -> Tensor<2> {
    let norm = x.clone().powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-12);
    x / norm
}
