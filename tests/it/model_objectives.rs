//! ssl_in_scg's objectives exactly (SEED_METHODS.md): the four masked objectives' masks, input
//! scales, losses and every gradient against PyTorch on the same batch and programme choices,
//! on both loss paths (burn tensors and the fused CPU pass); the random choices' statistics;
//! and the Barlow Twins / BYOL view's distribution against PyTorch's samples
//! (`tests/fixtures/train/make_train_reference.py`).

use burn::tensor::{Device, Tensor, TensorData};
use cellscope::model::train::{
    self, Mask, Programmes, Scored, contrastive_views, gp_mask, gp_mask_of, gp_to_tf_mask,
    gp_to_tf_mask_of, isolated_mask, isolated_mask_of, random_mask,
};
use serde_json::Value;

use super::model_train::{close, f32s, fixture_model, reference};

fn ints(v: &Value) -> Vec<usize> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("int") as usize)
        .collect()
}

fn fixture_programmes(r: &Value) -> Programmes {
    let genes: Vec<Vec<u32>> = r["programmes"]
        .as_array()
        .expect("programmes")
        .iter()
        .map(|p| ints(p).into_iter().map(|g| g as u32).collect())
        .collect();
    Programmes {
        names: (0..genes.len()).map(|i| format!("P{i}")).collect(),
        regulators: ints(&r["factors"])
            .into_iter()
            .map(|g| Some(g as u32))
            .collect(),
        genes,
        source: "fixture".into(),
    }
}

