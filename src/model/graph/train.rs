//! Full-batch training of the spatial-domain networks on one slide, as their public code
//! trains them: STAGATE (`Train_STAGATE.py`: Adam lr 1e-3, weight decay 1e-4 as an L2 term,
//! `clip_grad_norm_(5)`, 1,000 epochs) and GraphST (`GraphST.py`: Adam lr 1e-3, no weight
//! decay, a fresh row shuffle each epoch, 600 epochs). Progress is reported per epoch with the
//! loss; a cancel flag is checked between epochs.

use std::sync::atomic::{AtomicBool, Ordering};

use burn::module::Module;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Int, Tensor, TensorData};
use ndarray::Array2;

use super::cpu::{EdgeIndex, SparseInput, StagateCpu, StagateWeights};
use super::graphst::{GraphSt, GraphStGraphs};
use super::stagate::{Stagate, TiedDecoder};
use super::{Edges, Init};
use crate::data::matrix::CsrMatrix;
use crate::model::nets::tensor_values;
use crate::model::train::{TrainError, clip_global_norm};

/// How a network is trained.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GraphTraining {
    /// Epochs (full-batch steps).
    pub epochs: usize,
    /// Adam's learning rate.
    pub lr: f64,
    /// Adam's weight decay (L2, added to the gradient as `torch.optim.Adam` does).
    pub weight_decay: f64,
    /// Global gradient-norm clipping (`clip_grad_norm_`), if any.
    pub clip: Option<f64>,
    /// Seed of the initial weights (and GraphST's shuffles).
    pub seed: u64,
}

impl GraphTraining {
    /// STAGATE's recipe (`Train_STAGATE.py`) with `epochs`.
    pub fn stagate(epochs: usize, seed: u64) -> Self {
        GraphTraining {
            epochs,
            lr: 1e-3,
            weight_decay: 1e-4,
            clip: Some(5.0),
            seed,
        }
    }

    /// GraphST's recipe (`GraphST.py`) with `epochs`.
    pub fn graphst(epochs: usize, seed: u64) -> Self {
        GraphTraining {
            epochs,
            lr: 1e-3,
            weight_decay: 0.0,
            clip: None,
            seed,
        }
    }

    /// Adam as PyTorch's (epsilon 1e-8, L2 weight decay in the gradient).
    pub fn optimizer(&self) -> ModuleOptimizer {
        let mut c = AdamConfig::new().with_epsilon(1e-8);
        if self.weight_decay > 0.0 {
            c = c.with_weight_decay(Some(WeightDecayConfig::new(self.weight_decay as f32)));
        }
        c.init()
    }
}

/// Per-epoch report: `(epoch done, epochs, loss)`; returning nothing.
pub type EpochReport<'a> = &'a mut dyn FnMut(usize, usize, f64);

/// STAGATE in training: the network, its tied decoder and their Adam states.
pub struct StagateTrainer {
    /// The encoder (and so the whole network).
    pub net: Stagate,
    decoder: TiedDecoder,
    encoder_optim: ModuleOptimizer,
    decoder_optim: ModuleOptimizer,
    t: GraphTraining,
}

impl StagateTrainer {
    /// Training of `net` with the recipe `t`.
    pub fn new(net: Stagate, t: GraphTraining) -> Self {
        StagateTrainer {
            decoder: TiedDecoder::view(&net, None),
            net,
            encoder_optim: t.optimizer(),
            decoder_optim: t.optimizer(),
            t,
        }
    }

