//! Hostile input (issue #21, first cases): non-finite coordinates or representations, training
//! options, figure sizes and output paths out of range. Each is refused up front with exit code
//! 2 and a message naming what is wrong; no panic, no output file, the input unchanged.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cellscope::data::write::{Additions, write_h5ad};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cellscope"))
        .args(args)
        .output()
        .expect("run cellscope")
}

/// Asserts exit code 2, no panic, and a message containing every one of `words`.
fn refused(o: &Output, words: &[&str]) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    for w in words {
        assert!(err.contains(w), "{w:?} not in: {err}");
    }
}

/// her2st_A1 with a NaN in `obsm['spatial']` and an infinity in a new `obsm['X_emb']`.
fn with_non_finite(dir: &Path) -> PathBuf {
    let a = cellscope::data::open(&common::shared_data().join("her2st_A1.h5ad")).unwrap();
    let n = a.n_obs();
    let mut spatial = a.spatial_f32().unwrap().expect("spatial");
    spatial[[3, 0]] = f32::NAN;
    let mut emb = ndarray::Array2::from_shape_fn((n, 8), |(i, j)| (i * 8 + j) as f32 / 100.0);
    emb[[5, 2]] = f32::INFINITY;
    let out = dir.join("non_finite.h5ad");
    let add = Additions {
        obsm: vec![("spatial".into(), spatial), ("X_emb".into(), emb)],
        ..Default::default()
    };
    write_h5ad(&a, &add, &out).unwrap();
    out
}

#[test]
fn non_finite_coordinates_and_representations_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bad = with_non_finite(dir.path());
    let bad_s = bad.to_str().unwrap();
    let out = dir.path().join("out.h5ad");
    let out_s = out.to_str().unwrap();
    let o = run(&["analyze", bad_s, "--use-rep", "X_emb", "--out", out_s]);
    refused(&o, &["non_finite.h5ad", "X_emb", "row 5", "non-finite"]);
    let o = run(&[
        "analyze",
        bad_s,
        "--use-rep",
        "pca",
        "--spatial-domains",
        "3",
        "--out",
        out_s,
    ]);
    refused(&o, &["obsm['spatial']", "row 3"]);
    let args = [
        "transfer",
        "--reference",
        bad_s,
        "--label-key",
        "label",
        "--query",
        bad_s,
    ];
    let o = run(&[&args[..], &["--use-rep", "X_emb", "--out", out_s]].concat());
    refused(&o, &["X_emb", "row 5"]);
    let good = common::shared_data().join("her2st_A1.h5ad");
    let good_s = good.to_str().unwrap();
    let o = run(&["analyze", good_s, "--spatial-domains=10000", "--out", out_s]);
    refused(&o, &["10000 spatial domains", "cells"]);
    assert!(!out.exists(), "nothing written");
}

#[test]
fn training_options_out_of_range_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::shared_data().join("hypothalamus_scrna_ref.h5ad");
    let out = dir.path().join("model");
    for (extra, words) in [
        (["--hidden", "64,0"], ["--hidden", "at least 1"]),
        (["--lr", "NaN"], ["--lr", "positive"]),
    ] {
        let o = run(&[
            &[
                "pretrain",
                data.to_str().unwrap(),
                "--objective",
                "random-mask",
            ][..],
            &extra[..],
            &["--backend", "cpu", "--out", out.to_str().unwrap()],
        ]
        .concat());
        refused(&o, &words);
        assert!(!out.exists());
    }
}

#[test]
fn figure_sizes_out_of_range_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::shared_data().join("her2st_A1.h5ad");
    let out = dir.path().join("fig.png");
    for size in [
        ["--width=0", "--dpi=300"],
        ["--width=inf", "--dpi=300"],
        ["--width=6", "--dpi=0"],
        ["--width=1000", "--dpi=300"],
    ] {
        let o = run(&[
            &["plot", data.to_str().unwrap(), "--color", "label"][..],
            &size[..],
            &["--out", out.to_str().unwrap()],
        ]
        .concat());
        refused(&o, &["figure size"]);
        assert!(!out.exists(), "{size:?}");
    }
}

#[test]
fn metrics_json_onto_an_input_or_the_output_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("a1.h5ad");
    std::fs::copy(common::shared_data().join("her2st_A1.h5ad"), &input).unwrap();
    let before = cellscope::model::format::sha256_file(&input).unwrap();
    let out = dir.path().join("out.h5ad");
    let (i, o_) = (input.to_str().unwrap(), out.to_str().unwrap());
    let o = run(&["analyze", i, "--out", o_, "--metrics-json", i]);
    refused(&o, &["a1.h5ad"]);
    let o = run(&["analyze", i, "--out", o_, "--metrics-json", o_]);
    refused(&o, &["out.h5ad"]);
    assert_eq!(
        cellscope::model::format::sha256_file(&input).unwrap(),
        before,
        "the input is unchanged"
    );
    assert!(!out.exists());
}

#[test]
fn embed_with_a_zero_batch_size_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("e.h5ad");
    let o = run(&[
        "embed",
        common::shared_data()
            .join("kang_pbmc_ctrl.h5ad")
            .to_str()
            .unwrap(),
        "--model",
        common::fixture("models/random_mask.ckpt").to_str().unwrap(),
        "--genes",
        common::fixture("models/var.parquet").to_str().unwrap(),
        "--backend",
        "cpu",
        "--batch-size",
        "0",
        "--out",
        out.to_str().unwrap(),
    ]);
    refused(&o, &["batch_size = 0", "at least 1"]);
    assert!(!out.exists());
}

