//! scib metrics against scib-metrics (PyPI, jax in float64) on scanpy's pbmc68k_reduced: its
//! stored `X_pca`, `bulk_labels` as labels and the cell-cycle `phase` as batches
//! (`tests/fixtures/analysis/make_scib_reference.py`). Deterministic metrics agree to 1e-9.

use cellscope::analysis::metrics::encode;
use cellscope::analysis::neighbors::exact_knn;
use cellscope::analysis::scib;
use cellscope::data::AnnData;

use super::common::{fixture, shared_data};

fn reference() -> serde_json::Value {
    let text = std::fs::read_to_string(fixture("analysis/scib_reference.json")).expect("ref");
    serde_json::from_str(&text).expect("json")
}

fn codes(a: &AnnData, key: &str) -> Vec<u32> {
    let c = a.obs.column(key).expect("column");
    let values: Vec<String> = (0..c.len()).map(|i| c.value_string(i)).collect();
    encode(&values).0
}

#[test]
fn scib_metrics_match_the_reference_on_pbmc68k() {
    let a = cellscope::data::open(&shared_data().join("pbmc68k_reduced.h5ad")).expect("read");
    let x = a.obsm["X_pca"].mapv(|v| v as f32);
    let (labels, batch) = (codes(&a, "bulk_labels"), codes(&a, "phase"));
    let r = reference();
    let want = |k: &str| r[k].as_f64().expect("number");
    let check = |name: &str, got: f64| {
        assert!(
            (got - want(name)).abs() < 1e-9,
            "{name}: {got} vs {}",
            want(name)
        );
    };
    check(
        "silhouette_label",
        scib::silhouette_label(x.view(), &labels),
    );
    let sb = scib::silhouette_batch(x.view(), &labels, &batch).expect("labels with batches");
    check("silhouette_batch", sb);
    check(
        "isolated_labels",
        scib::isolated_labels(x.view(), &labels, &batch),
    );
    // k-means is random on both sides: cellscope's NMI and ARI lie within the spread of
    // scib-metrics' own k-means over ten seeds (0.03 of margin).
    let (nmi, ari) = scib::nmi_ari_kmeans(x.view(), &labels, 0);
    for (name, got) in [("nmi_kmeans_seeds", nmi), ("ari_kmeans_seeds", ari)] {
        let runs: Vec<f64> = r[name]
            .as_array()
            .expect("runs")
            .iter()
            .map(|v| v.as_f64().expect("f"))
            .collect();
        let lo = runs.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = runs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        assert!(
            got > lo - 0.03 && got < hi + 0.03,
            "{name}: {got} outside {lo}..{hi}"
        );
    }
    let pre = a.x.to_csr().to_dense();
    check("pcr_x_pca", scib::pcr(x.view(), &batch));
    check("pcr_x", scib::pcr(pre.view(), &batch));
    check(
        "pcr_comparison",
        scib::pcr_comparison(pre.view(), x.view(), &batch),
    );
    for k in [15, 90] {
        let knn = exact_knn(x.view(), k);
        let got = scib::graph_connectivity(&knn, &labels);
        check(&format!("graph_connectivity_{k}"), got);
        // LISI weighs distances: recomputed in f64 for the same neighbours, as the reference.
        let d: Vec<f64> = (0..knn.n())
            .flat_map(|i| knn.neighbors(i).iter().map(move |&j| (i, j as usize)))
            .map(|(i, j)| {
                let (a, b) = (x.row(i), x.row(j));
                let s: f64 = a
                    .iter()
                    .zip(b)
                    .map(|(p, q)| (f64::from(*p) - f64::from(*q)).powi(2))
                    .sum();
                s.sqrt()
            })
            .collect();
        check(
            &format!("ilisi_knn_{k}"),
            scib::ilisi(&knn.indices, &d, k, &batch),
        );
        check(
            &format!("clisi_knn_{k}"),
            scib::clisi(&knn.indices, &d, k, &labels),
        );
    }
}