    /// One step of `Train_STAGATE.py` on `x` (`[n, in]`): MSE, backward, clipping of the global
    /// norm of every gradient (the decoder's included), then Adam over the parameters in
    /// STAGATE's order: the encoder's, then the decoder's views of the updated encoder weights,
    /// whose update the encoder keeps ([`TiedDecoder`]). Returns the loss before the step.
    pub fn step(&mut self, x: Tensor<2>, edges: &Edges) -> f64 {
        let out = self
            .net
            .forward_with(x.clone(), edges, self.decoder.weights());
        let d = out.reconstruction - x;
        let loss = (d.clone() * d).mean();
        let value = f64::from(loss.clone().into_scalar::<f32>());
        let mut grads = loss.backward();
        let mut dec = GradientsParams::from_module(&mut grads, &self.decoder);
        let mut enc = GradientsParams::from_grads(grads, &self.net);
        if let Some(c) = self.t.clip {
            let (mut two, one) = self.net.param_ids();
            let ids = (self.decoder.w3.id, self.decoder.w4.id);
            for id in [ids.0, ids.1] {
                if let Some(g) = dec.remove::<2>(id) {
                    enc.register(id, g);
                }
                two.push(id);
            }
            clip_global_norm(&mut enc, &two, &one, c);
            for id in [ids.0, ids.1] {
                if let Some(g) = enc.remove::<2>(id) {
                    dec.register(id, g);
                }
            }
        }
        let net = self.encoder_optim.step(self.t.lr, self.net.clone(), enc);
        let ids = Some((self.decoder.w3.id, self.decoder.w4.id));
        let decoder = TiedDecoder::view(&net, ids);
        self.decoder = self.decoder_optim.step(self.t.lr, decoder, dec);
        self.net = self.decoder.write_back(net);
        value
    }
}

/// One GraphST step on `x` with the corruption `perm`. Returns the updated network and the
/// loss before the step.
pub fn graphst_step(
    net: GraphSt,
    x: Tensor<2>,
    perm: Tensor<1, Int>,
    graphs: &GraphStGraphs,
    optim: &mut ModuleOptimizer,
    t: &GraphTraining,
) -> (GraphSt, f64) {
    let out = net.forward(x.clone(), perm, graphs);
    let loss = super::graphst::loss(x, &out);
    let value = f64::from(loss.clone().into_scalar::<f32>());
    let mut g = GradientsParams::from_grads(loss.backward(), &net);
    if let Some(c) = t.clip {
        let (two, one) = net.param_ids();
        clip_global_norm(&mut g, &two, &one, c);
    }
    (optim.step(t.lr, net, g), value)
}

/// Trains STAGATE (widths `[x.ncols(), hidden[0], hidden[1]]`) on `x` over the graph `g`
/// (adjacency with self-loops, [`Edges::from_adjacency`]) and returns its latent `[n,
/// hidden[1]]` after the last epoch (STAGATE's `obsm['STAGATE']`).
///
/// # Errors
/// [`TrainError::Cancelled`] when `cancel` is set; [`TrainError::Diverged`] on a non-finite
/// loss.
pub fn train_stagate(
    x: &Array2<f32>,
    g: &CsrMatrix,
    hidden: [usize; 2],
    t: &GraphTraining,
    device: &Device,
    cancel: &AtomicBool,
    report: EpochReport<'_>,
) -> Result<Array2<f32>, TrainError> {
    let _heap = crate::model::train::heap::TrainingHeap::enter();
    if device.clone().inner() == Device::flex() {
        return train_stagate_cpu(x, g, hidden, t, cancel, report);
    }
    let device = device.clone().autodiff();
    let xt = dense(x, &device);
    let edges = Edges::from_adjacency(g, &device);
    let net = Stagate::init([x.ncols(), hidden[0], hidden[1]], t.seed, &device);
    let mut trainer = StagateTrainer::new(net, *t);
    for epoch in 0..t.epochs {
        if cancel.load(Ordering::Relaxed) {
            return Err(TrainError::Cancelled);
        }
        let loss = trainer.step(xt.clone(), &edges);
        finite(loss, epoch)?;
        report(epoch + 1, t.epochs, loss);
    }
    let net = trainer.net.valid();
    let inner = device.inner();
    let (latent, _) = net.forward(dense(x, &inner), &Edges::from_adjacency(g, &inner));
    Ok(to_array(latent))
}

