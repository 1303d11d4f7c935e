//! Importing the ssl_in_scg model family from real PyTorch / Lightning / safetensors files
//! (tests/fixtures/models/make_models.py) and running them: embeddings equal PyTorch's forward
//! pass within 1e-4 on real cells, on every compute path.

use crate::common;

use cellscope::data::genes::{GeneAlignment, GeneList, dataset_genes};
use cellscope::data::preprocess::{TargetSum, log1p, normalize_total};
use cellscope::data::{CsrMatrix, open};
use cellscope::model::checkpoint::{ModelError, load_checkpoint};
use cellscope::model::{BackendChoice, Engine, ModelKind};
use common::{fixture, shared_data};

fn reference() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("models/reference.json")).expect("ref"))
        .expect("json")
}

/// The first 200 kang cells, normalize_total(1e4) + log1p, in the fixture models' gene order.
fn cells() -> CsrMatrix {
    let a = open(&shared_data().join("kang_pbmc_ctrl.h5ad")).expect("kang");
    let mut x = a.x.to_csr();
    normalize_total(&mut x, TargetSum::Fixed(1e4));
    log1p(&mut x);
    let genes = GeneList::read_csv(&fixture("models/genes.csv")).expect("genes");
    let al = GeneAlignment::new(&genes, &dataset_genes(&a), None);
    assert_eq!(al.coverage().matched, 256);
    al.map_matrix(&x).slice_rows(0, 200)
}

fn max_rel_err(got: &[f32], want: &serde_json::Value) -> f64 {
    let rows = want.as_array().expect("rows");
    let width = rows[0].as_array().expect("row").len();
    assert_eq!(got.len(), rows.len() * width, "shape");
    let mut worst = 0f64;
    for (i, r) in rows.iter().enumerate() {
        for (j, v) in r.as_array().expect("row").iter().enumerate() {
            let w = v.as_f64().expect("f64");
            let d = (f64::from(got[i * width + j]) - w).abs() / w.abs().max(1.0);
            worst = worst.max(d);
        }
    }
    worst
}

#[test]
fn every_layout_is_detected() {
    for (file, kind, format) in [
        (
            "random_mask.ckpt",
            ModelKind::MaskedAutoencoder,
            "Lightning checkpoint",
        ),
        (
            "gp_mask.ckpt",
            ModelKind::MaskedAutoencoder,
            "Lightning checkpoint",
        ),
        (
            "barlow_twins.pt",
            ModelKind::BarlowTwins,
            "PyTorch state_dict",
        ),
        ("byol.pt", ModelKind::Byol, "PyTorch state_dict"),
        ("classifier.pt", ModelKind::Classifier, "PyTorch state_dict"),
        (
            "classifier.safetensors",
            ModelKind::Classifier,
            "safetensors",
        ),
    ] {
        let (m, sd) = load_checkpoint(&fixture(&format!("models/{file}")))
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        println!("{file}: {m}");
        assert_eq!(m.kind, kind, "{file}");
        assert_eq!(sd.format, format, "{file}");
        assert_eq!(m.widths(), vec![256, 512, 512, 256, 256, 64], "{file}");
        if kind == ModelKind::Classifier {
            assert_eq!(m.head.as_ref().map(|h| h.n_out), Some(5));
        }
        if kind == ModelKind::MaskedAutoencoder {
            assert_eq!(m.decoder.len(), 5, "{file}: decoder layers");
        }
    }
    // save_hyperparameters() reached the file.
    let (_, sd) = load_checkpoint(&fixture("models/random_mask.ckpt")).expect("rm");
    let hp = format!("{:?}", sd.hyper_parameters);
    assert!(hp.contains("mask_rate") && hp.contains("n_genes"), "{hp}");
}

