//! Running a model's backbone on batches of cells: the forward pass in eval mode (dropout off),
//! on the GPU through burn's wgpu backend, or on the CPU through cellscope's sparse first layer
//! ([`crate::model::sparse`]) followed by the dense layers of [`crate::model::dense`] (`gemm`, the kernel of
//! burn's CPU backend).

use std::ops::Range;
use std::sync::Arc;

use burn::tensor::{Device, Tensor, TensorData};

use crate::data::CsrMatrix;
use crate::model::checkpoint::{Activation, Dense, ModelWeights};
use crate::model::dense;
use crate::model::nets::{Classifier, Mlp, linear_from_dense};
use crate::model::sparse::{ROWS_PER_TASK, SparseWeights, sparse_first_layer};

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

/// The user's backend choice (the CLI's `--backend`, the window's backend picker).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum BackendChoice {
    /// wgpu on a hardware GPU adapter, else the CPU (a software adapter such as lavapipe is slower than the CPU path).
    #[default]
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

/// Why no engine could be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// The GPU backend was asked for and no wgpu adapter exists.
    #[error(
        "GPU backend (wgpu) asked for, but no wgpu adapter was found (install a Vulkan driver, e.g. mesa-vulkan-drivers)"
    )]
    NoAdapter,
    /// The model has no backbone layers.
    #[error("the model has no backbone layers")]
    EmptyBackbone,
}

/// The compute path and burn device for a backend choice, with a description for the user.
/// `Auto` takes wgpu only for a hardware adapter: on a software adapter (lavapipe) the CPU path
/// is several times faster. `Wgpu` takes any adapter.
///
/// # Errors
/// `Wgpu` when no adapter exists.
pub fn select_device(choice: BackendChoice) -> Result<(EngineKind, Device, String), EngineError> {
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
        BackendChoice::Wgpu => probe_adapter()
            .map(|(name, _)| gpu(name))
            .ok_or(EngineError::NoAdapter),
        BackendChoice::Auto => Ok(match probe_adapter() {
            Some((name, true)) => gpu(name),
            Some((name, false)) => cpu(&format!("; software adapter {name} skipped")),
            None => cpu("; no wgpu adapter found"),
        }),
    }
}

impl BackendChoice {
    /// Every choice, in the order menus list them.
    pub const ALL: [BackendChoice; 3] =
        [BackendChoice::Auto, BackendChoice::Cpu, BackendChoice::Wgpu];

    /// The choice in words (as the CLI spells it).
    pub fn name(self) -> &'static str {
        match self {
            BackendChoice::Auto => "auto",
            BackendChoice::Cpu => "cpu",
            BackendChoice::Wgpu => "wgpu",
        }
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
    /// The burn paths' network: the backbone, with the classifier head when the model has one
    /// (the same modules and forward pass training uses, [`crate::model::nets`]).
    net: Option<BurnNet>,
}

/// The backbone on a burn device, with its classifier head when there is one.
enum BurnNet {
    Backbone(Mlp),
    Classifier(Classifier),
}

impl BurnNet {
    fn backbone(&self) -> &Mlp {
        match self {
            BurnNet::Backbone(m) => m,
            BurnNet::Classifier(c) => &c.backbone,
        }
    }
}

/// The sparse CPU path: the first layer laid out for [`sparse_first_layer`], the later layers
/// and the head run by [`dense`].
struct CpuLayers {
    first: SparseWeights,
    /// What the later layers cost per row, in first-layer non-zeros ([`balanced_split`]).
    row_cost: u64,
    rest: Vec<Dense>,
    head: Option<Dense>,
}

/// How many times faster `gemm` does a multiply-add on the dense layers than the sparse first
/// layer does per non-zero (measured with `perf` on `examples/embed_bench.rs`: about 28 against
/// 8-10 per cycle); sets [`CpuLayers::row_cost`].
const GEMM_SPEEDUP: usize = 3;

