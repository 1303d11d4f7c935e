//! Streaming embedding end to end: the `embed` command writes embeddings equal to PyTorch's,
//! a saved cellscope model reloads to identical embeddings, progress is reported and
//! cancellation stops within one batch.

use crate::common;

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use cellscope::data::genes::GeneList;
use cellscope::model::embed::{EmbedError, EmbedOptions, Embedder};
use cellscope::model::{BackendChoice, Engine, load_model, save_model};
use common::{fixture, shared_data};

#[test]
fn embed_command_writes_pytorch_equal_embeddings() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("kang_embedded.h5ad");
    let a = common::embed_kang(
        fixture("models/random_mask.ckpt"),
        &["--batch-size", "300"],
        &[],
        &out,
    );
    let e = &a.obsm["X_cellscope"];
    assert_eq!(e.dim(), (6548, 64));
    common::assert_random_mask_reference(e, &[0, 57, 199]);
    // The input is refused as output.
    let o = Command::new(env!("CARGO_BIN_EXE_cellscope"))
        .arg("embed")
        .arg(shared_data().join("kang_pbmc_ctrl.h5ad"))
        .arg("--model")
        .arg(fixture("models/random_mask.ckpt"))
        .arg("--out")
        .arg(shared_data().join("kang_pbmc_ctrl.h5ad"))
        .output()
        .expect("run");
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("refusing to overwrite"));
}

#[test]
fn saved_model_reloads_to_identical_embeddings() {
    let m = load_model(
        &fixture("models/barlow_twins.pt"),
        Some(&fixture("models/genes.csv")),
    )
    .expect("load");
    let dir = tempfile::tempdir().expect("tmp");
    let folder = dir.path().join("bt_model");
    save_model(&m, &folder).expect("save");
    assert!(
        save_model(&m, &folder).is_err(),
        "existing folder must be refused"
    );
    let back = load_model(&folder, None).expect("reload");
    // Everything that runs is identical (the saved file holds the backbone only, so the count of
    // parameters in the file differs from the imported checkpoint's).
    assert!(
        back.weights.backbone == m.weights.backbone,
        "backbone weights differ"
    );
    assert!(back.weights.head == m.weights.head, "head differs");
    assert_eq!(back.weights.kind, m.weights.kind);
    assert_eq!(back.weights.activation, m.weights.activation);
    assert_eq!(back.genes.symbols, m.genes.symbols);
    let prov = std::fs::read_to_string(folder.join("provenance.json")).expect("prov");
    let sha =
        cellscope::model::format::sha256_file(&folder.join("weights.safetensors")).expect("sha");
    assert!(prov.contains(&sha), "provenance lacks the weights' SHA-256");
    let data = shared_data().join("kang_pbmc_ctrl.h5ad");
    let run = |model: &cellscope::model::Model| {
        let engine = Engine::new(&model.weights, BackendChoice::Cpu).expect("engine");
        let emb = Embedder {
            engine: &engine,
            genes: &model.genes,
            dim: 64,
            homologs: None,
            opts: EmbedOptions::default(),
        };
        emb.embed_h5ad(&data, &mut |_| {}, &AtomicBool::new(false))
            .expect("embed")
            .values
    };
    assert!(
        run(&m) == run(&back),
        "embeddings differ after save -> load"
    );
    // A gene list of the wrong length is refused, naming the file.
    let short = dir.path().join("short.csv");
    std::fs::write(&short, "feature_name\nA\nB\n").expect("write");
    let e = load_model(&fixture("models/barlow_twins.pt"), Some(&short)).expect_err("length");
    assert!(
        e.to_string().contains("short.csv") && e.to_string().contains("256"),
        "{e}"
    );
}

#[test]
fn progress_and_cancellation() {
    let m = load_model(&fixture("models/byol.pt"), None).expect("load");
    let engine = Engine::new(&m.weights, BackendChoice::Cpu).expect("engine");
    let emb = Embedder {
        engine: &engine,
        genes: &m.genes,
        dim: 64,
        homologs: None,
        opts: EmbedOptions {
            batch_size: 500,
            block_rows: 2000,
            ..EmbedOptions::default()
        },
    };
    let data = shared_data().join("kang_pbmc_ctrl.h5ad");
    let cancel = AtomicBool::new(false);
    let mut seen = Vec::new();
    let e = emb
        .embed_h5ad(
            &data,
            &mut |p| {
                seen.push(p.done);
                if p.done >= 1000 {
                    cancel.store(true, Ordering::Relaxed);
                }
            },
            &cancel,
        )
        .expect_err("cancelled");
    assert!(
        matches!(
            e,
            EmbedError::Cancelled {
                done: 1000,
                total: 6548
            }
        ),
        "{e}"
    );
    assert_eq!(seen, vec![500, 1000]);

    // A dataset sharing no genes with the model is refused.
    let other = GeneList::from_names(vec!["NOT_A_GENE".into(); 256]);
    let emb = Embedder {
        engine: &engine,
        genes: &other,
        dim: 64,
        homologs: None,
        opts: EmbedOptions::default(),
    };
    let e = emb
        .embed_h5ad(&data, &mut |_| {}, &AtomicBool::new(false))
        .expect_err("no shared genes");
    assert!(e.to_string().contains("shares no genes"), "{e}");
}

