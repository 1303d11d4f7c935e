//! Small helpers over `hdf5-metno`: strings of every HDF5 flavour, attributes, raw reads of
//! compound datasets (the legacy AnnData layout stores `obs`/`var`/`obsm` as compound datasets).

use hdf5::dataset::Layout;
use hdf5::types::{TypeDescriptor, VarLenAscii, VarLenUnicode};
use hdf5::{Container, Dataset, Group, Location, LocationType};

/// Opens an HDF5 file read-only without HDF5's file locking. Inputs are never written, and the
/// lock (an `flock` on a descriptor the C library opens without close-on-exec) is inherited by
/// any child process started meanwhile, which then makes reopening the file fail with EAGAIN.
///
/// # Errors
/// HDF5's error when the file cannot be opened.
pub fn open_read(path: &std::path::Path) -> hdf5::Result<hdf5::File> {
    hdf5::File::with_options()
        .with_fapl(|p| p.file_locking(false))
        .open(path)
}

/// Creates (truncates) an HDF5 file for writing, without file locking (see [`open_read`]); used
/// only for cellscope's own temporary output files.
///
/// # Errors
/// HDF5's error when the file cannot be created.
pub fn create_unlocked(path: &std::path::Path) -> hdf5::Result<hdf5::File> {
    hdf5::File::with_options()
        .with_fapl(|p| p.file_locking(false))
        .create(path)
}

/// Kind of a member of a group.
pub fn member_kind(group: &Group, name: &str) -> Option<LocationType> {
    if !group.link_exists(name) {
        return None;
    }
    group.loc_type_by_name(name).ok()
}

/// Reads an attribute as one string; `None` when absent or not a string.
pub fn attr_string(loc: &Location, name: &str) -> Option<String> {
    let attr = loc.attr(name).ok()?;
    let mut v = container_strings(&attr).ok()?;
    if v.len() == 1 { v.pop() } else { None }
}

/// Reads an attribute as a list of strings. An empty numeric array (how anndata writes an empty
/// `column-order`) gives an empty list. `None` when absent.
pub fn attr_strings(loc: &Location, name: &str) -> Option<Vec<String>> {
    let attr = loc.attr(name).ok()?;
    if attr.size() == 0 {
        return Some(Vec::new());
    }
    container_strings(&attr).ok()
}

/// Reads an integer attribute (scalar or array) as `i64`s; `None` when absent or not integer.
pub fn attr_i64s(loc: &Location, name: &str) -> Option<Vec<i64>> {
    let attr = loc.attr(name).ok()?;
    match attr.dtype().ok()?.to_descriptor().ok()? {
        TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_) => attr.read_raw::<i64>().ok(),
        _ => None,
    }
}

/// Reads a boolean attribute (numpy bool is an HDF5 enum over int8); `None` when absent.
pub fn attr_bool(loc: &Location, name: &str) -> Option<bool> {
    let attr = loc.attr(name).ok()?;
    match attr.dtype().ok()?.to_descriptor().ok()? {
        TypeDescriptor::Boolean => attr.read_scalar::<bool>().ok(),
        TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_) | TypeDescriptor::Enum(_) => {
            attr.read_scalar::<i64>().ok().map(|v| v != 0)
        }
        _ => None,
    }
}

/// True when the descriptor is a string type of any flavour.
pub fn is_string_type(t: &TypeDescriptor) -> bool {
    matches!(
        t,
        TypeDescriptor::VarLenAscii
            | TypeDescriptor::VarLenUnicode
            | TypeDescriptor::FixedAscii(_)
            | TypeDescriptor::FixedUnicode(_)
    )
}

