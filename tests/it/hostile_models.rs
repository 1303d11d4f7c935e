//! Hostile model files (issue #21): PyTorch archives whose pickle declares sizes the file does
//! not hold (overflowing shapes and strides, a 64 TiB view over one element), and a valid
//! `torch.save` layout that trips zip readers (a zero-length extra field on the first entry).

use crate::common::fixture;

use std::io::Write;

use cellscope::model::torch_pickle::{TorchError, read_torch_file};

/// A pickle (protocol 2) of `{"w": _rebuild_tensor_v2(storage, offset, shape, stride, ...)}`
/// whose float storage is archive key "0" of `numel` elements, as `torch.save` writes it.
fn tensor_pickle(numel: u64, offset: u64, shape: &[u64], stride: &[u64]) -> Vec<u8> {
    fn text(p: &mut Vec<u8>, s: &str) {
        p.push(b'X');
        p.extend((s.len() as u32).to_le_bytes());
        p.extend(s.as_bytes());
    }
    fn int(p: &mut Vec<u8>, v: u64) {
        // LONG1: little-endian two's complement, 9 bytes so that any u64 stays positive.
        p.extend([0x8a, 9]);
        p.extend(v.to_le_bytes());
        p.push(0);
    }
    let mut p = vec![0x80, 2, b'}', b'('];
    text(&mut p, "w");
    p.extend(b"ctorch._utils\n_rebuild_tensor_v2\n(");
    p.push(b'(');
    text(&mut p, "storage");
    p.extend(b"ctorch\nFloatStorage\n");
    text(&mut p, "0");
    text(&mut p, "cpu");
    int(&mut p, numel);
    p.extend(b"tQ");
    int(&mut p, offset);
    for dims in [shape, stride] {
        p.push(b'(');
        for &d in dims {
            int(&mut p, d);
        }
        p.push(b't');
    }
    p.push(0x89);
    p.extend(b"ccollections\nOrderedDict\n)R");
    p.extend(b"tRu.");
    p
}

/// A `torch.save`-layout zip (`archive/data.pkl`, `archive/data/0`) with the given pickle and
/// storage bytes.
fn torch_zip(path: &std::path::Path, pickle: &[u8], storage: &[u8]) {
    let f = std::fs::File::create(path).unwrap();
    let mut z = zip::ZipWriter::new(f);
    let o =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    z.start_file("archive/data.pkl", o).unwrap();
    z.write_all(pickle).unwrap();
    z.start_file("archive/data/0", o).unwrap();
    z.write_all(storage).unwrap();
    z.finish().unwrap();
}

fn read_err(numel: u64, offset: u64, shape: &[u64], stride: &[u64], bytes: usize) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("hostile.pt");
    torch_zip(
        &p,
        &tensor_pickle(numel, offset, shape, stride),
        &vec![0u8; bytes],
    );
    let e = read_torch_file(&p, &|_| true).expect_err("hostile tensor read");
    assert!(matches!(e, TorchError::Archive { .. }), "{e}");
    let m = e.to_string();
    assert!(m.contains("hostile.pt"), "{m}");
    m
}

#[test]
fn a_well_formed_tensor_reads() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("ok.pt");
    let bytes: Vec<u8> = (0..6).flat_map(|i| (i as f32).to_le_bytes()).collect();
    // A transposed 3 x 2 view of a 2 x 3 storage.
    torch_zip(&p, &tensor_pickle(6, 0, &[3, 2], &[1, 3]), &bytes);
    let t = read_torch_file(&p, &|_| true).unwrap();
    let w = &t.tensors["w"];
    assert_eq!(w.shape, vec![3, 2]);
    assert_eq!(w.values, vec![0., 3., 1., 4., 2., 5.]);
}

#[test]
fn declared_sizes_are_checked_before_any_allocation() {
    // Element count times element size overflows usize.
    let m = read_err(u64::MAX / 2, 0, &[1], &[1], 16);
    assert!(m.contains("more than memory can address"), "{m}");
    // A shape whose product overflows.
    let m = read_err(4, 0, &[1 << 40, 1 << 40], &[0, 0], 16);
    assert!(m.contains("overflows"), "{m}");
    // Strides that overflow, and strides reaching outside the storage.
    let m = read_err(4, 0, &[2, 2], &[u64::MAX / 2, 1], 16);
    assert!(m.contains("reaches outside"), "{m}");
    let m = read_err(4, 1, &[2, 2], &[2, 1], 16);
    assert!(m.contains("reaches outside"), "{m}");
    // 2^44 elements (64 TiB as f32) over a one-element storage through zero strides.
    let m = read_err(1, 0, &[1 << 44], &[0], 4);
    assert!(m.contains("refused") && m.contains("17592186044416"), "{m}");
    // A storage shorter than declared.
    let m = read_err(1000, 0, &[10], &[1], 40);
    assert!(m.contains("holds 40 bytes, expected 4000"), "{m}");
}

