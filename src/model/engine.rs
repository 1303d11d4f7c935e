//! Running a model's backbone on batches of cells: the forward pass in eval mode (dropout off),
//! on the GPU through burn's wgpu backend, or on the CPU through cellscope's sparse first layer
//! followed by the dense layers of [`super::dense`] (`gemm`, the kernel of burn's CPU backend).
//!
//! Why a sparse first layer: the first Linear (`n_genes -> 512`) is about 95% of the arithmetic
//! of the ssl_in_scg backbone, and a cell's expression vector is over 90% zeros, so multiplying
//! only the stored values does several times less work than PyTorch's dense `x @ W^T`.

use std::sync::Arc;

use burn::tensor::{Device, Tensor, TensorData};

use super::checkpoint::{Activation, Dense, ModelWeights};
use super::dense;
use crate::data::CsrMatrix;

/// Which compute path runs the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum EngineKind {
    /// Sparse first layer on the CPU (all cores), then `gemm` for the dense layers.
    SparseCpu,
    /// Every layer on burn's `flex` CPU backend, input densified (a reference path).
    BurnCpu,
    /// Every layer on burn's wgpu backend (Vulkan, Metal, DX12; lavapipe without a GPU).
    Wgpu,
}

/// The user's backend choice (`--backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendChoice {
    /// wgpu on a hardware GPU adapter, else the CPU (a software adapter such as lavapipe is slower than the CPU path).
    Auto,
    /// The CPU (sparse first layer).
    Cpu,
    /// burn wgpu; an error when no adapter exists.
    Wgpu,
}

/// Looks for a wgpu adapter (any backend wgpu supports here) and returns its description.
pub fn probe_wgpu() -> Option<String> {
    probe_adapter().map(|(name, _)| name)
}

/// The default wgpu adapter's description and whether it is a real GPU (not a software
/// rasteriser such as lavapipe, whose device type is `Cpu`).
fn probe_adapter() -> Option<(String, bool)> {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends: wgpu::Backends::PRIMARY,
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    });
    let adapter =
        pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default()))
            .ok()?;
    let info = adapter.get_info();
    Some((
        format!("{} ({:?}, {:?})", info.name, info.backend, info.device_type),
        info.device_type != wgpu::DeviceType::Cpu,
    ))
}

/// The compute path and burn device for a backend choice, with a description for the user.
/// `Auto` takes wgpu only for a hardware adapter: on a software adapter (lavapipe) the CPU path
/// is several times faster. `Wgpu` takes any adapter.
///
/// # Errors
/// `Wgpu` when no adapter exists.
pub fn select_device(choice: BackendChoice) -> Result<(EngineKind, Device, String), String> {
    let threads = rayon::current_num_threads();
    let cpu = |note: &str| {
        (
            EngineKind::SparseCpu,
            Device::flex(),
            format!("CPU ({threads} threads{note})"),
        )
    };
    let gpu = |name: String| {
        (
            EngineKind::Wgpu,
            Device::wgpu(burn::tensor::DeviceKind::DefaultDevice),
            format!("GPU via burn wgpu: {name}"),
        )
    };
    match choice {
        BackendChoice::Cpu => Ok(cpu("")),
        BackendChoice::Wgpu => probe_adapter().map(|(name, _)| gpu(name)).ok_or_else(|| {
            "--backend wgpu: no wgpu adapter found (install a Vulkan driver, e.g. mesa-vulkan-drivers)".to_string()
        }),
        BackendChoice::Auto => Ok(match probe_adapter() {
            Some((name, true)) => gpu(name),
            Some((name, false)) => cpu(&format!("; software adapter {name} skipped")),
            None => cpu("; no wgpu adapter found"),
        }),
    }
}

/// A backbone ready to run on one compute path.
pub struct Engine {
    kind: EngineKind,
    device: Device,
    description: String,
    activation: Activation,
    /// The sparse CPU path's layers (`None` on the burn paths).
    cpu: Option<Arc<CpuLayers>>,
    n_genes: usize,
    /// burn layers: weight `[in, out]`, bias `[1, out]` (burn paths only).
    layers: Vec<(Tensor<2>, Tensor<2>)>,
    head: Option<(Tensor<2>, Tensor<2>)>,
}

/// The sparse CPU path: the first layer laid out for [`sparse_first_layer`], the later layers
/// and the head run by [`dense`].
struct CpuLayers {
    first: SparseWeights,
    rest: Vec<Dense>,
    head: Option<Dense>,
}

fn to_burn(d: &Dense, device: &Device) -> (Tensor<2>, Tensor<2>) {
    // PyTorch [out, in] -> burn [in, out].
    let mut wt = vec![0f32; d.weight.len()];
    for o in 0..d.n_out {
        for i in 0..d.n_in {
            wt[i * d.n_out + o] = d.weight[o * d.n_in + i];
        }
    }
    let w = Tensor::<2>::from_data(TensorData::new(wt, [d.n_in, d.n_out]), device);
    let b = Tensor::<2>::from_data(TensorData::new(d.bias.clone(), [1, d.n_out]), device);
    (w, b)
}

