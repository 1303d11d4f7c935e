//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// `../shared/data` beside the repository (CI has the same layout).
pub fn shared_data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data")
}

/// A committed fixture under `tests/fixtures`.
pub fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// The reference values written by `tests/fixtures/make_reference.py`.
pub fn reference() -> serde_json::Value {
    let text = std::fs::read_to_string(fixture("reference.json")).expect("reference.json");
    serde_json::from_str(&text).expect("valid JSON")
}

/// SHA-256 of the strings joined by newlines (as the Python script computes it).
pub fn sha_join<S: AsRef<str>>(items: &[S]) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            h.update(b"\n");
        }
        h.update(s.as_ref().as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// `|a - b| <= rel * max(1, |b|)`.
pub fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs().max(1.0)
}

/// Asserts that rows `cells` of an embedding of `kang_pbmc_ctrl.h5ad` equal the PyTorch forward
/// pass of the fixture random-mask model (`models/reference.json`, written by
/// `tests/fixtures/models/make_models.py`) within 1e-4 relative error.
pub fn assert_random_mask_reference(e: &ndarray::Array2<f64>, cells: &[usize]) {
    let text = std::fs::read_to_string(fixture("models/reference.json")).expect("ref");
    let r: serde_json::Value = serde_json::from_str(&text).expect("json");
    for &i in cells {
        for j in 0..64 {
            let w = r["random_mask"][i][j].as_f64().expect("f64");
            assert!(close(e[[i, j]], w, 1e-4), "cell {i} dim {j}");
        }
    }
}
