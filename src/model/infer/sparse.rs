//! The first Linear layer of the CPU inference path on sparse input: `x W^T + b` multiplying
//! only the stored values of `x`.
//!
//! The ssl_in_scg first layer (`n_genes -> 512`) is about 95% of the backbone's arithmetic,
//! and expression vectors are over 90% zeros. Here each stored value costs one multiply-add
//! per output unit, instead of `n_genes` multiply-adds per unit in a dense product.
//!
//! Kernel shape, measured on the full-size model with HER2+ ST spots (1,890 non-zeros per spot
//! after alignment; `examples/embed_bench.rs`) on a 2-core AVX-512 VM:
//! - Output units are split into chunks of 8 SIMD vectors (128 floats with AVX-512). A chunk
//!   of one row's output stays in registers while that row's non-zeros of one gene block stream
//!   through: one weight load per fused multiply-add, no output traffic in the inner loop.
//! - Weights are stored chunk-major (`[chunk][gene][unit]`) so that a gene block's slice of one
//!   chunk is contiguous, and start on a cache line. With the allocator's 16-byte alignment
//!   every vector load straddled two lines: aligning them took the layer from about 19 to about
//!   31 GFMA/s.
//! - Loads of weights from L2 and L3, not arithmetic, bound the layer: with every weight in L1
//!   the same loop runs about 1.5x faster (27 against 40-45 us per spot on one core). So the
//!   loops are blocked three ways:
//!   - a **super-block** of genes (1 MiB of one chunk's weights) stays in the 2 MiB per-core L2
//!     while every row of the call passes over it, so the whole matrix comes from L3 once per
//!     call (hence large calls: 512 or more rows);
//!   - within it, **blocks** of 64 KiB are taken by [`TILE_ROWS`] rows in turn, row by row, so
//!     the lines of genes that several of those rows share (about half a block's lines) are
//!     still in the 48 KiB L1 when the next row asks for them;
//!   - the summation order per row is unchanged (genes increasing), so the result does not
//!     depend on the blocking.
//!
//!   Against one row at a time over 512 KiB blocks (session 5) this took the layer from about 51
//!   to about 40 us per spot on one core, 27 to 22 on two (interleaved runs). Tiles of 8 to 64
//!   rows, blocks of 32 to 128 KiB, chunks of 4 to 16 vectors and super-blocks of 0.5 to 1.5 MiB
//!   were measured; sharing weight loads between rows in registers (genes present in two or more
//!   rows of a tile of 3 or 4) ran the multiply-adds faster but cost more to set up than it saved.
//! - What bounds it now (BENCHMARKS.md): besides L1 misses, the inner loop's exit, mispredicted
//!   about once per segment (a row's non-zeros in one block, about 12 here). The segments per
//!   row are the weight bytes over the block bytes, so the block size trades one limit against
//!   the other.

use std::ops::Range;

use crate::data::CsrMatrix;
use crate::data::fastread::zeroed_huge;
use crate::model::checkpoint::Dense;

/// Most rows per call: their output for one chunk (512 B per row) shares L2 with a super-block.
pub const ROWS_PER_TASK: usize = 1024;
/// Rows that take each gene block in turn (see the module docs).
const TILE_ROWS: usize = 32;
/// Bytes of one chunk's weights per gene block (L1-sized; see the module docs).
const BLOCK_BYTES: usize = 64 << 10;
/// Bytes of one chunk's weights per super-block (L2-sized).
const SUPER_BYTES: usize = 1 << 20;
/// Cache line size in floats.
const LINE: usize = 16;

/// The first layer laid out for [`sparse_first_layer`]: output units in chunks of one row's
/// accumulator vectors ([`simd_chunk`]), each chunk gene-major and contiguous, starting on a
/// 64-byte boundary.
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

