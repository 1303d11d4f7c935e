//! The first Linear layer of the CPU inference path on sparse input: `x W^T + b` multiplying
//! only the stored values of `x`.
//!
//! The ssl_in_scg first layer (`n_genes -> 512`) is about 95% of the backbone's arithmetic,
//! and expression vectors are over 90% zeros. Here each stored value costs one multiply-add
//! per output unit, instead of `n_genes` multiply-adds per unit in a dense product.
//!
//! Kernel shape, measured on the full-size model with HER2+ ST spots (1,890 non-zeros per spot
//! after alignment; `examples/embed_bench.rs`) on a 2-core AVX-512 VM:
//! - Output units are split into chunks of 16 SIMD vectors (256 floats with AVX-512). A chunk
//!   of one row's output stays in registers while that row's non-zeros of one gene block stream
//!   through: one weight load per fused multiply-add, no output traffic in the inner loop.
//! - Weights are stored chunk-major (`[chunk][gene][unit]`) so that a gene block's slice of one
//!   chunk is contiguous, and start on a cache line. With the allocator's 16-byte alignment
//!   every vector load straddled two lines: aligning them took the layer from about 19 to about
//!   31 GFMA/s.
//! - Gene blocks of 512 KiB per chunk stay in the 2 MiB per-core L2 while all the rows of a
//!   task pass over them. Blocks from 32 KiB (L1) to 1 MiB measured within run-to-run noise of
//!   each other once aligned; larger blocks mean fewer accumulator loads/stores and boundary
//!   searches per row.

use std::ops::Range;

use super::checkpoint::Dense;
use crate::data::CsrMatrix;
use crate::data::fastread::zeroed_huge;

/// Rows per pass over the weights; their output for one chunk (256 KiB) stays in L2.
pub const ROWS_PER_TASK: usize = 256;
/// Bytes of one gene block's weights for one output chunk (see the module docs).
const GENE_BLOCK_BYTES: usize = 512 << 10;
/// Accumulator vectors per output chunk.
const ACC: usize = 16;
/// Cache line size in floats.
const LINE: usize = 16;

/// The first layer laid out for [`sparse_first_layer`]: output units in chunks of [`ACC`] SIMD
/// vectors of the best instruction set found at run time, each chunk gene-major and contiguous,
/// starting on a 64-byte boundary.
#[derive(Debug, Clone)]
pub struct SparseWeights {
    /// Backing store; the weights are `storage[offset..offset + n_chunks * n_genes * chunk]`.
    storage: Vec<f32>,
    offset: usize,
    /// Bias padded to `n_chunks * chunk`.
    bias: Vec<f32>,
    /// Genes (input width).
    pub n_genes: usize,
    /// Output width.
    pub n_hidden: usize,
    /// Floats per chunk.
    chunk: usize,
}

/// Floats in [`ACC`] SIMD vectors of the best instruction set found at run time.
fn simd_chunk() -> usize {
    struct Lanes;
    impl pulp::WithSimd for Lanes {
        type Output = usize;
        #[inline(always)]
        fn with_simd<S: pulp::Simd>(self, _: S) -> usize {
            std::mem::size_of::<S::f32s>() / std::mem::size_of::<f32>()
        }
    }
    ACC * pulp::Arch::new().dispatch(Lanes)
}

impl SparseWeights {
    /// Lays out a PyTorch `[n_out, n_in]` layer.
    pub fn new(d: &Dense) -> Self {
        let chunk = simd_chunk();
        let n_chunks = d.n_out.div_ceil(chunk);
        let len = n_chunks * d.n_in * chunk;
        // Huge pages: a gene block's rows are scattered over 512 KiB, 128 small pages.
        let mut storage = zeroed_huge::<f32>(len + LINE - 1);
        // `align_offset` may in principle decline (usize::MAX); the layout is then merely slower.
        let offset = storage.as_ptr().align_offset(LINE * 4).min(LINE - 1);
        let blocked = &mut storage[offset..offset + len];
        for o in 0..d.n_out {
            let (c, i) = (o / chunk, o % chunk);
            let row = &d.weight[o * d.n_in..(o + 1) * d.n_in];
            for (g, &v) in row.iter().enumerate() {
                blocked[(c * d.n_in + g) * chunk + i] = v;
            }
        }
        let mut bias = d.bias.clone();
        bias.resize(n_chunks * chunk, 0.0);
        Self {
            storage,
            offset,
            bias,
            n_genes: d.n_in,
            n_hidden: d.n_out,
            chunk,
        }
    }

    /// `[n_chunks][n_genes][chunk]`, zero-padded past `n_hidden`.
    fn blocked(&self) -> &[f32] {
        &self.storage[self.offset..self.offset + self.bias.len() * self.n_genes]
    }
}

