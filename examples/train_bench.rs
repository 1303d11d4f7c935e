//! Training-throughput benchmark: the full-size random-mask autoencoder (19,331 genes,
//! `19331 -> 512 -> 512 -> 256 -> 256 -> 64` and back, SELU, dropout 0.1, AdamW, global
//! clipping 1.0) on real spatial spots, cellscope (burn, CPU or wgpu) against the same model in
//! PyTorch on the CPU, same batch and threads, in one run. PyTorch runs twice: with glibc's
//! allocator defaults, and with the settings cellscope applies while it trains (so the
//! allocator's share of the gain is visible). Prints cells per second (best epoch) and the
//! ratios; `--no-torch` runs cellscope alone.
//!
//! ```text
//! python3 tests/fixtures/models/make_models.py 19331 bench-data/full_model
//! cargo run --release --example train_bench -- bench-data/full_model [N_CELLS=4096] [BATCH=1024] [EPOCHS=2] [--wgpu] [--no-torch]
//! ```

use std::path::Path;
use std::process::Command;
use std::sync::atomic::AtomicBool;

use cellscope::data::genes::GeneList;
use cellscope::model::BackendChoice;
use cellscope::model::train::{Objective, TrainOptions, pretrain};

#[path = "common/her2st_spots.rs"]
mod her2st_spots;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = Path::new(args.first().map_or("bench-data/full_model", String::as_str)).to_path_buf();
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(4096);
    let batch: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1024);
    let epochs: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(2);
    let with_wgpu = args.iter().any(|a| a == "--wgpu");
    let threads = rayon::current_num_threads();
    let genes = GeneList::read_csv(&dir.join("genes.csv")).expect("genes");
    let x = her2st_spots::cells(&genes, n);
    println!(
        "input: {} spots x {} genes, {:.0} non-zeros per spot; batch {batch}, {epochs} epochs, {threads} threads",
        x.n_rows,
        x.n_cols,
        x.nnz() as f64 / x.n_rows as f64
    );
    // PyTorch as it runs by default, and with glibc's allocator set as cellscope sets it while
    // training (large blocks from the heap, 1 GiB kept at its top: model::train's `heap`).
    let torch_runs: Vec<(&str, serde_json::Value)> = if args.iter().any(|a| a == "--no-torch") {
        Vec::new()
    } else {
        let sizes = [n, batch, threads, epochs];
        vec![
            ("glibc defaults", torch_cells_per_sec(&dir, sizes, &[])),
            (
                "glibc as cellscope trains",
                torch_cells_per_sec(
                    &dir,
                    sizes,
                    &[("MALLOC_MMAP_MAX_", "0"), ("MALLOC_TOP_PAD_", "1073741824")],
                ),
            ),
        ]
    };
    println!(
        "| trainer | threads | batch | cells/s (best epoch) | vs PyTorch, glibc defaults | vs PyTorch, glibc as cellscope trains |"
    );
    println!("|---|---|---|---|---|---|");
    let torch_cps: Vec<f64> = torch_runs
        .iter()
        .map(|(_, t)| t["cells_per_sec"].as_f64().unwrap_or(f64::NAN))
        .collect();
    let ratios = |cps: f64| {
        torch_cps
            .iter()
            .map(|t| format!("{:.2}x", cps / t))
            .collect::<Vec<_>>()
            .join(" | ")
    };
    for (what, t) in &torch_runs {
        let cps = t["cells_per_sec"].as_f64().unwrap_or(f64::NAN);
        println!(
            "| PyTorch {} (CPU), {what} | {threads} | {batch} | {cps:.0} | {} |",
            t["torch"].as_str().unwrap_or("?"),
            ratios(cps)
        );
    }
    let mut backends = vec![BackendChoice::Cpu];
    if with_wgpu {
        backends.push(BackendChoice::Wgpu);
    }
    for b in backends {
        let opts = TrainOptions {
            epochs,
            batch_size: batch,
            val_fraction: 0.0,
            log_every: usize::MAX,
            ..TrainOptions::pretrain_default()
        };
        let (tx, _rx) = crossbeam_channel::bounded(1 << 16);
        let out = pretrain(
            &x,
            &Objective::RandomMask { rate: 0.5 },
            &opts,
            b,
            &tx,
            &AtomicBool::new(false),
        )
        .expect("train");
        let cps = out
            .history
            .iter()
            .map(|e| e.cells_per_sec)
            .fold(0.0, f64::max);
        println!(
            "| cellscope burn: {} | {threads} | {batch} | {cps:.0} | {} |",
            out.device,
            ratios(cps)
        );
    }
}

/// Runs `train_bench.py` (PyTorch, same model, cells, batch, threads and epochs) with `env`
/// added; its JSON.
fn torch_cells_per_sec(dir: &Path, sizes: [usize; 4], env: &[(&str, &str)]) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/train_bench.py");
    let o = Command::new("python3")
        .envs(env.iter().copied())
        .arg(script)
        .arg(dir)
        .args(sizes.map(|v| v.to_string()))
        .output()
        .expect("python3");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).expect("json")
}