/// Splits `rows` into `parts` consecutive ranges of about equal cost, a row costing its
/// number of non-zeros plus `row_cost`. Splitting by row count instead left one core idle for
/// about 7% of a batch of HER2+ ST spots, whose non-zeros per 512 rows differ by up to 20%.
fn balanced_split(
    x: &CsrMatrix,
    rows: Range<usize>,
    parts: usize,
    row_cost: u64,
) -> Vec<Range<usize>> {
    let base = x.indptr[rows.start];
    let cost = |r: usize| x.indptr[r] - base + row_cost * (r - rows.start) as u64;
    let total = cost(rows.end);
    let parts = parts.max(1) as u64;
    let mut out = Vec::with_capacity(parts as usize);
    let mut start = rows.start;
    for k in 1..=parts {
        let end = if k == parts {
            rows.end
        } else {
            // The row boundary nearest k/parts of the cost (bisection: `cost` grows), leaving
            // at least one row to this part and to each later one.
            let target = total * k / parts;
            let (mut lo, mut hi) = (start, rows.end);
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if cost(mid) < target {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            if lo > start && target - cost(lo - 1) < cost(lo) - target {
                lo -= 1;
            }
            let last = rows.end.saturating_sub((parts - k) as usize);
            lo.clamp((start + 1).min(last), last.max(start))
        };
        if end > start {
            out.push(start..end);
        }
        start = end;
    }
    out
}

impl Engine {
    /// Prepares `model` for `choice`.
    ///
    /// # Errors
    /// `--backend wgpu` when no wgpu adapter exists; an empty backbone.
    pub fn new(model: &ModelWeights, choice: BackendChoice) -> Result<Self, EngineError> {
        let first = model.backbone.first().ok_or(EngineError::EmptyBackbone)?;
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
            // A non-zero of the sparse layer costs `n_hidden` multiply-adds, done
            // GEMM_SPEEDUP times slower than the dense layers' ones.
            let dense_fma: usize = model.backbone[1..].iter().map(|d| d.n_in * d.n_out).sum();
            Arc::new(CpuLayers {
                first: SparseWeights::new(first),
                row_cost: (dense_fma / (GEMM_SPEEDUP * first.n_out.max(1))) as u64,
                rest: model.backbone[1..].to_vec(),
                head: model.head.clone(),
            })
        });
        let net = cpu.is_none().then(|| {
            // Eval mode: dropout is inactive off an autodiff device.
            let backbone = Mlp::from_dense(&model.backbone, model.activation, 0.0, false, &device);
            match &model.head {
                Some(h) => BurnNet::Classifier(Classifier {
                    backbone,
                    head: linear_from_dense(h, &device),
                }),
                None => BurnNet::Backbone(backbone),
            }
        });
        Self {
            kind,
            description,
            activation: model.activation,
            cpu,
            n_genes: first.n_in,
            net,
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
        self.embed_rows(x, 0..x.n_rows)
    }

    /// [`Engine::embed`] of rows `rows` of `x`, `[rows.len(), embedding_dim]`; the CPU path
    /// reads them in place.
    ///
    /// # Panics
    /// If `x.n_cols` differs from the model's input width or `rows` is out of range.
    pub fn embed_rows(&self, x: &CsrMatrix, rows: Range<usize>) -> Vec<f32> {
        if let Some(cpu) = &self.cpu {
            return self.cpu_backbone(cpu, x, rows);
        }
        self.backbone(&x.slice_rows(rows.start, rows.end))
            .into_data()
            .try_into_vec::<f32>()
            .unwrap_or_default()
    }

    /// Classifier logits of a batch, `[n_rows, n_types]`; `None` for models without a head.
    pub fn logits(&self, x: &CsrMatrix) -> Option<Vec<f32>> {
        if let Some(cpu) = &self.cpu {
            let head = cpu.head.as_ref()?;
            let mut e = self.cpu_backbone(cpu, x, 0..x.n_rows);
            dense::activate(&mut e, self.activation);
            return Some(dense::linear(&e, x.n_rows, head));
        }
        let Some(BurnNet::Classifier(c)) = &self.net else {
            return None;
        };
        Some(
            c.forward(self.input(x))
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
    ///
    /// Rows are split into one task per core (more when that would exceed [`ROWS_PER_TASK`]
    /// rows each) of about equal cost ([`balanced_split`]), and each task runs the whole
    /// backbone on its rows: the dense layers need no synchronisation between cores and the
    /// activations stay with the core that made them.
    fn cpu_backbone(&self, cpu: &CpuLayers, x: &CsrMatrix, rows: Range<usize>) -> Vec<f32> {
        use rayon::prelude::*;
        self.check_width(x);
        let width = cpu.rest.last().map_or(cpu.first.n_hidden, |d| d.n_out);
        let parts = rayon::current_num_threads()
            .max(rows.len().div_ceil(ROWS_PER_TASK))
            .min(rows.len().max(1));
        let mut out = vec![0f32; rows.len() * width];
        let mut tasks = Vec::with_capacity(parts);
        let mut rest = &mut out[..];
        for r in balanced_split(x, rows.clone(), parts, cpu.row_cost) {
            let (o, tail) = rest.split_at_mut(r.len() * width);
            tasks.push((r, o));
            rest = tail;
        }
        tasks.into_par_iter().for_each(|(r, o)| {
            let n = r.len();
            let mut h = sparse_first_layer(x, r, &cpu.first);
            for d in &cpu.rest {
                dense::activate(&mut h, self.activation);
                h = dense::linear(&h, n, d);
            }
            o.copy_from_slice(&h);
        });
        out
    }

    /// A batch as a dense tensor on the burn device, `[n_rows, n_genes]`.
    fn input(&self, x: &CsrMatrix) -> Tensor<2> {
        self.check_width(x);
        let dense = x.to_dense().into_raw_vec_and_offset().0;
        Tensor::<2>::from_data(
            TensorData::new(dense, [x.n_rows, self.n_genes]),
            &self.device,
        )
    }

    /// The backbone on the burn device, `[n_rows, n_genes] -> [n_rows, embedding_dim]` (the
    /// output of the last Linear, as the ssl_in_scg models' embedding).
    fn backbone(&self, x: &CsrMatrix) -> Tensor<2> {
        let input = self.input(x);
        match &self.net {
            Some(n) => n.backbone().forward(input),
            None => input,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Consecutive ranges covering the rows; each part's cost within one row's cost of the
    /// mean; a row with most of the non-zeros gets a part of its own.
    #[test]
    fn balanced_split_evens_out_nonzeros() {
        let nnz: Vec<u64> = (0..1000).map(|r| 100 + (r * 37 % 900) as u64).collect();
        let indptr: Vec<u64> = std::iter::once(0)
            .chain(nnz.iter().scan(0, |sum, n| {
                *sum += n;
                Some(*sum)
            }))
            .collect();
        let x = CsrMatrix {
            n_rows: nnz.len(),
            n_cols: 1,
            indptr,
            indices: Vec::new(),
            data: Vec::new(),
        };
        for (rows, parts, row_cost) in [(0..1000, 2, 0), (100..900, 3, 300), (5..6, 4, 0)] {
            let split = balanced_split(&x, rows.clone(), parts, row_cost);
            assert_eq!(split.first().map(|r| r.start), Some(rows.start));
            assert_eq!(split.last().map(|r| r.end), Some(rows.end));
            assert!(
                split
                    .windows(2)
                    .all(|w| w[0].end == w[1].start && w[0].start < w[0].end)
            );
            assert_eq!(split.len(), parts.min(rows.len()));
            let cost = |r: &Range<usize>| r.clone().map(|i| nnz[i] + row_cost).sum::<u64>();
            let mean = rows.clone().map(|i| nnz[i] + row_cost).sum::<u64>() / parts as u64;
            for r in &split {
                assert!(
                    cost(r).abs_diff(mean) <= 1000 + row_cost,
                    "{r:?}: {}",
                    cost(r)
                );
            }
        }
        let mut skewed = x.clone();
        skewed.indptr = vec![0, 10, 10_010, 10_020];
        skewed.n_rows = 3;
        assert_eq!(balanced_split(&skewed, 0..3, 3, 0), vec![0..1, 1..2, 2..3]);
    }
}
