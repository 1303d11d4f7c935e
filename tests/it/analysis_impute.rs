//! `cellscope impute` on real data (hypothalamus scRNA-seq reference -> MERFISH animal 1):
//! the held-out genes' Pearson correlations equal the committed scikit-learn computation
//! (`tests/fixtures/analysis/make_impute_reference.py`), the predictions land in obsm of a
//! copy of the query with X untouched, and bad gene names are clear errors.

use std::process::Command;

use crate::common::{fixture, shared_data};

fn impute(args: &[&str], out: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cellscope"))
        .arg("impute")
        .arg("--reference")
        .arg(shared_data().join("hypothalamus_scrna_ref.h5ad"))
        .arg("--query")
        .arg(shared_data().join("merfish_hypothalamus_animal1.h5ad"))
        .args(args)
        .arg("--out")
        .arg(out)
        .output()
        .expect("run")
}

#[test]
fn held_out_genes_correlate_as_the_python_reference() {
    let text = std::fs::read_to_string(fixture("analysis/impute_reference.json")).expect("ref");
    let r: serde_json::Value = serde_json::from_str(&text).expect("json");
    let held: Vec<&str> = r["held_out"]
        .as_array()
        .expect("genes")
        .iter()
        .map(|g| g.as_str().expect("name"))
        .collect();
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("imputed.h5ad");
    let o = impute(&["--genes", &held.join(",")], &out);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    println!("{stdout}");
    for g in &held {
        let want = r["pearson"][g].as_f64().expect("pcc");
        let line = stdout
            .lines()
            .find(|l| l.contains(&format!("held out {g}:")))
            .unwrap_or_else(|| panic!("{g} scored: {stdout}"));
        let got: f64 = line
            .rsplit(' ')
            .next()
            .expect("value")
            .parse()
            .expect("number");
        assert!(
            (got - want).abs() < 2e-3,
            "{g}: Pearson {got} vs scikit-learn {want}"
        );
    }
    let a = cellscope::data::open(&out).expect("reread");
    let q = cellscope::data::open(&shared_data().join("merfish_hypothalamus_animal1.h5ad"))
        .expect("query");
    assert_eq!(a.obsm["cellscope_imputed"].dim(), (11_162, held.len()));
    assert_eq!(a.x.to_csr(), q.x.to_csr(), "the measured X is untouched");
    let f = hdf5::File::open(&out).expect("h5");
    let genes: hdf5::types::VarLenUnicode = f
        .dataset("uns/cellscope_imputed_genes")
        .expect("gene names")
        .read_scalar()
        .expect("string");
    assert!(genes.as_str().contains("\"Fn1\""), "{}", genes.as_str());
}

#[test]
fn random_hold_out_and_bad_genes() {
    let dir = tempfile::tempdir().expect("tmp");
    let o = impute(
        &["--hold-out", "4", "--seed", "3"],
        &dir.path().join("a.h5ad"),
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(stdout.matches("held out ").count(), 4, "{stdout}");
    assert!(stdout.contains("aligned on 130 shared genes"), "{stdout}");
    let o = impute(&["--genes", "NotAGene"], &dir.path().join("b.h5ad"));
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("NotAGene") && err.contains("a gene of the reference"),
        "{err}"
    );
    let o = impute(&[], &dir.path().join("c.h5ad"));
    assert_eq!(o.status.code(), Some(2), "nothing to impute is an error");
}

#[test]
fn an_imputed_gene_reads_back_and_colours_like_a_measured_one() {
    // MERFISH -> scRNA-seq: Mbp and Oxt are on the MERFISH panel, not in the reference's var.
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("hyp_imputed.h5ad");
    let o = Command::new(env!("CARGO_BIN_EXE_cellscope"))
        .arg("impute")
        .arg("--reference")
        .arg(shared_data().join("merfish_hypothalamus_animal1.h5ad"))
        .arg("--query")
        .arg(shared_data().join("hypothalamus_scrna_ref.h5ad"))
        .args(["--genes", "Mbp,Oxt", "--out"])
        .arg(&out)
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let a = cellscope::data::open(&out).expect("reread");
    assert_eq!(a.imputed_genes, vec!["Mbp".to_string(), "Oxt".to_string()]);
    assert!(
        !a.var_names().iter().any(|g| g == "Mbp"),
        "Mbp is not measured here"
    );
    let v = cellscope::pipeline::jobs::coloring::gene_values(&a, "Mbp").expect("imputed Mbp");
    assert_eq!(v.len(), a.n_obs());
    // Oligodendrocytes express Mbp: its imputed level is higher there than in neurons.
    let types = cellscope::pipeline::jobs::obs_labels(&a, "cell_type").expect("types");
    let mean = |pred: &dyn Fn(&str) -> bool| {
        let sel: Vec<f32> = (0..v.len())
            .filter(|&i| pred(&types[i]))
            .map(|i| v[i])
            .collect();
        sel.iter().sum::<f32>() / sel.len().max(1) as f32
    };
    let (oligo, neuron) = (
        mean(&|t: &str| t.contains("oligodendrocyte")),
        mean(&|t: &str| t == "Excitatory" || t == "Inhibitory"),
    );
    println!("imputed Mbp: oligodendrocytes {oligo:.3}, neurons {neuron:.3}");
    assert!(
        oligo > 0.2 && oligo > 5.0 * neuron,
        "oligodendrocytes {oligo} vs neurons {neuron}"
    );
    let c = cellscope::pipeline::jobs::coloring::obs_or_gene_coloring(&a, "Mbp");
    assert!(
        c.is_some(),
        "the window colours by an imputed gene as by any other"
    );
}
