//! Analysis benchmark: kNN (15) + UMAP + Leiden with cellscope against scanpy 1.11
//! (pynndescent, umap-learn, leidenalg) on the same input in the same run, with the quality of
//! both (15-NN label agreement of the UMAP, Leiden modularity).
//!
//! ```text
//! python3 examples/make_analysis_bench.py            # bench-data/emb_100k.h5ad
//! cargo run --release --example analysis_bench -- bench-data/emb_100k.h5ad X_emb label
//! cargo run --release --example analysis_bench -- ../shared/data/kang_pbmc_ctrl.h5ad counts -
//! ```
//!
//! `counts` starts from raw counts: normalize_total, log1p, HVG (over 10,000 genes),
//! scale, PCA 64, timed as `pca` on both sides. Without a label column, agreement is measured
//! against scanpy's Leiden clusters for both tools.
#![allow(clippy::unwrap_used)] // test and benchmark code: a panic is the failure report

use std::process::Command;
use std::time::Instant;

use cellscope::analysis::Control;
use cellscope::analysis::metrics::{encode, knn_label_agreement};
use cellscope::pipeline::jobs::analyze::{AnalyzeParams, analyze, expression_pca, log_normalized};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (path, rep, label_key) = match args.as_slice() {
        [p, r, l, ..] => (p.clone(), r.clone(), l.clone()),
        _ => {
            eprintln!("usage: analysis_bench DATA.h5ad REP|counts LABEL_KEY|-");
            std::process::exit(2);
        }
    };
    let skip_python = args.iter().any(|a| a == "--no-python");
    let threads = rayon::current_num_threads();

    // scanpy first, in its own process.
    let py = if skip_python {
        None
    } else {
        let o = Command::new("python3")
            .args([
                concat!(env!("CARGO_MANIFEST_DIR"), "/examples/analysis_bench.py"),
                &path,
                &rep,
                &label_key,
            ])
            .output()
            .expect("python3");
        if !o.status.success() {
            eprintln!(
                "scanpy side failed:\n{}",
                String::from_utf8_lossy(&o.stderr)
            );
            std::process::exit(1);
        }
        let line = String::from_utf8_lossy(&o.stdout)
            .lines()
            .last()
            .unwrap_or_default()
            .to_string();
        Some(serde_json::from_str::<serde_json::Value>(&line).expect("scanpy JSON"))
    };

    let t_all = Instant::now();
    let a = cellscope::data::open(std::path::Path::new(&path)).expect("input");
    let t_read = t_all.elapsed().as_secs_f64();
    let t = Instant::now();
    let (x, t_pca) = if rep == "counts" {
        let x = expression_pca(&log_normalized(&a.x.to_csr()), 64, 0);
        (x, Some(t.elapsed().as_secs_f64()))
    } else {
        (a.obsm[&rep].mapv(|v| v as f32), None)
    };
    let res = analyze(
        x.view(),
        None,
        &AnalyzeParams::default(),
        &Control::default(),
        &mut |_, _| {},
    )
    .expect("analysis");
    let ours: f64 = res.seconds.iter().map(|s| s.1).sum::<f64>() + t_pca.unwrap_or(0.0);
    let n_clusters = res.leiden.iter().max().unwrap() + 1;

    println!(
        "input: {path} ({} x {}), {threads} threads",
        x.nrows(),
        x.ncols()
    );
    println!("cellscope: read {t_read:.2} s (not counted)");
    if let Some(p) = t_pca {
        println!("  pca       {p:8.2} s");
    }
    for (s, secs) in &res.seconds {
        println!("  {:<9} {secs:8.2} s", format!("{s:?}").to_lowercase());
    }
    println!(
        "  total     {ours:8.2} s; Leiden {n_clusters} clusters, modularity {:.4}",
        res.modularity
    );
    let labels: Option<Vec<u32>> = (label_key != "-").then(|| {
        let c = a.obs.column(&label_key).expect("label column");
        encode(&(0..c.len()).map(|i| c.value_string(i)).collect::<Vec<_>>()).0
    });
    if let Some(l) = &labels {
        println!(
            "  15-NN label agreement of the UMAP: {:.4}",
            knn_label_agreement(res.umap.view(), l, 15)
        );
    }
    {
        // Recall@15 of the kNN graph on 1,000 cells against brute force (not timed).
        use cellscope::analysis::neighbors::{Knn, exact_knn_between, knn};
        let m = 1000.min(x.nrows());
        let approx = knn(x.view(), 15);
        let exact = exact_knn_between(x.view(), x.slice(ndarray::s![..m, ..]), 15);
        let head = Knn {
            k: 15,
            indices: approx.indices[..m * 15].to_vec(),
            distances: approx.distances[..m * 15].to_vec(),
        };
        println!(
            "  kNN recall@15 against brute force (1,000 cells): {:.4}",
            cellscope::analysis::neighbors::recall(&head, &exact)
        );
    }
    if let Some(py) = py {
        let theirs = py["total"].as_f64().unwrap();
        println!("scanpy: {}", py["seconds"]);
        println!(
            "  total     {theirs:8.2} s; Leiden {} clusters, modularity {:.4}",
            py["n_clusters"],
            py["modularity"].as_f64().unwrap()
        );
        println!(
            "  kNN recall@15 against brute force (1,000 cells): {:.4}",
            py["recall15"].as_f64().unwrap_or(f64::NAN)
        );
        if let Some(ag) = py["agreement"].as_f64() {
            println!("  15-NN label agreement of the UMAP: {ag:.4}");
        }
        // Unlabelled input: both layouts scored against scanpy's Leiden clusters.
        let scanpy_leiden: Vec<u32> = std::fs::read("/tmp/scanpy_leiden.npy")
            .ok()
            .map(|b| {
                let hdr = 10 + u16::from_le_bytes([b[8], b[9]]) as usize;
                b[hdr..]
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as u32)
                    .collect()
            })
            .unwrap_or_default();
        if scanpy_leiden.len() == x.nrows() {
            println!(
                "15-NN agreement with scanpy's Leiden clusters: cellscope UMAP {:.4}, scanpy UMAP {:.4}",
                knn_label_agreement(res.umap.view(), &scanpy_leiden, 15),
                py["agreement_leiden"].as_f64().unwrap()
            );
        }
        println!(
            "speed-up (scanpy / cellscope): {:.2}x; modularity ratio {:.4}",
            theirs / ours,
            res.modularity / py["modularity"].as_f64().unwrap()
        );
    }
}
