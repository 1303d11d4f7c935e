//! Inference benchmark: the full-size ssl_in_scg encoder (19,331 -> 512 -> 512 -> 256 -> 256
//! -> 64) on real spatial spots (HER2+ breast cancer ST, about 2,000 non-zero genes per spot),
//! cellscope's CPU engine against PyTorch on the CPU, same weights, batch and threads, in one
//! run; embeddings are compared too.
//!
//! The two sides take turns: each round times one pass over the cells with PyTorch (a Python
//! process kept waiting between passes) and one with cellscope, in alternating order, so that
//! both meet the same state of the machine. Speed on this VM drifts by 20-40% within minutes,
//! and timing all of one side before the other turned that drift into the ratio.
//!
//! ```text
//! python3 tests/fixtures/models/make_models.py 19331 bench-data/full_model
//! cargo run --release --example embed_bench -- bench-data/full_model [N_CELLS=8192] [BATCH=1024] [ROUNDS=10] [--wgpu]
//! ```

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use cellscope::data::CsrMatrix;
use cellscope::model::{BackendChoice, Engine, load_model};

#[path = "common/her2st_spots.rs"]
mod her2st_spots;
use her2st_spots::cells;

/// One pass over `x` in batches: cells/s and the first batch's embeddings.
fn pass(engine: &Engine, x: &CsrMatrix, batch: usize) -> (f64, Vec<f32>) {
    let t = Instant::now();
    let mut first = Vec::new();
    let mut r0 = 0;
    while r0 < x.n_rows {
        let r1 = (r0 + batch).min(x.n_rows);
        let e = engine.embed_rows(x, r0..r1);
        if r0 == 0 {
            first = e;
        }
        r0 = r1;
    }
    (x.n_rows as f64 / t.elapsed().as_secs_f64(), first)
}

/// The PyTorch side: `examples/embed_bench.py`, timing one pass per request.
struct Torch {
    stdin: std::process::ChildStdin,
    stdout: BufReader<std::process::ChildStdout>,
}

impl Torch {
    fn line(&mut self) -> String {
        let mut l = String::new();
        self.stdout.read_line(&mut l).expect("python3 output");
        assert!(!l.is_empty(), "python3 exited (see its stderr above)");
        l
    }

    fn pass(&mut self) -> f64 {
        writeln!(self.stdin).expect("python3 input");
        self.stdin.flush().expect("python3 input");
        self.line().trim().parse().expect("cells/s")
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
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
    let rounds: usize = args
        .get(3)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10)
        .max(1);
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
    let mut child = Command::new("python3")
        .arg(script)
        .arg(&dir)
        .arg(n.to_string())
        .arg(batch.to_string())
        .arg(threads.to_string())
        .arg(&out)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut torch = Torch {
        stdin: child.stdin.take().expect("stdin"),
        stdout: BufReader::new(child.stdout.take().expect("stdout")),
    };
    let info: serde_json::Value = serde_json::from_str(&torch.line()).expect("json");
    let version = info["torch"].as_str().unwrap_or("?").to_string();
    let reference: Vec<Vec<f64>> =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("ref")).expect("json");

    let engine = Engine::new(&model.weights, BackendChoice::Cpu).expect("cpu");
    let _ = engine.embed_rows(&x, 0..batch.min(x.n_rows)); // warm-up
    let (mut torch_cps, mut ours, mut ratios, mut first) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let (t, (c, f)) = if round % 2 == 0 {
            (torch.pass(), pass(&engine, &x, batch))
        } else {
            let c = pass(&engine, &x, batch);
            (torch.pass(), c)
        };
        println!(
            "round {}: PyTorch {t:.0} cells/s, cellscope {c:.0} cells/s, {:.2}x",
            round + 1,
            c / t
        );
        torch_cps.push(t);
        ours.push(c);
        ratios.push(c / t);
        first = f;
    }
    drop(torch);
    let _ = child.wait();
    let best_torch = torch_cps.iter().copied().fold(0.0, f64::max);
    let best_ours = ours.iter().copied().fold(0.0, f64::max);
    let (lo, hi) = ratios
        .iter()
        .fold((f64::MAX, 0f64), |(a, b), &r| (a.min(r), b.max(r)));
    println!(
        "\n{rounds} rounds: per-round ratio median {:.2}x (range {lo:.2}-{hi:.2}x); best against best {:.2}x\n",
        median(&mut ratios),
        best_ours / best_torch
    );
    println!(
        "| engine | threads | batch | cells/s (best of {rounds}) | vs PyTorch | max rel. error vs PyTorch |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| PyTorch {version} (dense, CPU) | {threads} | {batch} | {best_torch:.0} | 1.00x | - |"
    );
    println!(
        "| cellscope: {} | {threads} | {batch} | {best_ours:.0} | {:.2}x | {:.1e} |",
        engine.description(),
        best_ours / best_torch,
        max_rel_err(&first, &reference)
    );
    // Reference paths, best of 3 passes each, against PyTorch's best.
    let mut others = vec![Engine::burn_cpu(&model.weights).expect("burn")];
    if with_wgpu {
        others.push(Engine::new(&model.weights, BackendChoice::Wgpu).expect("wgpu"));
    }
    for e in &others {
        let _ = e.embed_rows(&x, 0..batch.min(x.n_rows));
        let (mut cps, mut first) = (0f64, Vec::new());
        for _ in 0..3 {
            let (c, f) = pass(e, &x, batch);
            cps = cps.max(c);
            first = f;
        }
        println!(
            "| cellscope: {} | {threads} | {batch} | {cps:.0} (best of 3) | {:.2}x | {:.1e} |",
            e.description(),
            cps / best_torch,
            max_rel_err(&first, &reference)
        );
    }
}
