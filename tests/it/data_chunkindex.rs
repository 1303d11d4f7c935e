//! The one-pass chunk-index reader (`data::chunkindex`) against the HDF5 library's own answer,
//! chunk by chunk, on every chunked 1-D array of the real files and on generated multi-level
//! indexes; and the parallel reader falls back to the library when the index is damaged.

use crate::common;

use std::path::Path;

use cellscope::data::chunkindex::{ChunkLoc, base_address, list_chunks};
use cellscope::data::fastread;
use cellscope::data::h5util::raw::object_header_addr;
use common::shared_data;

/// The library's listing, one query per chunk.
fn library_chunks(ds: &hdf5::Dataset) -> Vec<ChunkLoc> {
    let n = ds.num_chunks().expect("chunk count");
    let mut v: Vec<ChunkLoc> = (0..n)
        .map(|i| {
            let c = ds.chunk_info(i).expect("chunk info");
            ChunkLoc {
                start: c.offset[0],
                addr: c.addr,
                stored: c.size,
                mask: c.filter_mask,
            }
        })
        .collect();
    v.sort_by_key(|c| c.start);
    v
}

fn chunked_1d(g: &hdf5::Group, prefix: &str, out: &mut Vec<(String, hdf5::Dataset)>) {
    for name in g.member_names().expect("members") {
        let path = format!("{prefix}/{name}");
        if let Ok(ds) = g.dataset(&name) {
            if ds.is_chunked() && ds.ndim() == 1 {
                out.push((path, ds));
            }
        } else if let Ok(sub) = g.group(&name) {
            chunked_1d(&sub, &path, out);
        }
    }
}

#[test]
fn index_matches_the_library_on_real_files() {
    let mut parsed = 0;
    let mut chunks = 0;
    for entry in std::fs::read_dir(shared_data()).expect("shared data") {
        let p = entry.expect("entry").path();
        if p.extension().is_none_or(|e| e != "h5ad") {
            continue;
        }
        let file = hdf5::File::open(&p).expect("open");
        let raw = std::fs::File::open(&p).expect("open raw");
        let mut sets = Vec::new();
        chunked_1d(&file, "", &mut sets);
        for (path, ds) in sets {
            if ds.num_chunks().unwrap_or(0) > 4096 {
                continue;
            }
            let want = library_chunks(&ds);
            let addr = object_header_addr(&ds).expect("header address");
            if let Some(got) = base_address(&raw).and_then(|b| list_chunks(&raw, b, addr)) {
                assert_eq!(got, want, "{}:{path}", p.display());
                parsed += 1;
                chunks += got.len();
            }
        }
    }
    // The real files are h5py-written with default settings: the reader must understand them.
    assert!(
        parsed >= 20,
        "only {parsed} arrays were read from their index"
    );
    eprintln!("{parsed} arrays, {chunks} chunks checked");
}

/// Writes a 1-D float array of `n` elements in chunks of `chunk`, optionally gzip-compressed,
/// in the default (earliest) file format or, with `v18`, the HDF5 1.8 format (version-2 object
/// headers).
fn write_array(path: &Path, n: usize, chunk: usize, gzip: bool, v18: bool) -> Vec<f32> {
    let values: Vec<f32> = (0..n).map(|i| (i as f32).sin() * 100.0).collect();
    let f = if v18 {
        hdf5::File::with_options()
            .with_fapl(|p| {
                p.libver_bounds(
                    hdf5::file::LibraryVersion::V18,
                    hdf5::file::LibraryVersion::V18,
                )
            })
            .create(path)
    } else {
        hdf5::File::create(path)
    }
    .expect("create");
    let b = f.new_dataset::<f32>().chunk(chunk).shape(n);
    let b = if gzip { b.deflate(4) } else { b };
    b.create("x")
        .expect("dataset")
        .write(&values)
        .expect("write");
    values
}

#[test]
fn multi_level_indexes_and_partial_last_chunks() {
    let dir = tempfile::tempdir().expect("tmp");
    // 5,000 chunks: a B-tree of three levels; a partial last chunk; compressed and plain.
    for (n, chunk, gzip, v18) in [
        (500_003, 100, false, false),
        (300_007, 64, true, false),
        (10, 4, false, false),
        (200_001, 50, false, true),
    ] {
        let path = dir.path().join(format!("a_{n}_{gzip}.h5"));
        let values = write_array(&path, n, chunk, gzip, v18);
        assert_eq!(
            std::fs::read(&path)
                .expect("bytes")
                .windows(4)
                .any(|w| w == b"OHDR"),
            v18
        );
        let file = hdf5::File::open(&path).expect("open");
        let ds = file.dataset("x").expect("x");
        let raw = std::fs::File::open(&path).expect("raw");
        let base = base_address(&raw).expect("8-byte addresses");
        let got = list_chunks(&raw, base, object_header_addr(&ds).expect("addr")).expect("parsed");
        assert_eq!(got, library_chunks(&ds), "n={n} gzip={gzip}");
        let read = fastread::read_all::<f32>(&path, &ds)
            .expect("fast path taken")
            .expect("read");
        assert!(read == values, "n={n} gzip={gzip}: values differ");
    }
}

#[test]
fn user_blocks_shift_every_address() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("a.h5");
    // A 512-byte user block moves the superblock: every address inside the file is relative to
    // it, for the index reader, the per-chunk fallback and contiguous storage alike.
    let values: Vec<f32> = (0..50_000).map(|i| i as f32 * 0.5).collect();
    {
        let f = hdf5::File::with_options()
            .with_fcpl(|p| p.userblock(512))
            .create(&path)
            .expect("create");
        for (name, chunk) in [("chunked", Some(1000)), ("contiguous", None)] {
            let b = f.new_dataset::<f32>().shape(values.len());
            let b = match chunk {
                Some(c) => b.chunk(c),
                None => b,
            };
            b.create(name)
                .expect("dataset")
                .write(&values)
                .expect("write");
        }
    }
    let file = hdf5::File::open(&path).expect("open");
    let raw = std::fs::File::open(&path).expect("raw");
    let ds = file.dataset("chunked").expect("chunked");
    let base = base_address(&raw).expect("8-byte addresses");
    let listed = list_chunks(&raw, base, object_header_addr(&ds).expect("addr")).expect("parsed");
    let lib = library_chunks(&ds);
    assert_eq!(listed.len(), lib.len());
    for (a, b) in listed.iter().zip(&lib) {
        assert_eq!(a.addr, b.addr + 512, "chunk at {}", a.start);
    }
    for name in ["chunked", "contiguous"] {
        let ds = file.dataset(name).expect("dataset");
        let v = fastread::read_all::<f32>(&path, &ds)
            .expect("fast path taken")
            .expect("read");
        assert!(v == values, "{name}: values differ");
    }
}