fn activate(x: Tensor<2>, a: Activation) -> Tensor<2> {
    match a {
        Activation::Selu => burn::tensor::activation::selu(x),
        Activation::Relu => burn::tensor::activation::relu(x),
    }
}

impl Engine {
    /// Prepares `model` for `choice`.
    ///
    /// # Errors
    /// `--backend wgpu` when no wgpu adapter exists; an empty backbone.
    pub fn new(model: &ModelWeights, choice: BackendChoice) -> Result<Self, String> {
        let first = model
            .backbone
            .first()
            .ok_or_else(|| "the model has no backbone layers".to_string())?;
        let (kind, device, mut description) = select_device(choice)?;
        if kind == EngineKind::SparseCpu {
            description = description.replacen(" threads", " threads, sparse first layer", 1);
        }
        Ok(Self::with_device(model, kind, device, description, first))
    }

    /// Prepares `model` on burn's CPU backend with every layer dense (the reference path used to
    /// check the sparse kernel).
    pub fn burn_cpu(model: &ModelWeights) -> Option<Self> {
        let first = model.backbone.first()?;
        Some(Self::with_device(
            model,
            EngineKind::BurnCpu,
            Device::flex(),
            "CPU via burn flex (dense)".into(),
            first,
        ))
    }

    fn with_device(
        model: &ModelWeights,
        kind: EngineKind,
        device: Device,
        description: String,
        first: &Dense,
    ) -> Self {
        let cpu = (kind == EngineKind::SparseCpu).then(|| {
            Arc::new(CpuLayers {
                first: SparseWeights::new(first),
                rest: model.backbone[1..].to_vec(),
                head: model.head.clone(),
            })
        });
        let (layers, head) = if cpu.is_some() {
            (Vec::new(), None)
        } else {
            (
                model.backbone.iter().map(|d| to_burn(d, &device)).collect(),
                model.head.as_ref().map(|h| to_burn(h, &device)),
            )
        };
        Self {
            kind,
            description,
            activation: model.activation,
            cpu,
            n_genes: first.n_in,
            layers,
            head,
            device,
        }
    }

    /// The compute path.
    pub fn kind(&self) -> EngineKind {
        self.kind
    }

    /// Which device runs it, in words (reported to the user).
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Embeddings of a batch, `[n_rows, embedding_dim]` row-major. `x` holds the cells in the
    /// model's gene order (`n_cols == n_genes`), preprocessed as the model expects.
    ///
    /// # Panics
    /// If `x.n_cols` differs from the model's input width.
    pub fn embed(&self, x: &CsrMatrix) -> Vec<f32> {
        if let Some(cpu) = &self.cpu {
            return self.cpu_backbone(cpu, x);
        }
        self.backbone(x)
            .into_data()
            .try_into_vec::<f32>()
            .unwrap_or_default()
    }

    /// Classifier logits of a batch, `[n_rows, n_types]`; `None` for models without a head.
    pub fn logits(&self, x: &CsrMatrix) -> Option<Vec<f32>> {
        if let Some(cpu) = &self.cpu {
            let head = cpu.head.as_ref()?;
            let mut e = self.cpu_backbone(cpu, x);
            dense::activate(&mut e, self.activation);
            return Some(dense::linear(&e, x.n_rows, head));
        }
        let (w, b) = self.head.as_ref()?;
        let e = activate(self.backbone(x), self.activation);
        Some(
            (e.matmul(w.clone()) + b.clone())
                .into_data()
                .try_into_vec::<f32>()
                .unwrap_or_default(),
        )
    }

    fn check_width(&self, x: &CsrMatrix) {
        assert_eq!(
            x.n_cols, self.n_genes,
            "input width must equal the model's gene count"
        );
    }

    /// Sparse first layer, then activation and Linear per later layer.
    fn cpu_backbone(&self, cpu: &CpuLayers, x: &CsrMatrix) -> Vec<f32> {
        self.check_width(x);
        let mut h = sparse_first_layer(x, &cpu.first);
        for d in &cpu.rest {
            dense::activate(&mut h, self.activation);
            h = dense::linear(&h, x.n_rows, d);
        }
        h
    }

    fn backbone(&self, x: &CsrMatrix) -> Tensor<2> {
        self.check_width(x);
        let dense = x.to_dense().into_raw_vec_and_offset().0;
        let mut h = Tensor::<2>::from_data(
            TensorData::new(dense, [x.n_rows, self.n_genes]),
            &self.device,
        );
        for (k, (w, b)) in self.layers.iter().enumerate() {
            // Activation precedes every layer but the first.
            if k > 0 {
                h = activate(h, self.activation);
            }
            h = h.matmul(w.clone()) + b.clone();
        }
        h
    }
}

