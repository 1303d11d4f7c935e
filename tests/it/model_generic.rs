//! scSSL-Bench's generic methods: SimCLR's NT-Xent and VICReg losses and their gradients, and
//! the bench's encoder with lightly's projection heads (loss and every parameter gradient),
//! against PyTorch + `lightly` (`tests/fixtures/train/make_generic_reference.py`); the eval-mode
//! encoder folded into plain Linears equals the BatchNorm network; SimCLR and VICReg train on
//! real cells with the bench's encoder and save a model that embeds.

use std::sync::atomic::AtomicBool;

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::{Device, Tensor, TensorData};
use cellscope::model::BackendChoice;
use cellscope::model::bench::{BnEncoder, Encoder, EncoderKind, HeadKind, Siamese};
use cellscope::model::checkpoint::Activation;
use cellscope::model::nets::{Mlp, linear_from_dense, tensor_values};
use cellscope::model::train::{
    self, Augmentations, Generic, Objective, ObjectiveKind, TrainOptions, VicregWeights,
};
use serde_json::Value;

use super::model_train::{close_all, f32s, scalar, tensor};

fn reference() -> Value {
    super::common::fixture_json("train/generic_reference.json")
}

type Loss = fn(Tensor<2>, Tensor<2>) -> Tensor<1>;

#[test]
fn nt_xent_and_vicreg_losses_and_gradients_match_lightly() {
    let r = &reference()["losses"];
    let device = Device::flex().autodiff();
    let losses: [(&str, Loss); 2] = [
        ("ntxent", |a, b| train::nt_xent_loss(a, b, 0.5)),
        ("vicreg", |a, b| {
            train::vicreg_loss(a, b, VicregWeights::BENCH)
        }),
    ];
    for (name, f) in losses {
        let z1 = tensor(&r["z1"], &r["shape"], &device).require_grad();
        let z2 = tensor(&r["z2"], &r["shape"], &device).require_grad();
        let loss = f(z1.clone(), z2.clone());
        let want = &r[name];
        let value = scalar(loss.clone());
        let expect = want["loss"].as_f64().expect("loss");
        assert!(
            (value - expect).abs() <= 1e-5 * expect.abs(),
            "{name}: loss {value} vs lightly {expect}"
        );
        let grads = loss.backward();
        for (z, key) in [(z1, "grad_z1"), (z2, "grad_z2")] {
            let g = tensor_values(z.grad(&grads).expect("input gradient"));
            close_all(&g, &f32s(&want[key]), 1e-5, &format!("{name} {key}"));
        }
    }
}

/// A Linear from the fixture (PyTorch layout), without a bias where lightly has none.
fn linear(v: &Value, device: &Device) -> Linear {
    let bias = v["bias"].is_array();
    let d = cellscope::model::checkpoint::Dense {
        weight: f32s(&v["weight"]),
        bias: if bias {
            f32s(&v["bias"])
        } else {
            vec![0.0; v["n_out"].as_u64().expect("n_out") as usize]
        },
        n_in: v["n_in"].as_u64().expect("n_in") as usize,
        n_out: v["n_out"].as_u64().expect("n_out") as usize,
    };
    let mut l = linear_from_dense(&d, device);
    if !bias {
        l.bias = None;
    }
    l
}

/// The fixture's network: a narrowed bench encoder and the lightly head `head`.
fn fixture_net(r: &Value, head: HeadKind, device: &Device) -> Siamese {
    let g = r["genes"].as_u64().expect("genes") as usize;
    let width = r["width"].as_u64().expect("width") as usize;
    let enc: Vec<Linear> = r["initial"]["encoder"]
        .as_array()
        .expect("encoder")
        .iter()
        .map(|v| linear(v, device))
        .collect();
    let widths: Vec<usize> = std::iter::once(g)
        .chain(enc.iter().map(|l| l.weight.val().dims()[1]))
        .collect();
    let mut encoder = BnEncoder::new(&widths, 0.0, device);
    encoder.linears = enc;
    let mut net = Siamese::new(Encoder::Bench(encoder), head, width, device);
    net.projector.linears = r["initial"]["head"]
        .as_array()
        .expect("head")
        .iter()
        .map(|v| linear(v, device))
        .collect();
    net
}

fn grad_of<const D: usize>(p: &Param<Tensor<D>>, grads: &burn::tensor::Gradients) -> Vec<f32> {
    tensor_values(p.val().grad(grads).expect("gradient"))
}

