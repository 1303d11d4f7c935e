//! Parallel whole-dataset reads of numeric HDF5 datasets.
//!
//! The HDF5 C library reads (and gzip-inflates) under one global lock, one chunk at a time. For
//! the layouts AnnData files use for big arrays (1-D `data`/`indices` of sparse matrices, dense
//! `X`), the byte locations are known (`H5Dget_offset` for contiguous storage; for chunked
//! storage the chunk index read in one pass by [`super::chunkindex`], else the library's answer
//! chunk by chunk), so the bytes are read with `pread` and inflated and decoded on all cores,
//! straight into the output vector. Anything else (other filters, big-endian data,
//! multi-dimensional chunking) returns `None` and the caller falls back to the library.

use std::os::unix::fs::FileExt;
use std::path::Path;

use hdf5::Dataset;
use hdf5::datatype::ByteOrder;
use hdf5::filters::Filter;
use hdf5::types::{FloatSize, IntSize, TypeDescriptor};
use rayon::prelude::*;

use super::chunkindex::{self, ChunkLoc};
use super::h5util::raw::{chunk_by_coord, object_header_addr};

/// On-disk element type (little-endian).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// float32.
    F32,
    /// float64.
    F64,
    /// Signed integer of this many bytes.
    Int(usize),
    /// Unsigned integer of this many bytes.
    Uint(usize),
}

impl Kind {
    fn of(t: &TypeDescriptor) -> Option<Self> {
        let w = |s: &IntSize| *s as usize;
        Some(match t {
            TypeDescriptor::Float(FloatSize::U4) => Self::F32,
            TypeDescriptor::Float(FloatSize::U8) => Self::F64,
            TypeDescriptor::Integer(s) => Self::Int(w(s)),
            TypeDescriptor::Unsigned(s) => Self::Uint(w(s)),
            _ => return None,
        })
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::F64 => 8,
            Self::Int(n) | Self::Uint(n) => n,
        }
    }

    fn int(self, b: &[u8]) -> i128 {
        let mut a = [0u8; 16];
        let n = self.size();
        a[..n].copy_from_slice(&b[..n]);
        if matches!(self, Self::Int(_)) && b[n - 1] & 0x80 != 0 {
            for x in &mut a[n..] {
                *x = 0xff;
            }
        }
        i128::from_le_bytes(a)
    }

    fn float(self, b: &[u8]) -> f64 {
        let b4 = || [b[0], b[1], b[2], b[3]];
        let b8 = || [b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]];
        // The common integer widths directly: through i128 they cost a library call each.
        match self {
            Self::F32 => f64::from(f32::from_le_bytes(b4())),
            Self::F64 => f64::from_le_bytes(b8()),
            Self::Int(4) => f64::from(i32::from_le_bytes(b4())),
            Self::Uint(4) => f64::from(u32::from_le_bytes(b4())),
            Self::Int(8) => i64::from_le_bytes(b8()) as f64,
            Self::Uint(8) => u64::from_le_bytes(b8()) as f64,
            _ => self.int(b) as f64,
        }
    }
}

/// Output element types, decoded from any on-disk [`Kind`].
pub trait Elem: bytemuck::Pod + Default + Send + Sync {
    /// Decodes one element; `None` when the value does not fit (e.g. a negative index).
    fn decode(kind: Kind, b: &[u8]) -> Option<Self>;

    /// True when elements of `kind` have this type's little-endian bytes, so they can be read
    /// straight into the output (then checked with [`Elem::valid_as`]).
    fn same_bytes(kind: Kind) -> bool;

    /// After a straight read from `kind`: whether the value is valid (a signed value read as
    /// unsigned must not be negative).
    fn valid_as(self, kind: Kind) -> bool;
}

impl Elem for f32 {
    fn same_bytes(kind: Kind) -> bool {
        kind == Kind::F32
    }

    fn valid_as(self, _: Kind) -> bool {
        true
    }

    fn decode(kind: Kind, b: &[u8]) -> Option<Self> {
        Some(match kind {
            Kind::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            _ => kind.float(b) as f32,
        })
    }
}

/// Unsigned index types: a signed on-disk value must be non-negative; floats are refused.
macro_rules! unsigned_elem {
    ($t:ty, $signed:ty, $bytes:literal) => {
        impl Elem for $t {
            fn same_bytes(kind: Kind) -> bool {
                matches!(kind, Kind::Int($bytes) | Kind::Uint($bytes))
            }

            fn valid_as(self, kind: Kind) -> bool {
                kind != Kind::Int($bytes) || self <= <$signed>::MAX as $t
            }

            fn decode(kind: Kind, b: &[u8]) -> Option<Self> {
                match kind {
                    Kind::F32 | Kind::F64 => None,
                    _ => <$t>::try_from(kind.int(b)).ok(),
                }
            }
        }
    };
}

