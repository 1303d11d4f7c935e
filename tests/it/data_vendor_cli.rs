//! `cellscope inspect` and `convert` on the instruments' folders (the converted files read back
//! by Python anndata and through HDF5) and malformed folders refused with the file and what was
//! expected.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use super::common::{close, fixture, python_anndata};
use super::data_vendor::{f64s, reference, strs, vendor};

fn cellscope(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cellscope"))
        .args(args)
        .output()
        .expect("run cellscope")
}

#[test]
fn inspect_names_the_platform_and_the_controls() {
    let o = cellscope(&["inspect", vendor("xenium_sfe").to_str().expect("path")]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        out.contains("10x Xenium output folder") && out.contains("shape: 526 x 27"),
        "{out}"
    );
    assert!(
        out.contains("1 Negative Control Probe, 2 Unassigned Codeword"),
        "{out}"
    );
    let o = cellscope(&[
        "inspect",
        vendor("merscope_cellbound").to_str().expect("path"),
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("post-processing tool (EntityID)") && out.contains("39 Blank codeword"),
        "{out}"
    );
}

/// `convert` writes an .h5ad that Python anndata reads with the same cells, genes, counts and
/// centroids, and the source description in uns.
/// `convert --bin-size 100` bins a GEM file at 100 DNBs (stereopy's bin100), as the pandas
/// reference does; `--bin-size` on another input is refused naming it.
#[test]
fn convert_bins_a_gem_file_at_the_chosen_size() {
    let tmp = tempfile::tempdir().expect("tmp");
    let gem = vendor("stereoseq_gem").join("test10000.gem.gz");
    let out = tmp.path().join("bin100.h5ad");
    let args = [
        "convert",
        gem.to_str().expect("p"),
        "--out",
        out.to_str().expect("o"),
    ];
    let o = cellscope(&[&args[..], &["--bin-size", "100"]].concat());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let back = cellscope::data::open(&out).expect("read back");
    let r = &reference()["stereoseq_gem_bin100"];
    assert_eq!(back.n_obs() as u64, r["n_cells"].as_u64().expect("n"));
    assert_eq!(back.obs.index[..3].to_vec(), strs(&r["cells_head"]));
    assert!(close(
        back.x.checksum().sum,
        r["x_sum"].as_f64().expect("sum"),
        1e-9
    ));
    let xen = vendor("xenium_sfe");
    let o = cellscope(&[
        "convert",
        xen.to_str().expect("p"),
        "--out",
        out.to_str().expect("o"),
        "--bin-size",
        "100",
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--bin-size applies to Stereo-seq"), "{err}");
}

/// `convert` keeps the image under the cells where squidpy looks for it: a Xenium morphology
/// image (synthetic pyramid beside the real subset) at 1 / 0.2125 pixels per µm, Visium HD's
/// hires image at its scale factor with the spot diameter; a MERSCOPE mosaic, whose corner is
/// not the origin, is left out (squidpy places images by scale alone). Read back with h5py
/// through Python anndata where it is installed, and through HDF5 always.
#[test]
fn convert_keeps_the_image_for_squidpy() {
    let tmp = tempfile::tempdir().expect("tmp");
    let xen = tmp.path().join("xenium_run");
    std::fs::create_dir(&xen).expect("dir");
    for f in ["cell_feature_matrix.h5", "cells.parquet"] {
        std::fs::copy(vendor("xenium_sfe").join(f), xen.join(f)).expect("copy");
    }
    let focus = fixture("vendor/morphology_fixture/morphology_focus");
    std::fs::create_dir(xen.join("morphology_focus")).expect("dir");
    for e in std::fs::read_dir(&focus).expect("list") {
        let p = e.expect("entry").path();
        std::fs::copy(
            &p,
            xen.join("morphology_focus").join(p.file_name().expect("n")),
        )
        .expect("copy");
    }
    let hd = fixture("vendor/visium_hd");
    for (input, lib, shape, scalef, spot) in [
        (
            xen.clone(),
            "xenium_run",
            [448u64, 640, 3],
            1.0 / 0.2125,
            false,
        ),
        (hd.clone(), "visium_hd", [325, 400, 3], 0.25, true),
    ] {
        let out = tmp.path().join(format!("{lib}.h5ad"));
        let o = cellscope(&[
            "convert",
            input.to_str().expect("p"),
            "--out",
            out.to_str().expect("o"),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let f = hdf5::File::open(&out).expect("h5");
        let img = f
            .dataset(&format!("uns/spatial/{lib}/images/hires"))
            .expect("image");
        assert_eq!(
            img.shape().iter().map(|&v| v as u64).collect::<Vec<_>>(),
            shape
        );
        let sf = format!("uns/spatial/{lib}/scalefactors");
        let s: f64 = f
            .dataset(&format!("{sf}/tissue_hires_scalef"))
            .and_then(|d| d.read_scalar())
            .expect("scalef");
        assert!(close(s, scalef, 1e-9), "{lib}: {s}");
        assert_eq!(f.link_exists(&format!("{sf}/spot_diameter_fullres")), spot);
        if python_anndata("the image kept for squidpy") {
            let script = "import anndata, sys\n\
                 a = anndata.read_h5ad(sys.argv[1])\n\
                 s = a.uns['spatial'][sys.argv[2]]\n\
                 print(list(s['images']['hires'].shape), float(s['scalefactors']['tissue_hires_scalef']))";
            let py = Command::new("python3")
                .args(["-c", script, out.to_str().expect("o"), lib])
                .output()
                .expect("python");
            assert!(
                py.status.success(),
                "{}",
                String::from_utf8_lossy(&py.stderr)
            );
            let text = String::from_utf8_lossy(&py.stdout);
            let want = format!("[{}, {}, {}]", shape[0], shape[1], shape[2]);
            assert!(text.starts_with(&want), "{lib}: {text}");
        }
    }
    let out = tmp.path().join("merscope.h5ad");
    let m = vendor("merscope_cellbound");
    let o = cellscope(&[
        "convert",
        m.to_str().expect("p"),
        "--out",
        out.to_str().expect("o"),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let f = hdf5::File::open(&out).expect("h5");
    assert!(
        !f.link_exists("uns/spatial"),
        "a mosaic off the origin is not written"
    );
}

#[test]
fn convert_writes_an_h5ad_anndata_reads() {
    let tmp = tempfile::tempdir().expect("tmp");
    for name in ["xenium_sfe", "merscope_liver"] {
        let out = tmp.path().join(format!("{name}.h5ad"));
        let o = cellscope(&[
            "convert",
            vendor(name).to_str().expect("p"),
            "--out",
            out.to_str().expect("o"),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let back = cellscope::data::open(&out).expect("read back");
        let r = &reference()[name];
        assert_eq!(back.var.index, strs(&r["genes"]), "{name}");
        assert!(close(
            back.x.checksum().sum,
            r["x_sum"].as_f64().expect("sum"),
            1e-9
        ));
        if !python_anndata("the converted vendor folders") {
            continue;
        }
        let script = "import anndata, json, sys, numpy as np\n\
             a = anndata.read_h5ad(sys.argv[1])\n\
             s = json.loads(a.uns['cellscope_source'])\n\
             print(json.dumps({'shape': list(a.shape), 'head': list(a.obs_names[:3]), \
             'x_sum': float(a.X.sum()), 'spatial': [float(v) for v in a.obsm['spatial'].sum(axis=0)], \
             'platform': s['platform']}))";
        let py = Command::new("python3")
            .args(["-c", script, out.to_str().expect("o")])
            .output()
            .expect("python");
        assert!(
            py.status.success(),
            "{}",
            String::from_utf8_lossy(&py.stderr)
        );
        let v: Value = serde_json::from_slice(&py.stdout).expect("json");
        assert_eq!(v["shape"][0].as_u64(), r["n_cells"].as_u64(), "{name}");
        assert_eq!(
            strs(&v["head"]),
            strs(&r["cells_head"]),
            "{name}: obs_names"
        );
        assert!(close(
            v["x_sum"].as_f64().expect("x"),
            r["x_sum"].as_f64().expect("x"),
            1e-9
        ));
        let want = f64s(&r["spatial_sum"]);
        for (k, got) in f64s(&v["spatial"]).iter().enumerate() {
            assert!(close(*got, want[k], 1e-12), "{name}: spatial in anndata");
        }
        assert!(v["platform"].as_str().is_some_and(|p| !p.is_empty()));
    }
}

/// A folder copied with one part damaged: the error names the file and what was expected.
fn damaged(from: &str, edit: impl Fn(&Path)) -> String {
    let tmp = tempfile::tempdir().expect("tmp");
    for e in std::fs::read_dir(vendor(from)).expect("dir") {
        let p = e.expect("entry").path();
        if p.is_file() {
            std::fs::copy(&p, tmp.path().join(p.file_name().expect("name"))).expect("copy");
        }
    }
    edit(tmp.path());
    match cellscope::data::open(tmp.path()) {
        Ok(_) => panic!("{from}: a damaged folder was read"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn malformed_vendor_folders_are_refused_with_the_file_and_what_was_expected() {
    // Cell ids that do not match the matrix.
    let e = damaged("merscope_liver", |d| {
        let p = d.join("Liver1Slice1_cell_metadata.csv");
        let text = std::fs::read_to_string(&p).expect("read");
        let mut lines: Vec<&str> = text.lines().collect();
        lines.remove(5);
        std::fs::write(&p, lines.join("\n")).expect("write");
    });
    assert!(
        e.contains("cell_metadata.csv") && e.contains("no row for cell"),
        "{e}"
    );
    // A header that is neither layout's.
    let e = damaged("merscope_cellbound", |d| {
        let p = d.join("cell_by_gene.csv");
        let text = std::fs::read_to_string(&p).expect("read");
        std::fs::write(&p, text.replacen("cell,", "barcode,", 1)).expect("write");
    });
    assert!(
        e.contains("cell_by_gene.csv") && e.contains("cell id column"),
        "{e}"
    );
    // A count that is not a number.
    let e = damaged("merscope_liver", |d| {
        let p = d.join("Liver1Slice1_cell_by_gene.csv");
        let text = std::fs::read_to_string(&p).expect("read");
        let mut lines: Vec<String> = text.lines().map(String::from).collect();
        lines[3] = lines[3].replacen(",0,", ",x,", 1);
        std::fs::write(&p, lines.join("\n")).expect("write");
    });
    assert!(
        e.contains("line 4") && e.contains("non-negative count"),
        "{e}"
    );
    // A missing metadata file.
    let e = damaged("merscope_liver", |d| {
        std::fs::remove_file(d.join("Liver1Slice1_cell_metadata.csv")).expect("rm");
    });
    assert!(e.contains("cell_metadata.csv"), "{e}");
    // A truncated parquet cell table.
    let e = damaged("xenium_sfe", |d| {
        let p = d.join("cells.parquet");
        let bytes = std::fs::read(&p).expect("read");
        std::fs::write(&p, &bytes[..bytes.len() / 2]).expect("write");
    });
    assert!(e.contains("cells.parquet"), "{e}");
    // A cell table without the centroid columns.
    let e = damaged("xenium_sfe", |d| {
        std::fs::remove_file(d.join("cells.parquet")).expect("rm");
        let p = d.join("cells.csv.gz");
        let raw = std::fs::read(&p).expect("read");
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::MultiGzDecoder::new(&raw[..]), &mut text)
            .expect("gz");
        std::fs::remove_file(&p).expect("rm");
        std::fs::write(d.join("cells.csv"), text.replacen("x_centroid", "x", 1)).expect("write");
    });
    assert!(e.contains("cells.csv") && e.contains("x_centroid"), "{e}");
    // CosMx: an expression matrix without its fov / cell_ID columns.
    let e = damaged("cosmx_mouse_brain", |d| {
        let p = d.join("Run5642_S3_Quarter_exprMat_file.csv");
        let text = std::fs::read_to_string(&p).expect("read");
        std::fs::write(&p, text.replacen("fov,cell_ID", "FOV,cell", 1)).expect("write");
    });
    assert!(
        e.contains("exprMat_file.csv") && e.contains("cell_ID"),
        "{e}"
    );
    // Stereo-seq: a GEM whose header lacks MIDCount.
    let tmp = tempfile::tempdir().expect("tmp");
    let gem = tmp.path().join("bad.gem");
    std::fs::write(
        &gem,
        "#FileFormat=GEMv0.2\ngeneID\tx\ty\tcount\nA\t1\t2\t3\n",
    )
    .expect("write");
    let e = cellscope::data::open(&gem)
        .expect_err("bad header")
        .to_string();
    assert!(e.contains("bad.gem") && e.contains("MIDCount"), "{e}");
    std::fs::write(&gem, "geneID\tx\ty\tMIDCount\nA\t1\t-2\t3\n").expect("write");
    let e = cellscope::data::open(&gem).expect_err("bad y").to_string();
    assert!(
        e.contains("line 2, y") && e.contains("non-negative integer"),
        "{e}"
    );
}
