//! `cellscope benchmark` end to end on pbmc68k_reduced (batch = cell-cycle phase): one row per
//! method in results.csv with every score in [0, 1] and the aggregate as scib-metrics'
//! weighting, the results figure and a UMAP per method and colouring as PNGs; PCA is the
//! `pcr_comparison` reference; bad methods and an existing output folder are refused.

use std::process::Command;

use super::common::shared_data;

fn cellscope() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cellscope"))
}

#[test]
fn benchmark_writes_the_table_figure_and_umaps() {
    let data = shared_data().join("pbmc68k_reduced.h5ad");
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("bench");
    let run = |methods: &str, out: &std::path::Path| {
        cellscope()
            .arg("benchmark")
            .arg(&data)
            .args(["--batch-key", "phase", "--label-key", "bulk_labels"])
            .args(["--methods", methods, "--epochs", "2", "--backend", "cpu"])
            .arg("--out")
            .arg(out)
            .output()
            .expect("run cellscope")
    };
    let o = run("pca,simclr,vicreg", &out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("kbet_per_label") && stdout.contains("vicreg"),
        "{stdout}"
    );
    let csv = std::fs::read_to_string(out.join("results.csv")).expect("results.csv");
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    assert_eq!(header[..2], ["method", "seconds"]);
    assert_eq!(header.last(), Some(&"total"));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(
        rows.iter().map(|r| r[0]).collect::<Vec<_>>(),
        ["pca", "simclr", "vicreg"]
    );
    let col = |name: &str| header.iter().position(|h| *h == name).expect("column");
    for r in &rows {
        let v = |name: &str| r[col(name)].parse::<f64>().ok();
        for name in &header[2..] {
            if let Some(x) = v(name) {
                assert!((0.0..=1.0).contains(&x), "{} {name} = {x}", r[0]);
            }
        }
        let bio = [
            "isolated_labels",
            "nmi",
            "ari",
            "silhouette_label",
            "clisi_knn",
        ]
        .map(|n| v(n).expect("bio score"));
        let batch: Vec<f64> = [
            "silhouette_batch",
            "ilisi_knn",
            "kbet_per_label",
            "graph_connectivity",
            "pcr_comparison",
        ]
        .iter()
        .filter_map(|n| v(n))
        .collect();
        let want = 0.4 * batch.iter().sum::<f64>() / batch.len() as f64
            + 0.6 * bio.iter().sum::<f64>() / 5.0;
        let total = v("total").expect("total");
        assert!(
            (total - want).abs() < 1e-9,
            "{}: total {total} vs {want}",
            r[0]
        );
    }
    // PCA is the pcr_comparison reference: it explains as much batch variance as itself.
    assert_eq!(
        rows[0][col("pcr_comparison")].parse::<f64>().ok(),
        Some(0.0)
    );
    for name in [
        "scib_results.png",
        "umap_pca_batch.png",
        "umap_pca_label.png",
        "umap_simclr_label.png",
        "umap_vicreg_batch.png",
    ] {
        let bytes = std::fs::read(out.join(name)).expect(name);
        assert!(bytes.starts_with(b"\x89PNG"), "{name} is a PNG");
        let img = image::load_from_memory(&bytes).expect("decode");
        assert!(img.width() > 300 && img.height() > 200, "{name}");
    }
    let again = run("pca", &out);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let bad = run("pca,gp-mask", &tmp.path().join("other"));
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("gp-mask") && err.contains("simclr"), "{err}");
    assert!(!tmp.path().join("other").exists());
}

/// A batch column that does not exist is refused before any training, naming the column and
/// the file, and nothing is written.
#[test]
fn benchmark_refuses_a_missing_column() {
    let data = shared_data().join("pbmc68k_reduced.h5ad");
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("bench");
    let o = cellscope()
        .arg("benchmark")
        .arg(&data)
        .args([
            "--batch-key",
            "no_such_column",
            "--label-key",
            "bulk_labels",
        ])
        .args(["--methods", "pca,simclr", "--epochs", "1"])
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run cellscope");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("no_such_column") && err.contains("pbmc68k_reduced.h5ad"),
        "{err}"
    );
    assert!(!out.exists(), "nothing written");
}