unsigned_elem!(u32, i32, 4);
unsigned_elem!(u64, i64, 8);

/// Why a fast read failed after it had started (the data itself is bad).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FastReadError {
    /// A value does not fit the output type (e.g. a negative or too large index).
    OutOfRange {
        /// Element position.
        at: usize,
    },
    /// A chunk could not be read or inflated.
    Corrupt(String),
}

impl FastReadError {
    /// The data-layer error for dataset `path` of `file`.
    pub fn at(self, file: &Path, path: &str) -> super::error::DataError {
        let m = match self {
            Self::OutOfRange { at } => {
                format!("value at position {at} is negative or out of range for its kind")
            }
            Self::Corrupt(m) => m,
        };
        super::error::DataError::invalid(file, path, m)
    }
}

/// Elements decoded per task for contiguous storage.
const BLOCK: usize = 1 << 20;

struct Piece {
    start: usize,
    len: usize,
    /// Elements the stored chunk holds (`len`, or the chunk length for a last chunk that
    /// reaches past the array's end: HDF5 stores, shuffles and compresses whole chunks).
    full: usize,
    addr: u64,
    stored: u64,
    compressed: bool,
    shuffled: bool,
}

/// Most unfiltered chunks listed one by one (see [`read_all`]).
const MAX_PLAIN_CHUNKS: usize = 2048;

/// Merges unfiltered chunks that follow each other both in the array and in the file (anndata
/// writes sparse arrays as many small chunks, usually laid out in order), so reads are large.
fn coalesce(pieces: Vec<Piece>, es: usize) -> Vec<Piece> {
    let mut out: Vec<Piece> = Vec::with_capacity(pieces.len());
    for p in pieces {
        if let Some(last) = out.last_mut()
            && last.start + last.len == p.start
            && last.stored == (last.len * es) as u64
            && last.addr + last.stored == p.addr
            && last.len < BLOCK
        {
            last.len += p.len;
            last.stored = (last.len * es) as u64;
            continue;
        }
        out.push(p);
    }
    out
}

/// Reads a whole numeric dataset (any rank, row-major) in parallel, when its layout allows.
/// Returns `None` when the library must do it (unsupported filters or layout, big-endian data,
/// multi-dimensional chunks), `Some(Err)` when the data is bad.
pub fn read_all<T: Elem>(file: &Path, ds: &Dataset) -> Option<Result<Vec<T>, FastReadError>> {
    let dtype = ds.dtype().ok()?;
    if dtype.byte_order() == ByteOrder::BigEndian {
        return None;
    }
    let kind = Kind::of(&dtype.to_descriptor().ok()?)?;
    let n = ds.size();
    let es = kind.size();
    let f = std::fs::File::open(file).ok()?;
    let pieces = if let Some(addr) = ds.offset() {
        contiguous_pieces(addr, n, es)
    } else if ds.is_chunked() {
        chunked_pieces(&f, ds, n, es)?
    } else {
        return None;
    };
    let mut out = zeroed_huge::<T>(n);
    // Disjoint output slices, one per piece (unwritten chunks stay at the fill value 0).
    let mut slices: Vec<(&Piece, &mut [T])> = Vec::with_capacity(pieces.len());
    let mut rest: &mut [T] = &mut out;
    let mut at = 0;
    for p in &pieces {
        let (_, tail) = std::mem::take(&mut rest).split_at_mut(p.start - at);
        let (mine, tail) = tail.split_at_mut(p.len);
        slices.push((p, mine));
        rest = tail;
        at = p.start + p.len;
    }
    let result: Result<(), FastReadError> = slices
        .into_par_iter()
        .try_for_each(|(p, dst)| read_piece(&f, p, dst, kind));
    Some(result.map(|()| out))
}

/// A contiguous, unfiltered dataset of `n` elements of `es` bytes at `addr`, in blocks.
fn contiguous_pieces(addr: u64, n: usize, es: usize) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut start = 0;
    while start < n {
        let len = BLOCK.min(n - start);
        pieces.push(Piece {
            start,
            len,
            full: len,
            addr: addr + (start * es) as u64,
            stored: (len * es) as u64,
            compressed: false,
            shuffled: false,
        });
        start += len;
    }
    pieces
}

