//! Property tests of every parser that reads a user's file (issue #21), with `proptest`: valid
//! seeds damaged at random (byte flips, insertions, deletions, truncation; edits biased towards
//! the headers where the structure lives), and AnnData files built at random through the HDF5
//! library (shapes, encodings, codes and values in and out of range). The property: a parser
//! returns a value that holds its invariants or an error naming the file; it never panics.
//!
//! Each property runs `CELLSCOPE_FUZZ_CASES` cases (default 256: about 2 s for the whole
//! module). A failing case is saved by proptest in `proptest-regressions/` beside this file;
//! committed, it is replayed first on every run.

use crate::common::{fixture, shared_data};

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, RngAlgorithm, TestRng, TestRunner};

fn config() -> Config {
    let cases = std::env::var("CELLSCOPE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    Config {
        cases,
        source_file: Some(file!()),
        failure_persistence: Some(Box::new(FileFailurePersistence::SourceParallel(
            "proptest-regressions",
        ))),
        ..Config::default()
    }
}

/// A runner over [`config`]'s cases: the same cases every run (CI must be reproducible), or new
/// random ones with `CELLSCOPE_FUZZ_RANDOM=1` (how the library's crash on a damaged chunk layout
/// was found).
fn runner() -> TestRunner {
    if std::env::var_os("CELLSCOPE_FUZZ_RANDOM").is_some() {
        TestRunner::new(config())
    } else {
        TestRunner::new_with_rng(config(), TestRng::deterministic_rng(RngAlgorithm::ChaCha))
    }
}

/// One edit of a byte string, positions as fractions of its length.
#[derive(Debug, Clone)]
enum Edit {
    Flip(f64, u8),
    Insert(f64, Vec<u8>),
    Delete(f64, usize),
    Truncate(f64),
}

fn edit() -> impl Strategy<Value = Edit> {
    // Half the edits land in the first 1/16 of the file (headers, pickles, JSON keys).
    let at = prop_oneof![0.0..1.0f64, 0.0..0.0625f64];
    prop_oneof![
        4 => (at.clone(), any::<u8>()).prop_map(|(a, b)| Edit::Flip(a, b)),
        2 => (at.clone(), prop::collection::vec(any::<u8>(), 1..16)).prop_map(|(a, v)| Edit::Insert(a, v)),
        2 => (at.clone(), 1..64usize).prop_map(|(a, n)| Edit::Delete(a, n)),
        1 => at.prop_map(Edit::Truncate),
    ]
}

fn apply(seed: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for e in edits {
        let pos = |f: f64, n: usize| ((f * n as f64) as usize).min(n);
        match e {
            Edit::Flip(f, x) if !b.is_empty() => {
                let i = pos(*f, b.len() - 1);
                b[i] ^= x | 1;
            }
            Edit::Insert(f, v) => {
                let i = pos(*f, b.len());
                b.splice(i..i, v.iter().copied());
            }
            Edit::Delete(f, n) => {
                let i = pos(*f, b.len());
                b.drain(i..(i + n).min(b.len()));
            }
            Edit::Truncate(f) => b.truncate(pos(*f, b.len())),
            Edit::Flip(..) => {}
        }
    }
    b
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    prop::collection::vec(edit(), 1..6)
}

