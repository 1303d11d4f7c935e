//! Training: the loss functions and one optimiser step against PyTorch
//! (`tests/fixtures/train/make_train_reference.py`), and short real-data runs (hypothalamus
//! scRNA-seq reference, 1,308 cells x 134 genes): every objective trains with finite,
//! decreasing loss; fine-tuning beats chance; save -> load gives identical predictions;
//! cancellation stops within one step and keeps the last good epoch.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use burn::optim::AdamWConfig;
use burn::tensor::{Device, Tensor, TensorData};
use cellscope::model::BackendChoice;
use cellscope::model::checkpoint::{Activation, Dense};
use cellscope::model::nets::{AutoEncoder, Mlp, MlpConfig};
use cellscope::model::train::{
    self, EventKind, Mask, Objective, ObjectiveKind, Programmes, Scored, TrainError, TrainEvent,
    TrainLayers, TrainOptions,
};
use cellscope::pipeline::jobs::train::{
    FinetuneJob, PretrainJob, model_input, predict_matrix, run_finetune, run_pretrain,
};
use serde_json::Value;

fn shared(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data")
        .join(name)
}

pub(super) fn reference() -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/train/train_reference.json");
    serde_json::from_str(&std::fs::read_to_string(p).expect("fixture")).expect("json")
}

pub(super) fn f32s(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number") as f32)
        .collect()
}

fn dense(v: &Value) -> Dense {
    Dense {
        weight: f32s(&v["weight"]),
        bias: f32s(&v["bias"]),
        n_in: v["n_in"].as_u64().expect("n_in") as usize,
        n_out: v["n_out"].as_u64().expect("n_out") as usize,
    }
}

pub(super) fn layers(v: &Value) -> Vec<Dense> {
    v.as_array().expect("layers").iter().map(dense).collect()
}

pub(super) fn tensor(v: &Value, shape: &Value, device: &Device) -> Tensor<2> {
    let s: Vec<usize> = shape
        .as_array()
        .expect("shape")
        .iter()
        .map(|x| x.as_u64().expect("dim") as usize)
        .collect();
    Tensor::from_data(TensorData::new(f32s(v), [s[0], s[1]]), device)
}

pub(super) fn scalar(t: Tensor<1>) -> f64 {
    f64::from(t.into_scalar::<f32>())
}

/// Element-wise `|a - b| <= tol * max(|b|, 1)` with the first failing index in the message.
pub(super) fn close_all(got: &[f32], want: &[f32], tol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            (a - b).abs() <= tol * b.abs().max(1.0),
            "{what}[{i}]: cellscope {a} vs PyTorch {b}"
        );
    }
}

pub(super) fn close(a: f64, b: f64, tol: f64, what: &str) {
    assert!(
        (a - b).abs() <= tol * b.abs().max(1.0),
        "{what}: cellscope {a} vs PyTorch {b}"
    );
}

#[test]
fn one_adamw_step_with_clipping_matches_pytorch() {
    adamw_step(false);
}

#[test]
fn fused_cpu_loss_gives_pytorch_gradients() {
    adamw_step(true);
}