/// Accumulator vectors per row: 8 of the 32 AVX-512 registers (fewer are bound by the
/// multiply-add latency, more make chunks too wide for the L1 blocks), 8 of the 16 AVX2 ones.
const VECTORS: usize = 8;

/// Floats per output chunk for the best instruction set found at run time.
fn simd_chunk() -> usize {
    struct Lanes;
    impl pulp::WithSimd for Lanes {
        type Output = usize;
        #[inline(always)]
        fn with_simd<S: pulp::Simd>(self, _: S) -> usize {
            std::mem::size_of::<S::f32s>() / std::mem::size_of::<f32>()
        }
    }
    VECTORS * pulp::Arch::new().dispatch(Lanes)
}

impl SparseWeights {
    /// Lays out a PyTorch `[n_out, n_in]` layer.
    pub fn new(d: &Dense) -> Self {
        let mut w = Self::zeroed(d.n_in, d.n_out, &d.bias);
        let chunk = w.chunk;
        let blocked = w.blocked_mut();
        for o in 0..d.n_out {
            let (c, i) = (o / chunk, o % chunk);
            let row = &d.weight[o * d.n_in..(o + 1) * d.n_in];
            for (g, &v) in row.iter().enumerate() {
                blocked[(c * d.n_in + g) * chunk + i] = v;
            }
        }
        w
    }

    /// Lays out a burn `Linear`'s weight, `[n_in, n_out]` row-major (`weight`), and its bias
    /// (`n_out`, or empty for none): a copy of `chunk` floats per gene and chunk, chunks in
    /// parallel. CPU training lays out the first layer this way at every step.
    ///
    /// # Panics
    /// If `weight.len() != n_in * n_out` or a non-empty bias is not `n_out` long.
    pub fn from_in_out(weight: &[f32], bias: &[f32], n_in: usize, n_out: usize) -> Self {
        use rayon::prelude::*;
        assert_eq!(weight.len(), n_in * n_out, "weight shape");
        let zeros;
        let bias = if bias.is_empty() {
            zeros = vec![0f32; n_out];
            &zeros
        } else {
            bias
        };
        let mut w = Self::zeroed(n_in, n_out, bias);
        let chunk = w.chunk;
        w.blocked_mut()
            .par_chunks_mut((n_in * chunk).max(1))
            .enumerate()
            .for_each(|(c, dst)| {
                let (o0, o1) = (c * chunk, ((c + 1) * chunk).min(n_out));
                for (g, d) in dst.chunks_mut(chunk).enumerate() {
                    d[..o1 - o0].copy_from_slice(&weight[g * n_out + o0..g * n_out + o1]);
                }
            });
        w
    }

    /// Zero weights for `n_in -> n_out`, cache-line aligned, with `bias` (`n_out` long).
    fn zeroed(n_in: usize, n_out: usize, bias: &[f32]) -> Self {
        assert_eq!(bias.len(), n_out, "bias length");
        let chunk = simd_chunk();
        let n_chunks = n_out.div_ceil(chunk);
        let len = n_chunks * n_in * chunk;
        // Huge pages: a super-block's weights span 1 MiB, 256 small pages.
        let storage = zeroed_huge::<f32>(len + LINE - 1);
        // `align_offset` may in principle decline (usize::MAX); the layout is then merely slower.
        let offset = storage.as_ptr().align_offset(LINE * 4).min(LINE - 1);
        let mut bias = bias.to_vec();
        bias.resize(n_chunks * chunk, 0.0);
        Self {
            storage,
            offset,
            bias,
            n_genes: n_in,
            n_hidden: n_out,
            chunk,
        }
    }

    fn blocked_mut(&mut self) -> &mut [f32] {
        let len = self.bias.len() * self.n_genes;
        &mut self.storage[self.offset..self.offset + len]
    }

    /// `[n_chunks][n_genes][chunk]`, zero-padded past `n_hidden`.
    fn blocked(&self) -> &[f32] {
        &self.storage[self.offset..self.offset + self.bias.len() * self.n_genes]
    }
}

