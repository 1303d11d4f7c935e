//! The training loops' machinery (device, networks, optimiser, epoch bookkeeping, events)
//! and the pre-training loop.

#[allow(clippy::wildcard_imports)]
use super::*;

/// The burn device for `choice` (autodiff enabled), and its description.
///
/// # Errors
/// `Wgpu` when no adapter exists.
pub fn training_device(choice: BackendChoice) -> Result<(Device, String), TrainError> {
    let (_, device, name) = crate::model::engine::select_device(choice)
        .map_err(|e| TrainError::Device(e.to_string()))?;
    Ok((device.autodiff(), name))
}

/// Dense rows `rows` of `x`, row-major `[rows.len(), x.n_cols]`.
pub fn dense_rows(x: &CsrMatrix, rows: &[usize]) -> Vec<f32> {
    let g = x.n_cols;
    let mut out = vec![0f32; rows.len() * g];
    out.par_chunks_mut(g.max(1))
        .zip(rows.par_iter())
        .for_each(|(dst, &r)| {
            let (idx, val) = x.row(r);
            for (&j, &v) in idx.iter().zip(val) {
                dst[j as usize] = v;
            }
        });
    out
}

pub(super) fn to_tensor(v: Vec<f32>, rows: usize, cols: usize, device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(v, [rows, cols]), device)
}

/// The trainable network of an objective.
pub(super) enum Net {
    Ae(AutoEncoder),
    Bt(BarlowTwins, f64),
    Byol(ByolOnline, crate::model::nets::ByolTarget, f64),
    /// SimCLR or VICReg: encoder and projection head (the loss is the objective's).
    Generic(Siamese),
}

impl Net {
    pub(super) fn param_ids(&self) -> (Vec<ParamId>, Vec<ParamId>) {
        let (mut two, mut one) = (Vec::new(), Vec::new());
        match self {
            Net::Ae(m) => m.param_ids(&mut two, &mut one),
            Net::Bt(m, _) => m.param_ids(&mut two, &mut one),
            Net::Byol(m, _, _) => m.param_ids(&mut two, &mut one),
            Net::Generic(m) => m.param_ids(&mut two, &mut one),
        }
        (two, one)
    }

    /// The device of the parameters.
    pub(super) fn device(&self) -> Device {
        let backbone = match self {
            Net::Ae(m) => &m.encoder,
            Net::Bt(m, _) => &m.backbone,
            Net::Byol(m, _, _) => &m.backbone,
            Net::Generic(m) => return m.encoder.device(),
        };
        backbone.layers[0].weight.val().device()
    }

    /// The weights a saved model keeps: the backbone in eval form (a generic encoder's
    /// BatchNorms folded into its Linears), and a masked autoencoder's decoder.
    pub(super) fn weights(&self, objective: ObjectiveKind) -> ModelWeights {
        let (kind, decoder, total, (backbone, activation)) = match self {
            Net::Ae(m) => (
                ModelKind::MaskedAutoencoder,
                m.decoder.to_dense(),
                m.num_params(),
                (m.encoder.to_dense(), m.encoder.activation),
            ),
            Net::Bt(m, _) => (
                ModelKind::BarlowTwins,
                Vec::new(),
                m.num_params(),
                (m.backbone.to_dense(), m.backbone.activation),
            ),
            Net::Byol(m, _, _) => (
                ModelKind::Byol,
                Vec::new(),
                m.num_params(),
                (m.backbone.to_dense(), m.backbone.activation),
            ),
            Net::Generic(m) => (
                if objective == ObjectiveKind::Vicreg {
                    ModelKind::Vicreg
                } else {
                    ModelKind::Simclr
                },
                Vec::new(),
                m.num_params(),
                m.encoder.to_dense(),
            ),
        };
        ModelWeights {
            kind,
            activation,
            backbone,
            head: None,
            decoder,
            n_params_total: total,
        }
    }
}