/// One masked-reconstruction step, through burn's tensors or the fused CPU path.
fn adamw_step(fused: bool) {
    let r = reference();
    let device = Device::flex().autodiff();
    let model = fixture_model(&r, &device);
    let rate = r["rate"].as_f64().expect("rate");
    let keep = f32s(&r["keep"]);
    let loss = if fused {
        let rows = r["shape"][0].as_u64().expect("rows") as usize;
        let genes = r["shape"][1].as_u64().expect("genes") as usize;
        let mask = Mask {
            keep,
            scale: 1.0 / (1.0 - rate),
            scored: Scored::Hidden,
        };
        let loss =
            train::masked_reconstruction_fused(&model, &f32s(&r["x"]), &mask, rows, genes, &device);
        close(
            loss.value(),
            r["loss"].as_f64().expect("loss"),
            1e-5,
            "fused masked MSE",
        );
        loss
    } else {
        let x = tensor(&r["x"], &r["shape"], &device);
        let inner = device.clone().inner();
        let weight: Vec<f32> = keep.iter().map(|k| 1.0 - k).collect();
        let shape = [
            r["shape"][0].as_u64().expect("rows") as usize,
            keep.len() / r["shape"][0].as_u64().expect("rows") as usize,
        ];
        let keep = Tensor::from_data(TensorData::new(keep, shape), &inner);
        let weight = Tensor::from_data(TensorData::new(weight, shape), &inner);
        let loss = train::masked_reconstruction_loss(&model, x, keep, weight, 1.0 / (1.0 - rate));
        close(
            scalar(loss.clone()),
            r["loss"].as_f64().expect("loss"),
            1e-5,
            "masked MSE",
        );
        train::StepLoss::plain(loss)
    };
    let mut grads = loss.gradients(&model);
    let (mut two, mut one) = (Vec::new(), Vec::new());
    model.param_ids(&mut two, &mut one);
    let clip = r["clip"].as_f64().expect("clip");
    let norm = train::clip_global_norm(&mut grads, &two, &one, clip);
    close(
        norm,
        r["grad_norm"].as_f64().expect("norm"),
        1e-4,
        "gradient norm",
    );
    let mut optim = AdamWConfig::new()
        .with_weight_decay(0.01)
        .with_epsilon(1e-8)
        .init();
    let model = optim.step(1e-3, model, grads);
    for (name, got) in [
        ("encoder", model.encoder.to_dense()),
        ("decoder", model.decoder.to_dense()),
    ] {
        let want = layers(&r["after_step"][name]);
        let before = layers(&r["initial"][name]);
        for ((g, w), b) in got.iter().zip(&want).zip(&before) {
            for ((a, e), o) in g.weight.iter().zip(&w.weight).zip(&b.weight) {
                assert!(
                    (a - e).abs() < 2e-6,
                    "{name} weight after the step: {a} vs PyTorch {e} (before {o})"
                );
            }
            for (a, e) in g.bias.iter().zip(&w.bias) {
                assert!((a - e).abs() < 2e-6, "{name} bias: {a} vs {e}");
            }
        }
    }
}

#[test]
fn losses_match_pytorch() {
    let r = reference();
    let d = Device::flex();
    let bt = &r["bt"];
    let got = train::barlow_twins_loss(
        tensor(&bt["z1"], &bt["shape"], &d),
        tensor(&bt["z2"], &bt["shape"], &d),
        bt["lambda"].as_f64().expect("lambda"),
    );
    close(
        scalar(got),
        bt["loss"].as_f64().expect("bt"),
        1e-5,
        "Barlow Twins loss",
    );
    let by = &r["byol"];
    let got = train::byol_loss(
        tensor(&by["p"], &by["shape"], &d),
        tensor(&by["z"], &by["shape"], &d),
    );
    close(
        scalar(got),
        by["loss"].as_f64().expect("byol"),
        1e-5,
        "BYOL loss",
    );
    let ce = &r["ce"];
    let targets: Vec<u32> = ce["targets"]
        .as_array()
        .expect("targets")
        .iter()
        .map(|v| v.as_u64().expect("t") as u32)
        .collect();
    let got = train::weighted_cross_entropy(
        tensor(&ce["logits"], &ce["shape"], &d),
        &targets,
        &f32s(&ce["weights"]),
    );
    close(
        scalar(got),
        ce["loss"].as_f64().expect("ce"),
        1e-5,
        "weighted cross-entropy",
    );
}

/// The fixture's SELU autoencoder with its initial weights.
pub(super) fn fixture_model(r: &Value, device: &Device) -> AutoEncoder {
    AutoEncoder {
        encoder: Mlp::from_dense(
            &layers(&r["initial"]["encoder"]),
            Activation::Selu,
            0.0,
            false,
            device,
        ),
        decoder: Mlp::from_dense(
            &layers(&r["initial"]["decoder"]),
            Activation::Selu,
            0.0,
            true,
            device,
        ),
    }
}

/// The hypothalamus reference as the models see it: normalize_total(1e4) + log1p.
fn hypothalamus() -> cellscope::data::CsrMatrix {
    let a = cellscope::data::open(&shared("hypothalamus_scrna_ref.h5ad")).expect("read");
    model_input(&a, &Default::default()).expect("input").0
}