/// `x[rows] W^T + b` for rows of a sparse matrix (read in place, not copied), on the calling
/// thread; `[rows.len(), n_hidden]` row-major. Callers split large batches across threads, in
/// calls of up to [`ROWS_PER_TASK`] rows (the weights come from L3 once per call).
///
/// `x` must have `n_genes` columns and sorted column indices within each row (as
/// [`crate::data::genes::GeneAlignment::map_matrix`] and every reader of the data layer produce).
///
/// # Panics
/// If `x.n_cols != w.n_genes`, `rows` is not within `0..x.n_rows`, or the rows hold 2^32 or
/// more non-zeros.
pub fn sparse_first_layer(x: &CsrMatrix, rows: Range<usize>, w: &SparseWeights) -> Vec<f32> {
    assert_eq!(x.n_cols, w.n_genes, "input width");
    assert!(rows.start <= rows.end && rows.end <= x.n_rows, "row range");
    let hp = w.bias.len();
    let mut out = Vec::with_capacity(rows.len() * hp);
    for _ in rows.clone() {
        out.extend_from_slice(&w.bias);
    }
    // A power of two (chunks are 8 SIMD vectors), so a gene's block is a shift away.
    let block = (BLOCK_BYTES / (4 * w.chunk)).max(1).next_power_of_two();
    let shift = block.trailing_zeros();
    let per_super = (SUPER_BYTES / (4 * w.chunk) / block).max(1);
    // Per row, where each gene block starts in the call's non-zeros `x.indices[base..]`, and
    // where the row ends. One sequential pass over the call's non-zeros (contiguous in CSR),
    // which the hardware prefetcher streams; a pass per super-block over 1,024 short runs
    // waited on memory for 6% of the engine's time.
    let base = x.indptr[rows.start] as usize;
    let nnz = x.indptr[rows.end] as usize - base;
    assert!(
        u32::try_from(nnz).is_ok(),
        "at most 2^32 - 1 non-zeros per call"
    );
    let stride = x.n_cols.div_ceil(block) + 1;
    let mut bounds = vec![0u32; rows.len() * stride];
    for (b, r) in bounds.chunks_mut(stride).zip(rows.clone()) {
        let (start, stop) = (x.indptr[r] as usize - base, x.indptr[r + 1] as usize - base);
        b[0] = start as u32;
        // Each block's end is one past its last non-zero (a store per non-zero, no branches);
        // empty blocks then take the end of the block before.
        for (p, &g) in (start + 1..).zip(&x.indices[base + start..base + stop]) {
            b[1 + (g as usize >> shift)] = p as u32;
        }
        for j in 1..stride {
            b[j] = b[j].max(b[j - 1]);
        }
    }
    let arch = pulp::Arch::new();
    let mut first_block = 0;
    while first_block + 1 < stride {
        let n_blocks = (stride - 1 - first_block).min(per_super);
        arch.dispatch(SuperBlock {
            indices: &x.indices[base..base + nnz],
            data: &x.data[base..base + nnz],
            w: w.blocked(),
            chunk: w.chunk,
            n_genes: w.n_genes,
            out: &mut out,
            bounds: &bounds,
            stride,
            first_block,
            n_blocks,
        });
        first_block += n_blocks;
    }
    if hp != w.n_hidden {
        return out
            .chunks(hp)
            .flat_map(|r| r[..w.n_hidden].iter().copied())
            .collect();
    }
    out
}

/// One super-block of genes (blocks `first_block..first_block + n_blocks`) for every row of a
/// call: `out[r] += x[r, super-block] W[super-block]`, row `r`'s non-zeros of block `j` being
/// `bounds[r * stride + j]..bounds[r * stride + j + 1]` in `indices` and `data`.
struct SuperBlock<'a> {
    /// The call's non-zeros.
    indices: &'a [u32],
    data: &'a [f32],
    /// [`SparseWeights::blocked`].
    w: &'a [f32],
    chunk: usize,
    n_genes: usize,
    out: &'a mut [f32],
    bounds: &'a [u32],
    stride: usize,
    first_block: usize,
    n_blocks: usize,
}

