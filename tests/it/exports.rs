//! Exports on real data: `cellscope plot` PNG and SVG (size, DPI, legend, the category colours
//! the views use, provenance; the SVG parses), results written back and read by Python anndata,
//! and the selection CSV.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use cellscope::export::tables::{CsvColumn, Results, write_results, write_selection_csv};
use cellscope::pipeline::jobs::coloring::obs_or_gene_coloring;

fn shared(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data")
        .join(name)
}

fn plot(out: &Path, extra: &[&str]) {
    let o = Command::new(env!("CARGO_BIN_EXE_cellscope"))
        .arg("plot")
        .arg(shared("pbmc68k_reduced.h5ad"))
        .args(["--basis", "X_umap", "--color", "bulk_labels", "--out"])
        .arg(out)
        .args(extra)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .output()
        .expect("run cellscope plot");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn png_figure_has_size_dpi_legend_palette_and_provenance() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("umap.png");
    plot(&out, &[]);
    // Size and DPI (6 x 5 in at 300 dpi), provenance chunk.
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(&out).expect("open"),
    ));
    let reader = decoder.read_info().expect("png");
    let info = reader.info();
    assert_eq!((info.width, info.height), (1800, 1500));
    let dims = info.pixel_dims.expect("pHYs");
    assert_eq!(dims.xppu, (300.0f64 / 0.0254).round() as u32);
    let prov = info
        .uncompressed_latin1_text
        .iter()
        .find(|t| t.keyword == "cellscope-provenance")
        .expect("provenance chunk");
    let v: serde_json::Value = serde_json::from_str(&prov.text).expect("json");
    assert_eq!(v["cellscope_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["inputs"][0]["sha256"].as_str().map(str::len), Some(64));
    assert_eq!(v["parameters"]["color"], "bulk_labels");
    // The colours the views use (uns['bulk_labels_colors']) in the plot and in the legend.
    let a = cellscope::data::open(&shared("pbmc68k_reduced.h5ad")).expect("read");
    let coloring = obs_or_gene_coloring(&a, "bulk_labels").expect("coloring");
    let uns = &a.uns_colors["bulk_labels"];
    assert_eq!(coloring.legend.len(), 10);
    let img = image::open(&out).expect("decode").to_rgb8();
    let legend_x = (1800.0 * 0.72) as u32;
    for (k, item) in coloring.legend.iter().enumerate() {
        let want = cellscope::render::colors::parse_hex(&uns[k]).expect("hex");
        assert_eq!(
            item.color, want,
            "legend colour of {} is the file's",
            item.name
        );
        let c = [want.r(), want.g(), want.b()];
        let count = |x0: u32, x1: u32| {
            img.enumerate_pixels()
                .filter(|(x, _, p)| *x >= x0 && *x < x1 && p.0 == c)
                .count()
        };
        let (plot_px, legend_px) = (count(0, legend_x), count(legend_x, 1800));
        println!(
            "{}: {plot_px} px in the plot, {legend_px} in the legend",
            item.name
        );
        assert!(legend_px > 200, "legend swatch of {}", item.name);
        assert!(plot_px > 100, "points of {}", item.name);
    }
}

#[test]
fn svg_figure_parses_and_has_legend_and_provenance() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("umap.svg");
    plot(&out, &["--width", "4", "--height", "3", "--dpi", "150"]);
    let text = std::fs::read_to_string(&out).expect("svg");
    let mut reader = quick_xml::Reader::from_str(&text);
    let (mut texts, mut circles, mut metadata, mut size) = (Vec::new(), 0, false, None);
    loop {
        match reader.read_event().expect("well-formed SVG") {
            quick_xml::events::Event::Eof => break,
            quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e) => {
                match e.name().as_ref() {
                    b"circle" => circles += 1,
                    b"metadata" => metadata = true,
                    b"svg" => {
                        let attr = |n: &[u8]| {
                            e.attributes()
                                .flatten()
                                .find(|a| a.key.as_ref() == n)
                                .map(|a| String::from_utf8_lossy(&a.value).to_string())
                        };
                        size = Some((attr(b"width"), attr(b"height")));
                    }
                    _ => {}
                }
            }
            quick_xml::events::Event::Text(t) => {
                texts.push(String::from_utf8_lossy(t.as_ref()).to_string());
            }
            _ => {}
        }
    }
    assert_eq!(size, Some((Some("600".into()), Some("450".into()))));
    assert_eq!(circles, 700, "one circle per cell");
    assert!(metadata, "provenance metadata");
    assert!(
        texts.iter().any(|t| t.contains("CD19+ B (95)")),
        "legend entry with its count: {texts:?}"
    );
    assert!(
        text.contains("#1F77B4") || text.contains("#1f77b4"),
        "first palette colour"
    );
}