/// The CPU path's first layer on sparse input (the masked cells' stored values only) against
/// burn's dense product, on real cells: the same loss, and every parameter's gradient equal
/// within 1e-5 of that tensor's largest gradient. Without dropout: burn's CPU random stream is
/// one per process, which tests running alongside draw from, so two seeded runs need not see
/// the same dropout masks here (dropout acts after the first layer either way).
#[test]
fn sparse_first_layer_gives_the_dense_gradients_on_real_cells() {
    let x = hypothalamus();
    let rows: Vec<usize> = (0..256).map(|i| i * 5).collect();
    let (n, genes) = (rows.len(), x.n_cols);
    let xv = train::dense_rows(&x, &rows);
    let device = Device::flex().autodiff();
    let mlp = |w: Vec<usize>, sigmoid| {
        MlpConfig::new(w)
            .with_dropout(0.0)
            .with_sigmoid(sigmoid)
            .init(&device)
    };
    let model = AutoEncoder {
        encoder: mlp(vec![genes, 64, 32, 16], false),
        decoder: mlp(vec![16, 32, 64, genes], true),
    };
    let mask = train::random_mask(n, genes, 0.5, 11);
    let stored = xv
        .iter()
        .zip(&mask.keep)
        .filter(|(v, k)| **v * **k != 0.0)
        .count();
    assert!(
        stored * 5 < n * genes,
        "the masked input is sparse ({stored} stored)"
    );
    let sparse = train::masked_reconstruction_fused(&model, &xv, &mask, n, genes, &device);
    let sparse_loss = sparse.value();
    let sparse = sparse.gradients(&model);
    let inner = device.clone().inner();
    let t = |v: Vec<f32>, d: &Device| Tensor::from_data(TensorData::new(v, [n, genes]), d);
    let dense = train::masked_reconstruction_loss(
        &model,
        t(xv.clone(), &device),
        t(mask.keep.clone(), &inner),
        t(mask.weights(genes), &inner),
        mask.scale,
    );
    close(sparse_loss, scalar(dense.clone()), 1e-5, "loss");
    let dense = train::StepLoss::plain(dense).gradients(&model);
    let values = |t: Tensor<1>| t.into_data().try_to_vec::<f32>().expect("f32");
    let linears = model.encoder.layers.iter().chain(&model.decoder.layers);
    for (i, l) in linears.enumerate() {
        let bias = l.bias.as_ref().expect("bias").id;
        for (what, got, want) in [
            (
                "weight",
                sparse
                    .get::<2>(l.weight.id)
                    .map(|g| values(g.flatten(0, 1))),
                dense.get::<2>(l.weight.id).map(|g| values(g.flatten(0, 1))),
            ),
            (
                "bias",
                sparse.get::<1>(bias).map(values),
                dense.get::<1>(bias).map(values),
            ),
        ] {
            let (got, want) = (got.expect("sparse gradient"), want.expect("dense gradient"));
            let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
            assert!(scale > 0.0, "layer {i} {what}: a gradient to compare");
            for (a, b) in got.iter().zip(&want) {
                assert!(
                    (a - b).abs() <= 1e-5 * scale,
                    "layer {i} {what}: sparse {a} vs dense {b} (largest {scale})"
                );
            }
        }
    }
}

fn small(epochs: usize) -> TrainOptions {
    TrainOptions {
        epochs,
        batch_size: 128,
        hidden: vec![64, 32, 16],
        log_every: 1,
        ..TrainOptions::pretrain_default()
    }
}

fn run(x: &cellscope::data::CsrMatrix, o: &Objective, opts: &TrainOptions) -> train::TrainOutcome {
    let (tx, rx) = crossbeam_channel::bounded(4096);
    let out = train::pretrain(x, o, opts, BackendChoice::Cpu, &tx, &AtomicBool::new(false))
        .expect("pretrain");
    drop(tx);
    let events: Vec<TrainEvent> = rx.iter().collect();
    let steps = events.iter().filter(|e| e.kind == EventKind::Step).count();
    let last = events.last().expect("events");
    assert_eq!(steps, last.step, "one event per step (log_every 1)");
    assert_eq!(steps, opts.epochs * last.steps_per_epoch);
    out
}