#[test]
fn bench_encoder_with_lightly_heads_matches_loss_and_every_gradient() {
    let all = reference();
    for (name, head) in [("simclr", HeadKind::Simclr), ("vicreg", HeadKind::Vicreg)] {
        let r = &all[name];
        let device = Device::flex().autodiff();
        let net = fixture_net(r, head, &device);
        let g = r["genes"].as_u64().expect("genes") as usize;
        let rows = f32s(&r["v1"]).len() / g;
        let view =
            |k: &str| Tensor::<2>::from_data(TensorData::new(f32s(&r[k]), [rows, g]), &device);
        let (z1, z2) = (net.forward(view("v1")), net.forward(view("v2")));
        let loss = if head == HeadKind::Simclr {
            train::nt_xent_loss(z1, z2, 0.5)
        } else {
            train::vicreg_loss(z1, z2, VicregWeights::BENCH)
        };
        let value = scalar(loss.clone());
        let expect = r["loss"].as_f64().expect("loss");
        assert!(
            (value - expect).abs() <= 1e-5 * expect.abs(),
            "{name}: loss {value} vs lightly {expect}"
        );
        let grads = loss.backward();
        let Encoder::Bench(enc) = &net.encoder else {
            unreachable!()
        };
        let want = &r["grads"];
        for (part, linears) in [("encoder", &enc.linears), ("head", &net.projector.linears)] {
            for (i, l) in linears.iter().enumerate() {
                let w = &want[part][i];
                // burn keeps [in, out]; PyTorch [out, in].
                let gw = tensor_values(l.weight.val().grad(&grads).expect("w").transpose());
                close_all(
                    &gw,
                    &f32s(&w["weight"]),
                    1e-5,
                    &format!("{name} {part}{i}.weight"),
                );
                match &l.bias {
                    Some(b) => close_all(
                        &grad_of(b, &grads),
                        &f32s(&w["bias"]),
                        1e-5,
                        &format!("{name} {part}{i}.bias"),
                    ),
                    None => assert!(w["bias"].is_null(), "{name} {part}{i}: lightly has a bias"),
                }
            }
        }
        for (part, norms) in [
            ("encoder_norms", &enc.norms),
            ("head_norms", &net.projector.norms),
        ] {
            assert_eq!(
                norms.len(),
                want[part].as_array().expect("norms").len(),
                "{name} {part}"
            );
            for (i, bn) in norms.iter().enumerate() {
                let w = &want[part][i];
                close_all(
                    &grad_of(&bn.gamma, &grads),
                    &f32s(&w["gamma"]),
                    1e-5,
                    &format!("{name} {part}{i}.gamma"),
                );
                close_all(
                    &grad_of(&bn.beta, &grads),
                    &f32s(&w["beta"]),
                    1e-5,
                    &format!("{name} {part}{i}.beta"),
                );
            }
        }
    }
}

/// After some training steps (running statistics updated), the eval-mode encoder equals the
/// plain ReLU MLP of its folded layers, which is what a saved model runs.
#[test]
fn folded_encoder_equals_the_eval_mode_batchnorm_network() {
    let device = Device::flex().autodiff();
    let enc = BnEncoder::new(&[30, 128, 64], 0.1, &device);
    let mut seed = 7u64;
    let mut batch = || {
        let v: Vec<f32> = (0..64 * 30)
            .map(|_| {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                ((seed >> 33) % 1000) as f32 / 250.0
            })
            .collect();
        Tensor::<2>::from_data(TensorData::new(v, [64, 30]), &device)
    };
    for _ in 0..5 {
        let _ = enc.forward(batch());
    }
    let x = batch();
    let want = tensor_values(enc.valid().forward(x.clone()));
    let folded = Mlp::from_dense(
        &enc.to_folded_dense(),
        Activation::Relu,
        0.0,
        false,
        &device.clone().inner(),
    );
    let got = tensor_values(folded.forward(x.inner()));
    close_all(&got, &want, 1e-4, "folded encoder");
    let mean_abs = want.iter().map(|v| v.abs()).sum::<f32>() / want.len() as f32;
    assert!(mean_abs > 0.1, "a non-trivial output ({mean_abs})");
}

/// SimCLR and VICReg with the bench's encoder and augmentations train on real cells (loss
/// decreases); the saved model has the bench's widths, embeds through the ordinary path, and
/// records the objective, encoder and augmentations in its provenance.
#[test]
fn simclr_and_vicreg_train_on_real_cells_and_save() {
    let a = std::sync::Arc::new(
        cellscope::data::open(&super::common::shared_data().join("hypothalamus_scrna_ref.h5ad"))
            .expect("read"),
    );
    for kind in [ObjectiveKind::Simclr, ObjectiveKind::Vicreg] {
        let job = cellscope::pipeline::jobs::train::PretrainJob {
            objective: kind,
            gmt: None,
            generic: Generic {
                encoder: EncoderKind::Bench,
                head_width: 64,
                augment: "mask:0.5@0.9,noise:0.2"
                    .parse::<Augmentations>()
                    .expect("augment"),
            },
            genes: None,
            opts: TrainOptions {
                epochs: 8,
                lr: 1e-3,
                ..TrainOptions::pretrain_for(kind)
            },
            backend: BackendChoice::Cpu,
        };
        let (tx, rx) = crossbeam_channel::bounded(100_000);
        let t =
            cellscope::pipeline::jobs::train::run_pretrain(&a, &job, &tx, &AtomicBool::new(false))
                .expect("pretrain");
        drop(tx);
        assert!(rx.iter().count() > 8, "step and epoch events");
        let h = &t.outcome.history;
        let (first, last) = (h[0].train_loss, h[h.len() - 1].train_loss);
        println!("{kind}: loss {first:.4} -> {last:.4}");
        assert!(
            last < first,
            "{kind}: loss did not decrease ({first} -> {last})"
        );
        assert_eq!(t.model.weights.widths(), vec![134, 128, 64]);
        assert_eq!(t.model.weights.activation, Activation::Relu);
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("m");
        cellscope::model::save_model(&t.model, &path).expect("save");
        let back = cellscope::model::load_model(&path, None).expect("load");
        assert_eq!(back.weights.kind, t.model.weights.kind);
        let hyper = back.provenance.hyper_parameters.expect("hyper");
        assert_eq!(hyper["generic"]["encoder"], "bench", "{hyper}");
        assert!(
            hyper["generic"]["augment"]
                .as_str()
                .expect("augment")
                .contains("noise:0.2")
        );
        assert_eq!(back.provenance.objective.as_deref(), Some(kind.name()));
    }
    let o = Objective::new(ObjectiveKind::Vicreg, None).expect("vicreg");
    let Objective::Vicreg { weights, generic } = o else {
        unreachable!()
    };
    assert_eq!(weights, VicregWeights::BENCH);
    assert_eq!(generic.head_width, 256);
    assert_eq!(generic.augment.to_string(), "mask:0.5@0.5");
}
