//! Analysis numbers against scikit-learn, umap-learn and leidenalg on the same inputs
//! (fixture: tests/fixtures/analysis/make_analysis_reference.py -> reference.json).
#![allow(clippy::unwrap_used)] // test and benchmark code: a panic is the failure report

use crate::common;

use cellscope::analysis::cluster::kmeans;
use cellscope::analysis::leiden::{LeidenParams, leiden, modularity};
use cellscope::analysis::metrics::*;
use cellscope::analysis::neighbors::{
    KnnParams, exact_knn, fuzzy_connectivities, knn_with, recall, smooth_knn_dist,
};
use cellscope::analysis::pca::pca;
use cellscope::analysis::transfer::knn_classify;
use cellscope::analysis::umap::{UmapParams, find_ab_params, pca_init, umap_layout};
use cellscope::analysis::{Control, Rng};
use cellscope::data::h5ad::H5adReader;
use cellscope::data::matrix::CsrMatrix;
use ndarray::Array2;
use serde_json::Value;

fn reference() -> Value {
    let text = std::fs::read_to_string(common::fixture("analysis/reference.json"))
        .expect("analysis reference.json");
    serde_json::from_str(&text).expect("valid JSON")
}

fn u32s(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("int") as u32)
        .collect()
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

fn matrix(v: &Value) -> Array2<f32> {
    let rows: Vec<Vec<f64>> = v.as_array().expect("rows").iter().map(f64s).collect();
    let (n, d) = (rows.len(), rows[0].len());
    Array2::from_shape_fn((n, d), |(i, j)| rows[i][j] as f32)
}

fn assert_close(name: &str, got: f64, want: f64, tol: f64) {
    assert!(
        (got - want).abs() <= tol,
        "{name}: cellscope {got} vs reference {want} (tolerance {tol})"
    );
}

struct Pbmc {
    pca: Array2<f32>,
    umap: Array2<f32>,
    labels: Vec<u32>,
    louvain: Vec<u32>,
    raw: Array2<f32>,
}

fn pbmc() -> Pbmc {
    let path = common::shared_data().join("pbmc68k_reduced.h5ad");
    let r = H5adReader::open(&path).expect("open pbmc68k_reduced");
    let a = r.read_metadata().expect("metadata");
    let col = |k: &str| -> Vec<String> {
        let c = a.obs.column(k).expect("obs column");
        (0..c.len()).map(|i| c.value_string(i)).collect()
    };
    let raw_path = r.raw_info().expect("raw").expect("pbmc68k has raw").x.path;
    let raw = r.read_matrix(&raw_path).expect("raw X").to_csr().to_dense();
    Pbmc {
        pca: a.obsm["X_pca"].mapv(|v| v as f32),
        umap: a.obsm["X_umap"].mapv(|v| v as f32),
        labels: encode(&col("bulk_labels")).0,
        louvain: encode(&col("louvain")).0,
        raw,
    }
}