/// Reads every element of a dataset or attribute of any string type as `String`s (row-major).
///
/// # Errors
/// When the element is not a string type, a string is not valid UTF-8 (h5py and anndata refuse
/// to decode it too; it is never replaced by look-alike characters), or the read fails.
pub fn container_strings(c: &Container) -> hdf5::Result<Vec<String>> {
    match c.dtype()?.to_descriptor()? {
        TypeDescriptor::VarLenUnicode => c
            .read_raw::<VarLenUnicode>()?
            .iter()
            .enumerate()
            .map(|(i, s)| utf8(s.as_bytes(), i))
            .collect(),
        TypeDescriptor::VarLenAscii => c
            .read_raw::<VarLenAscii>()?
            .iter()
            .enumerate()
            .map(|(i, s)| utf8(s.as_bytes(), i))
            .collect(),
        TypeDescriptor::FixedAscii(n) | TypeDescriptor::FixedUnicode(n) => {
            let (_, bytes) = raw::read_native_bytes(c)?;
            split_fixed_strings(&bytes, n)
        }
        other => Err(hdf5::Error::from(format!(
            "expected a string type, found {other:?}"
        ))),
    }
}

/// Decodes string number `i` of an element, refusing bytes that are not UTF-8.
fn utf8(b: &[u8], i: usize) -> hdf5::Result<String> {
    String::from_utf8(b.to_vec()).map_err(|e| {
        hdf5::Error::from(format!(
            "string {i} is not valid UTF-8 (byte {} of {:?})",
            e.utf8_error().valid_up_to(),
            String::from_utf8_lossy(b)
        ))
    })
}

/// Splits a buffer of fixed-width, NUL-padded strings.
///
/// # Errors
/// A string that is not valid UTF-8 (see [`container_strings`]).
pub fn split_fixed_strings(bytes: &[u8], width: usize) -> hdf5::Result<Vec<String>> {
    if width == 0 {
        return Ok(Vec::new());
    }
    bytes
        .chunks(width)
        .enumerate()
        .map(|(i, b)| fixed_string(b, i))
        .collect()
}

/// String number `i`, fixed-width and NUL-padded.
fn fixed_string(b: &[u8], i: usize) -> hdf5::Result<String> {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    utf8(&b[..end], i)
}

/// Reads a string dataset.
///
/// # Errors
/// When the dataset is not a string type or the read fails.
pub fn read_strings(ds: &Dataset) -> hdf5::Result<Vec<String>> {
    container_strings(ds)
}

/// Writes a scalar UTF-8 string attribute (replacing one of the same name).
///
/// # Errors
/// HDF5 errors.
pub fn write_str_attr(loc: &Location, name: &str, value: &str) -> hdf5::Result<()> {
    if loc.attr(name).is_ok() {
        loc.delete_attr(name)?;
    }
    let v: VarLenUnicode = value
        .parse()
        .map_err(|e| hdf5::Error::from(format!("string attribute {name}: {e:?}")))?;
    loc.new_attr::<VarLenUnicode>()
        .shape(())
        .create(name)?
        .write_scalar(&v)
}

/// Writes a 1-D UTF-8 string array attribute (replacing one of the same name).
///
/// # Errors
/// HDF5 errors.
pub fn write_str_array_attr(loc: &Location, name: &str, values: &[String]) -> hdf5::Result<()> {
    if loc.attr(name).is_ok() {
        loc.delete_attr(name)?;
    }
    let v = to_varlen(values)?;
    loc.new_attr::<VarLenUnicode>()
        .shape(v.len())
        .create(name)?
        .write_raw(&v)
}

/// Converts strings to HDF5 variable-length UTF-8.
///
/// # Errors
/// A string with an interior NUL.
pub fn to_varlen(values: &[String]) -> hdf5::Result<Vec<VarLenUnicode>> {
    values
        .iter()
        .map(|s| {
            s.parse::<VarLenUnicode>()
                .map_err(|e| hdf5::Error::from(format!("string {s:?}: {e:?}")))
        })
        .collect()
}

/// The most bytes a dataset may declare for a file of `file_len` bytes: 1,024 times the file
/// (gzip of real expression data packs 2-10x; a dataset of zeros can pack far more, hence the
/// margin) and at least 1 GiB.
pub fn max_declared_bytes(file_len: u64) -> u64 {
    file_len.saturating_mul(1024).max(1 << 30)
}