/// [`train_stagate`] on the CPU path ([`super::cpu`]): same initial weights, same steps.
fn train_stagate_cpu(
    x: &Array2<f32>,
    g: &CsrMatrix,
    hidden: [usize; 2],
    t: &GraphTraining,
    cancel: &AtomicBool,
    report: EpochReport<'_>,
) -> Result<Array2<f32>, TrainError> {
    let widths = [x.ncols(), hidden[0], hidden[1]];
    let net = Stagate::init(widths, t.seed, &Device::flex());
    let weights = StagateWeights {
        w1: tensor_values(net.conv1.weight.val()),
        att_src: tensor_values(net.conv1.att_src.val()),
        att_dst: tensor_values(net.conv1.att_dst.val()),
        w2: tensor_values(net.conv2.weight.val()),
        widths,
    };
    let input = SparseInput::new(CsrMatrix::from_dense(x));
    let (src, dst) = super::pairs(g);
    let edges = EdgeIndex::new(&src, &dst, g.n_rows);
    let mut cpu = StagateCpu::new(weights, *t);
    for epoch in 0..t.epochs {
        if cancel.load(Ordering::Relaxed) {
            return Err(TrainError::Cancelled);
        }
        let loss = cpu.step(&input, &edges);
        finite(loss, epoch)?;
        report(epoch + 1, t.epochs, loss);
    }
    let latent = cpu.weights.latent(&input.x, &edges);
    Ok(Array2::from_shape_vec((x.nrows(), hidden[1]), latent).expect("latent shape"))
}

/// Trains GraphST (`hidden` units; GraphST: 64) on `x` with the directed kNN graph `knn` (no
/// self-loops) and returns its reconstruction `[n, x.ncols()]` after the last epoch (GraphST's
/// `obsm['emb']`, what it clusters).
///
/// # Errors
/// As [`train_stagate`].
pub fn train_graphst(
    x: &Array2<f32>,
    knn: &CsrMatrix,
    hidden: usize,
    t: &GraphTraining,
    device: &Device,
    cancel: &AtomicBool,
    report: EpochReport<'_>,
) -> Result<Array2<f32>, TrainError> {
    let _heap = crate::model::train::heap::TrainingHeap::enter();
    let device = device.clone().autodiff();
    let xt = dense(x, &device);
    let graphs = GraphStGraphs::new(knn, &device);
    let mut net = GraphSt::init(x.ncols(), hidden, t.seed, &device);
    let mut optim = t.optimizer();
    let mut shuffles = Init::new(t.seed.wrapping_add(1));
    let n = x.nrows();
    for epoch in 0..t.epochs {
        if cancel.load(Ordering::Relaxed) {
            return Err(TrainError::Cancelled);
        }
        let perm = index(&shuffles.permutation(n), &device);
        let (next, loss) = graphst_step(net, xt.clone(), perm, &graphs, &mut optim, t);
        net = next;
        finite(loss, epoch)?;
        report(epoch + 1, t.epochs, loss);
    }
    let net = net.valid();
    let inner = device.inner();
    let graphs = GraphStGraphs::new(knn, &inner);
    let perm = index(&shuffles.permutation(n), &inner);
    Ok(to_array(
        net.forward(dense(x, &inner), perm, &graphs).reconstruction,
    ))
}

fn finite(loss: f64, epoch: usize) -> Result<(), TrainError> {
    if loss.is_finite() {
        Ok(())
    } else {
        Err(TrainError::Diverged(epoch + 1))
    }
}

fn dense(x: &Array2<f32>, device: &Device) -> Tensor<2> {
    let v: Vec<f32> = x.iter().copied().collect();
    Tensor::from_data(TensorData::new(v, [x.nrows(), x.ncols()]), device)
}

fn index(v: &[u32], device: &Device) -> Tensor<1, Int> {
    let v: Vec<i64> = v.iter().map(|&i| i64::from(i)).collect();
    let len = v.len();
    Tensor::from_data(TensorData::new(v, [len]), device)
}

fn to_array(t: Tensor<2>) -> Array2<f32> {
    let [n, d] = t.dims();
    Array2::from_shape_vec((n, d), tensor_values(t)).expect("tensor shape")
}