/// Identical cells leave no neighbour distances to lay out: the analysis either gives finite
/// results or refuses with a message, never a file of NaN with exit code 0.
#[test]
fn identical_cells_give_finite_results_or_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let a = cellscope::data::open(&common::shared_data().join("her2st_A1.h5ad")).unwrap();
    let same = ndarray::Array2::<f32>::zeros((a.n_obs(), 8));
    let input = dir.path().join("same.h5ad");
    let add = Additions {
        obsm: vec![("X_same".into(), same)],
        ..Default::default()
    };
    write_h5ad(&a, &add, &input).unwrap();
    let out = dir.path().join("out.h5ad");
    let o = run(&[
        "analyze",
        input.to_str().unwrap(),
        "--use-rep",
        "X_same",
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    println!("identical cells: exit {:?}: {err}", o.status.code());
    assert!(!err.contains("panicked"), "{err}");
    match o.status.code() {
        Some(0) => {
            let r = cellscope::data::open(&out).unwrap();
            let umap = &r.obsm["X_umap"];
            assert!(umap.iter().all(|v| v.is_finite()), "NaN UMAP written");
        }
        code => {
            assert_eq!(code, Some(2), "{err}");
            assert!(err.contains("not finite"), "{err}");
            assert!(!out.exists());
        }
    }
}

/// Nothing is written inside an input folder: `plot --out` onto a Visium folder's own image is
/// refused and the image is unchanged.
#[test]
fn outputs_inside_an_input_folder_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let visium = dir.path().join("visium");
    let src = common::shared_data().join("visium_scanpy_1.0.0");
    for sub in ["", "spatial"] {
        std::fs::create_dir_all(visium.join(sub)).unwrap();
        for e in std::fs::read_dir(src.join(sub)).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_file() {
                std::fs::copy(e.path(), visium.join(sub).join(e.file_name())).unwrap();
            }
        }
    }
    let image = visium.join("spatial/tissue_hires_image.png");
    assert!(image.exists(), "the fixture has a hires image");
    let before = cellscope::model::format::sha256_file(&image).unwrap();
    for out in [image.clone(), visium.join("spatial/new_figure.png")] {
        let o = run(&[
            "plot",
            visium.to_str().unwrap(),
            "--color",
            "in_tissue",
            "--out",
            out.to_str().unwrap(),
        ]);
        refused(&o, &["inside an input folder"]);
    }
    assert_eq!(
        cellscope::model::format::sha256_file(&image).unwrap(),
        before
    );
    assert!(!visium.join("spatial/new_figure.png").exists());
}

/// A copy of `tests/fixtures/models`'s classifier as a cellscope folder, with `edit` applied to
/// its config.json.
fn classifier_folder(dir: &Path, name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let out = dir.join(name);
    let o = run(&[
        "finetune",
        common::shared_data()
            .join("hypothalamus_scrna_ref.h5ad")
            .to_str()
            .unwrap(),
        "--label-key",
        "cell_type",
        "--epochs",
        "1",
        "--hidden",
        "8",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let cfg = out.join("config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(&cfg, v.to_string()).unwrap();
    out
}

#[test]
fn messages_say_the_real_problem_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = common::shared_data().join("hypothalamus_scrna_ref.h5ad");
    let data_s = data.to_str().unwrap();
    let out = d.join("o.h5ad");
    let out_s = out.to_str().unwrap();
    // An AnnData without obs is not taken for a 10x file.
    let missing = common::fixture("bad/missing_obs.h5ad");
    let o = run(&["inspect", missing.to_str().unwrap()]);
    refused(&o, &["missing_obs.h5ad: missing obs"]);
    // class_names that do not fit the head; a target_sum that is not positive.
    let f = classifier_folder(d, "names", |v| {
        v["class_names"].as_array_mut().unwrap().truncate(1)
    });
    let o = run(&[
        "predict",
        data_s,
        "--model",
        f.to_str().unwrap(),
        "--out",
        out_s,
    ]);
    refused(
        &o,
        &["config.json", "class_names lists 1 classes", "outputs"],
    );
    let f = classifier_folder(d, "target", |v| {
        v["preprocessing"]["target_sum"] = (-1.0).into()
    });
    let o = run(&[
        "predict",
        data_s,
        "--model",
        f.to_str().unwrap(),
        "--out",
        out_s,
    ]);
    refused(&o, &["config.json", "target_sum is -1"]);
    // A 1-D Linear weight is a layout problem, not a gene-list one.
    let p = d.join("w1d.safetensors");
    let one: Vec<u8> = [1f32; 6].iter().flat_map(|v| v.to_le_bytes()).collect();
    let v = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![6], &one).unwrap();
    safetensors::serialize_to_file([("encoder.0.weight", v)], None, &p).unwrap();
    let genes = d.join("genes.txt");
    std::fs::write(&genes, "gene\nA\nB\n").unwrap();
    let args = ["embed", data_s, "--model", p.to_str().unwrap(), "--genes"];
    let o = run(&[&args[..], &[genes.to_str().unwrap(), "--out", out_s]].concat());
    refused(&o, &["encoder.0.weight has shape [6]", "2-D"]);
    // A gene list's header is not a gene: 2 genes, not 3.
    let f = classifier_folder(d, "ok", |_| {});
    let args = ["embed", data_s, "--model", f.to_str().unwrap(), "--genes"];
    let o = run(&[&args[..], &[genes.to_str().unwrap(), "--out", out_s]].concat());
    refused(&o, &["the gene list has 2 genes"]);
    // No "XDG_RUNTIME_DIR is invalid" line on a run that succeeds without one.
    let o = Command::new(env!("CARGO_BIN_EXE_cellscope"))
        .args([
            "embed",
            data_s,
            "--model",
            f.to_str().unwrap(),
            "--out",
            out_s,
        ])
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(!err.contains("XDG_RUNTIME_DIR"), "{err}");
}