/// The dataset, once its declared size (elements times element size, from the file's
/// dataspace) is checked against [`max_declared_bytes`] of the file holding it: a damaged or
/// hostile header declaring petabytes is an error, never an allocation that aborts. An
/// unchunked dataset's stored bytes must also be exactly what its dataspace declares and lie
/// inside the file, and a chunked dataset's layout must store the datatype's element size: the
/// HDF5 library (1.10) copies by those sizes without comparing them, so a damaged layout
/// message made it write past its buffer (a segmentation fault, found by `tests/it/fuzz.rs`).
///
/// # Errors
/// The sizes cannot be read, or they disagree as above.
pub fn checked(ds: Dataset) -> hdf5::Result<Dataset> {
    let elem = ds.dtype()?.size() as u64;
    let declared = (ds.size() as u64).saturating_mul(elem);
    let file_len = ds.file()?.size();
    let damaged = |what: String| hdf5::Error::from(format!("{what}: damaged"));
    if declared > max_declared_bytes(file_len) {
        return Err(damaged(format!(
            "declares {} elements of {elem} bytes ({declared} bytes) in a file of {file_len} bytes",
            ds.size()
        )));
    }
    // Variable-length elements are stored as heap references whose size is not the type's.
    if raw_has_varlen(&ds) {
        return Ok(ds);
    }
    let layout = ds.layout();
    if layout == Layout::Chunked
        && let Some(stored) = chunk_element_size(&ds)
        && u64::from(stored) != elem
    {
        return Err(damaged(format!(
            "its chunk layout stores elements of {stored} bytes for a type of {elem} bytes"
        )));
    }
    if matches!(layout, Layout::Compact | Layout::Contiguous) {
        let stored = ds.storage_size();
        let allocated = stored > 0 || layout == Layout::Compact;
        if allocated && stored != declared {
            return Err(damaged(format!(
                "stores {stored} bytes for {} elements of {elem} bytes ({declared} bytes)",
                ds.size()
            )));
        }
        if let Some(offset) = ds.offset()
            && offset.saturating_add(declared) > file_len
        {
            return Err(damaged(format!(
                "its {declared} bytes at offset {offset} run past the end of the {file_len}-byte file"
            )));
        }
    }
    Ok(ds)
}

/// Whether the dataset's type has variable-length parts (or cannot be described).
fn raw_has_varlen(ds: &Dataset) -> bool {
    ds.dtype()
        .and_then(|t| t.to_descriptor())
        .map_or(true, |d| raw::has_varlen(&d))
}

/// The element size stored in a chunked dataset's layout message, read from the file
/// ([`super::chunkindex::chunk_element_size`]); `None` when it cannot be read that way. HDF5
/// 1.10 does not compare it with the datatype and copies chunks by it.
fn chunk_element_size(ds: &Dataset) -> Option<u32> {
    let f = std::fs::File::open(ds.filename()).ok()?;
    let base = super::chunkindex::base_address(&f)?;
    super::chunkindex::chunk_element_size(&f, base, raw::object_header_addr(ds)?)
}

/// Raw reads through the C API, for the layouts the high-level crate cannot express.
#[allow(unsafe_code)]
pub mod raw {
    use hdf5::types::TypeDescriptor;
    use hdf5::{Container, Datatype};
    use hdf5_sys::h5a::H5Aread;
    use hdf5_sys::h5d::H5Dread;
    use hdf5_sys::h5i::{H5I_ATTR, H5Iget_type};
    use hdf5_sys::h5p::H5P_DEFAULT;
    use hdf5_sys::h5s::H5S_ALL;
    use hdf5_sys::h5t::{H5T_direction_t, H5Tget_native_type};