/// Writes `bytes` to `dir/name` and returns the path.
fn put(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// An error's message must name the file it is about.
fn names(e: &dyn std::fmt::Display, p: &Path) -> Result<(), TestCaseError> {
    let m = e.to_string();
    let name = p.file_name().unwrap().to_str().unwrap();
    prop_assert!(m.contains(name), "{m} does not name {name}");
    Ok(())
}

#[test]
fn pytorch_files_and_their_pickles() {
    use cellscope::model::torch_pickle::read_torch_file;
    let dir = tempfile::tempdir().unwrap();
    let pt = std::fs::read(fixture("models/classifier.pt")).unwrap();
    // data.pkl alone, re-archived with the real storages.
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(&pt)).unwrap();
    let names_in: Vec<String> = z.file_names().map(|n| n.unwrap().to_string()).collect();
    let mut entries = Vec::new();
    for n in &names_in {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut z.by_name(n).unwrap(), &mut v).unwrap();
        entries.push((n.clone(), v));
    }
    let pkl = entries
        .iter()
        .position(|(n, _)| n.ends_with("data.pkl"))
        .unwrap();
    let mut runner = runner();
    runner
        .run(&(edits(), any::<bool>()), |(e, whole)| {
            let p = dir.path().join("model.pt");
            if whole {
                std::fs::write(&p, apply(&pt, &e)).unwrap();
            } else {
                let f = std::fs::File::create(&p).unwrap();
                let mut w = zip::ZipWriter::new(f);
                let o = zip::write::SimpleFileOptions::default()
                    .compression_method(zip::CompressionMethod::Stored);
                for (k, (n, v)) in entries.iter().enumerate() {
                    w.start_file(n.as_str(), o).unwrap();
                    let bytes = if k == pkl { apply(v, &e) } else { v.clone() };
                    std::io::Write::write_all(&mut w, &bytes).unwrap();
                }
                w.finish().unwrap();
            }
            match read_torch_file(&p, &|_| true) {
                Ok(t) => {
                    for (k, t) in &t.tensors {
                        let n: usize = t.shape.iter().product();
                        prop_assert_eq!(n, t.values.len(), "{}", k);
                    }
                }
                Err(err) => names(&err, &p)?,
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn safetensors_and_model_folders() {
    use cellscope::model::load_model;
    let dir = tempfile::tempdir().unwrap();
    let st = std::fs::read(fixture("models/classifier.safetensors")).unwrap();
    let genes = std::fs::read(fixture("models/genes.csv")).unwrap();
    let mut runner = runner();
    runner
        .run(&(edits(), 0..2usize), |(e, which)| {
            let (st, g) = if which == 0 {
                (apply(&st, &e), genes.clone())
            } else {
                (st.clone(), apply(&genes, &e))
            };
            let p = put(dir.path(), "classifier.safetensors", &st);
            put(dir.path(), "genes.csv", &g);
            let damaged = dir
                .path()
                .join(["classifier.safetensors", "genes.csv"][which]);
            match load_model(&p, None) {
                Ok(m) => prop_assert_eq!(m.genes.len(), m.weights.n_genes()),
                Err(err) => names(&err, &damaged)?,
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn text_inputs_gene_lists_gmt_label_maps_sessions() {
    use cellscope::analysis::transfer::LabelMap;
    use cellscope::data::gene_sets::read_gmt;
    use cellscope::data::genes::GeneList;
    use cellscope::export::session::Session;
    let dir = tempfile::tempdir().unwrap();
    let session = serde_json::json!({
        "format": "cellscope-session", "version": 1,
        "data": {"path": "/data/x.h5ad", "sha256": null}, "model": null, "reference": null,
        "params": {"n_neighbors": 15, "resolution": 1.0, "n_domains": 0, "seed": 0},
        "color_by": {"Leiden": null}, "hidden": ["3"], "truth_key": "label",
        "cameras": [{"center": [1.0, 2.0], "units_per_point": 0.5, "y_down": true}, null],
        "selection": [0, 4, 9], "annotations": [["tumour", [1, 2]]], "provenance": {}
    })
    .to_string();
    let seeds: [(&str, Vec<u8>); 4] = [
        (
            "genes.csv",
            std::fs::read(fixture("models/genes.csv")).unwrap(),
        ),
        (
            "sets.gmt",
            b"SET_A\tdesc\tGENE1\tGENE2\nSET_B\t\tGENE3\tGENE1\n".to_vec(),
        ),
        ("map.csv", b"T cell,T\nB cell,B\n\"NK, cell\",NK\n".to_vec()),
        ("session.json", session.into_bytes()),
    ];
    let mut runner = runner();
    runner
        .run(&(edits(), 0..seeds.len()), |(e, k)| {
            let (name, seed) = &seeds[k];
            let p = put(dir.path(), name, &apply(seed, &e));
            let err: Option<String> = match k {
                0 => GeneList::read_csv(&p).err().map(|e| e.to_string()),
                1 => read_gmt(&p).err().map(|e| e.to_string()),
                2 => LabelMap::read_csv(&p).err().map(|e| e.to_string()),
                _ => Session::load(&p).err().map(|e| e.to_string()),
            };
            if let Some(m) = err {
                names(&m, &p)?;
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn tenx_and_visium_files() {
    let dir = tempfile::tempdir().unwrap();
    let src = shared_data().join("visium_scanpy_1.0.0");
    let folder = dir.path().join("visium");
    std::fs::create_dir_all(folder.join("spatial")).unwrap();
    let files = [
        "filtered_feature_bc_matrix.h5",
        "spatial/tissue_positions_list.csv",
        "spatial/scalefactors_json.json",
    ];
    let seeds: Vec<Vec<u8>> = files
        .iter()
        .map(|f| std::fs::read(src.join(f)).unwrap())
        .collect();
    let mut runner = runner();
    runner
        .run(&(edits(), 0..files.len()), |(e, k)| {
            for (j, f) in files.iter().enumerate() {
                let b = if j == k {
                    apply(&seeds[j], &e)
                } else {
                    seeds[j].clone()
                };
                std::fs::write(folder.join(f), b).unwrap();
            }
            match cellscope::data::open(&folder) {
                Ok(a) => {
                    prop_assert_eq!(a.x.shape(), (a.n_obs(), a.n_vars()));
                    prop_assert!(a.obsm["spatial"].iter().all(|v| v.is_finite()));
                }
                Err(err) => names(&err, &folder.join(files[k]))?,
            }
            Ok(())
        })
        .unwrap();
}

/// An AnnData file drawn at random: an `n x m` matrix of counts written as dense, CSR or CSC
/// X (explicit zeros included), a categorical obs column, anndata's encoding attributes; and,
/// in half the cases, one defect.
#[derive(Debug, Clone)]
struct RandomH5ad {
    dense: Vec<Vec<f32>>,
    x: XKind,
    codes: Vec<i64>,
    n_categories: usize,
    defect: Option<Defect>,
}

#[derive(Debug, Clone, Copy)]
enum XKind {
    Dense,
    Csr,
    Csc,
}

/// One way to break the file; `usize`s pick a position (modulo the length).
#[derive(Debug, Clone, Copy)]
enum Defect {
    /// An indptr entry moved (non-monotonic or wrong end).
    Indptr(usize, i64),
    /// An index out of range or negative.
    Index(usize, i64),
    /// The shape attribute disagrees with obs/var.
    Shape(u64),
    /// A value that is not finite.
    Value(usize, f32),
    /// A categorical code beyond the categories (or wrapping at 32 bits).
    Code(usize, i64),
    /// An encoding attribute unknown or from the future: (element, type, version).
    Encoding(usize, usize),
}

const ELEMENTS: [&str; 4] = ["/", "X", "obs", "obs/label"];
const SPECS: [(&str, &str); 5] = [
    ("anndata", "0.3.0"),
    ("csr_matrix", "9.9.9"),
    ("mudata", "0.1.0"),
    ("dataframe", "0.9.0"),
    ("categorical", "1.0.0"),
];

fn random_h5ad() -> impl Strategy<Value = RandomH5ad> {
    let defect = prop_oneof![
        (any::<usize>(), -3..40i64).prop_map(|(i, v)| Defect::Indptr(i, v)),
        (any::<usize>(), prop_oneof![-3..-1i64, 5..1000i64]).prop_map(|(i, v)| Defect::Index(i, v)),
        (6..100u64).prop_map(Defect::Shape),
        (
            any::<usize>(),
            prop_oneof![Just(f32::NAN), Just(f32::INFINITY), Just(f32::NEG_INFINITY)]
        )
            .prop_map(|(i, v)| Defect::Value(i, v)),
        (
            any::<usize>(),
            prop_oneof![Just(-2i64), 3..50i64, Just(1i64 << 32), Just(i64::MIN)]
        )
            .prop_map(|(i, v)| Defect::Code(i, v)),
        (0..ELEMENTS.len(), 0..SPECS.len()).prop_map(|(e, t)| Defect::Encoding(e, t)),
    ];
    (1..6usize, 1..5usize)
        .prop_flat_map(move |(n, m)| {
            let cell = prop_oneof![3 => Just(0.0f32), 2 => (1..30u32).prop_map(|v| v as f32)];
            (
                prop::collection::vec(prop::collection::vec(cell, m), n),
                0..3usize,
                prop::collection::vec(-1..3i64, n),
                prop_oneof![Just(None), defect.clone().prop_map(Some)],
            )
        })
        .prop_map(|(dense, x, codes, defect)| RandomH5ad {
            dense,
            x: [XKind::Dense, XKind::Csr, XKind::Csc][x],
            codes,
            n_categories: 3,
            defect,
        })
}

fn attr(loc: &hdf5::Location, name: &str, value: &str) {
    cellscope::data::h5util::write_str_attr(loc, name, value).unwrap();
}

/// Compressed rows (or columns, for CSC) of `dense`, zeros kept out.
fn compressed(dense: &[Vec<f32>], by_rows: bool) -> (Vec<i64>, Vec<i64>, Vec<f32>) {
    let (n, m) = (dense.len(), dense[0].len());
    let (major, minor) = if by_rows { (n, m) } else { (m, n) };
    let (mut indptr, mut indices, mut data) = (vec![0i64], Vec::new(), Vec::new());
    let at = |i: usize, j: usize| if by_rows { dense[i][j] } else { dense[j][i] };
    for i in 0..major {
        for j in 0..minor {
            let v = at(i, j);
            if v != 0.0 {
                indices.push(j as i64);
                data.push(v);
            }
        }
        indptr.push(indices.len() as i64);
    }
    (indptr, indices, data)
}

fn write_random(p: &Path, r: &RandomH5ad) {
    let f = hdf5::File::create(p).unwrap();
    let spec = |element: &str| match r.defect {
        Some(Defect::Encoding(e, t)) if ELEMENTS[e] == element => Some(SPECS[t]),
        _ => None,
    };
    let set_spec = |loc: &hdf5::Location, element: &str, t: &str, v: &str| {
        let (t, v) = spec(element).unwrap_or((t, v));
        attr(loc, "encoding-type", t);
        attr(loc, "encoding-version", v);
    };
    set_spec(&f, "/", "anndata", "0.1.0");
    let (n, m) = (r.dense.len(), r.dense[0].len());
    let names = |prefix: &str, k: usize| {
        let v: Vec<String> = (0..k).map(|i| format!("{prefix}{i}")).collect();
        cellscope::data::h5util::to_varlen(&v).unwrap()
    };
    for (frame, k) in [("obs", n), ("var", m)] {
        let g = f.create_group(frame).unwrap();
        set_spec(&g, frame, "dataframe", "0.2.0");
        attr(&g, "_index", "_index");
        g.new_dataset_builder()
            .with_data(&names("c", k))
            .create("_index")
            .unwrap();
        if frame == "obs" {
            let c = g.create_group("label").unwrap();
            set_spec(&c, "obs/label", "categorical", "0.2.0");
            let mut codes = r.codes.clone();
            if let Some(Defect::Code(i, v)) = r.defect {
                codes[i % n] = v;
            }
            c.new_dataset_builder()
                .with_data(&codes)
                .create("codes")
                .unwrap();
            c.new_dataset_builder()
                .with_data(&names("type", r.n_categories))
                .create("categories")
                .unwrap();
        }
    }
    let mut dense = r.dense.clone();
    if let Some(Defect::Value(i, v)) = r.defect {
        // On a stored entry for sparse X (a zero is not stored).
        let cells: Vec<(usize, usize)> = (0..n)
            .flat_map(|a| (0..m).map(move |b| (a, b)))
            .filter(|&(a, b)| matches!(r.x, XKind::Dense) || dense[a][b] != 0.0)
            .collect();
        if let Some(&(a, b)) = cells.get(i % cells.len().max(1)) {
            dense[a][b] = v;
        }
    }
    match r.x {
        XKind::Dense => {
            let a = ndarray::Array2::from_shape_fn((n, m), |(i, j)| dense[i][j]);
            let ds = f.new_dataset_builder().with_data(&a).create("X").unwrap();
            set_spec(&ds, "X", "array", "0.2.0");
        }
        XKind::Csr | XKind::Csc => {
            let csr = matches!(r.x, XKind::Csr);
            let g = f.create_group("X").unwrap();
            set_spec(
                &g,
                "X",
                if csr { "csr_matrix" } else { "csc_matrix" },
                "0.1.0",
            );
            let (mut indptr, mut indices, data) = compressed(&dense, csr);
            match r.defect {
                Some(Defect::Indptr(i, v)) => {
                    let k = i % indptr.len();
                    indptr[k] = v;
                }
                Some(Defect::Index(i, v)) if !indices.is_empty() => {
                    let k = i % indices.len();
                    indices[k] = v;
                }
                _ => {}
            }
            let rows = match r.defect {
                Some(Defect::Shape(s)) => s as i64,
                _ => n as i64,
            };
            g.new_attr::<i64>()
                .shape([2])
                .create("shape")
                .unwrap()
                .write(&[rows, m as i64])
                .unwrap();
            g.new_dataset_builder()
                .with_data(&indptr)
                .create("indptr")
                .unwrap();
            g.new_dataset_builder()
                .with_data(&indices)
                .create("indices")
                .unwrap();
            g.new_dataset_builder()
                .with_data(&data)
                .create("data")
                .unwrap();
        }
    }
}

/// The matrix the file encodes when its defect still leaves a valid file (a damaged indptr
/// that stays monotonic and ends at the number of values encodes another matrix; a defect on a
/// matrix without stored values changes nothing), or `None` when it must be refused.
fn expected(r: &RandomH5ad) -> Option<Vec<Vec<f32>>> {
    let dense = match r.x {
        XKind::Dense => true,
        XKind::Csr | XKind::Csc => false,
    };
    match r.defect {
        None => Some(r.dense.clone()),
        Some(Defect::Indptr(i, v)) if !dense => {
            let csr = matches!(r.x, XKind::Csr);
            let (mut indptr, indices, data) = compressed(&r.dense, csr);
            let k = i % indptr.len();
            indptr[k] = v;
            let valid = indptr[0] == 0
                && indptr.windows(2).all(|w| w[0] <= w[1])
                && indptr[indptr.len() - 1] == indices.len() as i64;
            valid.then(|| {
                let (n, m) = (r.dense.len(), r.dense[0].len());
                let mut out = vec![vec![0.0; m]; n];
                for (major, w) in indptr.windows(2).enumerate() {
                    for at in w[0] as usize..w[1] as usize {
                        let minor = indices[at] as usize;
                        let (row, col) = if csr { (major, minor) } else { (minor, major) };
                        // Duplicate indices add up, as scipy's toarray() does.
                        out[row][col] += data[at];
                    }
                }
                out
            })
        }
        Some(Defect::Indptr(..) | Defect::Shape(_) | Defect::Index(..)) if dense => {
            Some(r.dense.clone())
        }
        Some(Defect::Index(..) | Defect::Value(..))
            if !dense && r.dense.iter().flatten().all(|&v| v == 0.0) =>
        {
            Some(r.dense.clone())
        }
        _ => None,
    }
}

#[test]
fn anndata_structure_and_values() {
    let dir = tempfile::tempdir().unwrap();
    let mut runner = runner();
    let (opened, refused) = (std::cell::Cell::new(0), std::cell::Cell::new(0));
    runner
        .run(&random_h5ad(), |r| {
            let p = dir.path().join("random.h5ad");
            write_random(&p, &r);
            match cellscope::data::open(&p) {
                Ok(a) => {
                    opened.set(opened.get() + 1);
                    let Some(want) = expected(&r) else {
                        return Err(TestCaseError::fail(format!(
                            "a defect read without error: {:?}",
                            r.defect
                        )));
                    };
                    let want =
                        ndarray::Array2::from_shape_fn((want.len(), want[0].len()), |(i, j)| {
                            want[i][j]
                        });
                    prop_assert_eq!(a.x.to_csr().to_dense(), want);
                    let Some(cellscope::data::Column::Categorical { codes, .. }) =
                        a.obs.column("label")
                    else {
                        return Err(TestCaseError::fail("obs['label'] is not categorical"));
                    };
                    let want: Vec<i32> = r.codes.iter().map(|&c| c as i32).collect();
                    prop_assert_eq!(codes, &want);
                }
                Err(err) => {
                    refused.set(refused.get() + 1);
                    prop_assert!(expected(&r).is_none(), "a valid file refused: {}", err);
                    names(&err, &p)?;
                }
            }
            Ok(())
        })
        .unwrap();
    println!(
        "random AnnData files: {} opened, {} refused",
        opened.get(),
        refused.get()
    );
    assert!(opened.get() > 0 && refused.get() > 0);
}