/// The masked objectives' loss: fused on the CPU backend, all in burn elsewhere (on a GPU the
/// input and logits never leave the device).
pub(super) fn masked_loss(
    m: &AutoEncoder,
    xv: &[f32],
    mask: &Mask,
    rows: usize,
    genes: usize,
    device: &Device,
) -> StepLoss {
    if device.clone().inner() == Device::flex() {
        masked_reconstruction_fused(m, xv, mask, rows, genes, device)
    } else {
        let inner = device.clone().inner();
        let x = to_tensor(xv.to_vec(), rows, genes, device);
        let keep = to_tensor(mask.keep.clone(), rows, genes, &inner);
        let weight = to_tensor(mask.weights(genes), rows, genes, &inner);
        StepLoss::plain(masked_reconstruction_loss(m, x, keep, weight, mask.scale))
    }
}

/// The mask of a masked objective for one batch.
pub(super) fn objective_mask(
    objective: &Objective,
    rows: usize,
    genes: usize,
    seed: u64,
) -> Option<Mask> {
    Some(match objective {
        Objective::RandomMask { rate } => random_mask(rows, genes, *rate, seed),
        Objective::GpMask { programmes, rate } => gp_mask(rows, genes, programmes, *rate, seed),
        Objective::Isolated { programmes } => isolated_mask(rows, genes, programmes, seed),
        Objective::GpToTf { programmes } => gp_to_tf_mask(rows, genes, programmes, seed),
        Objective::BarlowTwins { .. }
        | Objective::Byol { .. }
        | Objective::Simclr { .. }
        | Objective::Vicreg { .. } => return None,
    })
}

/// One batch's loss for the objective.
pub(super) fn objective_loss(
    net: &Net,
    objective: &Objective,
    xv: &[f32],
    rows: usize,
    genes: usize,
    seed: u64,
    device: &Device,
) -> StepLoss {
    match net {
        Net::Ae(m) => {
            let mask = objective_mask(objective, rows, genes, seed)
                .expect("an autoencoder is built for a masked objective");
            masked_loss(m, xv, &mask, rows, genes, device)
        }
        Net::Bt(m, lambda) => {
            let (v1, v2) = contrastive_views(xv, genes, seed);
            let loss = barlow_twins_loss(
                m.forward(to_tensor(v1, rows, genes, device)),
                m.forward(to_tensor(v2, rows, genes, device)),
                *lambda,
            );
            StepLoss::plain(loss)
        }
        Net::Byol(m, target, _) => {
            let (v1, v2) = contrastive_views(xv, genes, seed);
            let (t1, t2) = (
                to_tensor(v1, rows, genes, device),
                to_tensor(v2, rows, genes, device),
            );
            let z1 = target.forward(t1.clone().inner()).detach();
            let z2 = target.forward(t2.clone().inner()).detach();
            StepLoss::plain(byol_loss(m.forward(t1), z2) + byol_loss(m.forward(t2), z1))
        }
        Net::Generic(m) => {
            let (augment, loss): (_, &dyn Fn(Tensor<2>, Tensor<2>) -> Tensor<1>) = match objective {
                Objective::Simclr {
                    temperature,
                    generic,
                } => (&generic.augment, &|a, b| nt_xent_loss(a, b, *temperature)),
                Objective::Vicreg { weights, generic } => {
                    (&generic.augment, &|a, b| vicreg_loss(a, b, *weights))
                }
                _ => unreachable!("a generic network is built for SimCLR or VICReg"),
            };
            let (v1, v2) = bench_views(xv, genes, augment, seed);
            StepLoss::plain(loss(
                m.forward(to_tensor(v1, rows, genes, device)),
                m.forward(to_tensor(v2, rows, genes, device)),
            ))
        }
    }
}