/// `cellscope evaluate --use-rep` scores an obsm embedding with the same metrics (the 90-NN
/// graph's distances in f32, hence 1e-6) and writes them as JSON named as scib-metrics' functions;
/// a missing obsm key is refused naming the keys there are.
#[test]
fn evaluate_use_rep_prints_and_writes_the_scores() {
    let data = shared_data().join("pbmc68k_reduced.h5ad");
    let tmp = tempfile::tempdir().expect("tmp");
    let json = tmp.path().join("scores.json");
    let run = |rep: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_cellscope"))
            .args(["evaluate", data.to_str().expect("p"), "--use-rep", rep])
            .args(["--label-key", "bulk_labels", "--batch-key", "phase"])
            .args(["--json", json.to_str().expect("j")])
            .output()
            .expect("run cellscope")
    };
    let o = run("X_pca");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("parse");
    let r = reference();
    for (name, key) in [
        ("silhouette_label", "silhouette_label"),
        ("isolated_labels", "isolated_labels"),
        ("silhouette_batch", "silhouette_batch"),
        ("graph_connectivity", "graph_connectivity_90"),
        ("ilisi_knn", "ilisi_knn_90"),
        ("clisi_knn", "clisi_knn_90"),
        ("kbet_per_label", "kbet_per_label"),
    ] {
        let (g, w) = (got[name].as_f64().expect("g"), r[key].as_f64().expect("w"));
        assert!((g - w).abs() < 1e-6, "{name}: {g} vs {w}");
    }
    // The aggregate as scib-metrics' Benchmarker: means per class, 0.4 batch + 0.6 bio.
    let mean = |keys: &[&str]| {
        let v: Vec<f64> = keys.iter().filter_map(|k| got[*k].as_f64()).collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    let bio = mean(&[
        "silhouette_label",
        "isolated_labels",
        "clisi_knn",
        "nmi",
        "ari",
    ]);
    let batch = mean(&[
        "silhouette_batch",
        "ilisi_knn",
        "kbet_per_label",
        "graph_connectivity",
        "pcr_comparison",
    ]);
    let total = got["total"].as_f64().expect("total");
    assert!(
        (total - (0.4 * batch + 0.6 * bio)).abs() < 1e-12,
        "total {total}"
    );
    assert!((got["bio_conservation"].as_f64().expect("bio") - bio).abs() < 1e-12);
    for c in got["cross_batch"].as_array().expect("cross-batch typing") {
        let want = &r["cross_batch"][c["batch"].as_str().expect("batch")];
        for m in ["macro_f1", "accuracy"] {
            let (g, w) = (c[m].as_f64().expect("g"), want[m].as_f64().expect("w"));
            assert!(
                (g - w).abs() < 1e-9,
                "cross-batch {m} of {}: {g} vs {w}",
                c["batch"]
            );
        }
    }
    assert_eq!(
        got["cross_batch"].as_array().expect("a").len(),
        3,
        "three phases"
    );
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("silhouette_label 0.5503"), "{text}");
    let o = run("X_nothing");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("X_nothing") && err.contains("X_pca"), "{err}");
}

