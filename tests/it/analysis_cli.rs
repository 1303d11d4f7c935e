//! `cellscope analyze` and `cellscope transfer` end to end: outputs read back, metrics JSON,
//! errors for bad input.
#![allow(clippy::unwrap_used)] // test and benchmark code: a panic is the failure report

use crate::common;

use std::process::Command;

use cellscope::data::h5ad::read_h5ad;

fn run(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cellscope"))
        .args(args)
        .output()
        .expect("run cellscope")
}

#[test]
fn analyze_writes_umap_clusters_domains_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let input = common::shared_data().join("her2st_A1.h5ad");
    let out = dir.path().join("a1.h5ad");
    let json = dir.path().join("a1.json");
    let o = run(&[
        "analyze",
        input.to_str().unwrap(),
        "--spatial-domains",
        "5",
        "--label-key",
        "label",
        "--out",
        out.to_str().unwrap(),
        "--metrics-json",
        json.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("leiden vs label: ARI"), "{stdout}");
    assert!(stdout.contains("spatial_domain vs label: ARI"), "{stdout}");
    let a = read_h5ad(&out).expect("output readable");
    let before = read_h5ad(&input).unwrap();
    assert_eq!(a.n_obs(), before.n_obs());
    assert_eq!(a.obsm["X_umap"].dim(), (a.n_obs(), 2));
    assert_eq!(a.obsm["X_pca"].ncols(), 64);
    assert!(a.obsm["X_umap"].iter().all(|v| v.is_finite()));
    let dom = a.obs.column("spatial_domain").expect("spatial_domain");
    assert_eq!(dom.category_counts().unwrap().len(), 5);
    assert!(
        a.obs
            .column("leiden")
            .unwrap()
            .category_counts()
            .unwrap()
            .len()
            >= 2
    );
    // The input's own columns and X survive.
    assert_eq!(a.obs.column("label"), before.obs.column("label"));
    assert_eq!(a.x.checksum(), before.x.checksum());
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let ari = m["spatial_domain"]["vs_label"]["ari"].as_f64().unwrap();
    assert!((-1.0..=1.0).contains(&ari));
    assert!(m["leiden"]["modularity"].as_f64().unwrap() > 0.0);
    println!("her2st_A1: {}", m);
}

#[test]
fn analyze_is_deterministic_for_a_seed() {
    let dir = tempfile::tempdir().unwrap();
    let input = common::shared_data().join("pbmc68k_reduced.h5ad");
    let mut umaps = Vec::new();
    for name in ["a.h5ad", "b.h5ad"] {
        let out = dir.path().join(name);
        let o = run(&[
            "analyze",
            input.to_str().unwrap(),
            "--use-rep",
            "X_pca",
            "--seed",
            "3",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let a = read_h5ad(&out).unwrap();
        umaps.push((
            a.obsm["X_umap"].clone(),
            a.obs.column("leiden").unwrap().clone(),
        ));
    }
    assert_eq!(umaps[0], umaps[1]);
}

#[test]
fn transfer_writes_predictions_into_a_copy_of_the_query() {
    let dir = tempfile::tempdir().unwrap();
    let reference = common::shared_data().join("hypothalamus_scrna_ref.h5ad");
    let query = common::shared_data().join("hypothalamus_merfish_query.h5ad");
    let map = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("assets/label_maps/hypothalamus_scrna_to_merfish.csv");
    let out = dir.path().join("q.h5ad");
    let o = run(&[
        "transfer",
        "--reference",
        reference.to_str().unwrap(),
        "--label-key",
        "cell_type",
        "--query",
        query.to_str().unwrap(),
        "--label-map",
        map.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let q = read_h5ad(&out).unwrap();
    let pred = q.obs.column("cellscope_prediction").expect("predictions");
    let conf = q.obs.column("cellscope_confidence").expect("confidence");
    assert_eq!(pred.len(), 750);
    let counts = pred.category_counts().unwrap();
    // Only mapped reference classes are predicted.
    for (name, _) in &counts {
        assert!(
            !["Unstable", "Fibroblast", "Ambiguous"].contains(&name.as_str()),
            "{name}"
        );
    }
    for i in 0..conf.len() {
        let c = conf.value_f64(i);
        assert!(
            [0.2, 0.4, 0.6, 0.8, 1.0]
                .iter()
                .any(|v| (v - c).abs() < 1e-6),
            "confidence {c}"
        );
    }
}

#[test]
fn bad_arguments_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let input = common::shared_data().join("her2st_A1.h5ad");
    let out = dir.path().join("x.h5ad");
    let o = run(&[
        "analyze",
        input.to_str().unwrap(),
        "--label-key",
        "no_such",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("her2st_A1.h5ad") && err.contains("no_such") && err.contains("label"),
        "{err}"
    );
    let o = run(&[
        "analyze",
        input.to_str().unwrap(),
        "--use-rep",
        "X_nope",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("obsm has no 'X_nope'"));
    let o = run(&[
        "analyze",
        input.to_str().unwrap(),
        "--out",
        input.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "refuses to overwrite the input");
    let pbmc = common::shared_data().join("pbmc68k_reduced.h5ad");
    let o = run(&[
        "analyze",
        pbmc.to_str().unwrap(),
        "--use-rep",
        "X_pca",
        "--spatial-domains",
        "3",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("spatial"));
    assert!(!out.exists(), "nothing written on error");
    let bad_map = dir.path().join("map.csv");
    std::fs::write(&bad_map, "a,b,c\n").unwrap();
    let o = run(&[
        "transfer",
        "--reference",
        pbmc.to_str().unwrap(),
        "--label-key",
        "bulk_labels",
        "--query",
        pbmc.to_str().unwrap(),
        "--label-map",
        bad_map.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("expected 2 fields"));
    // Parameters out of range are checked before any work: one line naming the parameter.
    for (arg, name) in [
        ("--resolution=-1", "resolution"),
        ("--n-neighbors=1", "n_neighbors"),
        ("--spatial-domains=0", "spatial_domains"),
    ] {
        let o = run(&[
            "analyze",
            input.to_str().unwrap(),
            arg,
            "--out",
            out.to_str().unwrap(),
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{arg}: {err}");
        assert!(err.contains(name) && !err.contains("panicked"), "{err}");
    }
    let o = run(&[
        "transfer",
        "--reference",
        pbmc.to_str().unwrap(),
        "--label-key",
        "bulk_labels",
        "--query",
        pbmc.to_str().unwrap(),
        "--k",
        "0",
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("k = 0"), "{err}");
    assert!(!out.exists(), "nothing written on error");
}

/// Ctrl-C (SIGINT) during a long job cancels it cleanly: exit code 130, a message that says so,
/// and nothing at the output path (here a pre-training of 1,000 epochs, stopped after 3 s).
#[test]
fn ctrl_c_cancels_a_running_job_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("model");
    let child = Command::new(env!("CARGO_BIN_EXE_cellscope"))
        .arg("pretrain")
        .arg(common::shared_data().join("hypothalamus_scrna_ref.h5ad"))
        .args(["--objective", "random-mask", "--epochs", "1000"])
        .args([
            "--batch-size",
            "256",
            "--hidden",
            "64,32",
            "--backend",
            "cpu",
        ])
        .arg("--out")
        .arg(&out)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(3));
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(err.contains("cancelled"), "{err}");
    assert!(
        !out.exists(),
        "a cancelled pre-training left {}",
        out.display()
    );
}
