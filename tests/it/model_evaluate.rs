//! `cellscope evaluate` against the Python protocol (`tests/fixtures/models/make_eval_reference.py`:
//! scikit-learn's split, `explained_variance_score(multioutput='variance_weighted')` of the
//! held-out reconstruction, `KNeighborsClassifier(5)` macro-F1 and accuracy) on the
//! hypothalamus reference with a PyTorch-trained masked autoencoder.

use std::process::Command;

use crate::common::{fixture, shared_data};

/// `cellscope evaluate` of the hypothalamus reference with the fixture autoencoder, on the
/// CPU, with further arguments.
fn evaluate(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cellscope"))
        .arg("evaluate")
        .arg(shared_data().join("hypothalamus_scrna_ref.h5ad"))
        .arg("--model")
        .arg(fixture("models/hypothalamus_mae.pt"))
        .arg("--genes")
        .arg(fixture("models/hypothalamus_genes.csv"))
        .args(["--backend", "cpu"])
        .args(args)
        .output()
        .expect("run")
}

#[test]
fn evaluate_matches_the_python_protocol() {
    let text = std::fs::read_to_string(fixture("models/eval_reference.json")).expect("reference");
    let r: serde_json::Value = serde_json::from_str(&text).expect("json");
    let dir = tempfile::tempdir().expect("tmp");
    let json = dir.path().join("scores.json");
    let json_arg = json.to_str().expect("utf-8 path");
    let o = evaluate(&[
        "--label-key",
        "cell_type",
        "--batch-key",
        "cell_type",
        "--json",
        json_arg,
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    println!("{out}");
    let e: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json written")).expect("json");
    let num = |v: &serde_json::Value| v.as_f64().expect("number");
    assert_eq!(
        e["split"],
        serde_json::json!([r["n_train"], r["n_val"], r["n_test"]]),
        "the split's sizes"
    );
    let rec = &e["reconstruction"];
    let (ev, want) = (
        num(&rec["explained_variance_weighted"]),
        num(&r["explained_variance_weighted"]),
    );
    assert!(
        (ev - want).abs() < 1e-4,
        "explained variance {ev} vs sklearn {want}"
    );
    let (mse, want) = (num(&rec["mse"]), num(&r["mse"]));
    assert!((mse - want).abs() < 1e-4 * want, "MSE {mse} vs {want}");
    let z = &e["zero_shot"];
    assert_eq!(
        (&z["n_train"], &z["n_test"]),
        (&r["knn_n_train"], &r["knn_n_test"]),
        "the same labelled cells in train and test"
    );
    let (f1, want) = (num(&z["macro_f1"]), num(&r["knn_macro_f1"]));
    assert!(
        (f1 - want).abs() < 1e-3,
        "kNN macro-F1 {f1} vs sklearn {want}"
    );
    let (acc, want) = (num(&z["accuracy"]), num(&r["knn_accuracy"]));
    assert!(
        (acc - want).abs() < 1e-3,
        "kNN accuracy {acc} vs sklearn {want}"
    );
    // Per batch (here each cell type is its own batch): every test cell counted once.
    let per: Vec<&serde_json::Value> = z["per_batch"]
        .as_array()
        .expect("per batch")
        .iter()
        .collect();
    let counted: u64 = per.iter().map(|b| b[3].as_u64().expect("n")).sum();
    assert_eq!(counted, z["n_test"].as_u64().expect("n_test"));
    assert!(
        out.contains("zero-shot kNN (k = 5) on obs['cell_type']"),
        "{out}"
    );
}

#[test]
fn evaluate_names_a_missing_label_column() {
    let o = evaluate(&["--label-key", "no_such_column"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("obs has no column 'no_such_column'"), "{err}");
}
