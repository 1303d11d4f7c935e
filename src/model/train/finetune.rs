//! Fine-tuning a classifier (head on a backbone, or the supervised baseline from random
//! init) with early stopping on validation macro-F1, and reading its outputs.

#[allow(clippy::wildcard_imports)]
use super::*;

/// Fine-tunes a classifier: `Linear(embedding, n_types)` on the backbone of `init` (a
/// pre-trained model), or on a freshly initialised backbone (the supervised baseline, same
/// network from random init). Class-weighted cross-entropy (balanced weights on the training
/// cells); validation macro-F1 every epoch; the best epoch's weights are kept; training stops
/// after `patience` epochs without improvement.
///
/// # Errors
/// [`TrainError`]: bad options, no device, fewer than two classes, cancelled before the first
/// epoch.
#[allow(clippy::too_many_arguments)]
pub fn finetune(
    x: &CsrMatrix,
    labelled: &Labelled<'_>,
    init: Option<&ModelWeights>,
    layers: TrainLayers,
    opts: &TrainOptions,
    backend: BackendChoice,
    score: Scorer<'_>,
    events: &Sender<TrainEvent>,
    cancel: &AtomicBool,
) -> Result<TrainOutcome, TrainError> {
    check_options(opts, labelled.train.len())?;
    let k = labelled.class_names.len();
    if k < 2 {
        return Err(TrainError::Invalid(format!(
            "fine-tuning needs at least two classes, found {k}"
        )));
    }
    let (device, device_name) = training_device(backend)?;
    let _heap = super::heap::TrainingHeap::enter();
    device.seed(opts.seed);
    let mut model = build_classifier(x.n_cols, init, layers, opts, k, &device)?;
    let (mut two, mut one) = (Vec::new(), Vec::new());
    model.param_ids(&mut two, &mut one);
    let train_codes: Vec<u32> = labelled.train.iter().map(|&i| labelled.codes[i]).collect();
    let weights = balanced_class_weights(&train_codes, k);
    let mut optim = optimizer(opts);
    let mut order = labelled.train.to_vec();
    let steps_per_epoch = order.len().div_ceil(opts.batch_size);
    let mut rng = Rng::new(opts.seed ^ 0x6674);
    let (mut history, mut step) = (Vec::new(), 0usize);
    let mut best: Option<(ModelWeights, usize)> = None;
    let mut best_f1 = f64::NEG_INFINITY;
    let mut early = false;
    for epoch in 0..opts.epochs {
        rng.shuffle(&mut order);
        let lr = opts.lr_at(epoch);
        let mut tally = EpochTally::new(epoch, steps_per_epoch, lr);
        for batch in order.chunks(opts.batch_size) {
            if cancel.load(Ordering::Relaxed) {
                return finish(best, history, End::Cancelled, device_name);
            }
            let xv = dense_rows(x, batch);
            let t: Vec<u32> = batch.iter().map(|&i| labelled.codes[i]).collect();
            let logits = model.forward(to_tensor(xv, batch.len(), x.n_cols, &device));
            let loss = weighted_cross_entropy(logits, &t, &weights);
            let value = f64::from(loss.clone().into_scalar::<f32>());
            if !value.is_finite() {
                return finish(best, history, End::Diverged(step + 1), device_name);
            }
            model = Update {
                optim: &mut optim,
                lr,
                clip: opts.clip_norm,
                ids: (&two, &one),
            }
            .apply(model, StepLoss::plain(loss));
            step += 1;
            tally.record(events, opts, step, value, batch.len());
        }
        let mut e = tally.epoch_event(opts, step);
        let valid = model.valid();
        let (val_loss, f1) = validate(&valid, x, labelled, opts, &weights, score);
        e.val_loss = val_loss;
        e.val_macro_f1 = f1;
        history.push(e);
        send(events, e);
        let f1v = f1.unwrap_or(-tally.sum);
        if f1v > best_f1 || best.is_none() {
            best_f1 = f1v;
            best = Some((classifier_weights(&valid), epoch));
        } else if best
            .as_ref()
            .is_some_and(|(_, b)| epoch >= b + opts.patience.max(1))
        {
            early = true;
            break;
        }
    }
    finish(
        best,
        history,
        if early { End::EarlyStop } else { End::Done },
        device_name,
    )
}

