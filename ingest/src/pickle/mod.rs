//! A restricted unpickler: reads the pickles numpy writes WITHOUT executing anything.
//!
//! Python's `pickle.load` runs whatever callable a file names (`os.system`, `eval`, ...),
//! so an untrusted pickle must never reach it. This reader interprets the opcodes of
//! protocols 2-5 that dicts, lists, tuples, strings, bytes, numbers and numpy arrays use,
//! and resolves a global only if it is one of the few numpy callables in
//! [`numpy::Callable`]; any other global is an error that names it, raised when the
//! global is read (it is never called, nor imported: there is nothing to import).
//!
//! Memory: arrays are not copied. A `bytes` value is a byte range of the input
//! ([`numpy::Buf::Range`]), so with a memory-mapped file a 1-2 GB pickle costs its map
//! plus a few bytes per object, and an array is decoded only when its row is built
//! ([`numpy::Array::to_f64_c_order`]). (The authors read the file in chunks under 2^31
//! bytes because of an old CPython limit on single reads; a map has no such limit.)
//!
//! Bounded work on hostile input: every length is checked against the bytes left before
//! anything is allocated; the number of values ever pushed, memo entries included, is
//! capped by [`object_limit`] (a real pickle needs a few per item, far below it); bytes
//! the reader makes itself (protocol 2's latin-1 strings) are capped at the input's size;
//! there is no recursion. [`parse`] never panics; `ingest/tests` and the fuzzer drive it.
pub mod numpy;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use numpy::{Array, Buf, Callable, Dtype};

/// Index of a [`Node`] in [`Document::nodes`].
pub type NodeId = usize;

/// A value on the pickle machine's stack. Containers and numpy objects live in the
/// document's node arena so that a memo fetch copies an index, not the object (a shared
/// list is one list, as in Python, and repeated fetches cost nothing).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Arc<str>),
    Bytes(Buf),
    Node(NodeId),
    Global(Callable),
}

/// A container or numpy object.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    List(Vec<Value>),
    Tuple(Vec<Value>),
    /// Entries in insertion order; a repeated key replaces the value in place (Python's
    /// dict semantics).
    Dict(Vec<(Value, Value)>),
    Dtype(Dtype),
    Array(Array),
    /// `_reconstruct`'s result before `BUILD` gives it a shape, dtype and data.
    EmptyArray,
    Scalar {
        dtype: Dtype,
        data: Buf,
    },
}

/// What a pickle held: its top value and the arena its containers live in.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub root: Value,
    pub nodes: Vec<Node>,
}

impl Document {
    /// The node `v` refers to, if it is one.
    pub fn node(&self, v: &Value) -> Option<&Node> {
        match v {
            Value::Node(id) => self.nodes.get(*id),
            _ => None,
        }
    }

    /// The entries of `v` if it is a dict.
    pub fn dict(&self, v: &Value) -> Option<&[(Value, Value)]> {
        match self.node(v) {
            Some(Node::Dict(e)) => Some(e),
            _ => None,
        }
    }

    /// A short description of `v`'s type, for messages.
    pub fn type_name(&self, v: &Value) -> &'static str {
        match v {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bytes(_) => "bytes",
            Value::Global(_) => "callable",
            Value::Node(_) => match self.node(v) {
                Some(Node::List(_)) => "list",
                Some(Node::Tuple(_)) => "tuple",
                Some(Node::Dict(_)) => "dict",
                Some(Node::Dtype(_)) => "numpy dtype",
                Some(Node::Array(_)) => "numpy array",
                Some(Node::EmptyArray) => "unfinished numpy array",
                Some(Node::Scalar { .. }) => "numpy scalar",
                None => "dangling reference",
            },
        }
    }
}

/// Why a pickle could not be read: the byte offset of the opcode at fault and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PickleError {
    pub offset: usize,
    pub message: String,
}

impl fmt::Display for PickleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pickle byte {}: {}", self.offset, self.message)
    }
}

