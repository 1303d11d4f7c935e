//! Hostile AnnData files (issue #21): damaged compressed chunks are refused (never silent
//! garbage), and chunks that reach past the array's end (with or without shuffle) read as the
//! HDF5 library reads them.

use crate::common;

use std::path::{Path, PathBuf};

use cellscope::data::h5util::{read_strings, to_varlen};
use cellscope::data::write::{Additions, write_h5ad};

/// her2st_A1 rewritten with `X/data` stored as chunks of 1,000 values (the last one partial),
/// deflate-compressed, shuffled first when `shuffle`. Returns the file, X's values and the
/// positions of the first and the last chunk.
fn compressed_copy(dir: &Path, shuffle: bool) -> (PathBuf, Vec<f32>, [(u64, u64); 2]) {
    let a = cellscope::data::open(&common::shared_data().join("her2st_A1.h5ad")).unwrap();
    let path = dir.join(format!("chunked_shuffle_{shuffle}.h5ad"));
    write_h5ad(&a, &Additions::default(), &path).unwrap();
    let f = hdf5::File::open_rw(&path).unwrap();
    let x = f.group("X").unwrap();
    let values: Vec<f32> = x.dataset("data").unwrap().read_raw().unwrap();
    assert!(
        !values.len().is_multiple_of(1000),
        "the last chunk must be partial"
    );
    x.unlink("data").unwrap();
    let b = x.new_dataset_builder().chunk(1000);
    let b = if shuffle { b.shuffle() } else { b };
    let ds = b.deflate(6).with_data(&values).create("data").unwrap();
    f.flush().unwrap();
    // The file position and stored size of the first and the last (partial) chunk.
    let last = values.len().div_ceil(1000) - 1;
    let chunks = [0, last].map(|i| {
        let info = ds.chunk_info(i).expect("chunk info");
        (info.addr, info.size)
    });
    (path, values, chunks)
}

#[test]
fn compressed_chunks_read_exactly_or_fail_naming_the_dataset() {
    let dir = tempfile::tempdir().unwrap();
    for shuffle in [false, true] {
        let (path, values, chunks) = compressed_copy(dir.path(), shuffle);
        let got = cellscope::data::open(&path).unwrap().x.to_csr();
        assert_eq!(got.data, values, "shuffle {shuffle}: values as written");
        let bytes = std::fs::read(&path).unwrap();
        // A damaged byte in the middle and near the end (the checksum) of the first and the
        // last (partial) chunk.
        for (i, (addr, size)) in chunks.into_iter().enumerate() {
            for at in [addr + size / 2, addr + size - 2] {
                let mut bad = bytes.clone();
                bad[at as usize] ^= 0x5a;
                let p = dir.path().join(format!("damaged_{shuffle}_{i}_{at}.h5ad"));
                std::fs::write(&p, &bad).unwrap();
                let Err(e) = cellscope::data::open(&p) else {
                    panic!("{}: a damaged chunk must be refused", p.display());
                };
                let m = e.to_string();
                assert!(m.contains(p.file_name().unwrap().to_str().unwrap()), "{m}");
                assert!(m.contains("X/data"), "{m}");
            }
        }
    }
}

/// A copy of her2st_A1 (written by cellscope, anndata's layout) edited by `edit`.
fn edited(dir: &Path, name: &str, edit: impl FnOnce(&hdf5::File)) -> PathBuf {
    let a = cellscope::data::open(&common::shared_data().join("her2st_A1.h5ad")).unwrap();
    let path = dir.join(name);
    write_h5ad(&a, &Additions::default(), &path).unwrap();
    edit(&hdf5::File::open_rw(&path).unwrap());
    path
}

/// The error message of opening `path`, which must fail and name the file.
fn open_error(path: &Path) -> String {
    let Err(e) = cellscope::data::open(path) else {
        panic!("{} must be refused", path.display());
    };
    let m = e.to_string();
    assert!(
        m.contains(path.file_name().unwrap().to_str().unwrap()),
        "{m}"
    );
    m
}

fn replace(g: &hdf5::Group, name: &str, make: impl FnOnce(&hdf5::Group, &str)) {
    let attrs: Vec<(String, String)> = {
        let ds = g.dataset(name).unwrap();
        ds.attr_names()
            .unwrap()
            .into_iter()
            .filter_map(|k| {
                let v = ds
                    .attr(&k)
                    .ok()?
                    .read_scalar::<hdf5::types::VarLenUnicode>()
                    .ok()?;
                Some((k, v.as_str().to_string()))
            })
            .collect()
    };
    g.unlink(name).unwrap();
    make(g, name);
    let ds = g.dataset(name).unwrap();
    for (k, v) in attrs {
        let v: hdf5::types::VarLenUnicode = v.parse().unwrap();
        ds.new_attr::<hdf5::types::VarLenUnicode>()
            .create(k.as_str())
            .unwrap()
            .write_scalar(&v)
            .unwrap();
    }
}