#[test]
fn every_objective_trains_on_real_data() {
    let x = hypothalamus();
    let genes = {
        let a = cellscope::data::open(&shared("hypothalamus_scrna_ref.h5ad")).expect("read");
        cellscope::data::genes::dataset_genes(&a)
    };
    // Programmes: consecutive blocks of 10 of the dataset's genes, written as a GMT file.
    let dir = tempfile::tempdir().expect("tempdir");
    let gmt = dir.path().join("blocks.gmt");
    let mut text = String::new();
    for (i, c) in genes.symbols.chunks(10).enumerate() {
        // Named after their first gene, as MSigDB C3 TFT names a factor's targets (gp-to-tf).
        text.push_str(&format!(
            "{}_TARGET_GENES_{i}\thttp://example\t{}\n",
            c[0],
            c.join("\t").to_lowercase()
        ));
    }
    text.push_str("NOTHING\tx\tNOT_A_GENE\n");
    std::fs::write(&gmt, text).expect("write gmt");
    let p = Programmes::read_gmt(&gmt, &genes).expect("gmt");
    assert_eq!(
        p.names.len(),
        genes.len().div_ceil(10),
        "unmatched programme dropped, symbols matched case-insensitively"
    );
    for kind in ObjectiveKind::ALL {
        let name = kind.name();
        let mut o = Objective::new(kind, Some(p.clone())).expect("objective");
        if let Objective::Byol { hidden, .. } = &mut o {
            *hidden = 128;
        }
        // SimCLR and VICReg on the same backbone here (the bench's encoder: model_generic).
        let o = o.with_generic(train::Generic {
            encoder: cellscope::model::bench::EncoderKind::Backbone,
            ..Default::default()
        });
        let out = run(&x, &o, &small(6));
        let h = &out.history;
        assert_eq!(h.len(), 6);
        assert!(
            h.iter()
                .all(|e| e.train_loss.is_finite() && e.val_loss.is_some_and(f64::is_finite)),
            "{name}: finite losses {h:?}"
        );
        let (first, last) = (h[0].train_loss, h[5].train_loss);
        println!(
            "{name}: epoch loss {first:.5} -> {last:.5}, val {:?} -> {:?}",
            h[0].val_loss, h[5].val_loss
        );
        assert!(
            last < first,
            "{name}: training loss did not decrease ({first} -> {last})"
        );
        assert_eq!(out.weights.widths(), vec![134, 64, 32, 16]);
    }
    let e = Objective::new(ObjectiveKind::GpMask, None).expect_err("gp-mask without programmes");
    assert!(e.to_string().contains("--gmt"), "{e}");
    let bad = dir.path().join("bad.gmt");
    std::fs::write(&bad, "ONLY_NAME\n").expect("write");
    let e = Programmes::read_gmt(&bad, &genes).expect_err("malformed GMT");
    assert!(
        e.to_string().contains("bad.gmt") && e.to_string().contains("line 1"),
        "{e}"
    );
}

#[test]
fn finetune_beats_chance_and_saved_model_predicts_the_same() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (tx, rx) = crossbeam_channel::bounded(4096);
    let adata = cellscope::data::open(&shared("hypothalamus_scrna_ref.h5ad")).expect("read");
    let pre = run_pretrain(
        &adata,
        &PretrainJob {
            objective: ObjectiveKind::RandomMask,
            gmt: None,
            generic: Default::default(),
            genes: None,
            opts: small(5),
            backend: BackendChoice::Cpu,
        },
        &tx,
        &AtomicBool::new(false),
    )
    .expect("pretrain");
    let pre_dir = dir.path().join("pre");
    cellscope::model::save_model(&pre.model, &pre_dir).expect("save pretrained");
    let job = FinetuneJob {
        label_key: "cell_type".into(),
        genes: None,
        layers: TrainLayers::All,
        opts: TrainOptions {
            epochs: 8,
            hidden: vec![64, 32, 16],
            ..TrainOptions::finetune_default()
        },
        backend: BackendChoice::Cpu,
        split_seed: 42,
    };
    let ft = run_finetune(
        &adata,
        &job,
        Some(&cellscope::model::load_model(&pre_dir, None).expect("load")),
        &tx,
        &AtomicBool::new(false),
    )
    .expect("finetune");
    drop(tx);
    assert!(
        rx.iter()
            .any(|e| e.kind == EventKind::Epoch && e.val_macro_f1.is_some())
    );
    let k = ft.model.class_names.as_ref().expect("classes").len();
    let best = ft.outcome.history[ft.outcome.best_epoch]
        .val_macro_f1
        .expect("val F1");
    let (test, _) = ft.test.as_ref().expect("test scores");
    println!(
        "fine-tuned: {k} classes, best val macro-F1 {best:.4}, test macro-F1 {:.4}, accuracy {:.4}",
        test.macro_f1, test.accuracy
    );
    assert!(
        best > 3.0 / k as f64,
        "validation macro-F1 {best} is not above chance (1/{k})"
    );
    assert!(test.accuracy > 0.5, "test accuracy {}", test.accuracy);

    let out = dir.path().join("ft");
    cellscope::model::save_model(&ft.model, &out).expect("save");
    let loaded = cellscope::model::load_model(&out, None).expect("load");
    assert_eq!(loaded.class_names, ft.model.class_names);
    assert_eq!(loaded.provenance.seed, Some(0));
    assert!(
        loaded
            .provenance
            .objective
            .as_deref()
            .is_some_and(|o| o.contains("fine-tuning"))
    );
    let x = hypothalamus();
    let a = predict_matrix(&ft.model, &x).expect("predict");
    let b = predict_matrix(&loaded, &x).expect("predict loaded");
    assert_eq!(a, b, "save -> load changed the predictions");
    assert!(a.confidence.iter().all(|&c| c > 0.0 && c <= 1.0));
    let row_sum: f32 = a.probabilities[..k].iter().sum();
    assert!(
        (row_sum - 1.0).abs() < 1e-5,
        "probabilities sum to {row_sum}"
    );
}

