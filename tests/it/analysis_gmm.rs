//! Gaussian mixtures against scikit-learn's `GaussianMixture` (`tests/fixtures/analysis/
//! make_gmm_reference.py`): tied (mclust's EEE) and full covariances on pbmc68k's first 10
//! principal components, K = 8, from the same initial labels, 30 EM iterations: the mean
//! log-likelihood within 1e-6 relative and the same labels.

use cellscope::analysis::cluster::{Covariance, gmm_from_labels};

use super::common::{fixture, shared_data};

#[test]
fn tied_and_full_mixtures_match_scikit_learn() {
    let r: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("analysis/gmm_reference.json")).expect("fixture"),
    )
    .expect("json");
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
