//! The hostile-input corpus (issue #21): a generator that damages valid inputs of every kind
//! cellscope reads (truncations at several offsets, bit flips, zeroed blocks), and a test that
//! runs every CLI subcommand on them. Each run must exit 0 with finite outputs or exit 2 with a
//! message naming the damaged file once; never panic, abort or hang; and no input may change
//! (SHA-256 of every file before and after).

use crate::common::{fixture, shared_data};

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sha2::Digest;

/// A small deterministic generator (xorshift64*), so that the corpus is the same on every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as usize % n.max(1)
    }
}

/// Damaged copies of `bytes`: truncated at 6 offsets, 6 single-bit flips and 2 zeroed blocks of
/// 64 bytes, at positions drawn from `seed`. Names say what was done (`trunc_50pct`,
/// `flip_1234_3`, `zero_5678`).
pub fn mutants(bytes: &[u8], seed: u64) -> Vec<(String, Vec<u8>)> {
    let n = bytes.len();
    let mut out = Vec::new();
    for (name, at) in [
        ("0", 0),
        ("1", 1),
        ("8", 8.min(n)),
        ("10pct", n / 10),
        ("50pct", n / 2),
        ("last", n.saturating_sub(1)),
    ] {
        out.push((format!("trunc_{name}"), bytes[..at].to_vec()));
    }
    let mut rng = Rng(seed | 1);
    for _ in 0..6 {
        let (at, bit) = (rng.below(n), rng.below(8));
        let mut b = bytes.to_vec();
        b[at] ^= 1 << bit;
        out.push((format!("flip_{at}_{bit}"), b));
    }
    for _ in 0..2 {
        let at = rng.below(n.saturating_sub(64));
        let mut b = bytes.to_vec();
        b[at..(at + 64).min(n)].fill(0);
        out.push((format!("zero_{at}"), b));
    }
    out
}

/// Writes the mutants of `src` into `dir` as `<stem>_<mutation>.<ext>`.
fn write_mutants(dir: &Path, src: &Path, seed: u64) -> Vec<PathBuf> {
    let bytes = std::fs::read(src).unwrap();
    let stem = src.file_stem().unwrap().to_str().unwrap();
    let ext = src
        .extension()
        .map_or(String::new(), |e| format!(".{}", e.to_str().unwrap()));
    mutants(&bytes, seed)
        .into_iter()
        .map(|(m, b)| {
            let p = dir.join(format!("{stem}_{m}{ext}"));
            std::fs::write(&p, b).unwrap();
            p
        })
        .collect()
}

/// Copies of the folder `src` (files only, one level of subfolders), each with `file` inside
/// replaced by one of its mutants. Returns `(folder, the damaged file)`.
fn folder_mutants(dir: &Path, src: &Path, file: &str, seed: u64) -> Vec<(PathBuf, PathBuf)> {
    let scratch = dir.join(format!("{}_scratch", file.replace('/', "_")));
    std::fs::create_dir_all(&scratch).unwrap();
    let name = src.file_name().unwrap().to_str().unwrap();
    write_mutants(&scratch, &src.join(file), seed)
        .into_iter()
        .map(|m| {
            let tag = m.file_stem().unwrap().to_str().unwrap().to_string();
            let out = dir.join(format!("{name}_{tag}"));
            copy_dir(src, &out);
            let damaged = out.join(file);
            std::fs::rename(&m, &damaged).unwrap();
            (out, damaged)
        })
        .collect()
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap().flatten() {
        let to = dst.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), to).unwrap();
        }
    }
}

/// One run: the arguments, the file whose damage it tests, and the output it may write.
struct Run {
    args: Vec<String>,
    damaged: PathBuf,
    out: Option<PathBuf>,
}

/// What went wrong with a run, or `None`.
fn check(run: &Run) -> Option<String> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cellscope"))
        .args(&run.args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            return Some(format!("{:?}: hung (killed after 120 s)", run.args));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    let what = format!("{:?} -> {:?}: {err}", run.args, o.status.code());
    if err.contains("panicked") || err.contains("RUST_BACKTRACE") {
        return Some(format!("panic: {what}"));
    }
    match o.status.code() {
        Some(0) => match &run.out {
            Some(out) if !out.exists() => Some(format!("exit 0 without output: {what}")),
            Some(out) if out.extension().is_some_and(|e| e == "h5ad") => {
                let a = cellscope::data::open(out);
                let bad = a.as_ref().map_or(Some("unreadable".to_string()), |a| {
                    a.obsm
                        .iter()
                        .find(|(_, v)| v.iter().any(|x| !x.is_finite()))
                        .map(|(k, _)| format!("obsm['{k}'] not finite"))
                });
                let _ = std::fs::remove_file(out);
                bad.map(|b| format!("exit 0 with a bad output ({b}): {what}"))
            }
            Some(out) => {
                let _ = std::fs::remove_dir_all(out).or_else(|_| std::fs::remove_file(out));
                None
            }
            None => None,
        },
        Some(2) => {
            if run.out.as_ref().is_some_and(|o| o.exists()) {
                return Some(format!("exit 2 left an output: {what}"));
            }
            let line = err.lines().find(|l| l.starts_with("error: ")).unwrap_or("");
            let name = run.damaged.file_name().unwrap().to_str().unwrap();
            let count = line.matches(name).count();
            (count != 1).then(|| format!("error names {name} {count} times: {what}"))
        }
        _ => Some(format!("exit code: {what}")),
    }
}

