//! Every dataset in ../shared/data read by cellscope agrees with Python anndata / scanpy
//! (reference values from tests/fixtures/make_reference.py).

use crate::common;

use cellscope::data::matrix::Checksum;
use cellscope::data::{AnnData, Column, tenx};
use common::{close, reference, sha_join, shared_data};
use serde_json::Value;

fn check_checksum(what: &str, got: Checksum, want: &Value) {
    assert_eq!(
        got.nonzero,
        want["nonzero"].as_u64().expect("nonzero"),
        "{what}: nonzero"
    );
    for (name, g) in [
        ("sum", got.sum),
        ("sum_sq", got.sum_sq),
        ("weighted", got.weighted),
    ] {
        let w = want[name].as_f64().expect("number");
        assert!(close(g, w, 1e-9), "{what}: {name} {g} vs anndata {w}");
    }
}

fn check_column(what: &str, col: &Column, want: &Value) {
    let kind = want["kind"].as_str().expect("kind");
    let values: Vec<String> = (0..col.len()).map(|i| col.value_string(i)).collect();
    match kind {
        "categorical" => {
            let Column::Categorical {
                categories,
                ordered,
                ..
            } = col
            else {
                panic!("{what}: expected categorical, got {}", col.kind());
            };
            let want_cats: Vec<String> = want["categories"]
                .as_array()
                .expect("categories")
                .iter()
                .map(|v| v.as_str().expect("str").to_string())
                .collect();
            assert_eq!(categories, &want_cats, "{what}: categories");
            assert_eq!(
                *ordered,
                want["ordered"].as_bool().expect("ordered"),
                "{what}: ordered"
            );
            assert_eq!(sha_join(&values), want["values_sha"], "{what}: values");
        }
        "string" => assert_eq!(sha_join(&values), want["values_sha"], "{what}: values"),
        "bool" => {
            let n_true = (0..col.len()).filter(|&i| col.value_f64(i) == 1.0).count();
            assert_eq!(
                n_true as u64,
                want["n_true"].as_u64().expect("n_true"),
                "{what}"
            );
        }
        _ => {
            let v: Vec<f64> = (0..col.len())
                .map(|i| col.value_f64(i))
                .filter(|x| !x.is_nan())
                .collect();
            let sum: f64 = v.iter().sum();
            let sum_sq: f64 = v.iter().map(|x| x * x).sum();
            assert_eq!(
                (col.len() - v.len()) as u64,
                want["n_missing"].as_u64().expect("n_missing"),
                "{what}: missing"
            );
            assert!(
                close(sum, want["sum"].as_f64().expect("sum"), 1e-9),
                "{what}: sum {sum}"
            );
            assert!(
                close(sum_sq, want["sum_sq"].as_f64().expect("sum_sq"), 1e-9),
                "{what}: sum_sq {sum_sq}"
            );
        }
    }
}

