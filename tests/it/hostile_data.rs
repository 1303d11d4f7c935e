//! Hostile AnnData files (issue #21): damaged compressed chunks are refused (never silent
//! garbage), and chunks that reach past the array's end (with or without shuffle) read as the
//! HDF5 library reads them.

use crate::common;

use std::path::{Path, PathBuf};

use cellscope::data::write::{Additions, write_h5ad};

/// her2st_A1 rewritten with `X/data` stored as chunks of 1,000 values (the last one partial),
/// deflate-compressed, shuffled first when `shuffle`. Returns the file and X's values.
fn compressed_copy(dir: &Path, shuffle: bool) -> (PathBuf, Vec<f32>) {
    let a = cellscope::data::open(&common::shared_data().join("her2st_A1.h5ad")).unwrap();
    let path = dir.join(format!("chunked_shuffle_{shuffle}.h5ad"));
    write_h5ad(&a, &Additions::default(), &path).unwrap();
    let f = hdf5::File::open_rw(&path).unwrap();
    let x = f.group("X").unwrap();
    let values: Vec<f32> = x.dataset("data").unwrap().read_raw().unwrap();
    assert!(values.len() % 1000 != 0, "the last chunk must be partial");
    x.unlink("data").unwrap();
    let b = x.new_dataset_builder().chunk(1000);
    let b = if shuffle { b.shuffle() } else { b };
    b.deflate(6).with_data(&values).create("data").unwrap();
    (path, values)
}

/// The file position and stored size of chunk `i` of `X/data`.
fn chunk(path: &Path, i: usize) -> (u64, u64) {
    let f = hdf5::File::open(path).unwrap();
    let info = f.dataset("X/data").unwrap().chunk_info(i).unwrap();
    (info.addr, info.size)
}

#[test]
fn compressed_chunks_read_exactly_or_fail_naming_the_dataset() {
    let dir = tempfile::tempdir().unwrap();
    for shuffle in [false, true] {
        let (path, values) = compressed_copy(dir.path(), shuffle);
        let got = cellscope::data::open(&path).unwrap().x.to_csr();
        assert_eq!(got.data, values, "shuffle {shuffle}: values as written");
        let bytes = std::fs::read(&path).unwrap();
        let n_chunks = values.len().div_ceil(1000);
        // A damaged byte in the middle and near the end (the checksum) of the first and the
        // last (partial) chunk.
        for i in [0, n_chunks - 1] {
            let (addr, size) = chunk(&path, i);
            for at in [addr + size / 2, addr + size - 2] {
                let mut bad = bytes.clone();
                bad[at as usize] ^= 0x5a;
                let p = dir.path().join(format!("damaged_{shuffle}_{i}_{at}.h5ad"));
                std::fs::write(&p, &bad).unwrap();
                let e = cellscope::data::open(&p)
                    .map(|a| a.x.to_csr())
                    .expect_err("a damaged chunk must be refused");
                let m = e.to_string();
                assert!(m.contains(p.file_name().unwrap().to_str().unwrap()), "{m}");
                assert!(m.contains("X/data"), "{m}");
            }
        }
    }
}
