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