/// Rewrites a `torch.save` archive (stored entries, data descriptors) under a new archive
/// prefix, padding each entry's data to 64 bytes with an `FB` extra field as PyTorch's writer
/// does (`caffe2/serialize/inline_container.cc`, `getPadding`): with a 21-character prefix the
/// first entry's padding is zero, an extra field of zero-length data.
fn reprefix(src: &[u8], prefix: &str) -> Vec<u8> {
    let u16_at = |b: &[u8], i: usize| u16::from_le_bytes([b[i], b[i + 1]]) as usize;
    let u32_at = |b: &[u8], i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap()) as usize;
    let eocd = (0..src.len() - 21)
        .rev()
        .find(|&i| src[i..i + 4] == [0x50, 0x4b, 5, 6])
        .unwrap();
    let n = u16_at(src, eocd + 10);
    let mut p = u32_at(src, eocd + 16);
    let (mut out, mut central) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let h = &src[p..p + 46];
        let (nl, el, cl) = (u16_at(h, 28), u16_at(h, 30), u16_at(h, 32));
        let name = std::str::from_utf8(&src[p + 46..p + 46 + nl]).unwrap();
        let new_name = format!("{prefix}/{}", name.split_once('/').unwrap().1);
        let lo = u32_at(h, 42);
        let (lnl, lel) = (u16_at(src, lo + 26), u16_at(src, lo + 28));
        let data = lo + 30 + lnl + lel;
        let size = u32_at(h, 20);
        let pad = (64 - (out.len() + 30 + new_name.len() + 4) % 64) % 64;
        let mut extra = b"FB".to_vec();
        extra.extend((pad as u16).to_le_bytes());
        extra.extend(std::iter::repeat_n(b'Z', pad));
        let offset = out.len() as u32;
        out.extend(&src[lo..lo + 26]);
        out.extend((new_name.len() as u16).to_le_bytes());
        out.extend((extra.len() as u16).to_le_bytes());
        out.extend(new_name.as_bytes());
        out.extend(&extra);
        out.extend(&src[data..data + size + 16]); // data and its descriptor
        central.extend(&h[..28]);
        central.extend((new_name.len() as u16).to_le_bytes());
        central.extend([0u8; 4]);
        central.extend(&h[34..42]);
        central.extend(offset.to_le_bytes());
        central.extend(new_name.as_bytes());
        p += 46 + nl + el + cl;
    }
    let cd = out.len() as u32;
    out.extend(&central);
    out.extend([0x50, 0x4b, 5, 6, 0, 0, 0, 0]);
    out.extend((n as u16).to_le_bytes());
    out.extend((n as u16).to_le_bytes());
    out.extend((central.len() as u32).to_le_bytes());
    out.extend(cd.to_le_bytes());
    out.extend([0, 0]);
    out
}

#[test]
fn torch_archives_read_whatever_their_stem_length() {
    let src_path = fixture("models/barlow_twins.pt");
    let want = read_torch_file(&src_path, &|_| true).unwrap();
    let src = std::fs::read(&src_path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Stems of 15 to 30 characters cover every padding, including 21 (zero padding).
    for len in 15..=30 {
        let stem: String = "barlow_twins_stem_of_many_chars"[..len].into();
        let p = dir.path().join(format!("{stem}.pt"));
        let bytes = reprefix(&src, &stem);
        if len == 21 {
            let first_extra = &bytes[30 + stem.len() + "/data.pkl".len()..][..4];
            assert_eq!(
                first_extra, b"FB\0\0",
                "the 21-character case has zero padding"
            );
        }
        std::fs::write(&p, bytes).unwrap();
        let got = read_torch_file(&p, &|_| true).unwrap_or_else(|e| panic!("{len}: {e}"));
        assert_eq!(got.tensors, want.tensors, "stem of {len} characters");
    }
}