/// The first layer laid out for [`sparse_first_layer`]: column chunks of `chunk` floats (16 SIMD
/// vectors of the CPU found at run time), each chunk gene-major and contiguous, so the weights a
/// gene block needs for one chunk form one contiguous L1-sized slice (a plain `[n_genes,
/// n_hidden]` layout puts those rows 2 KiB apart, which maps them onto a few L1 sets and
/// thrashes them).
#[derive(Debug, Clone)]
pub struct SparseWeights {
    /// `[n_chunks][n_genes][chunk]`, zero-padded past `n_hidden`.
    pub blocked: Vec<f32>,
    /// Bias padded to `n_chunks * chunk`.
    pub bias: Vec<f32>,
    /// Genes (input width).
    pub n_genes: usize,
    /// Output width.
    pub n_hidden: usize,
    /// Floats per chunk.
    pub chunk: usize,
}

/// Floats in 16 SIMD vectors of the best instruction set found at run time.
fn simd_chunk() -> usize {
    struct Lanes;
    impl pulp::WithSimd for Lanes {
        type Output = usize;
        #[inline(always)]
        fn with_simd<S: pulp::Simd>(self, _: S) -> usize {
            std::mem::size_of::<S::f32s>() / std::mem::size_of::<f32>()
        }
    }
    16 * pulp::Arch::new().dispatch(Lanes)
}

impl SparseWeights {
    /// Lays out a PyTorch `[n_out, n_in]` layer.
    pub fn new(d: &Dense) -> Self {
        let chunk = simd_chunk();
        let n_chunks = d.n_out.div_ceil(chunk);
        let mut blocked = vec![0f32; n_chunks * d.n_in * chunk];
        for o in 0..d.n_out {
            let (c, i) = (o / chunk, o % chunk);
            for g in 0..d.n_in {
                blocked[(c * d.n_in + g) * chunk + i] = d.weight[o * d.n_in + g];
            }
        }
        let mut bias = d.bias.clone();
        bias.resize(n_chunks * chunk, 0.0);
        Self {
            blocked,
            bias,
            n_genes: d.n_in,
            n_hidden: d.n_out,
            chunk,
        }
    }
}

/// `x W1^T + b1` for a sparse batch, `[n_rows, n_hidden]` row-major.
///
/// Rows are split over the rayon pool. Within a task the genes are walked in blocks whose
/// weight slice for one output chunk fits the L1 cache, and each chunk of a row's output is
/// held in 16 SIMD registers while the row's non-zeros of the block stream through: one weight
/// load per fused multiply-add, no output traffic in the inner loop.
pub fn sparse_first_layer(x: &CsrMatrix, w: &SparseWeights) -> Vec<f32> {
    use rayon::prelude::*;
    const ROWS_PER_TASK: usize = 256;
    let hp = w.bias.len();
    // Genes per block: the block's slice of one chunk is 32 KiB.
    let gene_block = (8192 / w.chunk).max(1);
    let mut out = vec![0f32; x.n_rows * hp];
    let arch = pulp::Arch::new();
    out.par_chunks_mut(ROWS_PER_TASK * hp)
        .enumerate()
        .for_each(|(task, chunk)| {
            let r0 = task * ROWS_PER_TASK;
            let rows = chunk.len() / hp;
            for o in chunk.chunks_mut(hp) {
                o.copy_from_slice(&w.bias);
            }
            let mut start: Vec<usize> = (0..rows).map(|r| x.indptr[r0 + r] as usize).collect();
            let mut end = start.clone();
            let mut g0 = 0usize;
            while g0 < x.n_cols {
                let g1 = (g0 + gene_block).min(x.n_cols) as u32;
                for r in 0..rows {
                    let stop = x.indptr[r0 + r + 1] as usize;
                    let mut k = start[r];
                    while k < stop && x.indices[k] < g1 {
                        k += 1;
                    }
                    end[r] = k;
                }
                arch.dispatch(BlockKernel {
                    x,
                    w,
                    out: chunk,
                    start: &start,
                    end: &end,
                });
                start.copy_from_slice(&end);
                g0 = g1 as usize;
            }
        });
    if hp != w.n_hidden {
        return out
            .chunks(hp)
            .flat_map(|r| r[..w.n_hidden].iter().copied())
            .collect();
    }
    out
}

/// One gene block for every row of a task: `out[r] += x[r, block] * W[block]`.
struct BlockKernel<'a> {
    x: &'a CsrMatrix,
    w: &'a SparseWeights,
    out: &'a mut [f32],
    start: &'a [usize],
    end: &'a [usize],
}

impl pulp::WithSimd for BlockKernel<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) {
        const ACC: usize = 16;
        let cw = self.w.chunk;
        let hp = self.w.bias.len();
        let n_genes = self.w.n_genes;
        for c in 0..hp / cw {
            let base = c * n_genes * cw;
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
                for k in a..b {
                    let g = self.x.indices[k] as usize;
                    let v = simd.splat_f32s(self.x.data[k]);
                    let (wv, _) =
                        S::as_simd_f32s(&self.w.blocked[base + g * cw..base + (g + 1) * cw]);
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