/// The most values a pickle of `len` bytes may push (memo entries included): one per 32
/// input bytes plus 65,536, so that the reader's own memory stays about the input's size
/// (a value is 32 bytes) whatever the input. A real LIDC pickle pushes ~30 values per
/// 80 KB item.
pub fn object_limit(len: usize) -> usize {
    len / 32 + 65_536
}

/// Reads the pickle in `data` (the whole file) without executing it.
pub fn parse(data: &[u8]) -> Result<Document, PickleError> {
    Machine::new(data).run()
}

struct Machine<'d> {
    data: &'d [u8],
    pos: usize,
    /// Offset of the opcode being run, for errors.
    at: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
    nodes: Vec<Node>,
    pushed: usize,
    limit: usize,
    owned_bytes: usize,
}

type Res<T> = Result<T, PickleError>;

impl<'d> Machine<'d> {
    fn new(data: &'d [u8]) -> Self {
        Machine {
            data,
            pos: 0,
            at: 0,
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
            nodes: Vec::new(),
            pushed: 0,
            limit: object_limit(data.len()),
            owned_bytes: 0,
        }
    }

    fn err<T>(&self, message: impl Into<String>) -> Res<T> {
        Err(PickleError {
            offset: self.at,
            message: message.into(),
        })
    }

    fn take(&mut self, n: usize) -> Res<&'d [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        match end {
            Some(end) => {
                let s = &self.data[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => self.err(format!(
                "the file ends inside an opcode (needs {n} more bytes, {} left): truncated?",
                self.data.len() - self.pos
            )),
        }
    }

    fn u8(&mut self) -> Res<u8> {
        Ok(self.take(1)?[0])
    }

    fn uint<const N: usize>(&mut self) -> Res<[u8; N]> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    /// A length prefix, checked against the bytes left before anything is allocated.
    fn len_checked(&mut self, n: u64) -> Res<usize> {
        let left = (self.data.len() - self.pos) as u64;
        if n > left {
            return self.err(format!(
                "a length of {n} bytes runs past the end of the file ({left} left): truncated?"
            ));
        }
        Ok(n as usize)
    }