fn set_attr(loc: &hdf5::Location, name: &str, value: &str) {
    cellscope::data::h5util::write_str_attr(loc, name, value).unwrap();
}

#[test]
fn misencoded_annotations_are_refused_not_misread() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A 64-bit categorical code that would wrap to 0 as a 32-bit integer.
    let p = edited(d, "wide_codes.h5ad", |f| {
        let g = f.group("obs/label").unwrap();
        let n = g.dataset("codes").unwrap().size();
        let mut codes = vec![0i64; n];
        codes[7] = 1 << 32;
        replace(&g, "codes", |g, name| {
            g.new_dataset_builder()
                .with_data(&codes)
                .create(name)
                .unwrap();
        });
    });
    let m = open_error(&p);
    assert!(m.contains("obs/label") && m.contains("4294967296"), "{m}");
    // 2-D categories.
    let p = edited(d, "categories_2d.h5ad", |f| {
        let g = f.group("obs/label").unwrap();
        let n = g.dataset("categories").unwrap().size();
        let cats = ndarray::Array2::from_shape_fn((n, 2), |(i, j)| {
            format!("c{i}_{j}")
                .parse::<hdf5::types::VarLenUnicode>()
                .unwrap()
        });
        replace(&g, "categories", |g, name| {
            g.new_dataset_builder()
                .with_data(&cats)
                .create(name)
                .unwrap();
        });
    });
    let m = open_error(&p);
    assert!(
        m.contains("obs/label/categories") && m.contains("1-D"),
        "{m}"
    );
    // A root that is not an AnnData, and an X from a newer anndata.
    let p = edited(d, "mudata_root.h5ad", |f| {
        set_attr(f, "encoding-type", "mudata")
    });
    let m = open_error(&p);
    assert!(m.contains("\"mudata\"") && m.contains("anndata"), "{m}");
    let p = edited(d, "future_x.h5ad", |f| {
        set_attr(&f.group("X").unwrap(), "encoding-version", "0.3.0")
    });
    let m = open_error(&p);
    assert!(
        m.contains("X") && m.contains("0.3.0") && m.contains("newer anndata"),
        "{m}"
    );
    let p = edited(d, "future_obs.h5ad", |f| {
        set_attr(&f.group("obs").unwrap(), "encoding-version", "0.9.0")
    });
    let m = open_error(&p);
    assert!(m.contains("obs") && m.contains("0.9.0"), "{m}");
    // Names that are not UTF-8 (Latin-1 bytes patched over a marker name in the file).
    let p = edited(d, "latin1_names.h5ad", |f| {
        let g = f.group("var").unwrap();
        let mut names = read_strings(&g.dataset("_index").unwrap()).unwrap();
        names[3] = "Gxqjxqjne".into();
        let v = to_varlen(&names).unwrap();
        replace(&g, "_index", |g, name| {
            g.new_dataset_builder().with_data(&v).create(name).unwrap();
        });
    });
    let mut bytes = std::fs::read(&p).unwrap();
    let at: Vec<usize> = (0..bytes.len() - 9)
        .filter(|&i| &bytes[i..i + 9] == b"Gxqjxqjne")
        .collect();
    assert_eq!(at.len(), 1, "the marker name is stored once");
    bytes[at[0] + 1] = 0xe8; // 'è' in Latin-1, not UTF-8
    std::fs::write(&p, bytes).unwrap();
    let m = open_error(&p);
    assert!(
        m.contains("var/_index") && m.contains("UTF-8") && m.contains("string 3"),
        "{m}"
    );
}

fn inspect(path: &Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_cellscope"))
        .arg("inspect")
        .arg(path)
        .output()
        .unwrap()
}

#[test]
fn inspect_checks_x_and_warns_of_repeated_gene_names() {
    // X with a NaN: inspect refuses it as analyze does.
    let o = inspect(&common::fixture("bad/nan_values.h5ad"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("nan_values.h5ad") && err.contains("NaN"),
        "{err}"
    );
    // Repeated var names are kept (as anndata keeps them), with a warning.
    let dir = tempfile::tempdir().unwrap();
    let p = edited(dir.path(), "dup_genes.h5ad", |f| {
        let g = f.group("var").unwrap();
        let mut names: Vec<String> =
            cellscope::data::h5util::read_strings(&g.dataset("_index").unwrap()).unwrap();
        names[5] = names[2].clone();
        names[9] = names[2].clone();
        let v = to_varlen(&names).unwrap();
        replace(&g, "_index", |g, name| {
            g.new_dataset_builder().with_data(&v).create(name).unwrap();
        });
    });
    let o = inspect(&p);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("X values: finite, raw counts"), "{out}");
    assert!(out.contains("warning: 2 var names repeat"), "{out}");
}

