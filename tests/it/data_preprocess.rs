//! normalize_total, log1p and highly_variable_genes (seurat) equal scanpy 1.11 on real data
//! (reference from tests/fixtures/make_reference.py).

use crate::common;

use cellscope::data::matrix::{Checksum, Matrix};
use cellscope::data::preprocess::{
    HvgParams, TargetSum, check_counts, highly_variable_genes, log1p, normalize_total,
};
use common::{close, reference, shared_data};
use serde_json::Value;

const TOL: f64 = 1e-6;

/// Positions of the `true` flags.
fn selected(flags: &[bool]) -> Vec<u64> {
    (0..flags.len())
        .filter(|&j| flags[j])
        .map(|j| j as u64)
        .collect()
}

/// A JSON array of indices.
fn indices(v: &Value) -> Vec<u64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("u64"))
        .collect()
}

fn check_result(name: &str, m: &cellscope::data::CsrMatrix, want: &Value) {
    let ck: Checksum = Matrix::Csr(m.clone()).checksum();
    assert_eq!(
        ck.nonzero,
        want["checksum"]["nonzero"].as_u64().expect("nonzero"),
        "{name}"
    );
    for (k, g) in [
        ("sum", ck.sum),
        ("sum_sq", ck.sum_sq),
        ("weighted", ck.weighted),
    ] {
        let w = want["checksum"][k].as_f64().expect("f64");
        assert!(close(g, w, TOL), "{name}: {k} {g} vs scanpy {w}");
    }
    let mut worst = 0f64;
    for s in want["sample"].as_array().expect("sample") {
        let (i, j, v) = (
            s[0].as_u64().expect("i") as usize,
            s[1].as_u64().expect("j") as u32,
            s[2].as_f64().expect("v"),
        );
        let (idx, val) = m.row(i);
        let k = idx.iter().position(|&c| c == j).expect("stored entry");
        let d = (f64::from(val[k]) - v).abs() / v.abs().max(1.0);
        worst = worst.max(d);
    }
    println!("{name}: max relative difference to scanpy over 2000 entries = {worst:.2e}");
    assert!(worst <= TOL, "{name}: {worst}");
}

#[test]
fn normalize_log1p_hvg_match_scanpy() {
    let r = reference();
    for (file, want) in r["preprocess"].as_object().expect("preprocess") {
        let a = cellscope::data::open(&shared_data().join(file)).expect("open");
        let counts = a.x.to_csr();
        check_counts(&counts).expect("raw counts");

        let mut m = counts.clone();
        normalize_total(&mut m, TargetSum::Fixed(1e4));
        log1p(&mut m);
        check_result(&format!("{file} target 1e4"), &m, &want["target_1e4"]);

        let hv = highly_variable_genes(
            &m,
            &HvgParams {
                n_top_genes: Some(2000),
                ..HvgParams::default()
            },
        );
        let w = &want["hvg_top2000"];
        let opt = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
        for (name, got) in [
            ("means", &hv.means),
            ("dispersions", &hv.dispersions),
            ("dispersions_norm", &hv.dispersions_norm),
        ] {
            let exp: Vec<f64> = w[name].as_array().expect("array").iter().map(opt).collect();
            assert_eq!(exp.len(), got.len());
            for (j, (&g, &e)) in got.iter().zip(&exp).enumerate() {
                assert!(
                    (g.is_nan() && e.is_nan()) || close(g, e, TOL),
                    "{file}: {name}[{j}] {g} vs scanpy {e}, rel {:.2e}",
                    (g - e).abs() / e.abs().max(1.0)
                );
            }
        }
        assert_eq!(
            selected(&hv.highly_variable),
            indices(&w["highly_variable"]),
            "{file}: top-2000 genes"
        );
        let cut = highly_variable_genes(&m, &HvgParams::default());
        assert_eq!(
            selected(&cut.highly_variable),
            indices(&want["hvg_cutoffs"]),
            "{file}: cutoff genes"
        );

        let mut m = counts;
        normalize_total(&mut m, TargetSum::Median);
        log1p(&mut m);
        check_result(&format!("{file} median target"), &m, &want["target_median"]);
    }
}
