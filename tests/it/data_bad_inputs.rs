//! The malformed-input corpus (tests/fixtures/make_bad_inputs.py): every file gives a typed error
//! naming the file and the element, nothing panics, and the CLI exits non-zero with one message.

use crate::common;

use std::process::Command;

use cellscope::data::preprocess::check_counts;
use common::fixture;

#[test]
fn every_malformed_input_is_refused_with_a_clear_error() {
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("bad/manifest.json")).expect("manifest"),
    )
    .expect("json");
    let cases = manifest.as_object().expect("object");
    assert!(cases.len() >= 20, "only {} cases", cases.len());
    for (name, case) in cases {
        let path = fixture(&format!("bad/{name}"));
        let result = std::panic::catch_unwind(|| cellscope::data::open(&path));
        let loaded = result.unwrap_or_else(|_| panic!("{name}: panicked"));
        let message = match (case["stage"].as_str().expect("stage"), loaded) {
            ("read", Err(e)) => e.to_string(),
            ("read", Ok(_)) => panic!("{name}: loaded but must be refused"),
            ("counts", Ok(a)) => {
                let e = check_counts(&a.x.to_csr()).expect_err("counts check must fail");
                format!("{}: X: {e}", a.source.display())
            }
            (stage, Err(e)) => panic!("{name}: failed at read, expected {stage}: {e}"),
            (stage, _) => panic!("{name}: unknown stage {stage}"),
        };
        println!("{name}: {message}");
        assert!(
            message.contains(name.as_str()),
            "{name}: message does not name the file: {message}"
        );
        for word in case["mention"].as_array().expect("mention") {
            let w = word.as_str().expect("str");
            assert!(
                message.contains(w),
                "{name}: message lacks {w:?}: {message}"
            );
        }
    }
}

#[test]
fn cli_inspect_reports_bad_files_without_panicking() {
    for name in [
        "not_hdf5.h5ad",
        "truncated.h5ad",
        "absurd_shape.h5ad",
        "categorical_codes_out_of_range.h5ad",
        "visium_no_positions",
        "string_x.h5ad",
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_cellscope"))
            .arg("inspect")
            .arg(fixture(&format!("bad/{name}")))
            .output()
            .expect("run cellscope");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{name}: exit 0");
        assert!(
            !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
            "{name}: {err}"
        );
        assert_eq!(
            err.trim().lines().count(),
            1,
            "{name}: one message expected: {err}"
        );
        assert!(err.starts_with("error: "), "{name}: {err}");
    }
}

#[test]
fn cli_inspect_prints_the_summary() {
    let data = common::shared_data();
    let o = Command::new(env!("CARGO_BIN_EXE_cellscope"))
        .arg("inspect")
        .arg(data.join("dlpfc_151675.h5ad"))
        .output()
        .expect("run");
    assert!(o.status.success());
    let s = String::from_utf8_lossy(&o.stdout);
    for want in [
        "shape: 3592 x 7319",
        "X: csr_matrix, float32, 2186689 stored values",
        "layer: categorical, 8 categories",
        "spatial: (3592, 2)",
        "banksy_normalized: csr_matrix",
    ] {
        assert!(s.contains(want), "missing {want:?} in:\n{s}");
    }
    let o = Command::new(env!("CARGO_BIN_EXE_cellscope"))
        .arg("inspect")
        .arg(data.join("pbmc68k_reduced.h5ad"))
        .output()
        .expect("run");
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(s.contains("uns colours: bulk_labels_colors (10)"), "{s}");
    assert!(s.contains("raw: 765 vars"), "{s}");
    let o = Command::new(env!("CARGO_BIN_EXE_cellscope"))
        .arg("inspect")
        .arg(data.join("visium_scanpy_1.0.0"))
        .output()
        .expect("run");
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        s.contains("Visium") && s.contains("image lowres: 600 x 600"),
        "{s}"
    );
}