    /// Reads all elements of a dataset or attribute into bytes in the native memory layout of its
    /// type, and returns that native type's descriptor (field offsets for compounds).
    ///
    /// Only for types without variable-length parts (numbers, fixed strings, arrays and compounds
    /// of those): variable-length members would leave pointers in the buffer, so they are refused.
    ///
    /// # Errors
    /// A type with variable-length parts, or an HDF5 read error.
    pub fn read_native_bytes(c: &Container) -> hdf5::Result<(TypeDescriptor, Vec<u8>)> {
        let file_type = c.dtype()?;
        if has_varlen(&file_type.to_descriptor()?) {
            return Err(hdf5::Error::from(
                "variable-length members cannot be read as raw bytes",
            ));
        }
        let n = c.size();
        hdf5::sync::sync(|| {
            // SAFETY: `file_type.id()` is a valid open datatype; the returned id is owned by the
            // `Datatype` built from it, which closes it on drop.
            let native_id =
                unsafe { H5Tget_native_type(file_type.id(), H5T_direction_t::H5T_DIR_ASCEND) };
            if native_id < 0 {
                return Err(hdf5::Error::from("H5Tget_native_type failed"));
            }
            // SAFETY: `native_id` is a fresh, valid datatype id that nothing else owns.
            let native: Datatype = unsafe { hdf5::from_id(native_id)? };
            let desc = native.to_descriptor()?;
            let mut buf = vec![0u8; n * native.size()];
            // SAFETY: `buf` holds exactly `n` elements of the native type (no variable-length
            // parts, checked above), which is what a whole-space read writes.
            let rc = unsafe {
                if H5Iget_type(c.id()) == H5I_ATTR {
                    H5Aread(c.id(), native.id(), buf.as_mut_ptr().cast())
                } else {
                    H5Dread(
                        c.id(),
                        native.id(),
                        H5S_ALL,
                        H5S_ALL,
                        H5P_DEFAULT,
                        buf.as_mut_ptr().cast(),
                    )
                }
            };
            if rc < 0 {
                return Err(hdf5::Error::from("raw read failed"));
            }
            Ok((desc, buf))
        })
    }

    /// File address of a dataset's object header (`H5Oget_info2`, HDF5 1.10 addresses).
    pub fn object_header_addr(ds: &hdf5::Dataset) -> Option<u64> {
        let mut info = hdf5_sys::h5o::H5O_info1_t::default();
        let rc = hdf5::sync::sync(|| {
            // SAFETY: `ds.id()` is an open object and `info` is valid for writes.
            unsafe {
                hdf5_sys::h5o::H5Oget_info2(ds.id(), &mut info, hdf5_sys::h5o::H5O_INFO_BASIC)
            }
        });
        (rc >= 0 && info.addr != u64::MAX).then_some(info.addr)
    }

    /// Location of the chunk of a 1-D chunked dataset that starts at element `start`:
    /// `(filter_mask, file address, stored bytes)`, or `None` when that chunk was never written
    /// or the query fails. A B-tree lookup (`H5Dget_chunk_info_by_coord`), unlike the by-index
    /// query, which walks the index and makes a full scan quadratic.
    pub fn chunk_by_coord(ds: &hdf5::Dataset, start: u64) -> Option<(u32, u64, u64)> {
        let (mut mask, mut addr, mut size) = (0u32, 0u64, 0u64);
        let offset = [start];
        let rc = hdf5::sync::sync(|| {
            // SAFETY: `ds.id()` is an open dataset of rank 1 (checked by the caller), `offset`
            // holds one coordinate, and the three out-pointers are valid for writes.
            unsafe {
                hdf5_sys::h5d::H5Dget_chunk_info_by_coord(
                    ds.id(),
                    offset.as_ptr(),
                    &mut mask,
                    &mut addr,
                    &mut size,
                )
            }
        });
        (rc >= 0 && addr != u64::MAX && size > 0).then_some((mask, addr, size))
    }

    pub(super) fn has_varlen(t: &TypeDescriptor) -> bool {
        match t {
            TypeDescriptor::VarLenArray(_)
            | TypeDescriptor::VarLenAscii
            | TypeDescriptor::VarLenUnicode => true,
            TypeDescriptor::FixedArray(inner, _) => has_varlen(inner),
            TypeDescriptor::Compound(c) => c.fields.iter().any(|f| has_varlen(&f.ty)),
            _ => false,
        }
    }
}