    fn line(&mut self) -> Res<&'d str> {
        let rest = &self.data[self.pos..];
        let Some(n) = rest.iter().take(1024).position(|&b| b == b'\n') else {
            return self.err("GLOBAL name without a newline in its first 1024 bytes");
        };
        let s = self.take(n + 1)?;
        match std::str::from_utf8(&s[..n]) {
            Ok(t) => Ok(t),
            Err(_) => self.err("GLOBAL name is not UTF-8"),
        }
    }

    fn push(&mut self, v: Value) -> Res<()> {
        self.pushed += 1;
        if self.pushed > self.limit {
            return self.err(format!(
                "more than {} values for a {}-byte file: not a pickle of arrays",
                self.limit,
                self.data.len()
            ));
        }
        self.stack.push(v);
        Ok(())
    }

    fn new_node(&mut self, n: Node) -> Res<()> {
        self.nodes.push(n);
        let id = self.nodes.len() - 1;
        self.push(Value::Node(id))
    }

    /// Top of the stack, never below the innermost MARK.
    fn pop(&mut self) -> Res<Value> {
        let fence = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= fence {
            return self.err("stack underflow (a corrupt or hand-made pickle)");
        }
        match self.stack.pop() {
            Some(v) => Ok(v),
            None => self.err("stack underflow"),
        }
    }

    fn top(&self) -> Res<&Value> {
        let fence = self.marks.last().copied().unwrap_or(0);
        match self.stack.last() {
            Some(v) if self.stack.len() > fence => Ok(v),
            _ => self.err("stack underflow (a corrupt or hand-made pickle)"),
        }
    }

    fn pop_mark(&mut self) -> Res<Vec<Value>> {
        let Some(m) = self.marks.pop() else {
            return self.err("no MARK before a TUPLE/LIST/DICT/APPENDS/SETITEMS");
        };
        if m > self.stack.len() {
            return self.err("MARK above the stack top");
        }
        Ok(self.stack.split_off(m))
    }

    fn node_mut(&mut self, v: &Value) -> Option<&mut Node> {
        match v {
            Value::Node(id) => self.nodes.get_mut(*id),
            _ => None,
        }
    }

    fn memo_put(&mut self, key: u32) -> Res<()> {
        let v = self.top()?.clone();
        self.pushed += 1;
        if self.pushed > self.limit {
            return self.err(format!("more than {} values and memo entries", self.limit));
        }
        self.memo.insert(key, v);
        Ok(())
    }

    fn memo_get(&mut self, key: u32) -> Res<()> {
        match self.memo.get(&key) {
            Some(v) => {
                let v = v.clone();
                self.push(v)
            }
            None => self.err(format!("memo entry {key} fetched before it was stored")),
        }
    }

    fn run(mut self) -> Res<Document> {
        loop {
            self.at = self.pos;
            if self.pos >= self.data.len() {
                return self.err(if self.data.is_empty() {
                    "the file is empty, not a pickle"
                } else {
                    "the file ends before the pickle's STOP opcode: truncated?"
                });
            }
            let op = self.u8()?;
            match op {
                0x80 => {
                    let p = self.u8()?;
                    if p > 5 {
                        return self.err(format!("pickle protocol {p} is newer than 5"));
                    }
                }
                0x95 => {
                    let n = u64::from_le_bytes(self.uint::<8>()?);
                    self.len_checked(n)?;
                }
                b'.' => {
                    let root = self.pop()?;
                    return Ok(Document {
                        root,
                        nodes: self.nodes,
                    });
                }
                b'(' => {
                    if self.marks.len() >= self.limit {
                        return self.err("too many MARKs");
                    }
                    self.marks.push(self.stack.len());
                }
                b'}' => self.new_node(Node::Dict(Vec::new()))?,
                b']' => self.new_node(Node::List(Vec::new()))?,
                b')' => self.new_node(Node::Tuple(Vec::new()))?,
                b'd' => {
                    let items = self.pop_mark()?;
                    self.new_node(Node::Dict(Vec::new()))?;
                    self.set_items(items)?;
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    self.new_node(Node::List(items))?;
                }
                b't' => {
                    let items = self.pop_mark()?;
                    self.new_node(Node::Tuple(items))?;
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.new_node(Node::Tuple(items))?;
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.set_items(vec![k, v])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    self.set_items(items)?;
                }
                b'a' => {
                    let v = self.pop()?;
                    self.append(vec![v])?;
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    self.append(items)?;
                }
                b'J' => {
                    let v = i32::from_le_bytes(self.uint::<4>()?);
                    self.push(Value::Int(i64::from(v)))?;
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push(Value::Int(i64::from(v)))?;
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.uint::<2>()?);
                    self.push(Value::Int(i64::from(v)))?;
                }
                0x8a => {
                    let n = usize::from(self.u8()?);
                    let b = self.take(n)?;
                    if n > 8 {
                        return self.err(format!("a {n}-byte integer is too large"));
                    }
                    let mut v: i64 = 0;
                    for (i, &byte) in b.iter().enumerate() {
                        v |= i64::from(byte) << (8 * i);
                    }
                    if n > 0 && n < 8 && b[n - 1] & 0x80 != 0 {
                        v -= 1i64 << (8 * n); // two's complement sign
                    }
                    self.push(Value::Int(v))?;
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.uint::<8>()?);
                    self.push(Value::Float(v))?;
                }
                b'N' => self.push(Value::None)?,
                0x88 => self.push(Value::Bool(true))?,
                0x89 => self.push(Value::Bool(false))?,
                b'X' | 0x8c | 0x8d => {
                    let n = match op {
                        b'X' => u64::from(u32::from_le_bytes(self.uint::<4>()?)),
                        0x8c => u64::from(self.u8()?),
                        _ => u64::from_le_bytes(self.uint::<8>()?),
                    };
                    let n = self.len_checked(n)?;
                    let b = self.take(n)?;
                    let Ok(s) = std::str::from_utf8(b) else {
                        return self.err("a string is not valid UTF-8");
                    };
                    self.push(Value::Str(Arc::from(s)))?;
                }
                b'B' | b'C' | 0x8e | 0x96 => {
                    let n = match op {
                        b'B' => u64::from(u32::from_le_bytes(self.uint::<4>()?)),
                        b'C' => u64::from(self.u8()?),
                        _ => u64::from_le_bytes(self.uint::<8>()?),
                    };
                    let len = self.len_checked(n)?;
                    let start = self.pos;
                    self.take(len)?;
                    self.push(Value::Bytes(Buf::Range { start, len }))?;
                }
                b'q' => {
                    let k = self.u8()?;
                    self.memo_put(u32::from(k))?;
                }
                b'r' => {
                    let k = u32::from_le_bytes(self.uint::<4>()?);
                    self.memo_put(k)?;
                }
                0x94 => {
                    let Ok(k) = u32::try_from(self.memo.len()) else {
                        return self.err("memo full");
                    };
                    self.memo_put(k)?;
                }
                b'h' => {
                    let k = self.u8()?;
                    self.memo_get(u32::from(k))?;
                }
                b'j' => {
                    let k = u32::from_le_bytes(self.uint::<4>()?);
                    self.memo_get(k)?;
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    let g = self.global(module, name)?;
                    self.push(g)?;
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (Value::Str(module), Value::Str(name)) = (module, name) else {
                        return self.err("STACK_GLOBAL needs two strings");
                    };
                    let g = self.global(&module, &name)?;
                    self.push(g)?;
                }
                b'R' => {
                    let args = self.pop()?;
                    let f = self.pop()?;
                    let Value::Global(f) = f else {
                        return self.err("REDUCE of something that is not a callable");
                    };
                    let args = match self.node_mut(&args) {
                        Some(Node::Tuple(a)) => a.clone(),
                        _ => return self.err("REDUCE arguments are not a tuple"),
                    };
                    let v = self.call(f, &args)?;
                    self.push(v)?;
                }
                b'b' => {
                    let state = self.pop()?;
                    self.build(state)?;
                }
                _ => return self.err(unsupported(op)),
            }
        }
    }

    fn global(&self, module: &str, name: &str) -> Res<Value> {
        match Callable::resolve(module, name) {
            Some(c) => Ok(Value::Global(c)),
            None => self.err(format!(
                "global {module}.{name} is not allowed: this reader only rebuilds numpy \
                 arrays, dicts, lists and scalars"
            )),
        }
    }

    fn set_items(&mut self, items: Vec<Value>) -> Res<()> {
        if !items.len().is_multiple_of(2) {
            return self.err("SETITEMS with an odd number of values");
        }
        let target = self.top()?.clone();
        let keys: Vec<Option<Key>> = items.chunks(2).map(|kv| Key::of(&kv[0])).collect();
        let Some(Node::Dict(entries)) = self.node_mut(&target) else {
            return self.err("SETITEM(S) on something that is not a dict");
        };
        let mut it = items.into_iter();
        for key in keys {
            let (Some(k), Some(v)) = (it.next(), it.next()) else {
                break;
            };
            // A repeated key replaces the value in place; the lookup is linear, so only
            // small dicts (an item's few keys) pay for it; large dicts go through
            // `Document` consumers that check uniqueness themselves.
            let existing = match &key {
                Some(key) if entries.len() <= 64 => entries
                    .iter()
                    .position(|(ek, _)| Key::of(ek).as_ref() == Some(key)),
                _ => None,
            };
            match existing {
                Some(i) => entries[i].1 = v,
                None => entries.push((k, v)),
            }
        }
        Ok(())
    }

    fn append(&mut self, items: Vec<Value>) -> Res<()> {
        let target = self.top()?.clone();
        match self.node_mut(&target) {
            Some(Node::List(list)) => {
                list.extend(items);
                Ok(())
            }
            _ => self.err("APPEND(S) to something that is not a list"),
        }
    }

    fn tuple(&self, v: &Value) -> Option<&Vec<Value>> {
        match v {
            Value::Node(id) => match self.nodes.get(*id) {
                Some(Node::Tuple(t)) => Some(t),
                _ => None,
            },
            _ => None,
        }
    }

    fn dtype_of(&self, v: &Value) -> Res<Dtype> {
        match v {
            Value::Node(id) => match self.nodes.get(*id) {
                Some(Node::Dtype(d)) => Ok(*d),
                _ => self.err("expected a numpy dtype"),
            },
            _ => self.err("expected a numpy dtype"),
        }
    }

    fn shape_of(&self, v: &Value) -> Res<Vec<usize>> {
        let Some(t) = self.tuple(v) else {
            return self.err("array shape is not a tuple");
        };
        t.iter()
            .map(|d| match d {
                Value::Int(n) if *n >= 0 => Ok(*n as usize),
                _ => self.err("array shape holds something that is not a size"),
            })
            .collect()
    }

    fn call(&mut self, f: Callable, args: &[Value]) -> Res<Value> {
        match f {
            Callable::Reconstruct => {
                if !matches!(args.first(), Some(Value::Global(Callable::Ndarray))) {
                    return self.err("_reconstruct of something other than numpy.ndarray");
                }
                self.nodes.push(Node::EmptyArray);
                Ok(Value::Node(self.nodes.len() - 1))
            }
            Callable::Dtype => {
                let Some(Value::Str(s)) = args.first() else {
                    return self.err("numpy.dtype without a type string");
                };
                match Dtype::parse(s) {
                    Some(d) => {
                        self.nodes.push(Node::Dtype(d));
                        Ok(Value::Node(self.nodes.len() - 1))
                    }
                    None if s.trim_start_matches(['|', '<', '>', '=']).starts_with('O') => {
                        self.err("object arrays are refused (they would hold arbitrary objects)")
                    }
                    None => self.err(format!(
                        "dtype `{s}` is not supported (bool, integers, float32 and float64 are)"
                    )),
                }
            }
            Callable::FromBuffer => {
                let [buf, dtype, shape, order] = args else {
                    return self.err("_frombuffer needs (buffer, dtype, shape, order)");
                };
                let Value::Bytes(buf) = buf else {
                    return self.err(
                        "_frombuffer without in-band bytes (out-of-band buffers are not read)",
                    );
                };
                let dtype = self.dtype_of(dtype)?;
                let shape = self.shape_of(shape)?;
                let fortran = match order {
                    Value::Str(o) if &**o == "C" => false,
                    Value::Str(o) if &**o == "F" => true,
                    _ => return self.err("_frombuffer order is neither 'C' nor 'F'"),
                };
                let a = match Array::new(shape, dtype, fortran, buf.clone()) {
                    Ok(a) => a,
                    Err(e) => return self.err(e),
                };
                self.nodes.push(Node::Array(a));
                Ok(Value::Node(self.nodes.len() - 1))
            }
            Callable::CodecsEncode => {
                let [Value::Str(s), Value::Str(enc)] = args else {
                    return self.err("_codecs.encode needs (str, encoding)");
                };
                if !matches!(&**enc, "latin1" | "latin-1" | "iso-8859-1") {
                    return self.err(format!("_codecs.encode to `{enc}` (only latin1 is read)"));
                }
                self.owned_bytes = self.owned_bytes.saturating_add(s.len());
                if self.owned_bytes > self.data.len() {
                    return self.err("more decoded bytes than the file holds");
                }
                let mut out = Vec::with_capacity(s.len());
                for c in s.chars() {
                    match u8::try_from(u32::from(c)) {
                        Ok(b) => out.push(b),
                        Err(_) => return self.err("latin1 string with a character above 255"),
                    }
                }
                Ok(Value::Bytes(Buf::Owned(Arc::from(out))))
            }
            Callable::Scalar => {
                let [dtype, Value::Bytes(data)] = args else {
                    return self.err("numpy scalar needs (dtype, bytes)");
                };
                let dtype = self.dtype_of(dtype)?;
                if data.len() != dtype.itemsize() {
                    return self.err("numpy scalar bytes do not match its dtype");
                }
                self.nodes.push(Node::Scalar {
                    dtype,
                    data: data.clone(),
                });
                Ok(Value::Node(self.nodes.len() - 1))
            }
            Callable::Ndarray => self.err("numpy.ndarray called directly (not via _reconstruct)"),
        }
    }

    fn build(&mut self, state: Value) -> Res<()> {
        let target = self.top()?.clone();
        let Value::Node(id) = target else {
            return self.err("BUILD on something that is not a numpy array or dtype");
        };
        let Some(state) = self.tuple(&state).cloned() else {
            return self.err("BUILD state is not a tuple");
        };
        match self.nodes.get(id) {
            Some(Node::Dtype(d)) => {
                let mut d = *d;
                // (version, byteorder, subarray, names, fields, elsize, alignment, flags[, metadata])
                let (Some(Value::Int(3 | 4)), Some(Value::Str(order))) =
                    (state.first(), state.get(1))
                else {
                    return self.err("dtype state is not (3 or 4, byteorder, ...)");
                };
                if state
                    .get(2..5)
                    .is_some_and(|s| s.iter().any(|v| *v != Value::None))
                {
                    return self.err("structured or sub-array dtypes are not supported");
                }
                d.big_endian = match &**order {
                    ">" => true,
                    "<" | "|" | "=" => false,
                    o => return self.err(format!("unknown dtype byte order `{o}`")),
                };
                self.nodes[id] = Node::Dtype(d);
                Ok(())
            }
            Some(Node::EmptyArray) => {
                // (version, shape, dtype, is_fortran, rawdata), or without the version.
                let s = match state.len() {
                    5 => &state[1..],
                    4 => &state[..],
                    n => return self.err(format!("ndarray state has {n} fields, expected 5")),
                };
                let shape = self.shape_of(&s[0])?;
                let dtype = self.dtype_of(&s[1])?;
                let Value::Bool(fortran) = s[2] else {
                    return self.err("ndarray state: is_fortran is not a bool");
                };
                let Value::Bytes(data) = &s[3] else {
                    return self
                        .err("ndarray state: the data are not bytes (object arrays are refused)");
                };
                match Array::new(shape, dtype, fortran, data.clone()) {
                    Ok(a) => {
                        self.nodes[id] = Node::Array(a);
                        Ok(())
                    }
                    Err(e) => self.err(e),
                }
            }
            _ => self.err("BUILD on something that is not a numpy array or dtype"),
        }
    }
}