fn check_anndata(name: &str, a: &AnnData, want: &Value) {
    let shape = [a.n_obs() as u64, a.n_vars() as u64];
    assert_eq!(
        shape.to_vec(),
        want["shape"]
            .as_array()
            .expect("shape")
            .iter()
            .map(|v| v.as_u64().expect("u64"))
            .collect::<Vec<_>>(),
        "{name}: shape"
    );
    assert_eq!(
        sha_join(a.obs_names()),
        want["obs_names_sha"],
        "{name}: obs_names"
    );
    assert_eq!(
        sha_join(a.var_names()),
        want["var_names_sha"],
        "{name}: var_names"
    );
    let want_obs = want["obs"].as_object().expect("obs");
    let got_cols: Vec<&str> = a.obs.column_names();
    let mut want_cols: Vec<&str> = want_obs.keys().map(String::as_str).collect();
    let mut sorted_got = got_cols.clone();
    sorted_got.sort_unstable();
    want_cols.sort_unstable();
    assert_eq!(sorted_got, want_cols, "{name}: obs columns");
    for (k, w) in want_obs {
        check_column(
            &format!("{name} obs/{k}"),
            a.obs.column(k).expect("column"),
            w,
        );
    }
    check_checksum(&format!("{name} X"), a.x.checksum(), &want["x"]);
    let want_obsm = want["obsm"].as_object().expect("obsm");
    assert_eq!(
        a.obsm.keys().collect::<Vec<_>>(),
        want_obsm.keys().collect::<Vec<_>>(),
        "{name}: obsm keys"
    );
    for (k, w) in want_obsm {
        let m = &a.obsm[k];
        assert_eq!(
            m.nrows() as u64,
            w["shape"][0].as_u64().expect("rows"),
            "{name} obsm/{k}"
        );
        assert_eq!(
            m.ncols() as u64,
            w["shape"][1].as_u64().expect("cols"),
            "{name} obsm/{k}"
        );
        assert!(
            close(m.sum(), w["sum"].as_f64().expect("sum"), 1e-6),
            "{name} obsm/{k} sum"
        );
    }
    let layers: Vec<String> = a
        .layers
        .iter()
        .map(|l| l.path.trim_start_matches("layers/").to_string())
        .collect();
    let want_layers: Vec<String> = want["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|v| v.as_str().expect("str").to_string())
        .collect();
    assert_eq!(layers, want_layers, "{name}: layers");
    assert_eq!(
        a.raw.as_ref().map(|r| r.var.n_rows() as u64),
        want["raw_n_vars"].as_u64(),
        "{name}: raw"
    );
    for (k, v) in want["uns_colors"].as_object().expect("uns_colors") {
        let got = a
            .uns_colors
            .get(k)
            .unwrap_or_else(|| panic!("{name}: uns {k}_colors"));
        let want: Vec<&str> = v
            .as_array()
            .expect("colors")
            .iter()
            .map(|c| c.as_str().expect("str"))
            .collect();
        assert_eq!(got, &want, "{name}: {k}_colors");
    }
}

#[test]
fn every_shared_h5ad_matches_anndata() {
    let r = reference();
    let files = r["h5ad"].as_object().expect("h5ad");
    assert!(files.len() >= 13, "reference lists {} files", files.len());
    for (name, want) in files {
        let a = cellscope::data::open(&shared_data().join(name))
            .unwrap_or_else(|e| panic!("{name} failed to load: {e}"));
        check_anndata(name, &a, want);
    }
}

#[test]
fn tenx_h5_matches_scanpy() {
    let r = reference();
    for (name, want) in r["tenx"].as_object().expect("tenx") {
        let genome = name.contains("multiple").then_some("hg19_chr21");
        let a = tenx::read_10x_h5(shared_data().join(name), genome)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        check_anndata(name, &a, want);
        let ids: Vec<String> = {
            let c = a.var.column("gene_ids").expect("gene_ids");
            (0..c.len()).map(|i| c.value_string(i)).collect()
        };
        assert_eq!(sha_join(&ids), want["gene_ids_sha"], "{name}: gene_ids");
    }
    let e = tenx::read_10x_h5(shared_data().join("tenx/v2_multiple_genomes.h5"), None)
        .expect_err("several genomes need a choice");
    assert!(e.to_string().contains("hg19_chr21"), "{e}");
}

#[test]
fn visium_folder_matches_scanpy_read_visium() {
    let r = reference();
    let want = &r["visium"]["visium_scanpy_1.0.0"];
    let v = tenx::read_visium(shared_data().join("visium_scanpy_1.0.0")).expect("visium");
    for (k, w) in want["obs"].as_object().expect("obs") {
        check_column(
            &format!("visium obs/{k}"),
            v.adata.obs.column(k).expect("column"),
            w,
        );
    }
    check_checksum("visium X", v.adata.x.checksum(), &want["x"]);
    let sp = &v.adata.obsm["spatial"];
    for (i, row) in want["spatial_head"]
        .as_array()
        .expect("head")
        .iter()
        .enumerate()
    {
        assert_eq!(sp[[i, 0]], row[0].as_f64().expect("x"), "spot {i} x");
        assert_eq!(sp[[i, 1]], row[1].as_f64().expect("y"), "spot {i} y");
    }
    assert!(close(
        sp.sum(),
        want["obsm"]["spatial"]["sum"].as_f64().expect("sum"),
        1e-12
    ));
    for (k, w) in want["scalefactors"].as_object().expect("scalefactors") {
        assert_eq!(v.scalefactors[k], w.as_f64().expect("f64"), "{k}");
    }
    for img in &v.images {
        let s = &want["images"][&img.name];
        assert_eq!(
            img.size.1 as u64,
            s[0].as_u64().expect("h"),
            "{} height",
            img.name
        );
        assert_eq!(
            img.size.0 as u64,
            s[1].as_u64().expect("w"),
            "{} width",
            img.name
        );
    }
    assert_eq!(v.images.len(), 2);
}

#[test]
fn spatial_from_obs_columns() {
    let a = cellscope::data::open(&shared_data().join("cscc_p10_rep2.h5ad")).expect("cscc");
    assert!(a.default_spatial().is_none());
    let xy = a
        .spatial_coords(&cellscope::data::SpatialSource::ObsColumns(
            "col".into(),
            "row".into(),
        ))
        .expect("coords");
    assert_eq!(xy.dim(), (621, 2));
    let col = a.obs.column("col").expect("col");
    assert_eq!(xy[[5, 0]], col.value_f64(5));
    let e = a
        .spatial_coords(&cellscope::data::SpatialSource::ObsColumns(
            "cluster".into(),
            "nope".into(),
        ))
        .expect_err("missing column");
    assert!(e.to_string().contains("obs/nope"), "{e}");
}
