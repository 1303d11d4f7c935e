//! The graph networks of the spatial-domain methods, trained full-batch on one slide:
//! [`stagate`] (STAGATE's graph-attention autoencoder), [`graphst`] (GraphST's GCN autoencoder
//! with its DGI-style contrastive term) and [`train`] (their training loops: Adam, STAGATE's
//! gradient clipping, progress and cancel).
//!
//! A graph enters as a sparse adjacency ([`crate::data::matrix::CsrMatrix`]) and becomes edge
//! index lists on the device; products with it are gathers and scatter-adds over the edges, so
//! the cost is linear in the edges on the CPU and on the GPU alike.

pub mod cpu;
pub mod graphst;
pub mod stagate;
pub mod train;

use burn::tensor::{Device, Int, Tensor, TensorData};
use rand_mt::Mt64;

use crate::data::matrix::CsrMatrix;

/// The graph a layer propagates over: edge `e` carries a message from `src[e]` to `dst[e]`.
#[derive(Debug, Clone)]
pub struct Edges {
    /// Source cell of each edge.
    pub src: Tensor<1, Int>,
    /// Target cell of each edge.
    pub dst: Tensor<1, Int>,
    /// Cells.
    pub n: usize,
}

impl Edges {
    /// Edges from index lists (equal lengths, indices below `n`) on `device`.
    pub fn new(src: &[u32], dst: &[u32], n: usize, device: &Device) -> Self {
        let t = |v: &[u32]| {
            let v: Vec<i64> = v.iter().map(|&i| i64::from(i)).collect();
            Tensor::<1, Int>::from_data(TensorData::new(v.clone(), [v.len()]), device)
        };
        Edges {
            src: t(src),
            dst: t(dst),
            n,
        }
    }

    /// STAGATE's edges from its adjacency `G` (`G[i, j] = 1` when `j` is a neighbour of `i`):
    /// torch-geometric's `edge_index = nonzero(G)` sends a message from row `i` to column `j`
    /// (`Transfer_pytorch_Data`). The same for a symmetric (radius) graph either way.
    pub fn from_adjacency(g: &CsrMatrix, device: &Device) -> Self {
        let (src, dst) = pairs(g);
        Edges::new(&src, &dst, g.n_rows, device)
    }
}

/// A weighted sparse matrix `A` for products `A h`: an edge `j -> i` per stored `A[i, j]`.
#[derive(Debug, Clone)]
pub struct WeightedEdges {
    /// The edges (`src` = column, `dst` = row).
    pub edges: Edges,
    /// `A[i, j]` per edge.
    pub weight: Tensor<1>,
}

impl WeightedEdges {
    /// The products' form of `a` (`n x n`) on `device`.
    pub fn from_csr(a: &CsrMatrix, device: &Device) -> Self {
        let (rows, cols) = pairs(a);
        let w = a.data.clone();
        let len = w.len();
        WeightedEdges {
            edges: Edges::new(&cols, &rows, a.n_rows, device),
            weight: Tensor::from_data(TensorData::new(w, [len]), device),
        }
    }

    /// `A h` (`h` is `[n, d]`): per edge the source row times the weight, summed at the target.
    pub fn matmul(&self, h: Tensor<2>) -> Tensor<2> {
        let [_, d] = h.dims();
        let e = self.weight.dims()[0];
        let messages = h.select(0, self.edges.src.clone()) * self.weight.clone().reshape([e, 1]);
        Tensor::<2>::zeros([self.edges.n, d], &messages.device()).select_assign(
            0,
            self.edges.dst.clone(),
            messages,
            burn::tensor::IndexingUpdateOp::Add,
        )
    }
}

/// `(row, column)` of every stored entry of `m`, row by row.
pub(crate) fn pairs(m: &CsrMatrix) -> (Vec<u32>, Vec<u32>) {
    let mut rows = Vec::with_capacity(m.data.len());
    for i in 0..m.n_rows {
        rows.extend(std::iter::repeat_n(i as u32, m.row(i).0.len()));
    }
    (rows, m.indices.clone())
}

/// Seeded initial values as PyTorch's `nn.init` draws them (not the same numbers: a Mersenne
/// Twister of our own): `fan_in`/`fan_out` as PyTorch computes them for the tensor's shape.
pub(crate) struct Init(Mt64);

impl Init {
    pub(crate) fn new(seed: u64) -> Self {
        Init(Mt64::new(seed))
    }

    fn uniform01(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// `xavier_normal_(gain)`: normal with std `gain * sqrt(2 / (fan_in + fan_out))`.
    pub(crate) fn xavier_normal(
        &mut self,
        len: usize,
        fans: (usize, usize),
        gain: f64,
    ) -> Vec<f32> {
        let std = gain * (2.0 / (fans.0 + fans.1) as f64).sqrt();
        (0..len)
            .map(|_| {
                // Box-Muller.
                let u = self.uniform01().max(f64::MIN_POSITIVE);
                let v = self.uniform01();
                (std * (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
            })
            .collect()
    }

    /// `xavier_uniform_`: uniform in `±sqrt(6 / (fan_in + fan_out))`.
    pub(crate) fn xavier_uniform(&mut self, len: usize, fans: (usize, usize)) -> Vec<f32> {
        let bound = (6.0 / (fans.0 + fans.1) as f64).sqrt();
        (0..len)
            .map(|_| ((2.0 * self.uniform01() - 1.0) * bound) as f32)
            .collect()
    }

    /// A Fisher-Yates permutation of `0..n`.
    pub(crate) fn permutation(&mut self, n: usize) -> Vec<u32> {
        let mut p: Vec<u32> = (0..n as u32).collect();
        for i in (1..n).rev() {
            let j = (self.0.next_u64() % (i as u64 + 1)) as usize;
            p.swap(i, j);
        }
        p
    }
}