/// SHA-256 of every file under `dir`, by path.
fn hashes(dir: &Path, into: &mut Vec<(PathBuf, String)>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.file_type().unwrap().is_dir() {
            hashes(&e.path(), into);
        } else {
            let h = sha2::Sha256::digest(std::fs::read(e.path()).unwrap());
            into.push((e.path(), format!("{h:x}")));
        }
    }
}

fn args(v: &[&str]) -> Vec<String> {
    v.iter().map(|a| (*a).to_string()).collect()
}

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

/// A cellscope model folder pre-trained (and a classifier fine-tuned) on `data`, small.
fn models(dir: &Path, data: &Path) -> (PathBuf, PathBuf) {
    let (m, c) = (dir.join("hyp_model"), dir.join("hyp_classifier"));
    for args in [
        vec![
            "pretrain",
            &s(data),
            "--objective",
            "random-mask",
            "--epochs",
            "1",
        ],
        vec![
            "finetune",
            &s(data),
            "--label-key",
            "cell_type",
            "--epochs",
            "1",
        ],
    ] {
        let mut args: Vec<String> = args.into_iter().map(String::from).collect();
        if args[0] == "pretrain" {
            args.extend(["--hidden", "16,8", "--out", &s(&m)].map(String::from));
        } else {
            args.extend(["--model", &s(&m), "--out", &s(&c)].map(String::from));
        }
        let o = Command::new(env!("CARGO_BIN_EXE_cellscope"))
            .args(&args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    (m, c)
}

#[test]
fn every_subcommand_survives_the_hostile_corpus() {
    let root = tempfile::tempdir().unwrap();
    let (inputs, outs) = (root.path().join("inputs"), root.path().join("outs"));
    std::fs::create_dir_all(&inputs).unwrap();
    std::fs::create_dir_all(&outs).unwrap();
    let good = inputs.join("hyp.h5ad");
    std::fs::copy(shared_data().join("hypothalamus_scrna_ref.h5ad"), &good).unwrap();
    let (model, classifier) = models(&inputs, &good);
    let out = |n: &str| outs.join(n);
    let mut runs: Vec<Run> = Vec::new();
    let run = |args: Vec<String>, damaged: &Path, out: Option<PathBuf>| Run {
        args,
        damaged: damaged.to_path_buf(),
        out,
    };

    let (gs, ms_model, ms_cls) = (s(&good), s(&model), s(&classifier));
    // AnnData files, through every subcommand that reads one.
    for m in write_mutants(&inputs, &good, 1) {
        let tag = m.file_stem().unwrap().to_str().unwrap().to_string();
        let (h5, png, folder) = (
            out(&format!("{tag}.h5ad")),
            out(&format!("{tag}.png")),
            out(&format!("model_{tag}")),
        );
        let (ms, o) = (s(&m), s(&h5));
        let cell_type = "cell_type";
        for (args, output) in [
            (args(&["inspect", &ms]), None),
            (args(&["analyze", &ms, "--out", &o]), Some(&h5)),
            (
                args(&["embed", &ms, "--model", &ms_model, "--out", &o]),
                Some(&h5),
            ),
            (
                args(&[
                    "transfer",
                    "--reference",
                    &ms,
                    "--label-key",
                    cell_type,
                    "--query",
                    &gs,
                    "--out",
                    &o,
                ]),
                Some(&h5),
            ),
            (
                args(&[
                    "pretrain",
                    &ms,
                    "--objective",
                    "byol",
                    "--epochs",
                    "1",
                    "--hidden",
                    "8",
                    "--out",
                    &s(&folder),
                ]),
                Some(&folder),
            ),
            (
                args(&["predict", &ms, "--model", &ms_cls, "--out", &o]),
                Some(&h5),
            ),
            (
                args(&[
                    "evaluate",
                    &ms,
                    "--model",
                    &ms_model,
                    "--label-key",
                    cell_type,
                ]),
                None,
            ),
            (
                args(&[
                    "plot",
                    &ms,
                    "--basis",
                    "X_pca",
                    "--color",
                    cell_type,
                    "--out",
                    &s(&png),
                ]),
                Some(&png),
            ),
        ] {
            runs.push(run(args, &m, output.cloned()));
        }
    }
    // Model folders with damaged weights, config and gene list; a damaged PyTorch checkpoint.
    for file in ["weights.safetensors", "config.json", "genes.csv"] {
        for (folder, damaged) in folder_mutants(&inputs, &classifier, file, 2) {
            let o = out(&format!(
                "{}.h5ad",
                folder.file_name().unwrap().to_str().unwrap()
            ));
            let pr = args(&["predict", &gs, "--model", &s(&folder), "--out", &s(&o)]);
            runs.push(run(pr, &damaged, Some(o)));
        }
    }
    let kang = s(&shared_data().join("kang_pbmc_ctrl.h5ad"));
    let genes = s(&fixture("models/genes.csv"));
    for m in write_mutants(&inputs, &fixture("models/classifier.pt"), 3) {
        let o = out(&format!(
            "{}.h5ad",
            m.file_stem().unwrap().to_str().unwrap()
        ));
        let e = args(&[
            "embed",
            &kang,
            "--model",
            &s(&m),
            "--genes",
            &genes,
            "--out",
            &s(&o),
        ]);
        runs.push(run(e, &m, Some(o)));
    }
    // Label maps.
    let map = inputs.join("map.csv");
    std::fs::write(
        &map,
        "Excitatory,Excitatory\nInhibitory,Inhibitory\nAstrocyte,Astrocyte\n",
    )
    .unwrap();
    for m in write_mutants(&inputs, &map, 4) {
        let o = out(&format!(
            "{}.h5ad",
            m.file_stem().unwrap().to_str().unwrap()
        ));
        let t = args(&[
            "transfer",
            "--reference",
            &gs,
            "--label-key",
            "cell_type",
            "--query",
            &gs,
            "--label-map",
            &s(&m),
            "--query-label-key",
            "cell_type",
            "--out",
            &s(&o),
        ]);
        runs.push(run(t, &m, Some(o)));
    }
    // Visium folders with damaged positions and scale factors.
    let visium = inputs.join("visium");
    copy_dir(&shared_data().join("visium_scanpy_1.0.0"), &visium);
    for file in [
        "spatial/tissue_positions_list.csv",
        "spatial/scalefactors_json.json",
    ] {
        for (folder, damaged) in folder_mutants(&inputs, &visium, file, 5) {
            runs.push(run(args(&["inspect", &s(&folder)]), &damaged, None));
        }
    }
    // An instrument's folder (the real Xenium subset with the synthetic morphology pyramid)
    // with its cell table, matrix or image damaged: inspected and converted.
    let xenium = inputs.join("xenium");
    copy_dir(&shared_data().join("vendor/xenium_sfe"), &xenium);
    copy_dir(&fixture("vendor/morphology_fixture"), &xenium);
    for file in [
        "cells.parquet",
        "cell_feature_matrix.h5",
        "morphology_focus/morphology_focus_0000.ome.tif",
    ] {
        for (folder, damaged) in folder_mutants(&inputs, &xenium, file, 6) {
            runs.push(run(args(&["inspect", &s(&folder)]), &damaged, None));
            let tag = folder.file_name().unwrap().to_str().unwrap().to_string();
            let o = out(&format!("{tag}.h5ad"));
            runs.push(run(
                args(&["convert", &s(&folder), "--out", &s(&o)]),
                &damaged,
                Some(o),
            ));
        }
    }
    // Outputs onto inputs: refused, the input unchanged (checked by the hashes below).
    for (a, damaged) in [
        (args(&["analyze", &gs, "--out", &gs]), &good),
        (
            args(&["predict", &gs, "--model", &ms_cls, "--out", &gs]),
            &good,
        ),
        (
            args(&[
                "pretrain",
                &gs,
                "--objective",
                "byol",
                "--hidden",
                "8",
                "--out",
                &ms_model,
            ]),
            &model,
        ),
    ] {
        runs.push(run(a, damaged, None));
    }

    let mut before = Vec::new();
    hashes(&inputs, &mut before);
    let started = Instant::now();
    // Two at a time (every run has outputs of its own).
    let chunks: Vec<&[Run]> = runs.chunks(runs.len().div_ceil(2)).collect();
    let failures: Vec<String> = std::thread::scope(|sc| {
        let hs: Vec<_> = chunks
            .iter()
            .map(|chunk| sc.spawn(move || chunk.iter().filter_map(check).collect::<Vec<_>>()))
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let mut after = Vec::new();
    hashes(&inputs, &mut after);
    println!(
        "{} runs in {:.1} s",
        runs.len(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(before, after, "an input changed");
    assert!(
        failures.is_empty(),
        "{} of {} runs failed:\n{}",
        failures.len(),
        runs.len(),
        failures.join("\n")
    );
}