pub(super) fn init_net(
    objective: &Objective,
    n_genes: usize,
    opts: &TrainOptions,
    device: &Device,
) -> Result<Net, TrainError> {
    if opts.hidden.is_empty() {
        return Err(TrainError::Invalid(
            "a backbone needs at least one layer".into(),
        ));
    }
    let mut widths = vec![n_genes];
    widths.extend(&opts.hidden);
    let emb = *widths.last().unwrap_or(&64);
    Ok(match objective {
        Objective::RandomMask { .. }
        | Objective::GpMask { .. }
        | Objective::Isolated { .. }
        | Objective::GpToTf { .. } => {
            let mut dec: Vec<usize> = widths.iter().rev().copied().collect();
            dec[0] = emb;
            Net::Ae(AutoEncoder {
                encoder: MlpConfig::new(widths)
                    .with_dropout(opts.dropout)
                    .init(device),
                decoder: MlpConfig::new(dec)
                    .with_dropout(opts.dropout)
                    .with_sigmoid(true)
                    .init(device),
            })
        }
        Objective::BarlowTwins { lambda, projector } => {
            let mut pw = vec![emb];
            pw.extend(projector);
            Net::Bt(
                BarlowTwins {
                    backbone: MlpConfig::new(widths).with_dropout(0.0).init(device),
                    projector: ProjectorConfig::new(pw).init(device),
                },
                *lambda,
            )
        }
        Objective::Byol { tau, hidden, out } => {
            let online = ByolOnline {
                backbone: MlpConfig::new(widths)
                    .with_dropout(opts.dropout)
                    .init(device),
                projector: ProjectorConfig::new(vec![emb, *hidden, *out])
                    .with_hidden_bias(true)
                    .init(device),
                predictor: ProjectorConfig::new(vec![*out, *hidden, *out])
                    .with_hidden_bias(true)
                    .init(device),
            };
            let target = online.target();
            Net::Byol(online, target, *tau)
        }
        Objective::Simclr { generic, .. } | Objective::Vicreg { generic, .. } => {
            if generic.head_width == 0 {
                return Err(TrainError::Invalid(
                    "--head-width must be at least 1".into(),
                ));
            }
            let encoder =
                Encoder::new(generic.encoder, n_genes, &opts.hidden, opts.dropout, device);
            let head = if objective.kind() == ObjectiveKind::Vicreg {
                HeadKind::Vicreg
            } else {
                HeadKind::Simclr
            };
            Net::Generic(Siamese::new(encoder, head, generic.head_width, device))
        }
    })
}

pub(super) fn optimizer(opts: &TrainOptions) -> ModuleOptimizer {
    AdamWConfig::new()
        .with_weight_decay(opts.weight_decay as f32)
        .with_epsilon(1e-8)
        .init()
}

/// One optimiser step: gradients of the module, global-norm clipping, AdamW.
pub(super) struct Update<'a> {
    pub(super) optim: &'a mut ModuleOptimizer,
    pub(super) lr: f64,
    pub(super) clip: Option<f64>,
    /// Parameter ids by rank (2-D, 1-D), for the clipping norm.
    pub(super) ids: (&'a [ParamId], &'a [ParamId]),
}

impl Update<'_> {
    pub(super) fn apply<M: Module>(&mut self, m: M, loss: StepLoss) -> M {
        let mut g = loss.gradients(&m);
        if let Some(c) = self.clip {
            clip_global_norm(&mut g, self.ids.0, self.ids.1, c);
        }
        self.optim.step(self.lr, m, g)
    }
}

/// Running totals of one epoch: the training loss summed over cells, the cells done and the
/// wall time since the epoch began; builds the step and epoch events from them.
pub(super) struct EpochTally {
    pub(super) epoch: usize,
    pub(super) steps_per_epoch: usize,
    pub(super) lr: f64,
    pub(super) start: Instant,
    pub(super) sum: f64,
    pub(super) done: usize,
}

impl EpochTally {
    pub(super) fn new(epoch: usize, steps_per_epoch: usize, lr: f64) -> Self {
        Self {
            epoch,
            steps_per_epoch,
            lr,
            start: Instant::now(),
            sum: 0.0,
            done: 0,
        }
    }

