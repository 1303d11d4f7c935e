//! The instruments' output folders (`../shared/data/vendor`, real subsets in native layouts)
//! read by cellscope against a committed Python reference that reads the same files with
//! pandas, pyarrow and h5py (`tests/fixtures/vendor/make_vendor_reference.py`): cells in the
//! matrix's order with the vendor's ids, genes only in X, controls counted, centroids, obs;
//! mosaics and outlines; Visium HD (synthetic). `inspect`, `convert` and malformed folders are
//! in `data_vendor_cli.rs`.

use std::path::{Path, PathBuf};

use cellscope::data::vendor::{self, VendorInfo, merscope, xenium};
use cellscope::data::{AnnData, InputKind};
use serde_json::Value;

use super::common::{close, fixture, shared_data};

pub(crate) fn vendor(name: &str) -> PathBuf {
    shared_data().join("vendor").join(name)
}

pub(crate) fn reference() -> Value {
    let text = std::fs::read_to_string(fixture("vendor/vendor_reference.json")).expect("reference");
    serde_json::from_str(&text).expect("json")
}

pub(crate) fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|s| s.as_str().expect("string").to_string())
        .collect()
}

pub(crate) fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

/// Everything the reference recorded, compared.
fn check(name: &str, a: &AnnData, info: &VendorInfo) {
    let r = &reference()[name];
    let n = r["n_cells"].as_u64().expect("n") as usize;
    assert_eq!(a.n_obs(), n, "{name}: cells");
    assert_eq!(
        a.var.index,
        strs(&r["genes"]),
        "{name}: genes (controls left out)"
    );
    let names = &a.obs.index;
    assert_eq!(
        names[..3].to_vec(),
        strs(&r["cells_head"]),
        "{name}: first cell ids"
    );
    assert_eq!(
        names[n - 3..].to_vec(),
        strs(&r["cells_tail"]),
        "{name}: last cell ids"
    );
    let x = a.x.to_csr();
    let c = a.x.checksum();
    assert!(
        close(c.sum, r["x_sum"].as_f64().expect("sum"), 1e-9),
        "{name}: X sum"
    );
    assert_eq!(
        c.nonzero,
        r["x_nnz"].as_u64().expect("nnz"),
        "{name}: X non-zeros"
    );
    let mut gene_sums = vec![0f64; x.n_cols];
    for (&j, &v) in x.indices.iter().zip(&x.data) {
        gene_sums[j as usize] += f64::from(v);
    }
    for (g, (got, want)) in gene_sums.iter().zip(f64s(&r["x_gene_sums"])).enumerate() {
        assert!(
            close(*got, want, 1e-9),
            "{name}: gene {g} total {got} vs {want}"
        );
    }
    for (i, want) in f64s(&r["x_cell_sums_head"]).iter().enumerate() {
        let (_, v) = x.row(i);
        let got: f64 = v.iter().map(|&v| f64::from(v)).sum();
        assert!(close(got, *want, 1e-9), "{name}: cell {i} total");
    }
    let s = &a.obsm["spatial"];
    let want = f64s(&r["spatial_sum"]);
    for (k, want) in want.iter().enumerate() {
        assert!(
            close(s.column(k).sum(), *want, 1e-12),
            "{name}: spatial column {k}"
        );
    }
    // cells.csv.gz holds 15 significant digits, the parquet table all 17.
    for (got, want) in s.row(0).iter().zip(f64s(&r["spatial_first"])) {
        assert!(
            close(*got, want, 1e-13),
            "{name}: first centroid {got} vs {want} µm"
        );
    }
    let obs = r["obs_sums"].as_object().expect("obs");
    let mut got_obs: Vec<&str> = a.obs.columns.iter().map(|(n, _)| n.as_str()).collect();
    got_obs.sort_unstable();
    let want_obs: Vec<&str> = obs.keys().map(String::as_str).collect();
    assert_eq!(got_obs, want_obs, "{name}: obs columns");
    for (col, want) in obs {
        let c = a.obs.column(col).expect("column");
        let got: f64 = (0..c.len())
            .map(|i| c.value_f64(i))
            .filter(|v| !v.is_nan())
            .sum();
        assert!(
            close(got, want.as_f64().expect("sum"), 1e-9),
            "{name}: obs {col}"
        );
    }
    let controls: Vec<(String, usize)> = r["controls"]
        .as_object()
        .expect("controls")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().expect("count") as usize))
        .collect();
    assert_eq!(info.controls, controls, "{name}: control features");
}

