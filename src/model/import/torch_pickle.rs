//! Reading PyTorch `torch.save` files (zip archives holding `data.pkl` and one file per storage)
//! without Python: a pickle machine that *never executes anything*. Calls PyTorch uses to
//! rebuild tensors (`torch._utils._rebuild_tensor_v2`, `_rebuild_parameter`) and the container
//! classes (`collections.OrderedDict`, `collections.defaultdict`, `dict`) are understood; every
//! other class (Lightning's `AttributeDict`, optimiser and callback state, ...) becomes an opaque
//! object that still accepts items and state, so a whole PyTorch Lightning checkpoint parses and
//! its tensors can be taken out.
//!
//! Format references: Python's `pickletools` (opcodes, protocols 0-5) and `torch/serialization.py`
//! (the zip layout `<archive>/data.pkl`, `<archive>/data/<key>`, little-endian storages).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

/// An error reading a PyTorch file.
#[derive(Debug, thiserror::Error)]
pub enum TorchError {
    /// The file could not be read.
    #[error("{file}: {source}")]
    Io {
        /// The file.
        file: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Not a zip archive, or a member is missing or truncated.
    #[error("{file}: {message}")]
    Archive {
        /// The file.
        file: String,
        /// What is wrong.
        message: String,
    },
    /// The pickle stream is malformed.
    #[error("{file}: data.pkl: {message} (at byte {at})")]
    Pickle {
        /// The file.
        file: String,
        /// What is wrong.
        message: String,
        /// Byte offset in data.pkl.
        at: usize,
    },
}

/// Element type of a storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    /// float32.
    F32,
    /// float64.
    F64,
    /// float16.
    F16,
    /// bfloat16.
    BF16,
    /// int64.
    I64,
    /// int32.
    I32,
    /// int16.
    I16,
    /// int8.
    I8,
    /// uint8.
    U8,
    /// bool.
    Bool,
}

impl DType {
    fn from_storage_name(name: &str) -> Option<Self> {
        Some(match name {
            "FloatStorage" => Self::F32,
            "DoubleStorage" => Self::F64,
            "HalfStorage" => Self::F16,
            "BFloat16Storage" => Self::BF16,
            "LongStorage" => Self::I64,
            "IntStorage" => Self::I32,
            "ShortStorage" => Self::I16,
            "CharStorage" => Self::I8,
            "ByteStorage" => Self::U8,
            "BoolStorage" => Self::Bool,
            _ => return None,
        })
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Self::F64 | Self::I64 => 8,
            Self::F32 | Self::I32 => 4,
            Self::F16 | Self::BF16 | Self::I16 => 2,
            Self::I8 | Self::U8 | Self::Bool => 1,
        }
    }

    /// Decodes one little-endian element (`self.size()` bytes) to `f32`.
    pub fn read(self, b: &[u8]) -> f32 {
        match self {
            Self::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            Self::F64 => {
                f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32
            }
            Self::F16 => half::f16::from_le_bytes([b[0], b[1]]).to_f32(),
            Self::BF16 => half::bf16::from_le_bytes([b[0], b[1]]).to_f32(),
            Self::I64 => {
                i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32
            }
            Self::I32 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32,
            Self::I16 => f32::from(i16::from_le_bytes([b[0], b[1]])),
            Self::I8 => f32::from(b[0] as i8),
            Self::U8 | Self::Bool => f32::from(b[0]),
        }
    }
}

/// A tensor taken out of a checkpoint, converted to `f32`, row-major (C order).
#[derive(Debug, Clone, PartialEq)]
pub struct TensorData {
    /// Shape (PyTorch order; a Linear weight is `[out, in]`).
    pub shape: Vec<usize>,
    /// Values, `shape.iter().product()` of them.
    pub values: Vec<f32>,
    /// The stored element type.
    pub dtype: DType,
}