fn csr_from_json(v: &Value, n: usize) -> CsrMatrix {
    CsrMatrix {
        n_rows: n,
        n_cols: n,
        indptr: v["indptr"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect(),
        indices: u32s(&v["indices"]),
        data: f64s(&v["data"]).into_iter().map(|x| x as f32).collect(),
    }
}

#[test]
fn label_metrics_equal_sklearn() {
    let r = reference();
    for (ci, case) in r["label_cases"].as_array().unwrap().iter().enumerate() {
        let t = u32s(&case["truth"]);
        let p = u32s(&case["pred"]);
        let tol = 1e-9;
        assert_close(
            &format!("case {ci} ARI"),
            adjusted_rand_index(&t, &p),
            case["ari"].as_f64().unwrap(),
            tol,
        );
        assert_close(
            &format!("case {ci} NMI"),
            normalized_mutual_information(&t, &p),
            case["nmi"].as_f64().unwrap(),
            tol,
        );
        let (h, c, v) = homogeneity_completeness_v(&t, &p);
        assert_close("homogeneity", h, case["homogeneity"].as_f64().unwrap(), tol);
        assert_close(
            "completeness",
            c,
            case["completeness"].as_f64().unwrap(),
            tol,
        );
        assert_close("v_measure", v, case["v_measure"].as_f64().unwrap(), tol);
        let cl = classification(&t, &p);
        assert_close(
            "accuracy",
            cl.accuracy,
            case["accuracy"].as_f64().unwrap(),
            tol,
        );
        assert_close(
            "macro_f1",
            cl.macro_f1,
            case["macro_f1"].as_f64().unwrap(),
            tol,
        );
        assert_close(
            "micro_f1",
            cl.micro_f1,
            case["micro_f1"].as_f64().unwrap(),
            tol,
        );
        assert_close(
            "weighted_f1",
            cl.weighted_f1,
            case["weighted_f1"].as_f64().unwrap(),
            tol,
        );
        for (name, got) in [
            ("precision", &cl.precision),
            ("recall", &cl.recall),
            ("f1", &cl.f1),
        ] {
            let want = f64s(&case[name]);
            assert_eq!(got.len(), want.len(), "case {ci}: number of classes");
            for (g, w) in got.iter().zip(&want) {
                assert_close(name, *g, *w, tol);
            }
        }
        assert_eq!(
            cl.support,
            u32s(&case["support"])
                .iter()
                .map(|&v| v as u64)
                .collect::<Vec<_>>()
        );
        let conf: Vec<Vec<u64>> = case["confusion"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| u32s(row).into_iter().map(u64::from).collect())
            .collect();
        assert_eq!(cl.confusion, conf, "case {ci}: confusion matrix");
    }
}

#[test]
fn explained_variance_equals_sklearn() {
    let r = reference();
    let e = &r["explained_variance"];
    let got = explained_variance_weighted(matrix(&e["truth"]).view(), matrix(&e["pred"]).view());
    assert_close(
        "explained variance",
        got,
        e["value"].as_f64().unwrap(),
        1e-9,
    );
}

#[test]
fn pbmc_metrics_equal_sklearn() {
    let r = reference();
    let p = pbmc();
    let want = &r["pbmc"];
    assert_close(
        "ARI",
        adjusted_rand_index(&p.labels, &p.louvain),
        want["ari_bulk_louvain"].as_f64().unwrap(),
        1e-9,
    );
    assert_close(
        "NMI",
        normalized_mutual_information(&p.labels, &p.louvain),
        want["nmi_bulk_louvain"].as_f64().unwrap(),
        1e-9,
    );
    let (s, used) = silhouette(p.pca.view(), &p.labels, 20_000, 0).expect("silhouette");
    assert_eq!(used, p.labels.len());
    // X_pca is float32 on disk; sklearn computed in float64 from the same values.
    assert_close(
        "silhouette",
        s,
        want["silhouette_pca_bulk"].as_f64().unwrap(),
        1e-9,
    );
    let agree = knn_label_agreement(p.umap.view(), &p.labels, 15);
    assert_close(
        "15-NN label agreement",
        agree,
        want["agreement_stored_umap"].as_f64().unwrap(),
        1e-9,
    );
    let pres = knn_preservation(p.pca.view(), p.umap.view(), 15);
    assert_close(
        "kNN preservation",
        pres,
        want["preservation_pca_umap"].as_f64().unwrap(),
        1e-9,
    );
    // Sampled silhouette reports its sample size.
    let (_, used) = silhouette(p.pca.view(), &p.labels, 300, 1).expect("sampled silhouette");
    assert_eq!(used, 300);
}

#[test]
fn fuzzy_connectivities_equal_umap_learn() {
    let r = reference();
    let p = pbmc();
    let knn = exact_knn(p.pca.view(), 15);
    let (sig, rho) = smooth_knn_dist(&knn);
    for (i, (s, w)) in sig.iter().zip(f64s(&r["pbmc"]["sigmas"])).enumerate() {
        assert!(
            (*s as f64 - w).abs() <= 1e-5 * w.max(1.0),
            "sigma {i}: {s} vs {w}"
        );
    }
    for (r1, r2) in rho.iter().zip(f64s(&r["pbmc"]["rhos"])) {
        assert!((*r1 as f64 - r2).abs() <= 1e-5, "rho {r1} vs {r2}");
    }
    let got = fuzzy_connectivities(&knn);
    let want = csr_from_json(&r["pbmc"]["connectivities"], p.pca.nrows());
    assert_eq!(got.indptr, want.indptr, "same sparsity per row");
    assert_eq!(got.indices, want.indices, "same neighbours");
    let worst = got
        .data
        .iter()
        .zip(&want.data)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(worst <= 1e-5, "largest connectivity difference {worst}");
}

#[test]
fn ab_params_equal_umap_learn() {
    let r = reference();
    for (key, spread, min_dist) in [
        ("1.0_0.5", 1.0, 0.5),
        ("1.0_0.1", 1.0, 0.1),
        ("2.0_0.3", 2.0, 0.3),
    ] {
        let want = f64s(&r["ab"][key]);
        let (a, b) = find_ab_params(spread, min_dist);
        assert!(
            (a - want[0]).abs() <= 1e-4 * want[0] && (b - want[1]).abs() <= 1e-4 * want[1],
            "{key}: ({a}, {b}) vs {want:?}"
        );
    }
}

#[test]
fn umap_and_leiden_match_umap_learn_and_leidenalg_on_pbmc68k() {
    let r = reference();
    let p = pbmc();
    let graph = csr_from_json(&r["pbmc"]["connectivities"], p.pca.nrows());
    let init = pca_init(p.pca.view(), 0);
    let params = UmapParams::default();
    let layout = umap_layout(
        &graph,
        init.view(),
        &params,
        &Control::default(),
        &mut |_, _| {},
    )
    .expect("umap");
    assert!(layout.iter().all(|v| v.is_finite()));
    let ours = knn_label_agreement(layout.view(), &p.labels, 15);
    let theirs = f64s(&r["pbmc"]["agreement_umap_learn"]);
    let mean = theirs.iter().sum::<f64>() / theirs.len() as f64;
    println!(
        "15-NN label agreement on bulk_labels: cellscope {ours:.4}, umap-learn {mean:.4} (seeds {theirs:?})"
    );
    assert!(
        (ours - mean).abs() <= 0.02,
        "UMAP agreement {ours} vs umap-learn {mean}"
    );
    // Deterministic for a seed (and independent of the thread count by construction).
    let again = umap_layout(
        &graph,
        init.view(),
        &params,
        &Control::default(),
        &mut |_, _| {},
    )
    .expect("umap");
    assert_eq!(layout, again, "same seed, same layout");

    let (memb, q) = leiden(&graph, &LeidenParams::default(), &Control::default()).expect("leiden");
    let theirs = f64s(&r["pbmc"]["leiden_modularity"]);
    let best = theirs.iter().copied().fold(f64::MIN, f64::max);
    let n_clusters = memb.iter().max().unwrap() + 1;
    println!("Leiden modularity: cellscope {q:.5} ({n_clusters} clusters), leidenalg {theirs:?}");
    assert_close(
        "modularity recomputed",
        modularity(&graph, &memb, 1.0),
        q,
        1e-12,
    );
    assert!(
        q >= best * 0.99,
        "modularity {q} below 99% of leidenalg's {best}"
    );
    let lalg = u32s(&r["pbmc"]["leiden_membership"]);
    assert_close(
        "our modularity of leidenalg's partition",
        modularity(&graph, &lalg, 1.0),
        theirs[2],
        1e-6,
    );
}

#[test]
fn pca_equals_sklearn() {
    let r = reference();
    let p = pbmc();
    let fit = pca(p.raw.view(), 20, 0);
    let want = f64s(&r["pbmc"]["pca_raw_evr"]);
    let want_ev = f64s(&r["pbmc"]["pca_raw_ev"]);
    for c in 0..20 {
        assert!(
            (fit.explained_variance_ratio[c] - want[c]).abs() <= 1e-4 * want[c],
            "PC{c} ratio {} vs {}",
            fit.explained_variance_ratio[c],
            want[c]
        );
        assert!((fit.explained_variance[c] - want_ev[c]).abs() <= 1e-4 * want_ev[c]);
    }
    // Projection of the training rows reproduces the scores.
    let proj = fit.transform(p.raw.view());
    let worst = proj
        .iter()
        .zip(fit.scores.iter())
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(worst < 1e-3, "transform vs scores {worst}");
}

#[test]
fn knn_classifier_equals_sklearn() {
    let r = reference();
    let p = pbmc();
    let train = p.pca.slice(ndarray::s![..500, ..]);
    let test = p.pca.slice(ndarray::s![500.., ..]);
    let n_classes = *p.labels.iter().max().unwrap() as usize + 1;
    let (pred, conf) = knn_classify(train, &p.labels[..500], n_classes, test, 5);
    assert_eq!(pred, u32s(&r["pbmc"]["knn5_pred"]));
    for (c, w) in conf.iter().zip(f64s(&r["pbmc"]["knn5_conf"])) {
        assert!((*c as f64 - w).abs() < 1e-6);
    }
}

#[test]
fn kmeans_reaches_sklearn_inertia() {
    let r = reference();
    let p = pbmc();
    let x = p.pca.slice(ndarray::s![.., ..10]).to_owned();
    let single: Vec<f64> = (0..40).map(|s| kmeans(x.view(), 8, 1, s).inertia).collect();
    let mean = single.iter().sum::<f64>() / 40.0;
    let best = single.iter().copied().fold(f64::MAX, f64::min);
    let (want_mean, want_best) = (
        r["pbmc"]["kmeans8_single_mean"].as_f64().unwrap(),
        r["pbmc"]["kmeans8_best"].as_f64().unwrap(),
    );
    println!(
        "k-means inertia over 40 single runs: cellscope mean {mean:.1} best {best:.1}; sklearn mean {want_mean:.1} best {want_best:.1}"
    );
    assert!(
        mean <= want_mean * 1.02,
        "k-means++ seeding worse than sklearn's on average"
    );
    assert!(
        best <= want_best * 1.001,
        "best inertia {best} vs sklearn {want_best}"
    );
}

fn blobs(n: usize, d: usize, centers: usize, seed: u64) -> (Array2<f32>, Vec<u32>) {
    let mut rng = Rng::new(seed);
    let c: Vec<Vec<f64>> = (0..centers)
        .map(|_| (0..d).map(|_| rng.normal() * 4.0).collect())
        .collect();
    let mut labels = Vec::with_capacity(n);
    let x = Array2::from_shape_fn((n, d), |(i, j)| {
        if j == 0 {
            labels.push((i % centers) as u32);
        }
        (c[i % centers][j] + rng.normal()) as f32
    });
    (x, labels)
}

#[test]
fn hnsw_recall_at_15_against_brute_force() {
    let (x, _) = blobs(8000, 32, 20, 3);
    let exact = exact_knn(x.view(), 15);
    let approx = knn_with(
        x.view(),
        15,
        &KnnParams {
            exact_below: 0,
            ..KnnParams::default()
        },
    );
    let rc = recall(&approx, &exact);
    println!("HNSW recall@15 on 8,000 x 32: {rc:.4}");
    assert!(rc >= 0.98, "recall@15 {rc}");
}

#[test]
fn leiden_recovers_planted_blobs() {
    let (x, labels) = blobs(3000, 16, 6, 11);
    let knn = knn_with(x.view(), 15, &KnnParams::default());
    let g = fuzzy_connectivities(&knn);
    let (memb, _) = leiden(&g, &LeidenParams::default(), &Control::default()).unwrap();
    let ari = adjusted_rand_index(&labels, &memb);
    assert!(ari > 0.95, "ARI of Leiden on separated blobs {ari}");
}

#[test]
fn hnsw_recall_on_unclustered_gaussian_data() {
    // The worst case for graph search: one isotropic Gaussian in 64 dimensions (no low intrinsic
    // dimension, unlike embeddings of cells). The defaults trade recall here (about 0.94) for
    // speed; clustered embeddings reach 0.98-1.0 (test above, BENCHMARKS.md).
    let mut rng = Rng::new(5);
    let x = Array2::from_shape_fn((10_000, 64), |_| rng.normal() as f32);
    let exact = cellscope::analysis::neighbors::exact_knn_between(
        x.view(),
        x.slice(ndarray::s![..1000, ..]),
        15,
    );
    let approx = knn_with(
        x.view(),
        15,
        &KnnParams {
            exact_below: 0,
            ..KnnParams::default()
        },
    );
    let head = cellscope::analysis::neighbors::Knn {
        k: 15,
        indices: approx.indices[..15_000].to_vec(),
        distances: approx.distances[..15_000].to_vec(),
    };
    let rc = recall(&head, &exact);
    println!("HNSW recall@15 on 10,000 x 64 isotropic Gaussian: {rc:.4}");
    assert!(rc >= 0.9, "recall@15 {rc}");
    let strict = KnnParams {
        exact_below: 0,
        max_connections: 32,
        ef_construction: 256,
        ef_search: 200,
        ..KnnParams::default()
    };
    let approx = knn_with(x.view(), 15, &strict);
    let head = cellscope::analysis::neighbors::Knn {
        k: 15,
        indices: approx.indices[..15_000].to_vec(),
        distances: approx.distances[..15_000].to_vec(),
    };
    let rc = recall(&head, &exact);
    println!("  with M 32, ef 256 / 200: {rc:.4}");
    assert!(rc >= 0.98, "recall@15 with strict parameters {rc}");
}

#[test]
fn spatial_radius_and_knn_graphs_match_brute_force() {
    use cellscope::analysis::neighbors::radius_2d;
    use cellscope::analysis::spatial::{SpatialNeighbors, spatial_weights};
    let mut rng = Rng::new(9);
    let pts = Array2::from_shape_fn((2000, 2), |_| (rng.uniform() * 100.0) as f32);
    let r = 4.0;
    let within = radius_2d(pts.view(), r);
    for i in (0..2000).step_by(37) {
        let mut want: Vec<u32> = (0..2000u32)
            .filter(|&j| {
                let d =
                    (pts[(i, 0)] - pts[(j as usize, 0)]).hypot(pts[(i, 1)] - pts[(j as usize, 1)]);
                d as f64 <= r
            })
            .collect();
        let mut got: Vec<u32> = within[i].iter().map(|e| e.0).collect();
        want.sort_unstable();
        got.sort_unstable();
        assert_eq!(got, want, "radius neighbours of {i}");
    }
    let w = spatial_weights(pts.view(), SpatialNeighbors::Knn(6));
    for (i, row) in w.iter().enumerate() {
        assert_eq!(row.len(), 6);
        assert!(row.iter().all(|e| e.0 as usize != i));
        assert!((row.iter().map(|e| e.1).sum::<f32>() - 1.0).abs() < 1e-5);
    }
    let w = spatial_weights(pts.view(), SpatialNeighbors::Radius(r));
    assert_eq!(
        w[0].len(),
        within[0].len() - 1,
        "radius graph excludes the cell itself"
    );
}