/// The chunks of a 1-D chunked dataset (deflate, optionally after shuffle), sorted and checked
/// not to overlap; `None` when the library must read it (other filters or layouts, chunks with
/// a filter mask, many unfiltered chunks without an index read).
fn chunked_pieces(f: &std::fs::File, ds: &Dataset, n: usize, es: usize) -> Option<Vec<Piece>> {
    let (shape, chunk) = (ds.shape(), ds.chunk()?);
    if shape.len() != 1 || chunk.len() != 1 {
        return None;
    }
    let (mut compressed, mut shuffled) = (false, false);
    for (k, f) in ds.filters().iter().enumerate() {
        match f {
            Filter::Deflate(_) if !compressed => compressed = true,
            // Shuffle must come before deflate in the pipeline.
            Filter::Shuffle if k == 0 => shuffled = true,
            _ => return None,
        }
    }
    let clen = chunk[0];
    if clen == 0 {
        return None;
    }
    let piece = |start: u64, addr: u64, stored: u64| {
        let start = usize::try_from(start).ok()?;
        (start < n).then(|| Piece {
            start,
            len: clen.min(n - start),
            full: clen,
            addr,
            stored,
            compressed,
            shuffled,
        })
    };
    let mut pieces = Vec::new();
    // Chunk addresses from the library are relative to the superblock (a user block shifts
    // them); the index reader's are file offsets.
    let base = chunkindex::base_address(f)?;
    if let Some(chunks) = list_chunk_index(f, base, ds, clen) {
        for c in chunks {
            if c.mask != 0 {
                return None;
            }
            pieces.push(piece(c.start, c.addr, c.stored)?);
        }
    } else {
        // Every chunk looked up by coordinate. HDF5 1.10 walks its index from the start for
        // each query (measured: 0.4 s for the 8,192 chunks of an 800 MB array), so
        // unfiltered arrays of many chunks go to the library, whose read is then faster.
        if !compressed && ds.num_chunks()? > MAX_PLAIN_CHUNKS {
            return None;
        }
        let mut start = 0;
        while start < n {
            if let Some((mask, addr, stored)) = chunk_by_coord(ds, start as u64) {
                if mask != 0 {
                    return None;
                }
                pieces.push(piece(start as u64, base.checked_add(addr)?, stored)?);
            }
            start += clen;
        }
    }
    pieces.sort_by_key(|p| p.start);
    if pieces
        .windows(2)
        .any(|w| w[0].start + w[0].len > w[1].start)
    {
        return None;
    }
    Some(if compressed {
        pieces
    } else {
        coalesce(pieces, es)
    })
}

/// Reads one piece into `dst`: straight from the file (or inflated straight into it) when the
/// stored bytes are the output's, else through a buffer (unshuffled, decoded); validated.
fn read_piece<T: Elem>(
    f: &std::fs::File,
    p: &Piece,
    dst: &mut [T],
    kind: Kind,
) -> Result<(), FastReadError> {
    let es = kind.size();
    if !p.compressed && !p.shuffled && T::same_bytes(kind) {
        // Straight into the output: no staging buffer, no second copy.
        f.read_exact_at(bytemuck::cast_slice_mut(dst), p.addr)
            .map_err(|e| FastReadError::Corrupt(format!("bytes at {}: {e}", p.addr)))?;
        return check_valid(dst, kind, p.start);
    }
    let mut raw = vec![
        0u8;
        usize::try_from(p.stored)
            .map_err(|_| FastReadError::Corrupt("chunk too large".into()))?
    ];
    f.read_exact_at(&mut raw, p.addr)
        .map_err(|e| FastReadError::Corrupt(format!("chunk at byte {}: {e}", p.addr)))?;
    if p.compressed && !p.shuffled && p.full == p.len && T::same_bytes(kind) {
        // Inflated straight into the output.
        inflate_into(&raw, bytemuck::cast_slice_mut(dst), p.addr)?;
        return check_valid(dst, kind, p.start);
    }
    let mut bytes = if p.compressed {
        let mut d = vec![0u8; p.full * es];
        inflate_into(&raw, &mut d, p.addr)?;
        d
    } else {
        raw
    };
    if p.shuffled {
        let m = bytes.len() / es;
        let mut u = vec![0u8; bytes.len()];
        for (k, b) in bytes[..m * es].iter().enumerate() {
            u[(k % m) * es + k / m] = *b;
        }
        bytes = u;
    }
    for (k, (d, b)) in dst.iter_mut().zip(bytes.chunks_exact(es)).enumerate() {
        *d = T::decode(kind, b).ok_or(FastReadError::OutOfRange { at: p.start + k })?;
    }
    Ok(())
}