#[test]
fn embeddings_equal_pytorch_on_cpu_paths() {
    let r = reference();
    let x = cells();
    for (file, key) in [
        ("random_mask.ckpt", "random_mask"),
        ("gp_mask.ckpt", "gp_mask"),
        ("barlow_twins.pt", "barlow_twins"),
        ("byol.pt", "byol"),
        ("classifier.pt", "classifier_embedding"),
        ("classifier.safetensors", "classifier_embedding"),
    ] {
        let (m, _) = load_checkpoint(&fixture(&format!("models/{file}"))).expect("load");
        for engine in [
            Engine::new(&m, BackendChoice::Cpu).expect("cpu"),
            Engine::burn_cpu(&m).expect("burn cpu"),
        ] {
            let e = engine.embed(&x);
            let err = max_rel_err(&e, &r[key]);
            println!(
                "{file} on {}: max relative error {err:.2e}",
                engine.description()
            );
            assert!(err <= 1e-4, "{file} on {}: {err}", engine.description());
        }
    }
    let (m, _) = load_checkpoint(&fixture("models/classifier.pt")).expect("load");
    let logits = Engine::new(&m, BackendChoice::Cpu)
        .expect("cpu")
        .logits(&x)
        .expect("head");
    let err = max_rel_err(&logits, &r["classifier_logits"]);
    assert!(err <= 1e-4, "logits: {err}");
}

#[test]
fn embeddings_equal_pytorch_on_wgpu() {
    if cellscope::model::engine::probe_wgpu().is_none() {
        assert!(
            std::env::var("CI").is_err(),
            "CI installs mesa-vulkan-drivers: wgpu must be found"
        );
        eprintln!("no wgpu adapter: skipped");
        return;
    }
    let r = reference();
    let x = cells();
    for (file, key) in [
        ("random_mask.ckpt", "random_mask"),
        ("barlow_twins.pt", "barlow_twins"),
    ] {
        let (m, _) = load_checkpoint(&fixture(&format!("models/{file}"))).expect("load");
        let engine = Engine::new(&m, BackendChoice::Wgpu).expect("wgpu");
        let err = max_rel_err(&engine.embed(&x), &r[key]);
        println!(
            "{file} on {}: max relative error {err:.2e}",
            engine.description()
        );
        assert!(err <= 1e-4, "{file}: {err}");
    }
}

#[test]
fn bad_checkpoints_give_clear_errors() {
    let dir = tempfile::tempdir().expect("tmp");
    // Truncated zip.
    let bytes = std::fs::read(fixture("models/classifier.pt")).expect("read");
    let p = dir.path().join("truncated.pt");
    std::fs::write(&p, &bytes[..bytes.len() / 2]).expect("write");
    let e = load_checkpoint(&p).expect_err("truncated");
    assert!(matches!(e, ModelError::Read { .. }), "{e}");
    assert!(e.to_string().contains("truncated.pt"), "{e}");
    // Not a checkpoint at all.
    let p = dir.path().join("notes.txt");
    std::fs::write(&p, "just some text, not weights").expect("write");
    let e = load_checkpoint(&p).expect_err("text");
    assert!(e.to_string().contains("notes.txt"), "{e}");
    // Unknown layout: safetensors with unrelated keys.
    let p = dir.path().join("other.safetensors");
    let data: Vec<u8> = [1f32, 2., 3., 4.]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![2, 2], &data)
        .expect("view");
    safetensors::serialize_to_file([("conv.weight", view)], None, &p).expect("save");
    let e = load_checkpoint(&p).expect_err("layout");
    assert!(
        e.to_string().contains("unknown layout") && e.to_string().contains("conv.weight"),
        "{e}"
    );
    // NaN weights, and layers that do not chain.
    let nan: Vec<u8> = [f32::NAN, 1., 1., 1.]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let ok: Vec<u8> = [1f32; 6].iter().flat_map(|v| v.to_le_bytes()).collect();
    let p = dir.path().join("nan.safetensors");
    let a =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![2, 2], &nan).expect("v");
    let b =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![3, 2], &ok).expect("v");
    safetensors::serialize_to_file(
        [
            ("encoder.0.weight", a.clone()),
            ("encoder.3.weight", b.clone()),
        ],
        None,
        &p,
    )
    .expect("save");
    let e = load_checkpoint(&p).expect_err("nan");
    assert!(
        e.to_string().contains("encoder.0.weight") && e.to_string().contains("NaN"),
        "{e}"
    );
    let p = dir.path().join("chain.safetensors");
    let c =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![2, 3], &ok).expect("v");
    safetensors::serialize_to_file(
        [("encoder.0.weight", c.clone()), ("encoder.3.weight", c)],
        None,
        &p,
    )
    .expect("save");
    let e = load_checkpoint(&p).expect_err("chain");
    assert!(e.to_string().contains("encoder.3.weight"), "{e}");
}