    pub(super) fn event(
        &self,
        kind: EventKind,
        opts: &TrainOptions,
        step: usize,
        loss: f64,
    ) -> TrainEvent {
        TrainEvent {
            kind,
            epoch: self.epoch,
            epochs: opts.epochs,
            step,
            steps_per_epoch: self.steps_per_epoch,
            train_loss: loss,
            val_loss: None,
            val_macro_f1: None,
            cells_per_sec: self.done as f64 / self.start.elapsed().as_secs_f64().max(1e-9),
            lr: self.lr,
        }
    }

    /// Counts step `step` (1-based over the run) of `n` cells with mean loss `loss`, and sends
    /// a step event every `opts.log_every` steps.
    pub(super) fn record(
        &mut self,
        events: &Sender<TrainEvent>,
        opts: &TrainOptions,
        step: usize,
        loss: f64,
        n: usize,
    ) {
        self.sum += loss * n as f64;
        self.done += n;
        if step.is_multiple_of(opts.log_every.max(1)) {
            send(events, self.event(EventKind::Step, opts, step, loss));
        }
    }

    /// The epoch event, taken when the epoch's last step is done (before validation, so the
    /// throughput counts training only): mean training loss over the epoch, validation scores
    /// left for the caller.
    pub(super) fn epoch_event(&self, opts: &TrainOptions, step: usize) -> TrainEvent {
        let mean = self.sum / self.done.max(1) as f64;
        self.event(EventKind::Epoch, opts, step, mean)
    }
}

pub(super) fn send(events: &Sender<TrainEvent>, e: TrainEvent) {
    // A consumer that went away (closed window, finished CLI) must not stop training.
    let _ = events.send(e);
}

pub(super) fn check_options(opts: &TrainOptions, n: usize) -> Result<(), TrainError> {
    if n == 0 {
        return Err(TrainError::Invalid("no cells to train on".into()));
    }
    if opts.batch_size == 0 || opts.epochs == 0 {
        return Err(TrainError::Invalid(
            "--epochs and --batch-size must be at least 1".into(),
        ));
    }
    if !(0.0..1.0).contains(&opts.dropout) {
        return Err(TrainError::Invalid(format!(
            "dropout {} is not in [0, 1)",
            opts.dropout
        )));
    }
    if opts.hidden.is_empty() || opts.hidden.contains(&0) {
        return Err(TrainError::Invalid(format!(
            "--hidden {:?}: every layer width must be at least 1",
            opts.hidden
        )));
    }
    if !(opts.lr.is_finite() && opts.lr > 0.0) {
        return Err(TrainError::Invalid(format!(
            "--lr {}: the learning rate must be a positive number",
            opts.lr
        )));
    }
    Ok(())
}

