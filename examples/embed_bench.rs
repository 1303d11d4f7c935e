//! Inference benchmark: the full-size ssl_in_scg encoder (19,331 -> 512 -> 512 -> 256 -> 256
//! -> 64) on real spatial spots (HER2+ breast cancer ST, about 2,000 non-zero genes per spot),
//! cellscope's CPU engine against PyTorch on the CPU, same weights, batch and threads, in one
//! run; embeddings are compared too.
//!
//! ```text
//! python3 tests/fixtures/models/make_models.py 19331 bench-data/full_model
//! cargo run --release --example embed_bench -- bench-data/full_model [N_CELLS=8192] [BATCH=1024] [--wgpu]
//! ```

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use cellscope::data::CsrMatrix;
use cellscope::model::{BackendChoice, Engine, load_model};

#[path = "common/her2st_spots.rs"]
mod her2st_spots;
use her2st_spots::cells;

fn run(engine: &Engine, x: &CsrMatrix, batch: usize) -> (f64, Vec<f32>) {
    let _ = engine.embed_rows(x, 0..batch.min(x.n_rows)); // warm-up
    let mut best = 0f64;
    let mut first = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let mut r0 = 0;
        while r0 < x.n_rows {
            let r1 = (r0 + batch).min(x.n_rows);
            let e = engine.embed_rows(x, r0..r1);
            if r0 == 0 {
                first = e;
            }
            r0 = r1;
        }
        best = best.max(x.n_rows as f64 / t.elapsed().as_secs_f64());
    }
    (best, first)
}

fn max_rel_err(got: &[f32], want: &[Vec<f64>]) -> f64 {
    let w = want[0].len();
    let mut worst = 0f64;
    for (i, row) in want.iter().enumerate() {
        for (j, &v) in row.iter().enumerate() {
            worst = worst.max((f64::from(got[i * w + j]) - v).abs() / v.abs().max(1.0));
        }
    }
    worst
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = Path::new(args.first().map_or("bench-data/full_model", String::as_str)).to_path_buf();
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(8192);
    let batch: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1024);
    let with_wgpu = args.iter().any(|a| a == "--wgpu");
    let threads = rayon::current_num_threads();
    let model =
        load_model(&dir.join("random_mask.ckpt"), Some(&dir.join("genes.csv"))).expect("model");
    println!("model: {}", model.weights);
    let x = cells(&model.genes, n);
    println!(
        "input: {} spots, {:.0} non-zeros per spot after alignment ({} genes)",
        x.n_rows,
        x.nnz() as f64 / x.n_rows as f64,
        x.n_cols
    );
    let out = std::env::temp_dir().join("cellscope_embed_bench_ref.json");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/embed_bench.py");
    let o = Command::new("python3")
        .arg(script)
        .arg(&dir)
        .arg(n.to_string())
        .arg(batch.to_string())
        .arg(threads.to_string())
        .arg(&out)
        .output()
        .expect("python3");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let torch: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let torch_cps = torch["cells_per_sec"].as_f64().expect("cps");
    let reference: Vec<Vec<f64>> =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("ref")).expect("json");

    println!("| engine | threads | batch | cells/s | vs PyTorch | max rel. error vs PyTorch |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| PyTorch {} (dense, CPU) | {threads} | {batch} | {torch_cps:.0} | 1.00x | - |",
        torch["torch"].as_str().unwrap_or("?")
    );
    let mut engines = vec![
        Engine::new(&model.weights, BackendChoice::Cpu).expect("cpu"),
        Engine::burn_cpu(&model.weights).expect("burn"),
    ];
    if with_wgpu {
        engines.push(Engine::new(&model.weights, BackendChoice::Wgpu).expect("wgpu"));
    }
    for e in &engines {
        let (cps, first) = run(e, &x, batch);
        println!(
            "| cellscope: {} | {threads} | {batch} | {cps:.0} | {:.2}x | {:.1e} |",
            e.description(),
            cps / torch_cps,
            max_rel_err(&first, &reference)
        );
    }
}