#[test]
fn xenium_folder_matches_the_python_reference() {
    let dir = vendor("xenium_sfe");
    assert_eq!(
        cellscope::data::detect(&dir).expect("detect"),
        InputKind::Xenium
    );
    let (a, info) = xenium::read_xenium(&dir).expect("read");
    check("xenium_sfe", &a, &info);
    assert_eq!(info.platform, "10x Xenium");
    assert_eq!(
        a.spatial_units.as_deref(),
        Some("µm"),
        "the scale bar's unit"
    );
}

/// The real subset's matrix written as Xenium's `cell_feature_matrix/` MEX folder (gzipped
/// MatrixMarket, features and barcodes, from the HDF5 arrays with every feature): read as the
/// HDF5 one, against the same Python reference; a MatrixMarket entry outside the shape is an
/// error naming the file and line.
#[test]
fn xenium_mex_folder_reads_as_the_h5() {
    use std::io::Write;
    let src = vendor("xenium_sfe");
    let tmp = tempfile::tempdir().expect("tmp");
    std::fs::copy(src.join("cells.parquet"), tmp.path().join("cells.parquet")).expect("copy");
    let mex = tmp.path().join("cell_feature_matrix");
    std::fs::create_dir(&mex).expect("dir");
    let f = cellscope::data::h5util::open_read(&src.join("cell_feature_matrix.h5")).expect("h5");
    let strings = |p: &str| -> Vec<String> {
        let ds = f.dataset(p).expect("dataset");
        cellscope::data::h5util::read_strings(&ds).expect("strings")
    };
    let gz = |name: &str, text: String| {
        let file = std::fs::File::create(mex.join(name)).expect("create");
        let mut w = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
        w.write_all(text.as_bytes()).expect("write");
        w.finish().expect("finish");
    };
    let ids = strings("matrix/features/id");
    let names = strings("matrix/features/name");
    let types = strings("matrix/features/feature_type");
    let barcodes = strings("matrix/barcodes");
    let feats: String = (0..ids.len())
        .map(|i| format!("{}\t{}\t{}\n", ids[i], names[i], types[i]))
        .collect();
    gz("features.tsv.gz", feats);
    gz(
        "barcodes.tsv.gz",
        barcodes.iter().map(|b| format!("{b}\n")).collect(),
    );
    let data: Vec<f64> = f
        .dataset("matrix/data")
        .and_then(|d| d.read_raw())
        .expect("data");
    let indices: Vec<i64> = f
        .dataset("matrix/indices")
        .and_then(|d| d.read_raw())
        .expect("i");
    let indptr: Vec<i64> = f
        .dataset("matrix/indptr")
        .and_then(|d| d.read_raw())
        .expect("p");
    let mut mtx = format!(
        "%%MatrixMarket matrix coordinate integer general\n% written by the test\n{} {} {}\n",
        ids.len(),
        barcodes.len(),
        data.len()
    );
    for j in 0..barcodes.len() {
        for k in indptr[j] as usize..indptr[j + 1] as usize {
            mtx.push_str(&format!("{} {} {}\n", indices[k] + 1, j + 1, data[k]));
        }
    }
    gz("matrix.mtx.gz", mtx.clone());
    assert_eq!(
        cellscope::data::detect(tmp.path()).expect("detect"),
        InputKind::Xenium
    );
    let (a, info) = xenium::read_xenium(tmp.path()).expect("read the MEX folder");
    check("xenium_sfe", &a, &info);
    assert_eq!(info.files[0], "cell_feature_matrix/");

    let broken = mtx.replacen(
        &format!("\n{} 1 ", indices[0] + 1),
        &format!("\n{} 1 ", ids.len() + 5),
        1,
    );
    gz("matrix.mtx.gz", broken);
    let e = xenium::read_xenium(tmp.path())
        .expect_err("an entry outside the shape")
        .to_string();
    assert!(e.contains("matrix.mtx.gz") && e.contains("line 4"), "{e}");
}