/// `x[rows] W^T + b` for rows of a sparse matrix (read in place, not copied), on the calling
/// thread; `[rows.len(), n_hidden]` row-major. Callers split large batches across threads
/// (rows in tasks of at most [`ROWS_PER_TASK`] keep their output in L2).
///
/// `x` must have `n_genes` columns and sorted column indices within each row (as
/// [`crate::data::genes::GeneAlignment::map_matrix`] and every reader of the data layer produce).
///
/// # Panics
/// If `x.n_cols != w.n_genes` or `rows` is not within `0..x.n_rows`.
pub fn sparse_first_layer(x: &CsrMatrix, rows: Range<usize>, w: &SparseWeights) -> Vec<f32> {
    assert_eq!(x.n_cols, w.n_genes, "input width");
    assert!(rows.start <= rows.end && rows.end <= x.n_rows, "row range");
    let hp = w.bias.len();
    let gene_block = (GENE_BLOCK_BYTES / (4 * w.chunk)).max(1);
    let mut out = vec![0f32; rows.len() * hp];
    let arch = pulp::Arch::new();
    for (task, chunk) in out.chunks_mut(ROWS_PER_TASK * hp).enumerate() {
        let r0 = rows.start + task * ROWS_PER_TASK;
        let n = chunk.len() / hp;
        for o in chunk.chunks_mut(hp) {
            o.copy_from_slice(&w.bias);
        }
        let mut start: Vec<usize> = (0..n).map(|r| x.indptr[r0 + r] as usize).collect();
        let mut end = start.clone();
        let mut g0 = 0usize;
        while g0 < x.n_cols {
            let g1 = (g0 + gene_block).min(x.n_cols) as u32;
            for (r, (e, &s)) in end.iter_mut().zip(&start).enumerate() {
                let stop = x.indptr[r0 + r + 1] as usize;
                *e = s + x.indices[s..stop].partition_point(|&g| g < g1);
            }
            arch.dispatch(BlockKernel {
                x,
                w: w.blocked(),
                chunk: w.chunk,
                n_genes: w.n_genes,
                out: chunk,
                start: &start,
                end: &end,
            });
            start.copy_from_slice(&end);
            g0 = g1 as usize;
        }
    }
    if hp != w.n_hidden {
        return out
            .chunks(hp)
            .flat_map(|r| r[..w.n_hidden].iter().copied())
            .collect();
    }
    out
}

/// One gene block for every row of a task: `out[r] += x[r, block] * W[block]`, the row's
/// non-zeros of the block being `start[r]..end[r]`.
struct BlockKernel<'a> {
    x: &'a CsrMatrix,
    /// [`SparseWeights::blocked`].
    w: &'a [f32],
    chunk: usize,
    n_genes: usize,
    out: &'a mut [f32],
    start: &'a [usize],
    end: &'a [usize],
}

impl pulp::WithSimd for BlockKernel<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) {
        let cw = self.chunk;
        let hp = self.out.len() / self.start.len().max(1);
        let (indices, data) = (&self.x.indices[..], &self.x.data[..]);
        for c in 0..hp / cw {
            let wc = &self.w[c * self.n_genes * cw..(c + 1) * self.n_genes * cw];
            for (r, (&a, &b)) in self.start.iter().zip(self.end).enumerate() {
                if a == b {
                    continue;
                }
                let y = &mut self.out[r * hp + c * cw..r * hp + (c + 1) * cw];
                let (yv, _) = S::as_mut_simd_f32s(y);
                // Fixed-size views: no bounds checks in the unrolled loop, and the accumulators
                // stay in registers.
                let Ok(yv) = <&mut [S::f32s; ACC]>::try_from(&mut yv[..ACC]) else {
                    continue;
                };
                let mut acc = *yv;
                for (&g, &v) in indices[a..b].iter().zip(&data[a..b]) {
                    let g = g as usize;
                    let v = simd.splat_f32s(v);
                    let (wv, _) = S::as_simd_f32s(&wc[g * cw..(g + 1) * cw]);
                    let Ok(wv) = <&[S::f32s; ACC]>::try_from(&wv[..ACC]) else {
                        continue;
                    };
                    for i in 0..ACC {
                        acc[i] = simd.mul_add_f32s(v, wv[i], acc[i]);
                    }
                }
                *yv = acc;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reproducible pseudo-random stream in `[0, 1)` (64-bit LCG, Knuth's MMIX constants).
    fn lcg(state: &mut u64) -> f32 {
        *state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (*state >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Many gene blocks, an output width that is not a multiple of the chunk, empty rows and
    /// rows whose non-zeros all fall in one block: equal to the plain dense product.
    #[test]
    fn matches_the_dense_product_across_gene_blocks() {
        let (n_in, n_out, n_rows) = (3_000, 70, 300);
        let mut s = 7u64;
        let d = Dense {
            weight: (0..n_in * n_out).map(|_| lcg(&mut s) - 0.5).collect(),
            bias: (0..n_out).map(|_| lcg(&mut s)).collect(),
            n_in,
            n_out,
        };
        let w = SparseWeights::new(&d);
        assert_eq!(
            w.blocked().as_ptr() as usize % 64,
            0,
            "weights start on a cache line"
        );
        let mut x = CsrMatrix {
            n_rows,
            n_cols: n_in,
            indptr: vec![0],
            indices: Vec::new(),
            data: Vec::new(),
        };
        for r in 0..n_rows {
            let density = [0.0, 0.3, 0.02][r % 3];
            for g in 0..n_in {
                let hit = if r % 7 == 0 {
                    g < 40
                } else {
                    lcg(&mut s) < density
                };
                if hit && density > 0.0 {
                    x.indices.push(g as u32);
                    x.data.push(lcg(&mut s) * 4.0);
                }
            }
            x.indptr.push(x.indices.len() as u64);
        }
        let got = sparse_first_layer(&x, 0..n_rows, &w);
        assert_eq!(got.len(), n_rows * n_out);
        let part = sparse_first_layer(&x, 100..221, &w);
        assert_eq!(part[..], got[100 * n_out..221 * n_out]);
        for r in 0..n_rows {
            let (idx, val) = x.row(r);
            for o in 0..n_out {
                let want: f64 = f64::from(d.bias[o])
                    + idx
                        .iter()
                        .zip(val)
                        .map(|(&g, &v)| f64::from(v) * f64::from(d.weight[o * n_in + g as usize]))
                        .sum::<f64>();
                let e = (f64::from(got[r * n_out + o]) - want).abs();
                assert!(e <= 1e-4 * want.abs().max(1.0), "row {r} unit {o}: {e}");
            }
        }
    }
}
