//! Running a model's backbone on batches of cells: the forward pass in eval mode (dropout off),
//! on the GPU through burn's wgpu backend, or on the CPU through cellscope's sparse first layer
//! followed by burn's CPU backend (`flex`) for the dense layers.
//!
//! Why a sparse first layer: the first Linear (`n_genes -> 512`) is about 95% of the arithmetic
//! of the ssl_in_scg backbone, and a cell's expression vector is over 90% zeros, so multiplying
//! only the stored values does several times less work than PyTorch's dense `x @ W^T`.

use std::sync::Arc;

use burn::tensor::{Device, Tensor, TensorData};

use super::checkpoint::{Activation, Dense, ModelWeights};
use crate::data::CsrMatrix;

/// Which compute path runs the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum EngineKind {
    /// Sparse first layer on the CPU (all cores) + burn `flex` for the dense layers.
    SparseCpu,
    /// Every layer on burn's `flex` CPU backend, input densified (a reference path).
    BurnCpu,
    /// Every layer on burn's wgpu backend (Vulkan, Metal, DX12; lavapipe without a GPU).
    Wgpu,
}

/// The user's backend choice (`--backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendChoice {
    /// wgpu when an adapter is found, else the CPU.
    Auto,
    /// The CPU (sparse first layer).
    Cpu,
    /// burn wgpu; an error when no adapter exists.
    Wgpu,
}

/// Looks for a wgpu adapter (any backend wgpu supports here) and returns its description.
pub fn probe_wgpu() -> Option<String> {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends: wgpu::Backends::PRIMARY,
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    });
    let adapter =
        pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default()))
            .ok()?;
    let info = adapter.get_info();
    Some(format!(
        "{} ({:?}, {:?})",
        info.name, info.backend, info.device_type
    ))
}

/// A backbone ready to run on one compute path.
pub struct Engine {
    kind: EngineKind,
    device: Device,
    description: String,
    activation: Activation,
    /// First layer transposed, `[n_genes, n_hidden]` row-major (sparse CPU path).
    first_t: Arc<Vec<f32>>,
    first_bias: Vec<f32>,
    n_genes: usize,
    n_hidden: usize,
    /// burn layers: weight `[in, out]`, bias `[1, out]`.
    layers: Vec<(Tensor<2>, Tensor<2>)>,
    head: Option<(Tensor<2>, Tensor<2>)>,
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
        let (kind, device, description) = match choice {
            BackendChoice::Cpu => (
                EngineKind::SparseCpu,
                Device::flex(),
                format!("CPU ({} threads, sparse first layer)", rayon::current_num_threads()),
            ),
            BackendChoice::Wgpu | BackendChoice::Auto => match probe_wgpu() {
                Some(name) => (
                    EngineKind::Wgpu,
                    Device::wgpu(burn::tensor::DeviceKind::DefaultDevice),
                    format!("GPU via burn wgpu: {name}"),
                ),
                None if choice == BackendChoice::Auto => (
                    EngineKind::SparseCpu,
                    Device::flex(),
                    format!(
                        "CPU ({} threads, sparse first layer; no wgpu adapter found)",
                        rayon::current_num_threads()
                    ),
                ),
                None => return Err("--backend wgpu: no wgpu adapter found (install a Vulkan driver, e.g. mesa-vulkan-drivers)".into()),
            },
        };
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
        let (n_genes, n_hidden) = (first.n_in, first.n_out);
        let first_t = if kind == EngineKind::SparseCpu {
            let mut t = vec![0f32; n_genes * n_hidden];
            for o in 0..n_hidden {
                for i in 0..n_genes {
                    t[i * n_hidden + o] = first.weight[o * n_genes + i];
                }
            }
            t
        } else {
            Vec::new()
        };
        let skip = usize::from(kind == EngineKind::SparseCpu);
        let layers = model.backbone[skip..]
            .iter()
            .map(|d| to_burn(d, &device))
            .collect();
        Self {
            kind,
            description,
            activation: model.activation,
            first_t: Arc::new(first_t),
            first_bias: first.bias.clone(),
            n_genes,
            n_hidden,
            layers,
            head: model.head.as_ref().map(|h| to_burn(h, &device)),
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
        self.backbone(x)
            .into_data()
            .try_into_vec::<f32>()
            .unwrap_or_default()
    }