#[test]
fn xenium_csv_cell_table_reads_as_the_parquet_one() {
    let tmp = tempfile::tempdir().expect("tmp");
    for f in ["cell_feature_matrix.h5", "cells.csv.gz"] {
        std::fs::copy(vendor("xenium_sfe").join(f), tmp.path().join(f)).expect("copy");
    }
    let (a, info) = xenium::read_xenium(tmp.path()).expect("read");
    check("xenium_sfe", &a, &info);
    assert_eq!(info.files[1], "cells.csv.gz");
}

#[test]
fn xenium_run_metadata_is_read_from_experiment_xenium() {
    let r = &reference()["experiment"];
    let m = xenium::read_experiment(&vendor("xenium_experiment_file").join("experiment.xenium"))
        .expect("experiment");
    let get = |k: &str| {
        m.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .expect(k)
    };
    assert_eq!(
        get("pixel_size").parse::<f64>().ok(),
        r["pixel_size"].as_f64()
    );
    assert_eq!(
        get("analysis_sw_version"),
        r["analysis_sw_version"].as_str().expect("v")
    );
    assert_eq!(get("panel_name"), r["panel_name"].as_str().expect("panel"));
    assert_eq!(get("num_cells"), r["num_cells"].to_string());
}

#[test]
fn merscope_both_layouts_match_the_python_reference() {
    for (name, layout) in [
        ("merscope_liver", "instrument (unnamed id column)"),
        ("merscope_cellbound", "post-processing tool (EntityID)"),
    ] {
        let dir = vendor(name);
        assert_eq!(
            cellscope::data::detect(&dir).expect("detect"),
            InputKind::Merscope
        );
        let (a, info) = merscope::read_merscope(&dir).expect("read");
        check(name, &a, &info);
        assert_eq!(info.get("layout"), Some(layout));
        assert_eq!(a.spatial_units.as_deref(), Some("µm"));
        let blank = reference()[name]["blank_sum"].as_f64().expect("blank");
        assert!(
            close(a.obsm["blank"].sum(), blank, 1e-12),
            "{name}: Blank counts kept apart"
        );
    }
}

#[test]
fn cosmx_slideseq_and_stereoseq_match_the_python_reference() {
    for (name, path, kind) in [
        (
            "cosmx_mouse_brain",
            vendor("cosmx_mouse_brain"),
            InputKind::Cosmx,
        ),
        (
            "slideseq_cerebellum",
            vendor("slideseq_cerebellum"),
            InputKind::SlideSeq,
        ),
        (
            "stereoseq_gem",
            vendor("stereoseq_gem").join("test10000.gem.gz"),
            InputKind::StereoSeq,
        ),
    ] {
        assert_eq!(
            cellscope::data::detect(&path).expect("detect"),
            kind,
            "{name}"
        );
        let (a, info) = vendor::read(&path, kind).expect("read");
        check(name, &a, &info);
    }
}

/// RCTD's genes x beads and the transposed table give the same beads x genes data.
#[test]
fn slideseq_reads_either_orientation() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = vendor("slideseq_cerebellum");
    std::fs::copy(
        dir.join("BeadLocationsForR.csv"),
        tmp.path().join("BeadLocationsForR.csv"),
    )
    .expect("copy");
    let text = std::fs::read_to_string(dir.join("MappedDGEForR.csv")).expect("read");
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split(',').collect()).collect();
    let transposed: Vec<String> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c]).collect::<Vec<_>>().join(","))
        .collect();
    std::fs::write(tmp.path().join("beads_DGE.csv"), transposed.join("\n")).expect("write");
    let (a, info) = vendor::slideseq::read_slideseq(tmp.path()).expect("read");
    assert_eq!(info.get("layout"), Some("beads x genes"));
    check("slideseq_cerebellum", &a, &info);
}