/// Self-supervised pre-training of a new backbone on `x` (cells x model genes, preprocessed).
/// A seeded `val_fraction` of the cells is held out for the validation loss (computed in eval
/// mode with seeded masks / views).
///
/// # Errors
/// [`TrainError`]: bad options, no device, cancelled before the first epoch.
pub fn pretrain(
    x: &CsrMatrix,
    objective: &Objective,
    opts: &TrainOptions,
    backend: BackendChoice,
    events: &Sender<TrainEvent>,
    cancel: &AtomicBool,
) -> Result<TrainOutcome, TrainError> {
    check_options(opts, x.n_rows)?;
    let (device, device_name) = training_device(backend)?;
    let _heap = super::heap::TrainingHeap::enter();
    device.seed(opts.seed);
    let mut order: Vec<usize> = (0..x.n_rows).collect();
    Rng::new(opts.seed).shuffle(&mut order);
    let n_val = if x.n_rows >= 20 {
        ((x.n_rows as f64 * opts.val_fraction).round() as usize).min(x.n_rows / 2)
    } else {
        0
    };
    let (val, train) = order.split_at(n_val);
    let (val, mut train) = (val.to_vec(), train.to_vec());
    let mut net = init_net(objective, x.n_cols, opts, &device)?;
    let (two, one) = net.param_ids();
    let mut optim = optimizer(opts);
    let steps_per_epoch = train.len().div_ceil(opts.batch_size);
    let mut history = Vec::new();
    let mut last_good: Option<(ModelWeights, usize)> = None;
    let mut step = 0usize;
    let mut rng = Rng::new(opts.seed ^ 0x7261_696e);
    for epoch in 0..opts.epochs {
        rng.shuffle(&mut train);
        let lr = opts.lr_at(epoch);
        let mut tally = EpochTally::new(epoch, steps_per_epoch, lr);
        for batch in train.chunks(opts.batch_size) {
            if cancel.load(Ordering::Relaxed) {
                return finish(last_good, history, End::Cancelled, device_name);
            }
            let xv = dense_rows(x, batch);
            let seed = opts.seed.wrapping_add(step as u64 * 7919);
            let loss = objective_loss(&net, objective, &xv, batch.len(), x.n_cols, seed, &device);
            let value = loss.value();
            if !value.is_finite() {
                return finish(last_good, history, End::Diverged(step + 1), device_name);
            }
            let mut update = Update {
                optim: &mut optim,
                lr,
                clip: opts.clip_norm,
                ids: (&two, &one),
            };
            net = match net {
                Net::Ae(m) => Net::Ae(update.apply(m, loss)),
                Net::Bt(m, l) => Net::Bt(update.apply(m, loss), l),
                Net::Byol(m, t, tau) => {
                    let m = update.apply(m, loss);
                    let t = t.ema(&m, tau);
                    Net::Byol(m, t, tau)
                }
                Net::Generic(m) => Net::Generic(update.apply(m, loss)),
            };
            step += 1;
            tally.record(events, opts, step, value, batch.len());
        }
        let mut e = tally.epoch_event(opts, step);
        e.val_loss = (!val.is_empty()).then(|| validation_loss(&net, objective, x, &val, opts));
        history.push(e);
        send(events, e);
        last_good = Some((net.weights(objective.kind()), epoch));
    }
    finish(last_good, history, End::Done, device_name)
}

/// How a run ended.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum End {
    Done,
    Cancelled,
    EarlyStop,
    Diverged(usize),
}

pub(super) fn finish(
    last_good: Option<(ModelWeights, usize)>,
    history: Vec<TrainEvent>,
    end: End,
    device: String,
) -> Result<TrainOutcome, TrainError> {
    let (weights, best_epoch) = last_good.ok_or(match end {
        End::Diverged(step) => TrainError::Diverged(step),
        _ => TrainError::Cancelled,
    })?;
    Ok(TrainOutcome {
        weights,
        history,
        cancelled: end == End::Cancelled,
        early_stopped: end == End::EarlyStop,
        diverged: matches!(end, End::Diverged(_)),
        best_epoch,
        device,
    })
}

/// Mean objective loss over the validation cells, the networks in eval mode (no dropout,
/// BatchNorm running statistics), with fixed seeds so epochs are comparable.
pub(super) fn validation_loss(
    net: &Net,
    objective: &Objective,
    x: &CsrMatrix,
    val: &[usize],
    opts: &TrainOptions,
) -> f64 {
    let valid = match net {
        Net::Ae(m) => Net::Ae(m.valid()),
        Net::Bt(m, l) => Net::Bt(m.valid(), *l),
        Net::Byol(m, t, tau) => Net::Byol(m.valid(), t.clone(), *tau),
        Net::Generic(m) => Net::Generic(m.valid()),
    };
    let device = valid.device();
    let (mut sum, mut n) = (0.0, 0usize);
    for (b, batch) in val.chunks(opts.batch_size).enumerate() {
        let xv = dense_rows(x, batch);
        let value = objective_loss(
            &valid,
            objective,
            &xv,
            batch.len(),
            x.n_cols,
            opts.seed ^ (b as u64 + 0x76),
            &device,
        )
        .value();
        sum += value * batch.len() as f64;
        n += batch.len();
    }
    sum / n.max(1) as f64
}