#[test]
fn cancellation_stops_within_one_step_and_keeps_the_last_epoch() {
    let x = hypothalamus();
    let cancel = std::sync::Arc::new(AtomicBool::new(false));
    let (tx, rx) = crossbeam_channel::bounded::<TrainEvent>(1);
    let flag = cancel.clone();
    let handle = std::thread::Builder::new()
        .name("test-train".into())
        .spawn(move || {
            train::pretrain(
                &x,
                &Objective::RandomMask { rate: 0.5 },
                &small(50),
                BackendChoice::Cpu,
                &tx,
                &flag,
            )
        })
        .expect("spawn");
    let mut cancelled_at = None;
    let mut last_step = 0;
    for e in rx {
        if e.kind == EventKind::Step {
            last_step = e.step;
        }
        if e.epoch == 1 && e.kind == EventKind::Step && cancelled_at.is_none() {
            cancel.store(true, Ordering::Relaxed);
            cancelled_at = Some(e.step);
        }
    }
    let out = handle.join().expect("thread").expect("outcome");
    let at = cancelled_at.expect("reached epoch 2");
    assert!(out.cancelled);
    assert!(
        last_step <= at + 1,
        "{} steps ran after the cancel request",
        last_step - at
    );
    assert_eq!(out.history.len(), 1, "the last whole epoch is kept");
    assert_eq!(out.best_epoch, 0);

    // Cancelled before any epoch: nothing to keep, a clear error.
    let (tx, _rx) = crossbeam_channel::bounded(16);
    let e = train::pretrain(
        &hypothalamus(),
        &Objective::RandomMask { rate: 0.5 },
        &small(2),
        BackendChoice::Cpu,
        &tx,
        &AtomicBool::new(true),
    )
    .expect_err("cancelled at once");
    assert!(matches!(e, TrainError::Cancelled));
}

#[test]
fn trains_on_wgpu_when_an_adapter_exists() {
    if cellscope::model::engine::probe_wgpu().is_none() {
        eprintln!("no wgpu adapter: skipped");
        return;
    }
    let x = hypothalamus();
    let (tx, _rx) = crossbeam_channel::bounded(4096);
    let out = train::pretrain(
        &x,
        &Objective::RandomMask { rate: 0.5 },
        &small(3),
        BackendChoice::Wgpu,
        &tx,
        &AtomicBool::new(false),
    )
    .expect("wgpu training");
    assert!(out.device.contains("wgpu"), "{}", out.device);
    let h = &out.history;
    println!(
        "wgpu ({}): loss {:?}",
        out.device,
        h.iter().map(|e| e.train_loss).collect::<Vec<_>>()
    );
    assert!(h[2].train_loss < h[0].train_loss && h[2].train_loss.is_finite());
}

#[test]
fn selu_backward_is_finite_for_large_activations() {
    // burn 0.22's selu gives NaN gradients above x = 88 (exp overflow times a zero mask).
    let d = Device::flex().autodiff();
    let x = Tensor::<2>::from_data(TensorData::new(vec![100f32, -100.0, 0.5, -0.5], [1, 4]), &d)
        .require_grad();
    let y = cellscope::model::nets::selu(x.clone()).sum();
    let g = x.grad(&y.backward()).expect("gradient");
    let g: Vec<f32> = g.into_data().convert::<f32>().try_to_vec().expect("values");
    let (alpha, scale) = (1.673_263_2_f32, 1.050_701_f32);
    let want = [
        scale,
        scale * alpha * (-100f32).exp(),
        scale,
        scale * alpha * (-0.5f32).exp(),
    ];
    for (a, b) in g.iter().zip(want) {
        assert!(
            a.is_finite() && (a - b).abs() < 1e-5,
            "SELU gradient {a} vs {b}"
        );
    }
}