#[test]
fn masked_objectives_match_pytorch_loss_and_every_gradient() {
    let r = reference();
    let (rows, genes) = (
        r["shape"][0].as_u64().expect("rows") as usize,
        r["shape"][1].as_u64().expect("genes") as usize,
    );
    let p = fixture_programmes(&r);
    let xv = f32s(&r["x"]);
    for name in ["random", "gp", "isolated", "gp_to_tf"] {
        let o = &r["objectives"][name];
        let mask = match name {
            "random" => Mask {
                keep: f32s(&o["keep"]),
                scale: 2.0,
                scored: Scored::Hidden,
            },
            "gp" => gp_mask_of(rows, genes, &p, &ints(&o["chosen"])),
            "isolated" => isolated_mask_of(rows, genes, &p, ints(&o["chosen"])[0]),
            _ => gp_to_tf_mask_of(genes, &p, &ints(&o["chosen"])),
        };
        assert_eq!(mask.keep, f32s(&o["keep"]), "{name}: input mask");
        assert_eq!(mask.weights(genes), f32s(&o["weight"]), "{name}: loss mask");
        close(mask.scale, o["scale"].as_f64().expect("scale"), 1e-6, name);
        for fused in [false, true] {
            let device = Device::flex().autodiff();
            let model = fixture_model(&r, &device);
            let loss = if fused {
                let loss =
                    train::masked_reconstruction_fused(&model, &xv, &mask, rows, genes, &device);
                close(loss.value(), o["loss"].as_f64().expect("loss"), 1e-6, name);
                loss
            } else {
                let inner = device.clone().inner();
                let t = |v: Vec<f32>, d: &Device| {
                    Tensor::from_data(TensorData::new(v, [rows, genes]), d)
                };
                let loss = train::masked_reconstruction_loss(
                    &model,
                    t(xv.clone(), &device),
                    t(mask.keep.clone(), &inner),
                    t(mask.weights(genes), &inner),
                    mask.scale,
                );
                let value = f64::from(loss.clone().into_scalar::<f32>());
                close(value, o["loss"].as_f64().expect("loss"), 1e-6, name);
                train::StepLoss::plain(loss)
            };
            let grads = loss.gradients(&model);
            let linears = model.encoder.layers.iter().chain(&model.decoder.layers);
            for (i, lin) in linears.enumerate() {
                let want = &o["grads"][i];
                // burn stores Linear weights [in, out]; PyTorch [out, in].
                let gw = grads
                    .get::<2>(lin.weight.id)
                    .expect("weight grad")
                    .transpose();
                let gb = grads
                    .get::<1>(lin.bias.as_ref().expect("bias").id)
                    .expect("bias grad");
                for (what, got, want) in [
                    (
                        "weight",
                        gw.into_data().try_to_vec::<f32>().expect("f32"),
                        f32s(&want["weight"]),
                    ),
                    (
                        "bias",
                        gb.into_data().try_to_vec::<f32>().expect("f32"),
                        f32s(&want["bias"]),
                    ),
                ] {
                    assert_eq!(got.len(), want.len());
                    for (a, b) in got.iter().zip(&want) {
                        assert!(
                            (a - b).abs() < 1e-5,
                            "{name} (fused {fused}): layer {i} {what} gradient {a} vs PyTorch {b}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn random_choices_follow_the_public_code() {
    let genes = 40;
    let p = Programmes {
        names: (0..8).map(|i| format!("P{i}")).collect(),
        genes: (0..8)
            .map(|i| (i * 5..i * 5 + 5).map(|g| g as u32).collect())
            .collect(),
        regulators: (0..8).map(|i| Some(i * 5 + 2)).collect(),
        source: "test".into(),
    };
    for seed in 0..20 {
        // gp: int(8 * 0.5) = 4 whole programmes hidden, the same in every row; scale 1/(1-frac)
        let m = gp_mask(6, genes, &p, 0.5, seed);
        let row = &m.keep[..genes];
        assert!(
            m.keep.chunks(genes).all(|r| r == row),
            "gp mask differs between rows"
        );
        let hidden: Vec<usize> = (0..8).filter(|&i| row[i * 5] == 0.0).collect();
        assert_eq!(hidden.len(), 4, "seed {seed}: {hidden:?}");
        for &i in &hidden {
            assert!(row[i * 5..i * 5 + 5].iter().all(|&k| k == 0.0));
        }
        assert!((m.scale - 2.0).abs() < 1e-12);
        // isolated: one programme visible for the whole batch
        let m = isolated_mask(3, genes, &p, seed);
        assert_eq!(m.keep.iter().filter(|&&k| k == 1.0).count(), 3 * 5);
        assert!(m.keep.chunks(genes).all(|r| r == &m.keep[..genes]));
        // gp_to_tf: distinct factors across rows while there are enough; loss on all but it
        let m = gp_to_tf_mask(8, genes, &p, seed);
        let Scored::AllBut(tf) = &m.scored else {
            panic!("gp_to_tf scores all but the factor")
        };
        let mut seen = tf.clone();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 8, "every factor once in a batch of 8");
        for (r, &f) in tf.iter().enumerate() {
            let k = &m.keep[r * genes..(r + 1) * genes];
            assert_eq!(k[f as usize], 1.0, "the factor's programme is the input");
            assert_eq!(k.iter().filter(|&&v| v == 1.0).count(), 5);
        }
    }
    let m = random_mask(200, 100, 0.5, 3);
    let hidden = m.keep.iter().filter(|&&k| k == 0.0).count() as f64 / 20_000.0;
    assert!((hidden - 0.5).abs() < 0.02, "random mask hides {hidden}");
    assert_eq!(m.scale, 2.0);
}

#[test]
fn contrastive_view_is_distributed_as_pytorchs() {
    let r = reference();
    let v = &r["view"];
    let x = f32s(&v["x"]);
    let genes = v["shape"][1].as_u64().expect("genes") as usize;
    let mut all = Vec::new();
    for seed in 0..20 {
        let (a, b) = contrastive_views(&x, genes, seed);
        assert_eq!(a, x, "one view is the original cell");
        all.extend(b);
    }
    let n = all.len() as f64;
    let mean = all.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let std = (all
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / (n - 1.0))
        .sqrt();
    let zeros = all.iter().filter(|&&v| v == 0.0).count() as f64 / n;
    let at_zero: Vec<f64> = all
        .iter()
        .enumerate()
        .filter(|(i, _)| x[i % x.len()] == 0.0)
        .map(|(_, &v)| f64::from(v))
        .collect();
    let at_zero = at_zero.iter().sum::<f64>() / at_zero.len() as f64;
    let rel = |a: f64, b: f64| (a - b).abs() / b.abs();
    println!(
        "view: mean {mean:.4} std {std:.4} zeros {zeros:.4} at x=0 {at_zero:.4}; PyTorch {v:.80}"
    );
    assert!(
        rel(mean, v["mean"].as_f64().expect("mean")) < 0.02,
        "mean {mean}"
    );
    assert!(
        rel(std, v["std"].as_f64().expect("std")) < 0.03,
        "std {std}"
    );
    assert!(
        (zeros - v["zero_fraction"].as_f64().expect("zeros")).abs() < 0.01,
        "zeros {zeros}"
    );
    assert!(
        rel(at_zero, v["mean_where_x_zero"].as_f64().expect("m0")) < 0.02,
        "noise {at_zero}"
    );
    all.sort_by(f32::total_cmp);
    for (q, want) in ints_f(&v["quantiles"]).iter().zip(ints_f(&v["values"])) {
        let got = f64::from(all[((n - 1.0) * q) as usize]);
        assert!(
            (got - want).abs() < 0.03,
            "quantile {q}: {got} vs PyTorch {want}"
        );
    }
}

fn ints_f(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}