#[test]
fn var_parquet_gene_order_is_read() {
    let csv = GeneList::read_csv(&fixture("models/genes.csv")).expect("csv");
    let pq = GeneList::read_csv(&fixture("models/var.parquet")).expect("parquet");
    assert_eq!(pq.symbols, csv.symbols);
    assert_eq!(pq.len(), 256);
    let m = load_model(
        &fixture("models/random_mask.ckpt"),
        Some(&fixture("models/var.parquet")),
    )
    .expect("model with var.parquet");
    assert_eq!(m.genes.symbols, csv.symbols);
    let e = GeneList::read_csv(
        &fixture("models/genes.csv")
            .with_file_name("reference.json")
            .with_extension("parquet"),
    )
    .expect_err("missing file");
    assert!(e.to_string().contains("reference.parquet"), "{e}");
}

#[test]
fn homolog_table_maps_dataset_genes_before_alignment() {
    // Mouse reference genes (Moffitt 2018) against the fixture model's human genes: without a
    // table nothing is shared; a table mapping 20 mouse symbols to 20 model genes gives 20.
    let dir = tempfile::tempdir().expect("tempdir");
    let data = shared_data().join("hypothalamus_scrna_ref.h5ad");
    let mouse: Vec<String> = cellscope::data::h5ad::read_h5ad(&data)
        .expect("read")
        .var_names()[..20]
        .to_vec();
    let model_genes = std::fs::read_to_string(fixture("models/genes.csv")).expect("genes.csv");
    let human: Vec<&str> = model_genes.lines().skip(1).take(20).collect();
    let table = dir.path().join("homologs.csv");
    let rows: Vec<String> = mouse
        .iter()
        .zip(&human)
        .map(|(m, h)| format!("{m},{h}"))
        .collect();
    std::fs::write(&table, format!("mouse,human\n{}\n", rows.join("\n"))).expect("write table");
    let run = |extra: &[&std::ffi::OsStr], out: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_cellscope"))
            .arg("embed")
            .arg(&data)
            .arg("--model")
            .arg(fixture("models/random_mask.ckpt"))
            .args(extra)
            .arg("--out")
            .arg(out)
            .output()
            .expect("run")
    };
    let o = run(&[], &dir.path().join("plain.h5ad"));
    assert!(!o.status.success(), "no shared genes without the table");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("shares no genes"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let out = dir.path().join("mapped.h5ad");
    let o = run(&["--homologs".as_ref(), table.as_os_str()], &out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stderr = String::from_utf8_lossy(&o.stderr);
    println!("{stderr}");
    assert!(
        stderr.contains("20 of 256 model genes matched"),
        "coverage report: {stderr}"
    );
    let a = cellscope::data::h5ad::read_h5ad(&out).expect("output");
    assert_eq!(a.obsm["X_cellscope"].dim(), (a.n_obs(), 64));
}

/// The provenance JSON `cellscope embed` wrote into `uns`.
fn provenance(path: &std::path::Path) -> serde_json::Value {
    let f = hdf5::File::open(path).expect("open output");
    let s: hdf5::types::VarLenUnicode = f
        .dataset("uns/cellscope_provenance")
        .expect("provenance")
        .read_scalar()
        .expect("string");
    serde_json::from_str(s.as_str()).expect("json")
}

#[test]
fn target_sum_median_normalises_to_the_median_total() {
    let dir = tempfile::tempdir().expect("tmp");
    let model = fixture("models/random_mask.ckpt");
    let run = |args: &[&str], name: &str| {
        let out = dir.path().join(name);
        let a = common::embed_kang(&model, args, &[], &out);
        (a.obsm["X_cellscope"].clone(), provenance(&out))
    };
    let (default, p_default) = run(&[], "default.h5ad");
    let (median, p_median) = run(&["--target-sum", "median"], "median.h5ad");
    // scanpy's normalize_total(target_sum=None): the median of the cells' totals (all cells).
    let x = cellscope::data::open(&shared_data().join("kang_pbmc_ctrl.h5ad")).expect("read");
    let x = x.x.to_csr();
    let mut totals: Vec<f64> = (0..x.n_rows)
        .map(|r| x.row(r).1.iter().map(|&v| f64::from(v)).sum())
        .collect();
    totals.sort_by(f64::total_cmp);
    let n = totals.len();
    let want = if n % 2 == 1 {
        totals[n / 2]
    } else {
        (totals[n / 2 - 1] + totals[n / 2]) / 2.0
    };
    let got = p_median["target_sum"].as_f64().expect("target_sum");
    println!(
        "median total {want}, cellscope {got}; default {}",
        p_default["target_sum"]
    );
    assert!(
        (got - want).abs() <= 1e-6 * want,
        "median target {got} vs {want}"
    );
    assert_eq!(p_default["target_sum"].as_f64(), Some(1e4));
    assert!(
        (&default - &median).iter().any(|d| d.abs() > 1e-3),
        "the target changes the embedding"
    );
    // The median as a number gives the same embedding.
    let (fixed, _) = run(&["--target-sum", &format!("{want}")], "fixed.h5ad");
    let diff = (&fixed - &median).iter().fold(0f64, |m, d| m.max(d.abs()));
    assert!(diff < 1e-4, "median vs its value: {diff}");
    // A target that is no number of counts is refused before any work.
    let o = Command::new(env!("CARGO_BIN_EXE_cellscope"))
        .arg("embed")
        .arg(shared_data().join("kang_pbmc_ctrl.h5ad"))
        .args([
            "--model",
            model.to_str().expect("utf-8"),
            "--target-sum",
            "0",
        ])
        .arg("--out")
        .arg(dir.path().join("never.h5ad"))
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("expected `median` or a positive number"));
}
