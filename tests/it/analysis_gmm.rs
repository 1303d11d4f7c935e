//! Gaussian mixtures against scikit-learn's `GaussianMixture` (`tests/fixtures/analysis/
//! make_gmm_reference.py`): tied (mclust's EEE) and full covariances on pbmc68k's first 10
//! principal components, K = 8, from the same initial labels, 30 EM iterations: the mean
//! log-likelihood within 1e-6 relative and the same labels; GraphST's label refinement
//! (`make_refine_reference.py`) on MERFISH cells.

use cellscope::analysis::cluster::{Covariance, gmm_from_labels};

use super::common::{fixture_json, shared_data};

#[test]
fn tied_and_full_mixtures_match_scikit_learn() {
    let r = fixture_json("analysis/gmm_reference.json");
    let a = cellscope::data::open(&shared_data().join("pbmc68k_reduced.h5ad")).expect("read");
    let x = a.obsm["X_pca"]
        .slice(ndarray::s![.., ..10])
        .mapv(|v| v as f32);
    let codes = |v: &serde_json::Value| -> Vec<u32> {
        v.as_array()
            .expect("labels")
            .iter()
            .map(|l| l.as_u64().expect("code") as u32)
            .collect()
    };
    let init = codes(&r["init"]);
    let k = r["k"].as_u64().expect("k") as usize;
    let iters = r["iterations"].as_u64().expect("iterations") as usize;
    for (name, cov) in [("tied", Covariance::Tied), ("full", Covariance::Full)] {
        let g = gmm_from_labels(x.view(), k, &init, cov, iters, 0.0);
        let want = r[name]["score"].as_f64().expect("score");
        let rel = (g.log_likelihood - want).abs() / want.abs();
        assert!(
            rel < 1e-6,
            "{name}: log-likelihood {} vs scikit-learn {want} (relative {rel:e})",
            g.log_likelihood
        );
        assert_eq!(g.n_iter, iters);
        let labels = codes(&r[name]["labels"]);
        let same = g.labels.iter().zip(&labels).filter(|(a, b)| a == b).count();
        assert_eq!(
            same,
            labels.len(),
            "{name}: labels as scikit-learn's predict"
        );
    }
}

/// GraphST's label refinement (majority of the 50 nearest other cells) equals its public code
/// on the first 3,000 MERFISH cells with their Cell_class labels, every cell.
#[test]
fn refine_labels_matches_graphst() {
    let r = fixture_json("analysis/refine_reference.json");
    let n = r["n"].as_u64().expect("n") as usize;
    let a = cellscope::data::open(&shared_data().join("merfish_hypothalamus_animal1.h5ad"))
        .expect("read");
    let coords = a.obsm["spatial"]
        .slice(ndarray::s![..n, ..])
        .mapv(|v| v as f32);
    let ints = |v: &serde_json::Value| -> Vec<u32> {
        v.as_array()
            .expect("codes")
            .iter()
            .map(|l| l.as_u64().expect("code") as u32)
            .collect()
    };
    let radius = r["radius"].as_u64().expect("radius") as usize;
    let got =
        cellscope::analysis::spatial::refine_labels(coords.view(), &ints(&r["labels"]), radius);
    let want = ints(&r["refined"]);
    let differ: Vec<usize> = (0..n).filter(|&i| got[i] != want[i]).collect();
    assert!(
        differ.is_empty(),
        "{} cells differ, first {:?}",
        differ.len(),
        &differ[..differ.len().min(5)]
    );
}

/// Radius and kNN spatial graphs equal STAGATE's `Cal_Spatial_Net` (scikit-learn) on DLPFC
/// 151675's spots: every cell's degree, the first 600 cells' neighbours, the edge count and
/// the mean per cell; self-loops
/// are added on request only.
#[test]
fn spatial_graphs_match_stagate() {
    use cellscope::analysis::spatial_graph::{GraphKind, SpatialGraph};
    let r = fixture_json("analysis/spatial_graph_reference.json");
    let a = cellscope::data::open(&shared_data().join("dlpfc_151675.h5ad")).expect("read");
    let coords = a.obsm["spatial"].mapv(|v| v as f32);
    let kinds = [
        (
            "radius",
            GraphKind::Radius(r["rad_cutoff"].as_f64().expect("radius")),
        ),
        (
            "knn",
            GraphKind::Knn(r["k_cutoff"].as_u64().expect("k") as usize),
        ),
    ];
    for (name, kind) in kinds {
        let g = SpatialGraph::build(coords.view(), kind);
        let want = &r[name];
        let s = g.stats();
        assert_eq!(
            s.n_edges as u64,
            want["edges"].as_u64().expect("edges"),
            "{name}"
        );
        assert!((s.mean_neighbors - want["mean"].as_f64().expect("mean")).abs() < 1e-12);
        for (i, d) in want["degrees"]
            .as_array()
            .expect("degrees")
            .iter()
            .enumerate()
        {
            let d = d.as_u64().expect("degree") as usize;
            assert_eq!(g.adjacency.row(i).0.len(), d, "{name}: degree of cell {i}");
        }
        let rows = want["neighbors_first_600"].as_array().expect("rows");
        for (i, nb) in rows.iter().enumerate() {
            let w: Vec<u32> = nb
                .as_array()
                .expect("row")
                .iter()
                .map(|v| v.as_u64().expect("j") as u32)
                .collect();
            assert_eq!(
                g.adjacency.row(i).0,
                &w[..],
                "{name}: neighbours of cell {i}"
            );
        }
        let with = g.with_self_loops();
        assert_eq!(
            with.data.len(),
            s.n_edges + s.n_cells,
            "{name}: one self-loop per cell"
        );
        println!("{name}: {s}");
    }
}