/// All chunks of a 1-D chunked dataset from its index in one pass ([`chunkindex`]), checked
/// against the library's answer for the first and the last chunk and against its chunk count.
fn list_chunk_index(
    f: &std::fs::File,
    base: u64,
    ds: &Dataset,
    clen: usize,
) -> Option<Vec<ChunkLoc>> {
    let chunks = chunkindex::list_chunks(f, base, object_header_addr(ds)?)?;
    if chunks.len() != ds.num_chunks()? || chunks.is_empty() {
        return None;
    }
    let aligned = chunks.iter().all(|c| c.start % clen as u64 == 0)
        && chunks.windows(2).all(|w| w[0].start < w[1].start);
    for c in [chunks.first()?, chunks.last()?] {
        let (mask, addr, stored) = chunk_by_coord(ds, c.start)?;
        if (mask, base.checked_add(addr)?, stored) != (c.mask, c.addr, c.stored) {
            return None;
        }
    }
    aligned.then_some(chunks)
}

/// Checks values read straight from `kind` (see [`Elem::valid_as`]).
fn check_valid<T: Elem>(dst: &[T], kind: Kind, start: usize) -> Result<(), FastReadError> {
    match super::matrix::position_bad(dst, |v| !v.valid_as(kind)) {
        Some(k) => Err(FastReadError::OutOfRange { at: start + k }),
        None => Ok(()),
    }
}

/// Inflates one zlib chunk into `out`, which it must fill exactly: the stream must end (its
/// Adler-32 checksum verified, as HDF5's deflate filter does) with exactly `out.len()` bytes.
/// A damaged chunk is an error, never garbage in X.
fn inflate_into(raw: &[u8], out: &mut [u8], addr: u64) -> Result<(), FastReadError> {
    let mut z = flate2::Decompress::new(true);
    let status = z
        .decompress(raw, out, flate2::FlushDecompress::Finish)
        .map_err(|e| FastReadError::Corrupt(format!("chunk at byte {addr}: inflate: {e}")))?;
    let filled = usize::try_from(z.total_out()).unwrap_or(usize::MAX);
    let problem = match (status, filled == out.len()) {
        (flate2::Status::StreamEnd, true) => return Ok(()),
        (flate2::Status::StreamEnd, false) => format!("inflates to {filled} bytes"),
        (_, true) => "inflates to more bytes".into(),
        _ => format!("is damaged or truncated after {filled} inflated bytes"),
    };
    Err(FastReadError::Corrupt(format!(
        "chunk at byte {addr} {problem}, expected exactly {} (its checksum unverified)",
        out.len()
    )))
}

/// Reads a whole dataset through the HDF5 library (any layout, serial) into a vector from
/// [`zeroed_huge`], converting to `T` as the library does.
///
/// # Errors
/// The library's error (unreadable data, no conversion to `T`).
pub fn read_library<T: hdf5::H5Type + bytemuck::Pod>(ds: &Dataset) -> hdf5::Result<Vec<T>> {
    let mut v = zeroed_huge::<T>(ds.size());
    ds.as_reader().read_into_raw(&mut v)?;
    Ok(v)
}

/// A zero-filled vector whose pages the kernel may back with transparent huge pages
/// (`madvise(MADV_HUGEPAGE)`): a 40 MB array then takes 20 page faults instead of 10,000, which
/// were a third of the load time of a small file. Untouched until the caller writes it.
#[allow(unsafe_code)]
pub fn zeroed_huge<T: bytemuck::Pod>(n: usize) -> Vec<T> {
    const HUGE: usize = 2 << 20;
    let v: Vec<T> = bytemuck::zeroed_vec(n);
    let bytes = n * std::mem::size_of::<T>();
    if bytes >= 2 * HUGE {
        let start = (v.as_ptr() as usize).next_multiple_of(HUGE);
        let end = (v.as_ptr() as usize + bytes) / HUGE * HUGE;
        if end > start {
            // SAFETY: [start, end) lies inside the vector's allocation; MADV_HUGEPAGE is
            // advice only and changes no contents (failure, e.g. THP disabled, is ignored).
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
            }
        }
    }
    v
}