/// kBET per label: the 90-NN graph's connectivities equal umap-learn's (what scib-metrics
/// builds), one label's diffusion eigenvalues equal scanpy's / ARPACK's, the chi-square
/// p-values equal jax's `1 - gammainc`, and each label's kBET equals scib-metrics' with its
/// neighbour search made exact (within 1e-9); the stock (pynndescent) score is within 0.02.
#[test]
fn kbet_per_label_matches_scib_metrics() {
    use cellscope::analysis::kbet;
    use cellscope::analysis::neighbors::fuzzy_connectivities;
    let a = cellscope::data::open(&shared_data().join("pbmc68k_reduced.h5ad")).expect("read");
    let x = a.obsm["X_pca"].mapv(|v| v as f32);
    let (labels, batch) = (codes(&a, "bulk_labels"), codes(&a, "phase"));
    let r = reference();
    let conn = fuzzy_connectivities(&exact_knn(x.view(), 90));
    let c = &r["connectivities_90"];
    assert_eq!(conn.data.len() as u64, c["nnz"].as_u64().expect("nnz"));
    for (i, want) in c["row_sums"].as_array().expect("sums").iter().enumerate() {
        let got: f64 = conn.row(i).1.iter().map(|&v| f64::from(v)).sum();
        let want = want.as_f64().expect("sum");
        assert!((got - want).abs() < 1e-5 * want, "row {i}: {got} vs {want}");
    }
    let names: Vec<String> = {
        let col = a.obs.column("bulk_labels").expect("labels");
        let v: Vec<String> = (0..col.len()).map(|i| col.value_string(i)).collect();
        encode(&v).1
    };
    let dendritic = names.iter().position(|n| n == "Dendritic").expect("label") as u32;
    let cells: Vec<usize> = (0..labels.len())
        .filter(|&i| labels[i] == dendritic)
        .collect();
    let (evals, _) = kbet::diffusion_eigen(&kbet::subgraph(&conn, &cells), 100).expect("eigen");
    let want = r["diffusion_evals_dendritic"].as_array().expect("evals");
    assert_eq!(evals.len(), want.len());
    for (i, (g, w)) in evals.iter().zip(want).enumerate() {
        let w = w.as_f64().expect("eval");
        assert!((g - w).abs() < 1e-5, "eigenvalue {i}: {g} vs {w}");
    }
    for case in r["chi2_sf"].as_array().expect("cases") {
        let (dof, stat, p) = (
            case[0].as_f64().unwrap(),
            case[1].as_f64().unwrap(),
            case[2].as_f64().unwrap(),
        );
        let got = kbet::chi2_sf(dof, stat);
        assert!(
            (got - p).abs() < 1e-9,
            "chi2 sf({dof}, {stat}): {got} vs {p}"
        );
    }
    let (score, per_label) = kbet::kbet_per_label(&conn, &labels, &batch);
    for (l, got) in per_label.iter().enumerate() {
        let want = r["kbet_labels"][&names[l]].as_f64();
        match (got, want) {
            (Some(g), Some(w)) => assert!((g - w).abs() < 1e-9, "{}: {g} vs {w}", names[l]),
            (None, None) => {}
            _ => panic!("{}: {got:?} vs {want:?}", names[l]),
        }
    }
    let score = score.expect("labels scored");
    let exact = r["kbet_per_label"].as_f64().expect("kbet");
    let stock = r["kbet_per_label_stock"].as_f64().expect("stock");
    assert!((score - exact).abs() < 1e-9, "kBET {score} vs {exact}");
    assert!(
        (score - stock).abs() < 0.02,
        "kBET {score} vs stock {stock}"
    );
}

/// Lanczos (what subgraphs above `DENSE_MAX` cells get) against the dense decomposition on a
/// real subgraph: the leading 100 diffusion eigenvalues within 1e-6, and the same kBET.
#[test]
fn lanczos_gives_the_dense_diffusion_spectrum() {
    use cellscope::analysis::kbet;
    use cellscope::analysis::neighbors::fuzzy_connectivities;
    let a = cellscope::data::open(&shared_data().join("pbmc68k_reduced.h5ad")).expect("read");
    let x = a.obsm["X_pca"].mapv(|v| v as f32);
    let conn = fuzzy_connectivities(&exact_knn(x.view(), 90));
    // The whole graph (700 cells), dense, against Lanczos forced on it.
    let (dense, dvec) = kbet::diffusion_eigen(&conn, 100).expect("dense");
    let t = kbet::transitions(&conn).expect("operator");
    let (lz, lvec) = kbet::lanczos(&t, 100, 300, 1);
    for (i, (d, l)) in dense.iter().zip(&lz).enumerate() {
        assert!(
            (d - l).abs() < 1e-6,
            "eigenvalue {i}: dense {d} vs Lanczos {l}"
        );
    }
    // Eigenvectors agree up to sign on the well-separated leading ones.
    for c in 0..10 {
        let dotp: f64 = dvec
            .column(c)
            .iter()
            .zip(lvec.column(c))
            .map(|(a, b)| a * b)
            .sum();
        assert!(dotp.abs() > 1.0 - 1e-6, "vector {c}: |cos| {}", dotp.abs());
    }
}
