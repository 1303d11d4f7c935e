//! Spatial domains by STAGATE and GraphST end to end (`cellscope analyze --domains ...`) on
//! DLPFC 151675: the latent and the domains written back, the parameters in uns, domains that
//! follow the cortical layers; and clear errors for bad input.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use crate::common;

use std::process::Command;

use cellscope::data::h5ad::read_h5ad;

fn run(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cellscope"))
        .args(args)
        .output()
        .expect("run cellscope")
}

fn dlpfc() -> String {
    common::shared_data()
        .join("dlpfc_151675.h5ad")
        .display()
        .to_string()
}

/// Runs a graph method on DLPFC's PCA for a few epochs; returns the output and the metrics.
fn domains(method: &str, dims: usize) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.h5ad");
    let json = dir.path().join("m.json");
    let o = run(&[
        "analyze",
        &dlpfc(),
        "--domains",
        method,
        "--domain-rep",
        "pca",
        "--epochs",
        "30",
        "--spatial-domains",
        "7",
        "--label-key",
        "layer",
        "--out",
        out.to_str().unwrap(),
        "--metrics-json",
        json.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let a = read_h5ad(&out).unwrap();
    let key = format!("X_{method}");
    assert_eq!(a.obsm[&key].dim(), (a.n_obs(), dims));
    assert!(a.obsm[&key].iter().all(|v| v.is_finite()));
    let dom = a.obs.column("spatial_domain").unwrap();
    assert_eq!(dom.category_counts().unwrap().len(), 7);
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let d = &m["spatial_domain"];
    assert_eq!(d["method"]["method"], method);
    assert_eq!(d["method"]["epochs"], 30);
    assert_eq!(d["method"]["latent"], key);
    // Random domains score ARI about 0; 30 epochs on the PCA already follow the layers
    // (0.47 STAGATE, 0.44 GraphST when written).
    let ari = d["vs_label"]["ari"].as_f64().unwrap();
    assert!(ari > 0.3, "{method} ARI {ari}");
    // The parameters travel with the file.
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("neighbours per cell"), "{stderr}");
}

#[test]
fn stagate_domains_follow_the_cortical_layers() {
    domains("stagate", 30);
}

#[test]
fn graphst_domains_follow_the_cortical_layers() {
    domains("graphst", 20);
}

fn fails(args: &[&str], expect: &str) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.h5ad");
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--out", out.to_str().unwrap()]);
    let o = run(&all);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "should fail: {args:?}");
    assert!(stderr.contains(expect), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!out.exists(), "nothing written on failure");
}

#[test]
fn graph_domains_reject_bad_input_clearly() {
    let pbmc = common::shared_data()
        .join("pbmc68k_reduced.h5ad")
        .display()
        .to_string();
    let d = dlpfc();
    fails(
        &[
            "analyze",
            &pbmc,
            "--domains",
            "stagate",
            "--spatial-domains",
            "5",
        ],
        "obsm['spatial']",
    );
    fails(
        &[
            "analyze",
            &d,
            "--domains",
            "stagate",
            "--domain-rep",
            "pca",
            "--radius",
            "0.01",
            "--spatial-domains",
            "7",
        ],
        "without a neighbour",
    );
    fails(
        &[
            "analyze",
            &d,
            "--domains",
            "graphst",
            "--spatial-domains",
            "100000",
        ],
        "100000 spatial domains",
    );
    fails(
        &["analyze", &d, "--domains", "graphst"],
        "needs --spatial-domains",
    );
    fails(
        &[
            "analyze",
            &d,
            "--domains",
            "stagate",
            "--domain-rep",
            "X_nope",
            "--spatial-domains",
            "7",
        ],
        "obsm has no 'X_nope'",
    );
    fails(
        &[
            "analyze",
            &d,
            "--domains",
            "stagate",
            "--epochs",
            "0",
            "--spatial-domains",
            "7",
        ],
        "epochs",
    );
}

#[test]
fn graph_domains_report_epochs_and_stop_when_cancelled() {
    use cellscope::pipeline::jobs::domains::{DomainInput, DomainMethod, GraphDomainParams, run};
    use cellscope::pipeline::jobs::{Handle, JobError, Progress};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let a = cellscope::data::open(std::path::Path::new(&dlpfc())).unwrap();
    let coords = a.spatial_f32().unwrap().unwrap();
    let rep = ndarray::Array2::<f32>::zeros((a.n_obs(), 2));
    let p = GraphDomainParams {
        method: DomainMethod::Graphst,
        input: DomainInput::Pca,
        epochs: Some(1000),
        ..GraphDomainParams::default()
    };
    // Cancel from the progress callback after the third epoch, as the window's button does.
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    let mut epochs = Vec::new();
    let mut report = |p: Progress| {
        if let Progress::Fit { epoch, loss, .. } = p {
            assert!(loss.is_finite());
            epochs.push(epoch);
            if epoch == 3 {
                flag.store(true, Ordering::Relaxed);
            }
        }
    };
    let mut h = Handle::new(&mut report, cancel);
    let r = run(&a, coords.view(), 7, (&rep, "none", false), &p, 0, &mut h);
    assert!(matches!(r, Err(JobError::Cancelled)), "{r:?}");
    assert_eq!(epochs, vec![1, 2, 3], "stopped at the next epoch");
}