/// The MERSCOPE mosaic decodes and lies under the cells: every centroid falls inside the
/// image's extent in microns, by the manifest and by an equivalent micron-to-pixel transform.
#[test]
fn merscope_mosaic_lies_under_the_cells() {
    use cellscope::pipeline::jobs::open::{ImageRequest, Placement, default_image, load_image};
    for name in ["merscope_liver", "merscope_cellbound"] {
        let dir = vendor(name);
        let (a, _) = merscope::read_merscope(&dir).expect("read");
        let m = merscope::mosaic(&dir)
            .expect("mosaic")
            .expect("an images/ mosaic");
        let (path, placement) = default_image(&dir).expect("default image");
        assert_eq!(path, m.path);
        let u = load_image(&ImageRequest::new(path, placement)).expect("decode the TIFF");
        let (w, h) = (f64::from(u.image.width()), f64::from(u.image.height()));
        let p = u.placement;
        let (x1, y1) = (
            p.origin[0] + w * p.data_per_pixel,
            p.origin[1] + h * p.data_per_pixel,
        );
        let s = &a.obsm["spatial"];
        let within = |margin: f64| {
            s.rows()
                .into_iter()
                .filter(|c| {
                    c[0] >= p.origin[0] - margin
                        && c[0] <= x1 + margin
                        && c[1] >= p.origin[1] - margin
                        && c[1] <= y1 + margin
                })
                .count()
        };
        // The subsets keep the cells that touch the cropped region, so centres of cells cut by
        // its edge lie up to a cell radius (10 µm) outside it.
        assert_eq!(
            within(10.0),
            a.n_obs(),
            "{name}: every cell within a radius of the image"
        );
        assert!(
            within(0.0) * 100 >= 95 * a.n_obs(),
            "{name}: most centres on the image"
        );
        let px = u.image.as_raw();
        let (lo, hi) = px
            .iter()
            .step_by(4)
            .fold((255u8, 0u8), |(l, h), &v| (l.min(v), h.max(v)));
        assert!(hi > lo + 50, "{name}: the mosaic has contrast ({lo}..{hi})");
        // The instrument's transform file says the same.
        let tmp = tempfile::tempdir().expect("tmp");
        std::fs::create_dir(tmp.path().join("images")).expect("dir");
        std::fs::copy(
            &m.path,
            tmp.path()
                .join("images")
                .join(m.path.file_name().expect("n")),
        )
        .expect("copy");
        let sc = 1.0 / m.microns_per_pixel;
        let t = format!(
            "{sc} 0 {}\n0 {sc} {}\n0 0 1\n",
            -m.origin[0] * sc,
            -m.origin[1] * sc
        );
        std::fs::write(
            tmp.path()
                .join("images/micron_to_mosaic_pixel_transform.csv"),
            t,
        )
        .expect("write");
        let m2 = merscope::mosaic(tmp.path()).expect("mosaic").expect("some");
        assert!(close(m2.microns_per_pixel, m.microns_per_pixel, 1e-12));
        for k in 0..2 {
            assert!(
                close(m2.origin[k], m.origin[k], 1e-12),
                "{name}: origin {k}"
            );
        }
        let _ = Placement::scale(1.0);
    }
}

/// Cell outlines against the reference (vertex counts, first vertex, coordinate sums), and
/// placed on their cells: every centroid inside its outline's bounding box (give or take the
/// tolerance) and the outline's area centroid (shoelace) within that tolerance of it.
#[test]
fn outlines_match_the_reference_and_surround_their_centroids() {
    use cellscope::data::vendor::outlines::read_outlines;
    for (name, kind, near) in [
        // Largest centre-to-outline-centroid distance found with shapely: Xenium 0.36 µm,
        // MERSCOPE 6.9 µm (centres from all z-planes, outline from one); CosMx in pixels.
        ("xenium_sfe", InputKind::Xenium, 1.0),
        ("merscope_liver", InputKind::Merscope, 10.0),
        ("merscope_cellbound", InputKind::Merscope, 10.0),
        ("cosmx_mouse_brain", InputKind::Cosmx, 30.0),
    ] {
        let dir = vendor(name);
        let (a, _) = vendor::read(&dir, kind).expect("read");
        let o = read_outlines(&dir, kind, &a.obs.index)
            .expect("outlines")
            .expect("a boundary file");
        check_outlines(name, &o, a.n_obs(), &reference()[name]["outlines"]);
        let s = &a.obsm["spatial"];
        for i in (0..o.n_cells()).filter(|&i| !o.ring(i).is_empty()) {
            let ring = o.ring(i);
            let c = s.row(i);
            let mean = area_centroid(ring);
            for k in 0..2 {
                let lo = ring.iter().map(|v| v[k]).fold(f64::INFINITY, f64::min);
                let hi = ring.iter().map(|v| v[k]).fold(f64::NEG_INFINITY, f64::max);
                assert!(
                    c[k] >= lo - near && c[k] <= hi + near,
                    "{name}: cell {i}'s centre outside its outline"
                );
                assert!(
                    (mean[k] - c[k]).abs() < near,
                    "{name}: cell {i}'s outline off its centre"
                );
            }
        }
    }
}

