//! Writing a new .h5ad: values survive a round trip through cellscope and through Python
//! anndata (tests/fixtures/check_roundtrip.py); the input is never overwritten.

use crate::common;

use std::process::Command;

use cellscope::data::write::{Additions, write_h5ad};
use cellscope::data::{Column, DataError, open};
use common::{fixture, shared_data};
use ndarray::Array2;

fn roundtrip(name: &str, kept: &[&str]) {
    let input = shared_data().join(name);
    let a = open(&input).expect("input");
    let n = a.n_obs();
    let emb = Array2::from_shape_fn((n, 4), |(i, j)| (i as f32 * 0.5 - j as f32) / 7.0);
    let labels: Vec<String> = (0..n).map(|i| format!("type_{}", i % 3)).collect();
    let conf: Vec<f64> = (0..n).map(|i| (i % 10) as f64 / 10.0).collect();
    let additions = Additions {
        obsm: vec![("X_cellscope".into(), emb.clone())],
        obs: vec![
            (
                "cellscope_prediction".into(),
                Column::categorical_from_labels(&labels),
            ),
            ("cellscope_confidence".into(), Column::Float(conf.clone())),
        ],
        uns: vec![("cellscope_provenance".into(), "{\"seed\": 42}".into())],
        spatial: None,
        layers: Vec::new(),
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out.h5ad");
    write_h5ad(&a, &additions, &out).expect("write");

    // Back through cellscope.
    let b = open(&out).expect("reread");
    assert_eq!(b.obs_names(), a.obs_names());
    assert_eq!(b.var_names(), a.var_names());
    assert_eq!(b.x.checksum(), a.x.checksum(), "{name}: X changed");
    let got = b.obsm.get("X_cellscope").expect("X_cellscope");
    assert_eq!(got.mapv(|v| v as f32), emb);
    assert_eq!(
        b.obs.column("cellscope_confidence"),
        Some(&Column::Float(conf.clone()))
    );
    let pred = b.obs.column("cellscope_prediction").expect("prediction");
    assert_eq!(pred.value_string(4), "type_1");
    for k in kept {
        assert_eq!(b.obs.column(k), a.obs.column(k), "{name}: obs/{k} changed");
    }
    for (k, v) in &a.obsm {
        assert_eq!(b.obsm.get(k), Some(v), "{name}: obsm/{k} changed");
    }

    // Through Python anndata.
    if !common::python_anndata("the anndata half of the round trip") {
        return;
    }
    let expected = serde_json::json!({
        "shape": [n, a.n_vars()],
        "obs_names_head": a.obs_names()[..3].to_vec(),
        "obsm": {"X_cellscope": emb.outer_iter().map(|r| r.to_vec()).collect::<Vec<_>>()},
        "obs_categorical": {"cellscope_prediction": labels},
        "obs_float": {"cellscope_confidence": conf},
        "uns": {"cellscope_provenance": "{\"seed\": 42}"},
        "x_sum": a.x.checksum().sum,
        "obs_kept": kept,
    });
    let exp_path = dir.path().join("expected.json");
    std::fs::write(&exp_path, expected.to_string()).expect("write expected");
    let o = Command::new("python3")
        .arg(fixture("check_roundtrip.py"))
        .arg(&out)
        .arg(&exp_path)
        .output()
        .expect("run python");
    assert!(
        o.status.success(),
        "{name}: anndata disagrees:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn current_spec_roundtrip_through_anndata() {
    roundtrip(
        "dlpfc_151675.h5ad",
        &["layer", "sample", "n_counts_7319genes"],
    );
}

#[test]
fn dense_and_nullable_roundtrip_through_anndata() {
    roundtrip(
        "merfish_hypothalamus_animal1.h5ad",
        &["Cell_class", "Animal_ID", "Bregma_z"],
    );
}

#[test]
fn legacy_file_is_written_in_the_current_spec() {
    roundtrip("pbmc68k_reduced.h5ad", &["bulk_labels", "phase", "n_genes"]);
}

#[test]
fn tenx_input_can_be_written_as_h5ad() {
    let a = cellscope::data::tenx::read_10x_h5(
        shared_data().join("tenx/v3_filtered_feature_bc_matrix.h5"),
        None,
    )
    .expect("10x");
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("tenx.h5ad");
    write_h5ad(&a, &Additions::default(), &out).expect("write");
    let b = open(&out).expect("reread");
    assert_eq!(b.x.checksum(), a.x.checksum());
    assert_eq!(b.var.column("gene_ids"), a.var.column("gene_ids"));
}

#[test]
fn refuses_to_overwrite_the_input_and_leaves_no_partial_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.h5ad");
    std::fs::copy(shared_data().join("hypothalamus_scrna_ref.h5ad"), &input).expect("copy");
    let before = std::fs::read(&input).expect("read");
    let a = open(&input).expect("open");
    let e = write_h5ad(&a, &Additions::default(), &input).expect_err("must refuse");
    assert!(matches!(e, DataError::WouldOverwriteInput { .. }), "{e}");
    assert_eq!(
        std::fs::read(&input).expect("read"),
        before,
        "input modified"
    );

    // A wrong-length addition fails before anything is written.
    let bad = Additions {
        obs: vec![("x".into(), Column::Float(vec![1.0]))],
        ..Additions::default()
    };
    let out = dir.path().join("out.h5ad");
    let e = write_h5ad(&a, &bad, &out).expect_err("wrong length");
    assert!(e.to_string().contains("obs/x"), "{e}");
    assert!(!out.exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".part"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left behind");
}