/// One field of a legacy compound dataset, decoded.
#[derive(Debug, Clone)]
pub enum CompoundColumn {
    /// Fixed-width strings.
    Strings(Vec<String>),
    /// Signed or unsigned integers (widened).
    Ints(Vec<i64>),
    /// Floats (widened).
    Floats(Vec<f64>),
    /// Booleans.
    Bools(Vec<bool>),
    /// A fixed-size float array per row, shape `(n_rows, width)` row-major.
    FloatRows(Vec<f64>, usize),
}

/// Decodes every field of a 1-D compound dataset (the pre-0.7 AnnData `obs`, `var`, `obsm`).
///
/// # Errors
/// Not a compound type, an unsupported field type, or a read error.
pub fn read_compound(ds: &Dataset) -> hdf5::Result<Vec<(String, CompoundColumn)>> {
    let (desc, bytes) = raw::read_native_bytes(ds)?;
    let TypeDescriptor::Compound(ct) = desc else {
        return Err(hdf5::Error::from("expected a compound dataset"));
    };
    let n = ds.size();
    let stride = ct.size;
    let mut out = Vec::with_capacity(ct.fields.len());
    for f in &ct.fields {
        let field = |i: usize| &bytes[i * stride + f.offset..];
        let col = match &f.ty {
            TypeDescriptor::FixedAscii(w) | TypeDescriptor::FixedUnicode(w) => {
                let strings = (0..n).map(|i| fixed_string(&field(i)[..*w], i));
                CompoundColumn::Strings(strings.collect::<hdf5::Result<_>>()?)
            }
            TypeDescriptor::Integer(s) => {
                let w = *s as usize;
                CompoundColumn::Ints((0..n).map(|i| read_int(&field(i)[..w], true)).collect())
            }
            TypeDescriptor::Unsigned(s) => {
                let w = *s as usize;
                CompoundColumn::Ints((0..n).map(|i| read_int(&field(i)[..w], false)).collect())
            }
            TypeDescriptor::Float(s) => {
                let w = *s as usize;
                CompoundColumn::Floats((0..n).map(|i| read_float(&field(i)[..w])).collect())
            }
            TypeDescriptor::Boolean => {
                CompoundColumn::Bools((0..n).map(|i| field(i)[0] != 0).collect())
            }
            TypeDescriptor::FixedArray(inner, len) => match inner.as_ref() {
                TypeDescriptor::Float(s) => {
                    let w = *s as usize;
                    let mut v = Vec::with_capacity(n * len);
                    for i in 0..n {
                        let b = field(i);
                        for k in 0..*len {
                            v.push(read_float(&b[k * w..(k + 1) * w]));
                        }
                    }
                    CompoundColumn::FloatRows(v, *len)
                }
                other => {
                    return Err(hdf5::Error::from(format!(
                        "field {}: unsupported array element type {other:?}",
                        f.name
                    )));
                }
            },
            other => {
                return Err(hdf5::Error::from(format!(
                    "field {}: unsupported type {other:?}",
                    f.name
                )));
            }
        };
        out.push((f.name.clone(), col));
    }
    Ok(out)
}

fn read_int(b: &[u8], signed: bool) -> i64 {
    match (b.len(), signed) {
        (1, true) => i64::from(b[0] as i8),
        (1, false) => i64::from(b[0]),
        (2, true) => i64::from(i16::from_ne_bytes([b[0], b[1]])),
        (2, false) => i64::from(u16::from_ne_bytes([b[0], b[1]])),
        (4, true) => i64::from(i32::from_ne_bytes([b[0], b[1], b[2], b[3]])),
        (4, false) => i64::from(u32::from_ne_bytes([b[0], b[1], b[2], b[3]])),
        (_, true) => i64::from_ne_bytes(b[..8].try_into().unwrap_or([0; 8])),
        (_, false) => u64::from_ne_bytes(b[..8].try_into().unwrap_or([0; 8])) as i64,
    }
}

fn read_float(b: &[u8]) -> f64 {
    match b.len() {
        4 => f64::from(f32::from_ne_bytes([b[0], b[1], b[2], b[3]])),
        _ => f64::from_ne_bytes(b[..8].try_into().unwrap_or([0; 8])),
    }
}