/// Outlines against a reference summary: cells outlined, vertices, the first cells' vertex
/// counts, the first vertex and the coordinate sums.
fn check_outlines(name: &str, o: &vendor::outlines::Outlines, n_obs: usize, r: &Value) {
    assert_eq!(o.n_cells(), n_obs, "{name}");
    assert_eq!(
        o.n_outlined() as u64,
        r["n_outlined"].as_u64().expect("n"),
        "{name}"
    );
    assert_eq!(
        o.vertices.len() as u64,
        r["n_vertices"].as_u64().expect("v"),
        "{name}"
    );
    let head: Vec<u64> = (0..5).map(|i| o.ring(i).len() as u64).collect();
    let want: Vec<u64> = r["counts_head"]
        .as_array()
        .expect("a")
        .iter()
        .map(|v| v.as_u64().expect("u"))
        .collect();
    assert_eq!(head, want, "{name}: vertices of the first cells");
    let first = (0..o.n_cells())
        .find(|&i| !o.ring(i).is_empty())
        .expect("one");
    for (k, want) in f64s(&r["first_vertex"]).iter().enumerate() {
        assert!(
            close(o.ring(first)[0][k], *want, 1e-12),
            "{name}: first vertex"
        );
    }
    for (k, want) in f64s(&r["sums"]).iter().enumerate() {
        let got: f64 = o.vertices.iter().map(|v| v[k]).sum();
        assert!(close(got, *want, 1e-9), "{name}: vertex sum {k}");
    }
}

/// MERSCOPE's per-FOV HDF5 boundaries, read when no boundary parquet is there, against h5py.
#[test]
fn merscope_hdf5_boundaries_match_h5py() {
    use cellscope::data::vendor::outlines::read_outlines;
    for (name, parquet) in [
        ("merscope_liver", "cellpose_micron_space.parquet"),
        ("merscope_cellbound", "cell_boundaries.parquet"),
    ] {
        let tmp = tempfile::tempdir().expect("tmp");
        let src = vendor(name);
        std::fs::create_dir(tmp.path().join("cell_boundaries")).expect("dir");
        for e in std::fs::read_dir(&src)
            .expect("dir")
            .chain(std::fs::read_dir(src.join("cell_boundaries")).expect("dir"))
        {
            let p = e.expect("entry").path();
            let rel = p.strip_prefix(&src).expect("inside");
            if p.is_file() && !rel.ends_with(parquet) {
                std::fs::copy(&p, tmp.path().join(rel)).expect("copy");
            }
        }
        let (a, _) = merscope::read_merscope(tmp.path()).expect("read");
        let o = read_outlines(tmp.path(), InputKind::Merscope, &a.obs.index)
            .expect("outlines")
            .expect("the HDF5 boundaries");
        check_outlines(name, &o, a.n_obs(), &reference()[name]["outlines_hdf5"]);
    }
}