/// A copy of the Visium folder with its positions file replaced by `name` holding `text`.
fn visium_with_positions(dir: &Path, name: &str, text: &str) -> PathBuf {
    let src = common::shared_data().join("visium_scanpy_1.0.0");
    let out = dir.join(name.replace('.', "_"));
    std::fs::create_dir_all(out.join("spatial")).unwrap();
    std::fs::copy(
        src.join("filtered_feature_bc_matrix.h5"),
        out.join("filtered_feature_bc_matrix.h5"),
    )
    .unwrap();
    std::fs::copy(
        src.join("spatial/scalefactors_json.json"),
        out.join("spatial/scalefactors_json.json"),
    )
    .unwrap();
    std::fs::write(out.join("spatial").join(name), text).unwrap();
    out
}

#[test]
fn visium_positions_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let src = common::shared_data().join("visium_scanpy_1.0.0/spatial/tissue_positions_list.csv");
    let lines: Vec<String> = std::fs::read_to_string(src)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    // The same positions with Space Ranger 2.x's header read as the 1.x file.
    let header = "barcode,in_tissue,array_row,array_col,pxl_row_in_fullres,pxl_col_in_fullres";
    let v2 = format!("{header}\n{}\n", lines.join("\n"));
    let ok = visium_with_positions(dir.path(), "tissue_positions.csv", &v2);
    let want = cellscope::data::open(&common::shared_data().join("visium_scanpy_1.0.0")).unwrap();
    let got = cellscope::data::open(&ok).unwrap();
    assert_eq!(got.obsm["spatial"], want.obsm["spatial"]);
    // Columns swapped in the header: refused, never read by position into the wrong axes.
    let swapped = v2.replacen(
        "pxl_row_in_fullres,pxl_col_in_fullres",
        "pxl_col_in_fullres,pxl_row_in_fullres",
        1,
    );
    let p = visium_with_positions(dir.path(), "tissue_positions.csv", &swapped);
    let Err(e) = cellscope::data::open(&p) else {
        panic!("swapped header accepted")
    };
    let m = e.to_string();
    assert!(
        m.contains("tissue_positions.csv") && m.contains("header"),
        "{m}"
    );
    // A NaN pixel position.
    let mut bad = lines.clone();
    let fields: Vec<&str> = bad[4].split(',').collect();
    bad[4] = format!(
        "{},{},{},{},nan,{}",
        fields[0], fields[1], fields[2], fields[3], fields[5]
    );
    let p = visium_with_positions(dir.path(), "tissue_positions_list.csv", &bad.join("\n"));
    let Err(e) = cellscope::data::open(&p) else {
        panic!("NaN position accepted")
    };
    let m = e.to_string();
    assert!(
        m.contains("line 5, column 5") && m.contains("finite"),
        "{m}"
    );
}

#[test]
fn a_dataset_declaring_terabytes_is_refused_before_allocation() {
    let dir = tempfile::tempdir().unwrap();
    // X/data declared as 2^40 float32 values (4 TiB) in chunks never written: a file of
    // kilobytes.
    let p = edited(dir.path(), "huge.h5ad", |f| {
        let x = f.group("X").unwrap();
        x.unlink("data").unwrap();
        x.new_dataset::<f32>()
            .chunk(1 << 20)
            .shape(1usize << 40)
            .create("data")
            .unwrap();
    });
    assert!(std::fs::metadata(&p).unwrap().len() < 10 << 20);
    let m = open_error(&p);
    assert!(m.contains("X/data") && m.contains("declares"), "{m}");
}

#[test]
fn a_datatype_disagreeing_with_its_chunk_layout_is_refused_not_a_crash() {
    // Found by tests/it/fuzz.rs with random cases: one byte of the 10x file's
    // matrix/barcodes datatype (size 19 -> 14611) made HDF5 1.10 write past its buffer.
    let dir = tempfile::tempdir().unwrap();
    let src = common::shared_data().join("visium_scanpy_1.0.0/spatial/tissue_positions_list.csv");
    let text = std::fs::read_to_string(src).unwrap();
    let folder = visium_with_positions(dir.path(), "tissue_positions_list.csv", &text);
    let h5 = folder.join("filtered_feature_bc_matrix.h5");
    let mut bytes = std::fs::read(&h5).unwrap();
    assert_eq!(
        bytes[1893], 0,
        "the shared file changed; find the datatype size again"
    );
    bytes[1893] = 0o71;
    std::fs::write(&h5, bytes).unwrap();
    let o = inspect(&folder);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("filtered_feature_bc_matrix.h5: matrix/barcodes")
            && err.contains("chunk layout stores elements of 19 bytes"),
        "{err}"
    );
}