#[test]
fn results_write_back_round_trips_through_anndata() {
    if !common::python_anndata("the write-back read by Python anndata") {
        return;
    }
    let a = cellscope::data::open(&cellscope::ui::default_dataset()).expect("read");
    let n = a.n_obs();
    let umap = ndarray::Array2::from_shape_fn((n, 2), |(i, j)| (i * 2 + j) as f32 * 0.5);
    let emb = ndarray::Array2::from_shape_fn((n, 4), |(i, j)| (i + j) as f32);
    let leiden: Vec<u32> = (0..n as u32).map(|i| i % 11).collect();
    let dom: Vec<u32> = (0..n as u32).map(|i| i % 3).collect();
    let conf: Vec<f32> = (0..n).map(|i| i as f32 / n as f32).collect();
    let pred: Vec<String> = (0..n).map(|i| format!("type {}", i % 4)).collect();
    let annotations = vec![
        ("tumour edge".to_string(), vec![0, 1, 2, 5]),
        ("stroma".to_string(), vec![5, 7]),
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("results.h5ad");
    let r = Results {
        embedding: Some(&emb),
        umap: Some(&umap),
        leiden: Some(&leiden),
        domains: Some((&dom, &conf)),
        predicted: Some((&pred, &conf)),
        annotations: &annotations,
        provenance: cellscope::export::provenance(
            &[("data", a.source.as_path())],
            serde_json::json!({"seed": 0}),
        ),
        ..Default::default()
    };
    write_results(&a, &r, &out).expect("write");
    let script = r#"
import sys, json, anndata as ad, numpy as np
a = ad.read_h5ad(sys.argv[1])
print(json.dumps({
  "shape": list(a.shape),
  "umap": a.obsm["X_umap"][:3].tolist(),
  "emb": list(a.obsm["X_cellscope"].shape),
  "leiden": a.obs["leiden"].astype(str).tolist()[:13],
  "leiden_dtype": str(a.obs["leiden"].dtype),
  "domain_conf": float(a.obs["spatial_domain_confidence"].iloc[7]),
  "pred": a.obs["cellscope_prediction"].astype(str).tolist()[:5],
  "ann": [None if isinstance(v, float) else v for v in a.obs["cellscope_annotation"].tolist()[:8]],
  "prov": json.loads(a.uns["cellscope_provenance"]),
  "x_sum": float(a.X.sum()),
}))
"#;
    let o = Command::new("python3")
        .args(["-c", script])
        .arg(&out)
        .output()
        .expect("python3");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["shape"], serde_json::json!([n, a.n_vars()]));
    assert_eq!(
        v["umap"],
        serde_json::json!([[0.0, 0.5], [1.0, 1.5], [2.0, 2.5]])
    );
    assert_eq!(v["emb"], serde_json::json!([n, 4]));
    let leiden: Vec<String> = (0..13).map(|i| (i % 11).to_string()).collect();
    assert_eq!(v["leiden"], serde_json::json!(leiden));
    assert_eq!(v["leiden_dtype"], "category");
    assert!((v["domain_conf"].as_f64().expect("conf") - 7.0 / n as f64).abs() < 1e-6);
    assert_eq!(
        v["pred"],
        serde_json::json!(["type 0", "type 1", "type 2", "type 3", "type 0"])
    );
    assert_eq!(
        v["ann"],
        serde_json::json!([
            "tumour edge",
            "tumour edge",
            "tumour edge",
            null,
            null,
            "stroma",
            null,
            "stroma"
        ])
    );
    assert_eq!(v["prov"]["cellscope_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        v["prov"]["inputs"][0]["sha256"].as_str().map(str::len),
        Some(64)
    );
    let x_sum: f64 = a.x.to_csr().data.iter().map(|&x| f64::from(x)).sum();
    assert!((v["x_sum"].as_f64().expect("sum") - x_sum).abs() < 1e-3 * x_sum.abs().max(1.0));
    // Never the input file.
    assert!(write_results(&a, &r, &a.source).is_err());
}

#[test]
fn selection_csv_has_ids_values_and_provenance() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("sel.csv");
    let ids: Vec<String> = (0..5).map(|i| format!("cell{i}")).collect();
    let cols = vec![
        CsvColumn {
            name: "spatial_x".into(),
            values: (0..5).map(|i| (i * 10).to_string()).collect(),
        },
        CsvColumn {
            name: "cluster, label".into(),
            values: (0..5).map(|i| format!("c{i}")).collect(),
        },
    ];
    write_selection_csv(&ids, &[1, 3], &cols, &serde_json::json!({"seed": 0}), &out).expect("csv");
    let text = std::fs::read_to_string(&out).expect("read");
    let mut lines = text.lines();
    assert!(
        lines
            .next()
            .expect("comment")
            .starts_with("# cellscope provenance: {")
    );
    assert_eq!(lines.next(), Some("cell_id,spatial_x,\"cluster, label\""));
    assert_eq!(lines.next(), Some("cell1,10,c1"));
    assert_eq!(lines.next(), Some("cell3,30,c3"));
    assert_eq!(lines.next(), None);
}