/// Opening an instrument's folder (the window's job) brings its outlines; a damaged boundary
/// file costs the outlines, not the dataset, and the summary says why.
#[test]
fn opening_a_folder_brings_its_outlines_and_survives_a_damaged_boundary_file() {
    use cellscope::pipeline::jobs::{Handle, open::open};
    let run = |dir: &Path| {
        let mut report = |_| {};
        let mut h = Handle::new(&mut report, std::sync::Arc::default());
        open(dir, &mut h).expect("open")
    };
    let o = run(&vendor("xenium_sfe"));
    assert_eq!(o.outlines.expect("outlines").n_outlined(), 526);
    let tmp = tempfile::tempdir().expect("tmp");
    for f in [
        "cell_feature_matrix.h5",
        "cells.parquet",
        "cell_boundaries.parquet",
    ] {
        std::fs::copy(vendor("xenium_sfe").join(f), tmp.path().join(f)).expect("copy");
    }
    let b = tmp.path().join("cell_boundaries.parquet");
    let bytes = std::fs::read(&b).expect("read");
    std::fs::write(&b, &bytes[..bytes.len() / 3]).expect("truncate");
    let o = run(tmp.path());
    assert_eq!(o.data.n_obs(), 526, "the cells still open");
    assert!(o.outlines.is_none());
    assert!(
        o.summary.contains("outlines: not read") && o.summary.contains("cell_boundaries.parquet"),
        "{}",
        o.summary
    );
}

/// The centroid of a polygon's area (shoelace formula).
fn area_centroid(ring: &[[f64; 2]]) -> [f64; 2] {
    let (mut a, mut cx, mut cy) = (0.0, 0.0, 0.0);
    for (p, q) in ring.iter().zip(ring.iter().cycle().skip(1)) {
        let cross = p[0] * q[1] - q[0] * p[1];
        a += cross;
        cx += (p[0] + q[0]) * cross;
        cy += (p[1] + q[1]) * cross;
    }
    [cx / (3.0 * a), cy / (3.0 * a)]
}

/// Visium HD (a synthetic run: no real output is in `../shared`;
/// `tests/fixtures/vendor/make_visium_hd_fixture.py`): the run folder and its `binned_outputs/`
/// open the 8 µm bins, a `square_016um` folder its own; cells in the matrix's order joined to
/// `tissue_positions.parquet` on the barcode, as the pandas reference; the hires image placed
/// by its scale factor.
#[test]
fn visium_hd_bins_match_the_pandas_reference() {
    let root = fixture("vendor/visium_hd");
    let text = std::fs::read_to_string(fixture("vendor/visium_hd_reference.json")).expect("ref");
    let refs: Value = serde_json::from_str(&text).expect("json");
    let outputs = root.join("binned_outputs");
    for (dir, key) in [
        (root.clone(), "square_008um"),
        (outputs.clone(), "square_008um"),
        (outputs.join("square_016um"), "square_016um"),
    ] {
        let r = &refs[key];
        assert_eq!(
            cellscope::data::detect(&dir).expect("detect"),
            InputKind::Visium
        );
        let a = cellscope::data::open(&dir).expect("read");
        assert_eq!(a.n_obs() as u64, r["n_cells"].as_u64().expect("n"), "{key}");
        assert_eq!(
            a.obs.index[..3].to_vec(),
            strs(&r["cells_head"]),
            "{key}: matrix order"
        );
        assert_eq!(a.var.index, strs(&r["genes"]));
        assert!(close(
            a.x.checksum().sum,
            r["x_sum"].as_f64().expect("sum"),
            1e-12
        ));
        let s = &a.obsm["spatial"];
        let want = f64s(&r["spatial_sum"]);
        for (k, want) in want.iter().enumerate() {
            assert!(close(s.column(k).sum(), *want, 1e-12), "{key}: spatial {k}");
        }
        let first = f64s(&r["spatial_first"]);
        assert_eq!(
            [s[[0, 0]], s[[0, 1]]],
            [first[0], first[1]],
            "{key}: (col, row) pixels"
        );
        let rows = match a.obs.column("array_row") {
            Some(cellscope::data::dataframe::Column::Int(v)) => v.iter().sum::<i64>(),
            other => panic!("array_row: {other:?}"),
        };
        assert_eq!(rows as u64, r["array_row_sum"].as_u64().expect("rows"));
    }
    let (img, placement) = cellscope::pipeline::jobs::open::default_image(&root).expect("image");
    assert!(
        img.ends_with("square_008um/spatial/tissue_hires_image.png"),
        "{img:?}"
    );
    assert!(
        close(placement.data_per_pixel, 4.0, 1e-12),
        "1 / tissue_hires_scalef"
    );
}
