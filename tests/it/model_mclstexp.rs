//! mclSTExp's network against a PyTorch model of the public code's architecture
//! (`tests/fixtures/histology/make_mclstexp_reference.py`): on 6 real HER2+ C2 spots with the
//! same weights, the spot and image embeddings, the loss and every parameter after one Adam
//! step within 1e-5; the neighbour prediction of `evel_her2st.py`; the weights round-trip
//! through the public code's key names.

use burn::tensor::Device;
use cellscope::model::checkpoint::read_state_dict;
use cellscope::model::histology::mclstexp::MclConfig;
use cellscope::model::histology::train::{MclTraining, SpotSet, optimizer, predict, step};
use cellscope::model::histology::weights::{from_state_dict, state_dict};
use cellscope::model::nets::tensor_values;
use ndarray::Array2;
use serde_json::Value;

use super::common::{fixture, fixture_json};
use super::model_train::f32s;

fn usize_of(r: &Value, k: &str) -> usize {
    r[k].as_u64().expect(k) as usize
}

fn close(got: &[f32], want: &[f32], tol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let worst = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(worst <= tol, "{what}: worst difference {worst:e}");
}

fn setup(r: &Value) -> (MclConfig, SpotSet) {
    let n = usize_of(r, "n");
    let genes = r["genes"].as_array().expect("genes").len();
    let image_dim = usize_of(r, "image_dim");
    let c = MclConfig {
        genes,
        image_dim,
        projection_dim: usize_of(r, "projection_dim"),
        heads: usize_of(r, "heads"),
        dim_head: usize_of(r, "dim_head"),
        layers: usize_of(r, "layers"),
        positions: usize_of(r, "positions"),
    };
    let pos: Vec<u32> = r["pos"]
        .as_array()
        .expect("pos")
        .iter()
        .map(|v| v.as_u64().expect("p") as u32)
        .collect();
    let set = SpotSet {
        expr: Array2::from_shape_vec((n, genes), f32s(&r["expr"])).expect("expr"),
        positions: pos.chunks(2).map(|p| [p[0], p[1]]).collect(),
        features: Array2::from_shape_vec((n, image_dim), f32s(&r["features"])).expect("features"),
    };
    (c, set)
}

#[test]
fn mclstexp_forward_loss_and_adam_step_match_pytorch() {
    let r = fixture_json("histology/mclstexp_reference.json");
    let (c, set) = setup(&r);
    let file = fixture("histology/mclstexp_weights.safetensors");
    let sd = read_state_dict(&file).expect("weights");
    let device = Device::flex().autodiff();
    let net = from_state_dict(&sd, &file, &c, &device).expect("load");
    let idx: Vec<usize> = (0..set.expr.nrows()).collect();
    let b = set.batch(&idx, &device);
    let s = tensor_values(net.spot_embeddings(b.expr.clone(), b.x.clone(), b.y.clone()));
    close(&s, &f32s(&r["spot_embeddings"]), 1e-5, "spot embeddings");
    let i = tensor_values(net.image_embeddings(b.features.clone()));
    close(&i, &f32s(&r["image_embeddings"]), 1e-5, "image embeddings");
    let t = MclTraining {
        lr: 1e-2,
        weight_decay: 1e-3,
        ..MclTraining::default()
    };
    let mut optim = optimizer(&t);
    let (net, loss) = step(net, &b, &mut optim, &t);
    let want = r["loss"].as_f64().expect("loss");
    assert!((loss - want).abs() < 1e-5, "loss {loss} vs {want}");
    let after = &r["after_step"];
    let named = state_dict(&net);
    assert_eq!(
        named.len(),
        after.as_object().expect("params").len(),
        "parameter count"
    );
    for (key, _, values) in &named {
        close(values, &f32s(&after[key]), 1e-5, key);
    }
    let again = f64::from(net.loss(&b, 1.0).into_scalar::<f32>());
    let want = r["loss_after_step"].as_f64().expect("loss after");
    assert!(
        (again - want).abs() < 1e-5,
        "loss after the step {again} vs {want}"
    );
}