/// A simple (non-tensor) value from the pickle, for hyper-parameters and metadata.
#[derive(Debug, Clone, PartialEq)]
pub enum Simple {
    /// None.
    None,
    /// bool.
    Bool(bool),
    /// int.
    Int(i64),
    /// float.
    Float(f64),
    /// str.
    Str(String),
    /// list or tuple of simple values.
    List(Vec<Simple>),
    /// dict with string keys.
    Dict(BTreeMap<String, Simple>),
    /// Anything else (an object, a tensor), by description.
    Other(String),
}

/// What a PyTorch file holds: its top-level entries, tensors flattened with dotted keys.
#[derive(Debug, Clone, Default)]
pub struct TorchFile {
    /// Every tensor reachable through (nested) string-keyed dicts, keyed by the dotted path
    /// (`state_dict.encoder.0.weight`).
    pub tensors: BTreeMap<String, TensorData>,
    /// Non-tensor top-level entries (e.g. `epoch`, `hyper_parameters`), as simple values.
    pub entries: BTreeMap<String, Simple>,
}

#[derive(Debug, Clone)]
enum Node {
    Mark,
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    List(Vec<usize>),
    Tuple(Vec<usize>),
    Dict(Vec<(usize, usize)>),
    Set(Vec<usize>),
    Global(String, String),
    Storage {
        dtype: DType,
        key: String,
        numel: usize,
    },
    Tensor {
        storage: usize,
        offset: usize,
        shape: Vec<usize>,
        stride: Vec<usize>,
    },
    /// An object of a class we do not model; it still collects items and state.
    Object {
        class: usize,
        items: Vec<(usize, usize)>,
    },
}

/// Consecutive `key, value, key, value, ...` stack items as pairs (DICT, SETITEMS).
fn pairs(items: &[usize]) -> Vec<(usize, usize)> {
    items.chunks_exact(2).map(|c| (c[0], c[1])).collect()
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    nodes: Vec<Node>,
    stack: Vec<usize>,
    memo: BTreeMap<u64, usize>,
    file: &'a str,
}