/// Identity of a dict key for Python's replace-on-repeat semantics (strings, bytes and
/// integers; `True == 1` as in Python). Other keys (bytes, floats, tuples) never compare
/// equal here, which real pickles of distinct-keyed dicts never notice.
#[derive(Debug, PartialEq)]
enum Key {
    Int(i64),
    Str(Arc<str>),
    None,
}

impl Key {
    fn of(v: &Value) -> Option<Key> {
        match v {
            Value::Int(i) => Some(Key::Int(*i)),
            Value::Bool(b) => Some(Key::Int(i64::from(*b))),
            Value::Str(s) => Some(Key::Str(s.clone())),
            Value::None => Some(Key::None),
            _ => None,
        }
    }
}

/// The message for an opcode this reader does not interpret.
fn unsupported(op: u8) -> String {
    let name = match op {
        0x81 => "NEWOBJ",
        0x92 => "NEWOBJ_EX",
        b'i' => "INST",
        b'o' => "OBJ",
        0x82..=0x84 => "EXT1/2/4",
        b'P' | b'Q' => "PERSID/BINPERSID",
        0x97 | 0x98 => "NEXT_BUFFER/READONLY_BUFFER (out-of-band buffers)",
        b'S' | b'T' | b'U' | b'V' | b'I' | b'L' | b'F' => "a protocol 0/1 text opcode",
        b'0' | b'1' | b'2' => "POP/POP_MARK/DUP",
        _ => "unknown",
    };
    format!(
        "opcode 0x{op:02x} ({name}) is not read: this reader only rebuilds numpy arrays, dicts, \
         lists and scalars from protocol 2-5 pickles"
    )
}

#[cfg(test)]
mod tests;
