//! Load benchmark: time and peak memory to read a whole `.h5ad` (or a Xenium output folder)
//! with cellscope and with Python on the same input in the same run, each in a fresh process
//! (best of 3): `anndata.read_h5ad`, or for a folder the table part of spatialdata-io's Xenium
//! reader (`examples/load_bench.py`).
//!
//! ```text
//! cargo run --release --example load_bench -- FILE.h5ad|XENIUM_DIR [...]
//! ```
//! Prints a table with the speed ratio (Python time / cellscope time) and cellscope's peak
//! added resident memory relative to the in-memory size of X. `examples/make_big_csr.py`
//! generates the 200k x 20k file, `examples/make_xenium_bench.py` a Xenium folder.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

fn status_bytes(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// A small real file loaded first, so that library code and allocator set-up are not counted
/// as memory for the measured file (the same warm-up is done on the Python side).
fn warmup_file() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/hypothalamus_merfish_query.h5ad")
}

/// Child mode: load once, print `secs peak_extra_bytes x_bytes`.
fn child(path: &Path) {
    drop(cellscope::data::open(&warmup_file()));
    let base = status_bytes("VmHWM:").max(status_bytes("VmRSS:"));
    let t = Instant::now();
    let a = match cellscope::data::open(path) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let secs = t.elapsed().as_secs_f64();
    let peak = status_bytes("VmHWM:").saturating_sub(base);
    println!("{secs} {peak} {}", a.x.heap_bytes());
}

fn run_child(path: &Path) -> (f64, u64, u64) {
    let exe = std::env::current_exe().expect("current exe");
    let o = Command::new(exe)
        .arg("--child")
        .arg(path)
        .output()
        .expect("run child");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = String::from_utf8_lossy(&o.stdout);
    let v: Vec<&str> = s.split_whitespace().collect();
    (
        v[0].parse().expect("secs"),
        v[1].parse().expect("peak"),
        v[2].parse().expect("bytes"),
    )
}

fn run_python(path: &Path) -> Option<(f64, u64)> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/load_bench.py");
    let o = Command::new("python3")
        .arg(script)
        .arg(path)
        .output()
        .ok()?;
    if !o.status.success() {
        eprintln!("anndata failed: {}", String::from_utf8_lossy(&o.stderr));
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).ok()?;
    Some((v["secs"].as_f64()?, v["peak_extra_bytes"].as_u64()?))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child") {
        child(Path::new(&args[1]));
        return;
    }
    println!(
        "| file | X in memory (MB) | cellscope (s) | Python (s) | speed-up | cellscope peak / X | Python peak / X |"
    );
    println!("|---|---|---|---|---|---|---|");
    for f in &args {
        let p = Path::new(f);
        let mut ours = Vec::new();
        let mut theirs = Vec::new();
        for _ in 0..3 {
            ours.push(run_child(p));
            if let Some(r) = run_python(p) {
                theirs.push(r);
            }
        }
        let best = ours.iter().map(|r| r.0).fold(f64::INFINITY, f64::min);
        let peak = ours.iter().map(|r| r.1).max().unwrap_or(0);
        let x = ours[0].2 as f64;
        let (ref_best, ref_peak) = if theirs.is_empty() {
            (f64::NAN, f64::NAN)
        } else {
            (
                theirs.iter().map(|r| r.0).fold(f64::INFINITY, f64::min),
                theirs.iter().map(|r| r.1).max().unwrap_or(0) as f64,
            )
        };
        println!(
            "| {} | {:.1} | {:.3} | {:.3} | {:.2}x | {:.2} | {:.2} |",
            p.file_name()
                .map_or(f.clone(), |n| n.to_string_lossy().into_owned()),
            x / 1e6,
            best,
            ref_best,
            ref_best / best,
            peak as f64 / x,
            ref_peak / x
        );
    }
}