impl<'a> Machine<'a> {
    fn err(&self, message: impl Into<String>) -> TorchError {
        TorchError::Pickle {
            file: self.file.to_string(),
            message: message.into(),
            at: self.pos,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], TorchError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        let Some(end) = end else {
            return Err(self.err("unexpected end of pickle data"));
        };
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, TorchError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, TorchError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, TorchError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn line(&mut self) -> Result<String, TorchError> {
        let rest = &self.data[self.pos..];
        let n = rest
            .iter()
            .position(|&c| c == b'\n')
            .ok_or_else(|| self.err("unterminated text line"))?;
        let s = String::from_utf8_lossy(&rest[..n]).into_owned();
        self.pos += n + 1;
        Ok(s)
    }

    fn push(&mut self, n: Node) {
        self.nodes.push(n);
        self.stack.push(self.nodes.len() - 1);
    }

    fn pop(&mut self) -> Result<usize, TorchError> {
        self.stack.pop().ok_or_else(|| self.err("stack underflow"))
    }

    fn pop_mark(&mut self) -> Result<Vec<usize>, TorchError> {
        let k = self
            .stack
            .iter()
            .rposition(|&i| matches!(self.nodes[i], Node::Mark))
            .ok_or_else(|| self.err("no MARK on the stack"))?;
        let items = self.stack.split_off(k + 1);
        self.stack.pop();
        Ok(items)
    }

    fn top(&self) -> Result<usize, TorchError> {
        self.stack
            .last()
            .copied()
            .ok_or_else(|| self.err("empty stack"))
    }

    fn int_of(&self, id: usize) -> Option<i64> {
        match self.nodes[id] {
            Node::Int(v) => Some(v),
            Node::Bool(b) => Some(i64::from(b)),
            _ => None,
        }
    }

    fn ints_of(&self, id: usize) -> Option<Vec<usize>> {
        match &self.nodes[id] {
            Node::Tuple(v) | Node::List(v) => v
                .iter()
                .map(|&i| self.int_of(i).and_then(|x| usize::try_from(x).ok()))
                .collect(),
            _ => None,
        }
    }

    fn add_items(&mut self, target: usize, pairs: Vec<(usize, usize)>) -> Result<(), TorchError> {
        match &mut self.nodes[target] {
            Node::Dict(v) | Node::Object { items: v, .. } => {
                v.extend(pairs);
                Ok(())
            }
            _ => Err(self.err("SETITEM on a non-dict")),
        }
    }

    fn append(&mut self, target: usize, values: Vec<usize>) -> Result<(), TorchError> {
        match &mut self.nodes[target] {
            Node::List(v) | Node::Set(v) => {
                v.extend(values);
                Ok(())
            }
            // Unknown list-like objects: keep the values as anonymous items.
            Node::Object { items, .. } => {
                items.extend(values.into_iter().map(|v| (v, v)));
                Ok(())
            }
            _ => Err(self.err("APPEND on a non-list")),
        }
    }

    /// REDUCE / NEWOBJ: the calls we understand, an opaque object otherwise.
    fn call(&mut self, func: usize, args: usize) -> Result<Node, TorchError> {
        let (module, name) = match &self.nodes[func] {
            Node::Global(m, n) => (m.clone(), n.clone()),
            _ => {
                return Ok(Node::Object {
                    class: func,
                    items: Vec::new(),
                });
            }
        };
        let argv = match &self.nodes[args] {
            Node::Tuple(v) | Node::List(v) => v.clone(),
            _ => Vec::new(),
        };
        match (module.as_str(), name.as_str()) {
            ("torch._utils", "_rebuild_tensor_v2" | "_rebuild_tensor") => {
                if argv.len() < 4 {
                    return Err(
                        self.err("_rebuild_tensor_v2 needs (storage, offset, size, stride)")
                    );
                }
                let storage = argv[0];
                if !matches!(self.nodes[storage], Node::Storage { .. }) {
                    return Err(self.err("_rebuild_tensor_v2: first argument is not a storage"));
                }
                let offset = self
                    .int_of(argv[1])
                    .and_then(|v| usize::try_from(v).ok())
                    .ok_or_else(|| self.err("bad storage offset"))?;
                let shape = self
                    .ints_of(argv[2])
                    .ok_or_else(|| self.err("bad tensor size"))?;
                let stride = self
                    .ints_of(argv[3])
                    .ok_or_else(|| self.err("bad tensor stride"))?;
                Ok(Node::Tensor {
                    storage,
                    offset,
                    shape,
                    stride,
                })
            }
            ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => {
                let t = *argv
                    .first()
                    .ok_or_else(|| self.err("_rebuild_parameter needs data"))?;
                Ok(self.nodes[t].clone())
            }
            ("collections", "OrderedDict" | "defaultdict") | ("builtins", "dict") => {
                let mut items = Vec::new();
                if module == "collections"
                    && name == "OrderedDict"
                    && let Some(&seq) = argv.first()
                    && let Node::List(pairs) | Node::Tuple(pairs) = self.nodes[seq].clone()
                {
                    for p in pairs {
                        if let Node::Tuple(kv) | Node::List(kv) = &self.nodes[p]
                            && kv.len() == 2
                        {
                            items.push((kv[0], kv[1]));
                        }
                    }
                }
                Ok(Node::Dict(items))
            }
            _ => Ok(Node::Object {
                class: func,
                items: Vec::new(),
            }),
        }
    }

    fn run(&mut self) -> Result<usize, TorchError> {
        loop {
            let op = self.u8()?;
            if op == b'.' {
                return self.pop(); // STOP
            }
            if !(self.scalar(op)? || self.container(op)? || self.object(op)?) {
                return Err(self.err(format!("unsupported pickle opcode 0x{op:02x}")));
            }
        }
    }

    /// Scalars and markers: protocol, frames, marks, empty containers, None, booleans,
    /// integers, floats, strings and bytes. Returns whether `op` was one of them.
    fn scalar(&mut self, op: u8) -> Result<bool, TorchError> {
        match op {
            0x80 => {
                self.u8()?;
            } // PROTO
            0x95 => {
                self.u64()?;
            } // FRAME
            b'(' => self.push(Node::Mark),
            b'}' => self.push(Node::Dict(Vec::new())),
            b']' => self.push(Node::List(Vec::new())),
            b')' => self.push(Node::Tuple(Vec::new())),
            0x8f => self.push(Node::Set(Vec::new())),
            b'N' => self.push(Node::None),
            0x88 => self.push(Node::Bool(true)),
            0x89 => self.push(Node::Bool(false)),
            b'K' => {
                let v = self.u8()?;
                self.push(Node::Int(i64::from(v)));
            }
            b'M' => {
                let b = self.take(2)?;
                let v = u16::from_le_bytes([b[0], b[1]]);
                self.push(Node::Int(i64::from(v)));
            }
            b'J' => {
                let v = self.u32()? as i32;
                self.push(Node::Int(i64::from(v)));
            }
            0x8a | 0x8b => {
                let n = if op == 0x8a {
                    usize::from(self.u8()?)
                } else {
                    self.u32()? as usize
                };
                let b = self.take(n)?;
                // Two's-complement little-endian; values beyond i64 are kept truncated.
                let mut a = [0u8; 8];
                let k = n.min(8);
                a[..k].copy_from_slice(&b[..k]);
                if n > 0 && n < 8 && b[n - 1] & 0x80 != 0 {
                    for x in &mut a[n..] {
                        *x = 0xff;
                    }
                }
                self.push(Node::Int(i64::from_le_bytes(a)));
            }
            b'G' => {
                let b = self.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                self.push(Node::Float(f64::from_be_bytes(a)));
            }
            b'I' => {
                let s = self.line()?;
                let n = match s.as_str() {
                    "00" => Node::Bool(false),
                    "01" => Node::Bool(true),
                    _ => Node::Int(s.trim().parse().map_err(|_| self.err("bad INT"))?),
                };
                self.push(n);
            }
            b'L' => {
                let s = self.line()?;
                let v = s
                    .trim_end_matches('L')
                    .parse()
                    .map_err(|_| self.err("bad LONG"))?;
                self.push(Node::Int(v));
            }
            b'F' => {
                let s = self.line()?;
                let v = s.trim().parse().map_err(|_| self.err("bad FLOAT"))?;
                self.push(Node::Float(v));
            }
            0x8c | b'X' | 0x8d => {
                let n = match op {
                    0x8c => usize::from(self.u8()?),
                    b'X' => self.u32()? as usize,
                    _ => usize::try_from(self.u64()?).map_err(|_| self.err("huge string"))?,
                };
                let s = String::from_utf8_lossy(self.take(n)?).into_owned();
                self.push(Node::Str(s));
            }
            b'U' | b'T' => {
                let n = if op == b'U' {
                    usize::from(self.u8()?)
                } else {
                    self.u32()? as usize
                };
                let s = String::from_utf8_lossy(self.take(n)?).into_owned();
                self.push(Node::Str(s));
            }
            b'V' | b'S' => {
                let s = self.line()?;
                self.push(Node::Str(s.trim_matches('\'').to_string()));
            }
            b'C' | b'B' | 0x8e | 0x96 => {
                let n = match op {
                    b'C' => usize::from(self.u8()?),
                    b'B' => self.u32()? as usize,
                    _ => usize::try_from(self.u64()?).map_err(|_| self.err("huge bytes"))?,
                };
                let b = self.take(n)?.to_vec();
                self.push(Node::Bytes(b));
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Containers: tuples, lists, dicts and sets built from the stack or a mark, items
    /// appended or set. Returns whether `op` was one of them.
    fn container(&mut self, op: u8) -> Result<bool, TorchError> {
        match op {
            b't' => {
                let items = self.pop_mark()?;
                self.push(Node::Tuple(items));
            }
            0x85..=0x87 => {
                let n = usize::from(op - 0x84);
                if self.stack.len() < n {
                    return Err(self.err("stack underflow in TUPLEn"));
                }
                let items = self.stack.split_off(self.stack.len() - n);
                self.push(Node::Tuple(items));
            }
            b'l' => {
                let items = self.pop_mark()?;
                self.push(Node::List(items));
            }
            b'd' => {
                let items = self.pop_mark()?;
                self.push(Node::Dict(pairs(&items)));
            }
            0x91 => {
                let items = self.pop_mark()?;
                self.push(Node::Set(items));
            }
            b's' => {
                let v = self.pop()?;
                let k = self.pop()?;
                let d = self.top()?;
                self.add_items(d, vec![(k, v)])?;
            }
            b'u' => {
                let items = self.pop_mark()?;
                let d = self.top()?;
                self.add_items(d, pairs(&items))?;
            }
            b'a' => {
                let v = self.pop()?;
                let l = self.top()?;
                self.append(l, vec![v])?;
            }
            b'e' | 0x90 => {
                let items = self.pop_mark()?;
                let l = self.top()?;
                self.append(l, items)?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The memo, the stack, globals, calls (`REDUCE`, `NEWOBJ`), `BUILD` and persistent ids.
    /// Returns whether `op` was one of them.
    fn object(&mut self, op: u8) -> Result<bool, TorchError> {
        match op {
            b'q' => {
                let k = u64::from(self.u8()?);
                let t = self.top()?;
                self.memo.insert(k, t);
            }
            b'r' => {
                let k = u64::from(self.u32()?);
                let t = self.top()?;
                self.memo.insert(k, t);
            }
            0x94 => {
                let k = self.memo.len() as u64;
                let t = self.top()?;
                self.memo.insert(k, t);
            }
            b'p' => {
                let k = self
                    .line()?
                    .trim()
                    .parse()
                    .map_err(|_| self.err("bad PUT"))?;
                let t = self.top()?;
                self.memo.insert(k, t);
            }
            b'h' | b'j' | b'g' => {
                let k = match op {
                    b'h' => u64::from(self.u8()?),
                    b'j' => u64::from(self.u32()?),
                    _ => self
                        .line()?
                        .trim()
                        .parse()
                        .map_err(|_| self.err("bad GET"))?,
                };
                let id = *self
                    .memo
                    .get(&k)
                    .ok_or_else(|| self.err(format!("memo key {k} missing")))?;
                self.stack.push(id);
            }
            b'0' => {
                self.pop()?;
            }
            b'1' => {
                self.pop_mark()?;
            }
            b'2' => {
                let t = self.top()?;
                self.stack.push(t);
            }
            b'c' => {
                let module = self.line()?;
                let name = self.line()?;
                self.push(Node::Global(module, name));
            }
            0x93 => {
                let name = self.pop()?;
                let module = self.pop()?;
                match (&self.nodes[module], &self.nodes[name]) {
                    (Node::Str(m), Node::Str(n)) => {
                        let g = Node::Global(m.clone(), n.clone());
                        self.push(g);
                    }
                    _ => return Err(self.err("STACK_GLOBAL needs two strings")),
                }
            }
            b'R' => {
                let args = self.pop()?;
                let func = self.pop()?;
                let n = self.call(func, args)?;
                self.push(n);
            }
            0x81 => {
                let args = self.pop()?;
                let cls = self.pop()?;
                let n = self.call(cls, args)?;
                self.push(n);
            }
            0x92 => {
                let _kwargs = self.pop()?;
                let args = self.pop()?;
                let cls = self.pop()?;
                let n = self.call(cls, args)?;
                self.push(n);
            }
            b'b' => {
                // BUILD: set state. A dict state of an opaque object is kept as its items.
                let state = self.pop()?;
                let obj = self.top()?;
                if let (Node::Object { .. }, Node::Dict(pairs)) =
                    (&self.nodes[obj], self.nodes[state].clone())
                {
                    self.add_items(obj, pairs)?;
                }
            }
            b'Q' => {
                let pid = self.pop()?;
                let n = self.persistent(pid)?;
                self.push(n);
            }
            b'P' => return Err(self.err("text persistent IDs (PERSID) are not used by torch")),
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn persistent(&self, pid: usize) -> Result<Node, TorchError> {
        let Node::Tuple(parts) = &self.nodes[pid] else {
            return Err(self.err("persistent id is not a tuple"));
        };
        let tag = parts.first().map(|&i| &self.nodes[i]);
        if !matches!(tag, Some(Node::Str(s)) if s == "storage") || parts.len() < 5 {
            return Err(self.err("persistent id is not ('storage', type, key, location, numel)"));
        }
        let dtype = match &self.nodes[parts[1]] {
            Node::Global(_, name) => DType::from_storage_name(name),
            _ => None,
        }
        .ok_or_else(|| self.err("unknown storage type"))?;
        let key = match &self.nodes[parts[2]] {
            Node::Str(s) => s.clone(),
            Node::Int(i) => i.to_string(),
            _ => return Err(self.err("storage key is not a string")),
        };
        let numel = self
            .int_of(parts[4])
            .and_then(|v| usize::try_from(v).ok())
            .ok_or_else(|| self.err("bad storage size"))?;
        Ok(Node::Storage { dtype, key, numel })
    }
}

/// Reads a `torch.save` zip archive and returns the tensors whose dotted key passes `keep`
/// (storages of the others are never read: a Lightning checkpoint's optimiser state can be
/// skipped) and the simple top-level entries.
///
/// # Errors
/// [`TorchError`] for unreadable files, archives without `data.pkl`, malformed pickles, missing
/// or short storages, and tensors whose strides reach outside their storage.
pub fn read_torch_file(path: &Path, keep: &dyn Fn(&str) -> bool) -> Result<TorchFile, TorchError> {
    let file = path.display().to_string();
    let f = std::fs::File::open(path).map_err(|source| TorchError::Io {
        file: file.clone(),
        source,
    })?;
    let arch_err = |m: String| TorchError::Archive {
        file: file.clone(),
        message: m,
    };
    let mut zip = zip::ZipArchive::new(f).map_err(|e| {
        arch_err(format!(
            "not a PyTorch zip checkpoint ({e}); files saved with torch < 1.6's legacy format \
             must be re-saved with a current torch"
        ))
    })?;
    let pkl_name = zip
        .file_names()
        .filter_map(Result::ok)
        .find(|n| n.ends_with("data.pkl"))
        .map(|n| n.to_string())
        .ok_or_else(|| arch_err("no data.pkl in the archive".into()))?;
    let prefix = pkl_name.trim_end_matches("data.pkl").to_string();
    let mut pkl = Vec::new();
    zip.by_name(&pkl_name)
        .and_then(|e| {
            e.take(MAX_PICKLE_BYTES + 1)
                .read_to_end(&mut pkl)
                .map_err(Into::into)
        })
        .map_err(|e| arch_err(format!("{pkl_name}: {e}")))?;
    if pkl.len() as u64 > MAX_PICKLE_BYTES {
        return Err(arch_err(format!(
            "{pkl_name} is larger than 1 GiB: not a model's pickle"
        )));
    }

    let mut m = Machine {
        data: &pkl,
        pos: 0,
        nodes: Vec::new(),
        stack: Vec::new(),
        memo: BTreeMap::new(),
        file: &file,
    };
    let root = m.run()?;
    let nodes = m.nodes;

    let mut out = TorchFile::default();
    let mut storages = Storages {
        zip: &mut zip,
        prefix: &prefix,
        file: &file,
    };
    // Walk string-keyed dicts from the root, collecting tensors by dotted path.
    let mut todo: Vec<(String, usize, usize)> = vec![(String::new(), root, 0)];
    while let Some((path, id, depth)) = todo.pop() {
        if depth > 16 {
            continue;
        }
        match &nodes[id] {
            Node::Dict(items) | Node::Object { items, .. } => {
                for &(k, v) in items {
                    let key = match &nodes[k] {
                        Node::Str(s) => s.clone(),
                        Node::Int(i) => i.to_string(),
                        _ => continue,
                    };
                    let p = if path.is_empty() {
                        key
                    } else {
                        format!("{path}.{key}")
                    };
                    todo.push((p, v, depth + 1));
                }
            }
            Node::Tensor {
                storage,
                offset,
                shape,
                stride,
            } if keep(&path) => {
                let t = storages.tensor(&nodes[*storage], *offset, shape, stride)?;
                out.tensors.insert(path, t);
            }
            _ => {}
        }
    }
    if let Node::Dict(items) | Node::Object { items, .. } = &nodes[root] {
        for &(k, v) in items {
            if let Node::Str(key) = &nodes[k]
                && !matches!(nodes[v], Node::Tensor { .. })
            {
                out.entries.insert(key.clone(), simple(&nodes, v, 0));
            }
        }
    }
    Ok(out)
}

/// The tensor storages of a checkpoint archive (`<prefix>data/<key>` entries).
struct Storages<'a> {
    zip: &'a mut zip::ZipArchive<std::fs::File>,
    prefix: &'a str,
    file: &'a str,
}

impl Storages<'_> {
    fn error(&self, message: String) -> TorchError {
        TorchError::Archive {
            file: self.file.to_string(),
            message,
        }
    }

    /// The values of a tensor view (`offset`, `shape`, `stride` in elements) of `storage`,
    /// row-major; the view must lie inside the storage, whose bytes must cover its `numel`.
    fn tensor(
        &mut self,
        storage: &Node,
        offset: usize,
        shape: &[usize],
        stride: &[usize],
    ) -> Result<TensorData, TorchError> {
        let Node::Storage { dtype, key, numel } = storage else {
            return Err(self.error("tensor without storage".into()));
        };
        let name = format!("{}data/{key}", self.prefix);
        let es = dtype.size();
        let expected = numel.checked_mul(es).ok_or_else(|| {
            self.error(format!(
                "storage {name} declares {numel} elements: more than memory can address"
            ))
        })?;
        let n = view_len(shape, stride, offset, *numel)
            .map_err(|m| self.error(format!("tensor in storage {key}: {m}")))?;
        let mut bytes = Vec::new();
        let read = (self.zip.by_name(&name)).and_then(|e| {
            // Never read more than the storage declares: sizes come from the file.
            let mut e = e.take(expected as u64);
            e.read_to_end(&mut bytes).map_err(Into::into)
        });
        read.map_err(|e| self.error(format!("storage {name}: {e}")))?;
        if bytes.len() < expected {
            return Err(self.error(format!(
                "storage {name} holds {} bytes, expected {expected} ({numel} x {es} bytes)",
                bytes.len(),
            )));
        }
        let mut values = Vec::with_capacity(n);
        let mut idx = vec![0usize; shape.len()];
        for _ in 0..n {
            let p = offset + idx.iter().zip(stride).map(|(&i, &s)| i * s).sum::<usize>();
            values.push(dtype.read(&bytes[p * es..(p + 1) * es]));
            for d in (0..shape.len()).rev() {
                idx[d] += 1;
                if idx[d] < shape[d] {
                    break;
                }
                idx[d] = 0;
            }
        }
        Ok(TensorData {
            shape: shape.to_vec(),
            values,
            dtype: *dtype,
        })
    }
}

/// The largest `data.pkl` read (1 GiB; a model's pickle holds structure, not weights, and is
/// kilobytes): a compressed entry cannot make the reader inflate without bound.
const MAX_PICKLE_BYTES: u64 = 1 << 30;

/// The most elements one tensor may hold (2^31, 8 GiB as `f32`): a file declaring more is
/// refused before anything is allocated.
const MAX_TENSOR_ELEMENTS: usize = 1 << 31;

/// Why a tensor's view of its storage is refused ([`view_len`]).
#[derive(Debug, thiserror::Error)]
enum ViewError {
    /// Shape and stride of different ranks.
    #[error("shape {shape:?} and stride {stride:?} differ in length")]
    Rank {
        /// The shape.
        shape: Vec<usize>,
        /// The stride.
        stride: Vec<usize>,
    },
    /// The element count overflows.
    #[error("shape {0:?} overflows")]
    Overflow(Vec<usize>),
    /// The last element lies outside the storage.
    #[error("shape {shape:?} with stride {stride:?} reaches outside its {numel} elements")]
    Outside {
        /// The shape.
        shape: Vec<usize>,
        /// The stride.
        stride: Vec<usize>,
        /// Elements in the storage.
        numel: usize,
    },
    /// More elements than allowed for the storage.
    #[error("shape {shape:?} declares {n} elements over a storage of {numel}: refused")]
    TooLarge {
        /// The shape.
        shape: Vec<usize>,
        /// Elements the view declares.
        n: usize,
        /// Elements in the storage.
        numel: usize,
    },
}

/// The element count of a view (`shape`, `stride`, `offset` in elements) of a storage of
/// `numel` elements, checked: no overflow, the last element inside the storage, and no more
/// elements than [`MAX_TENSOR_ELEMENTS`] or than 16 times the storage (an expanded view with
/// zero strides over a small storage would otherwise make a few bytes of file allocate
/// terabytes).
fn view_len(
    shape: &[usize],
    stride: &[usize],
    offset: usize,
    numel: usize,
) -> Result<usize, ViewError> {
    if shape.len() != stride.len() {
        return Err(ViewError::Rank {
            shape: shape.to_vec(),
            stride: stride.to_vec(),
        });
    }
    let n = shape
        .iter()
        .try_fold(1usize, |a, &s| a.checked_mul(s))
        .ok_or_else(|| ViewError::Overflow(shape.to_vec()))?;
    if n == 0 {
        return Ok(0);
    }
    let last = shape.iter().zip(stride).try_fold(offset, |a, (&s, &st)| {
        (s - 1).checked_mul(st).and_then(|x| a.checked_add(x))
    });
    if last.is_none_or(|last| last >= numel) {
        return Err(ViewError::Outside {
            shape: shape.to_vec(),
            stride: stride.to_vec(),
            numel,
        });
    }
    if n > MAX_TENSOR_ELEMENTS || n > numel.saturating_mul(16) {
        return Err(ViewError::TooLarge {
            shape: shape.to_vec(),
            n,
            numel,
        });
    }
    Ok(n)
}

fn simple(nodes: &[Node], id: usize, depth: usize) -> Simple {
    if depth > 8 {
        return Simple::Other("...".into());
    }
    match &nodes[id] {
        Node::None => Simple::None,
        Node::Bool(b) => Simple::Bool(*b),
        Node::Int(i) => Simple::Int(*i),
        Node::Float(f) => Simple::Float(*f),
        Node::Str(s) => Simple::Str(s.clone()),
        Node::Bytes(b) => Simple::Other(format!("{} bytes", b.len())),
        Node::List(v) | Node::Tuple(v) | Node::Set(v) => {
            Simple::List(v.iter().map(|&i| simple(nodes, i, depth + 1)).collect())
        }
        Node::Object { class, items } if items.is_empty() => match &nodes[*class] {
            Node::Global(m, n) => Simple::Other(format!("{m}.{n} object")),
            _ => Simple::Other("object".into()),
        },
        Node::Dict(items) | Node::Object { items, .. } => {
            let mut m = BTreeMap::new();
            for &(k, v) in items {
                let key = match &nodes[k] {
                    Node::Str(s) => s.clone(),
                    Node::Int(i) => i.to_string(),
                    _ => continue,
                };
                m.insert(key, simple(nodes, v, depth + 1));
            }
            Simple::Dict(m)
        }
        Node::Global(m, n) => Simple::Other(format!("{m}.{n}")),
        Node::Tensor { shape, .. } => Simple::Other(format!("tensor{shape:?}")),
        Node::Storage { .. } => Simple::Other("storage".into()),
        Node::Mark => Simple::Other("mark".into()),
    }
}