impl pulp::WithSimd for SuperBlock<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) {
        let cw = self.chunk;
        let n = self.bounds.len() / self.stride;
        let hp = self.out.len() / n.max(1);
        let (indices, data) = (self.indices, self.data);
        for c in 0..hp / cw {
            // One chunk's weights as vectors, gene `g` at `wc[g * VECTORS..]`: a constant
            // stride, so the inner loop computes addresses with a shift.
            let (wc, _) =
                S::as_simd_f32s(&self.w[c * self.n_genes * cw..(c + 1) * self.n_genes * cw]);
            for t0 in (0..n).step_by(TILE_ROWS) {
                for j in self.first_block..self.first_block + self.n_blocks {
                    for r in t0..(t0 + TILE_ROWS).min(n) {
                        let a = self.bounds[r * self.stride + j] as usize;
                        let b = self.bounds[r * self.stride + j + 1] as usize;
                        if a == b {
                            continue;
                        }
                        let o = r * hp + c * cw;
                        let (y, _) = S::as_mut_simd_f32s(&mut self.out[o..o + cw]);
                        // Fixed-size views: no bounds checks in the unrolled loop, and the
                        // accumulators stay in registers.
                        let Ok(y) = <&mut [S::f32s; VECTORS]>::try_from(&mut y[..VECTORS]) else {
                            continue;
                        };
                        let mut acc = *y;
                        for (&g, &v) in indices[a..b].iter().zip(&data[a..b]) {
                            let g = g as usize * VECTORS;
                            let Some(Ok(wv)) =
                                wc.get(g..g + VECTORS).map(<&[S::f32s; VECTORS]>::try_from)
                            else {
                                continue;
                            };
                            let v = simd.splat_f32s(v);
                            for i in 0..VECTORS {
                                acc[i] = simd.mul_add_f32s(v, wv[i], acc[i]);
                            }
                        }
                        *y = acc;
                    }
                }
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

    /// Many gene blocks and super-blocks, an output width that is not a multiple of the chunk,
    /// empty rows and rows whose non-zeros all fall in one block: equal to the plain dense
    /// product, and a range of rows equal to the same rows of the whole.
    #[test]
    fn matches_the_dense_product_across_gene_blocks() {
        let (n_in, n_out, n_rows) = (5_000, 300, 300);
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

    /// burn's `[in, out]` layout gives the same blocked weights as PyTorch's `[out, in]`,
    /// output widths that are and are not a multiple of the chunk.
    #[test]
    fn burn_layout_lays_out_as_the_pytorch_layout() {
        for (n_in, n_out) in [(37, 300), (5, 256), (100, 1)] {
            let mut s = 3u64;
            let d = Dense {
                weight: (0..n_in * n_out).map(|_| lcg(&mut s)).collect(),
                bias: (0..n_out).map(|_| lcg(&mut s)).collect(),
                n_in,
                n_out,
            };
            let mut in_out = vec![0f32; n_in * n_out];
            for o in 0..n_out {
                for i in 0..n_in {
                    in_out[i * n_out + o] = d.weight[o * n_in + i];
                }
            }
            let (a, b) = (
                SparseWeights::new(&d),
                SparseWeights::from_in_out(&in_out, &d.bias, n_in, n_out),
            );
            assert_eq!(a.blocked(), b.blocked(), "{n_in} x {n_out}");
            assert_eq!(a.bias, b.bias);
            let no_bias = SparseWeights::from_in_out(&in_out, &[], n_in, n_out);
            assert!(no_bias.bias.iter().all(|&v| v == 0.0));
        }
    }
}