#[test]
fn mclstexp_prediction_matches_the_published_weighting() {
    let r = &fixture_json("histology/mclstexp_reference.json")["predict"];
    let m = |k: &str, cols: usize| {
        let v = f32s(&r[k]);
        Array2::from_shape_vec((v.len() / cols, cols), v).expect(k)
    };
    let (q, keys, vals) = (m("queries", 5), m("keys", 5), m("values", 3));
    let got = predict(&q, &keys, &vals, usize_of(r, "k"));
    close(
        got.as_slice().expect("contiguous"),
        &f32s(&r["expected"]),
        1e-5,
        "prediction",
    );
}

/// `cellscope histology ARGS` (strings and paths alike).
fn histology(args: &[&dyn AsRef<std::ffi::OsStr>]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_cellscope"))
        .arg("histology")
        .args(args.iter().map(|a| a.as_ref()))
        .output()
        .expect("run cellscope")
}

/// A HER2+ file of `../shared/data`.
fn her2st(name: &str) -> std::path::PathBuf {
    super::common::shared_data().join(name)
}

/// Trains the colour-texture kNN on `sections` into `model`.
fn train_colour_knn(sections: &[&str], model: &std::path::Path) {
    let mut args: Vec<std::ffi::OsString> =
        ["train", "--method", "knn", "--encoder", "colour-texture"]
            .map(Into::into)
            .to_vec();
    args.push("--sections".into());
    args.extend(sections.iter().map(|s| her2st(s).into_os_string()));
    args.extend([
        "--genes".into(),
        her2st("her2st_hvg_785.csv").into_os_string(),
    ]);
    args.extend(["--out".into(), model.as_os_str().to_owned()]);
    let refs: Vec<&dyn AsRef<std::ffi::OsStr>> = args
        .iter()
        .map(|a| a as &dyn AsRef<std::ffi::OsStr>)
        .collect();
    let o = histology(&refs);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn histology_train_then_predict_a_held_out_section() {
    let dir = tempfile::tempdir().expect("tmp");
    let encoder = dir.path().join("encoder.safetensors");
    std::fs::copy(fixture("vision/densenet.safetensors"), &encoder).expect("copy encoder");
    let model = dir.path().join("model");
    let (c2, c3) = (her2st("her2st_C2.h5ad"), her2st("her2st_C3.h5ad"));
    let genes = her2st("her2st_hvg_785.csv");
    let o = histology(&[
        &"train",
        &"--sections",
        &c2,
        &c3,
        &"--genes",
        &genes,
        &"--encoder",
        &encoder,
        &"--epochs",
        &"3",
        &"--backend",
        &"cpu",
        &"--out",
        &model,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for f in [
        "mclstexp.safetensors",
        "reference.safetensors",
        "histology.json",
    ] {
        assert!(model.join(f).is_file(), "{f} missing");
    }
    let out = dir.path().join("pred.h5ad");
    let (image, spots) = (her2st("her2st_C4_HE.jpg"), her2st("her2st_C4.h5ad"));
    let predict = |out: &std::path::Path| {
        histology(&[
            &"predict",
            &"--model",
            &model,
            &"--image",
            &image,
            &"--spots",
            &spots,
            &"--backend",
            &"cpu",
            &"--out",
            &out,
        ])
    };
    let o = predict(&out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("ACG") && text.contains("HEG"), "{text}");
    let p = cellscope::data::open(&out).expect("prediction");
    let q = cellscope::data::open(&spots).expect("query");
    assert_eq!((p.n_obs(), p.n_vars()), (q.n_obs(), 785));
    assert_eq!(p.obs_names(), q.obs_names());
    assert!(
        p.layers.iter().any(|l| l.path.ends_with("measured")),
        "{:?}",
        p.layers
    );
    // Predictions are weighted means of training spots' log10 expression: inside their range.
    let x = p.x.to_csr().to_dense();
    assert!(x.iter().all(|v| v.is_finite() && *v >= 0.0 && *v < 5.0));
    if super::common::python_anndata("the layers half of the histology check") {
        let o = std::process::Command::new("python3")
            .args(["-c", "import anndata, sys; a = anndata.read_h5ad(sys.argv[1]); assert a.layers['measured'].shape == a.shape; assert 'cellscope_histology_scores' in a.uns"])
            .arg(&out)
            .output()
            .expect("python");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    // An encoder file changed under the model: a clear error, not silent garbage.
    std::fs::copy(fixture("vision/resnet_basic.safetensors"), &encoder).expect("swap encoder");
    let o = predict(&dir.path().join("pred2.h5ad"));
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("not the image encoder the model was trained with"),
        "{err}"
    );
}

#[test]
fn histology_train_refuses_a_panel_sharing_no_gene() {
    let dir = tempfile::tempdir().expect("tmp");
    let genes = dir.path().join("genes.csv");
    std::fs::write(&genes, "gene\nNOT_A_GENE_1\nNOT_A_GENE_2\n").expect("write");
    let (c2, encoder, m) = (
        her2st("her2st_C2.h5ad"),
        fixture("vision/densenet.safetensors"),
        dir.path().join("m"),
    );
    let o = histology(&[
        &"train",
        &"--sections",
        &c2,
        &"--genes",
        &genes,
        &"--encoder",
        &encoder,
        &"--out",
        &m,
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("her2st_C2.h5ad") && err.contains("shares no gene"),
        "{err}"
    );
    assert!(!m.exists());
}

#[test]
fn colour_texture_knn_baseline_trains_and_predicts_through_the_same_commands() {
    let dir = tempfile::tempdir().expect("tmp");
    let model = dir.path().join("knn");
    train_colour_knn(&["her2st_C2.h5ad", "her2st_C3.h5ad"], &model);
    assert!(
        !model.join("mclstexp.safetensors").exists(),
        "a kNN has no network"
    );
    let out = dir.path().join("pred.h5ad");
    let metrics = dir.path().join("m.json");
    let (image, spots) = (her2st("her2st_C5_HE.jpg"), her2st("her2st_C5.h5ad"));
    let o = histology(&[
        &"predict",
        &"--model",
        &model,
        &"--image",
        &image,
        &"--spots",
        &spots,
        &"--out",
        &out,
        &"--metrics-json",
        &metrics,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m: Value =
        serde_json::from_str(&std::fs::read_to_string(&metrics).expect("metrics")).expect("json");
    let acg = m["acg"].as_f64().expect("acg");
    assert!(acg.is_finite() && acg > -1.0 && acg < 1.0, "{acg}");
    // Against the scores recomputed from the written prediction and measurement.
    let p = cellscope::data::open(&out).expect("prediction");
    let pred = p.x.to_csr().to_dense();
    let q = cellscope::data::open(&spots).expect("query");
    let panel =
        cellscope::data::genes::GeneList::read_csv(&her2st("her2st_hvg_785.csv")).expect("panel");
    let spots =
        cellscope::pipeline::jobs::histology::mclstexp::section_spots(&q, &panel).expect("spots");
    let s2 = cellscope::analysis::prediction::expression_scores(&spots.expr, &pred);
    assert!((s2.acg - acg).abs() < 1e-6, "{} vs {acg}", s2.acg);
}

#[test]
fn expression_scores_match_scipy() {
    let r = &fixture_json("histology/mclstexp_reference.json")["scores"];
    let g = usize_of(r, "genes");
    let m = |k: &str| {
        let v = f32s(&r[k]);
        Array2::from_shape_vec((v.len() / g, g), v).expect(k)
    };
    let s = cellscope::analysis::prediction::expression_scores(&m("truth"), &m("pred"));
    assert!(
        s.per_gene[7].is_none(),
        "a constant gene has no correlation"
    );
    for (got, key) in [
        (s.acg, "acg"),
        (s.heg, "heg"),
        (s.hvg, "hvg"),
        (s.mse, "mse"),
        (s.mae, "mae"),
    ] {
        let want = r[key].as_f64().expect(key);
        assert!((got - want).abs() < 1e-5, "{key}: {got} vs {want}");
    }
}

#[test]
fn histology_predict_refuses_a_zero_top_k_before_any_work() {
    let dir = tempfile::tempdir().expect("tmp");
    let model = dir.path().join("knn");
    train_colour_knn(&["her2st_C3.h5ad"], &model);
    let out = dir.path().join("p.h5ad");
    let image = her2st("her2st_C4_HE.jpg");
    let o = histology(&[
        &"predict", &"--model", &model, &"--image", &image, &"--grid", &"--top-k", &"0", &"--out",
        &out,
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("top-k must be at least 1"), "{err}");
    assert!(!out.exists());
}