/// The classifier to fine-tune: `init`'s backbone (checked against `n_genes`) or a new one of
/// `opts.hidden` widths, with the layers `layers` leaves trainable, and a new head to `k`
/// classes.
fn build_classifier(
    n_genes: usize,
    init: Option<&ModelWeights>,
    layers: TrainLayers,
    opts: &TrainOptions,
    k: usize,
    device: &Device,
) -> Result<Classifier, TrainError> {
    let backbone = match init {
        Some(w) => {
            if w.n_genes() != n_genes {
                return Err(TrainError::Invalid(format!(
                    "the model takes {} genes, the data has {} after alignment",
                    w.n_genes(),
                    n_genes
                )));
            }
            Mlp::from_dense(&w.backbone, w.activation, opts.dropout, false, device)
        }
        None => {
            let mut widths = vec![n_genes];
            widths.extend(&opts.hidden);
            MlpConfig::new(widths)
                .with_activation(Activation::Selu)
                .with_dropout(opts.dropout)
                .init(device)
        }
    };
    let emb = *backbone.widths().last().unwrap_or(&64);
    let n_layers = backbone.layers.len();
    let backbone = match layers {
        TrainLayers::Head => backbone.freeze_all_but_last(0),
        TrainLayers::Last(kk) => backbone.freeze_all_but_last(kk.min(n_layers)),
        TrainLayers::All => backbone,
    };
    Ok(Classifier {
        backbone,
        head: burn::nn::LinearConfig::new(emb, k).init(device),
    })
}

/// Validation loss (class-weighted cross-entropy) and score (macro-F1) of `valid` on the
/// validation cells; `None` without validation cells.
fn validate(
    valid: &Classifier,
    x: &CsrMatrix,
    labelled: &Labelled<'_>,
    opts: &TrainOptions,
    weights: &[f32],
    score: Scorer<'_>,
) -> (Option<f64>, Option<f64>) {
    if labelled.val.is_empty() {
        return (None, None);
    }
    let k = labelled.class_names.len();
    let (logits, _) = classifier_logits(valid, x, labelled.val, opts.batch_size.max(512));
    let truth: Vec<u32> = labelled.val.iter().map(|&i| labelled.codes[i]).collect();
    let pred = argmax_rows(&logits, k);
    let l = weighted_cross_entropy(
        to_tensor(logits, truth.len(), k, &Device::flex()),
        &truth,
        weights,
    );
    (
        Some(f64::from(l.into_scalar::<f32>())),
        Some(score(&truth, &pred)),
    )
}

pub(super) fn classifier_weights(m: &Classifier) -> ModelWeights {
    ModelWeights {
        kind: ModelKind::Classifier,
        activation: m.backbone.activation,
        backbone: m.backbone.to_dense(),
        head: Some(crate::model::nets::dense_from_linear(&m.head)),
        decoder: Vec::new(),
        n_params_total: m.num_params(),
    }
}

pub(super) fn classifier_logits(
    m: &Classifier,
    x: &CsrMatrix,
    rows: &[usize],
    batch: usize,
) -> (Vec<f32>, usize) {
    let device = m.head.weight.val().device();
    let mut out = Vec::new();
    for b in rows.chunks(batch) {
        let t = to_tensor(dense_rows(x, b), b.len(), x.n_cols, &device);
        out.extend(crate::model::nets::tensor_values(m.forward(t)));
    }
    (out, rows.len())
}

/// Row-wise argmax of a row-major `[n, k]` matrix.
pub fn argmax_rows(values: &[f32], k: usize) -> Vec<u32> {
    values
        .chunks(k.max(1))
        .map(|r| {
            let mut best = 0;
            for (j, &v) in r.iter().enumerate() {
                if v > r[best] {
                    best = j;
                }
            }
            best as u32
        })
        .collect()
}

/// Softmax of each row of a row-major `[n, k]` logit matrix, in place (probabilities).
pub fn softmax_rows(values: &mut [f32], k: usize) {
    for r in values.chunks_mut(k.max(1)) {
        let m = r.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut s = 0.0;
        for v in r.iter_mut() {
            *v = (*v - m).exp();
            s += *v;
        }
        for v in r.iter_mut() {
            *v /= s;
        }
    }
}