    /// Classifier logits of a batch, `[n_rows, n_types]`; `None` for models without a head.
    pub fn logits(&self, x: &CsrMatrix) -> Option<Vec<f32>> {
        let (w, b) = self.head.as_ref()?;
        let e = activate(self.backbone(x), self.activation);
        Some(
            (e.matmul(w.clone()) + b.clone())
                .into_data()
                .try_into_vec::<f32>()
                .unwrap_or_default(),
        )
    }

    fn backbone(&self, x: &CsrMatrix) -> Tensor<2> {
        assert_eq!(
            x.n_cols, self.n_genes,
            "input width must equal the model's gene count"
        );
        let mut h = match self.kind {
            EngineKind::SparseCpu => {
                let h1 = sparse_first_layer(x, &self.first_t, &self.first_bias, self.n_hidden);
                Tensor::<2>::from_data(TensorData::new(h1, [x.n_rows, self.n_hidden]), &self.device)
            }
            EngineKind::BurnCpu | EngineKind::Wgpu => {
                let dense = x.to_dense().into_raw_vec_and_offset().0;
                Tensor::<2>::from_data(
                    TensorData::new(dense, [x.n_rows, self.n_genes]),
                    &self.device,
                )
            }
        };
        for (k, (w, b)) in self.layers.iter().enumerate() {
            // The sparse path has already applied layer 0; activation precedes every later layer.
            if self.kind == EngineKind::SparseCpu || k > 0 {
                h = activate(h, self.activation);
            }
            h = h.matmul(w.clone()) + b.clone();
        }
        h
    }
}

/// `x W1^T + b1` for a sparse batch, `[n_rows, n_hidden]` row-major, with `w_t` the first layer
/// transposed (`[n_genes, n_hidden]`). Rows are split over the rayon pool; within a thread,
/// genes are walked in blocks whose weight rows fit the L2 cache, so the weights stream from
/// memory once per row chunk rather than once per cell.
pub fn sparse_first_layer(x: &CsrMatrix, w_t: &[f32], bias: &[f32], n_hidden: usize) -> Vec<f32> {
    use rayon::prelude::*;
    const ROWS_PER_TASK: usize = 64;
    const GENE_BLOCK: usize = 256;
    let mut out = vec![0f32; x.n_rows * n_hidden];
    let arch = pulp::Arch::new();
    out.par_chunks_mut(ROWS_PER_TASK * n_hidden)
        .enumerate()
        .for_each(|(task, chunk)| {
            let r0 = task * ROWS_PER_TASK;
            let rows = chunk.len() / n_hidden;
            for o in chunk.chunks_mut(n_hidden) {
                o.copy_from_slice(bias);
            }
            let mut cursor: Vec<usize> = (0..rows).map(|r| x.indptr[r0 + r] as usize).collect();
            let mut g0 = 0;
            while g0 < x.n_cols {
                let g1 = (g0 + GENE_BLOCK).min(x.n_cols) as u32;
                for r in 0..rows {
                    let end = x.indptr[r0 + r + 1] as usize;
                    let mut k = cursor[r];
                    let o = &mut chunk[r * n_hidden..(r + 1) * n_hidden];
                    while k < end && x.indices[k] < g1 {
                        let g = x.indices[k] as usize;
                        axpy(arch, x.data[k], &w_t[g * n_hidden..(g + 1) * n_hidden], o);
                        k += 1;
                    }
                    cursor[r] = k;
                }
                g0 = g1 as usize;
            }
        });
    out
}

/// `y += a * x`, vectorised for the CPU found at run time (AVX2/FMA, AVX-512, NEON).
#[inline]
fn axpy(arch: pulp::Arch, a: f32, x: &[f32], y: &mut [f32]) {
    struct Axpy<'a> {
        a: f32,
        x: &'a [f32],
        y: &'a mut [f32],
    }
    impl pulp::WithSimd for Axpy<'_> {
        type Output = ();
        #[inline(always)]
        fn with_simd<S: pulp::Simd>(self, simd: S) {
            let (yh, yt) = S::as_mut_simd_f32s(self.y);
            let (xh, xt) = S::as_simd_f32s(self.x);
            let a = simd.splat_f32s(self.a);
            for (y, x) in yh.iter_mut().zip(xh) {
                *y = simd.mul_add_f32s(a, *x, *y);
            }
            for (y, x) in yt.iter_mut().zip(xt) {
                *y = self.a.mul_add(*x, *y);
            }
        }
    }
    arch.dispatch(Axpy { a, x, y });
}
