//! The numpy objects a pickle may rebuild: dtypes, arrays (zero-copy views of the pickle's
//! bytes) and scalars, and the few callables numpy's `__reduce__` names.
//!
//! numpy pickles an array one of two ways: protocols 2-4 as
//! `_reconstruct(ndarray, (0,), b'b')` followed by `BUILD (version, shape, dtype,
//! is_fortran, rawdata)`, protocol 5 as `_frombuffer(buffer, dtype, shape, order)`. A
//! dtype is `dtype('f4', False, True)` followed by `BUILD (3, '<', None, None, None, -1,
//! -1, 0)`. numpy 2 writes the module `numpy._core`, numpy 1 wrote `numpy.core`; both
//! are accepted.
use std::sync::Arc;

/// A callable the reader knows how to interpret. Nothing else is ever resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Callable {
    /// `numpy.(_)core.multiarray._reconstruct`: an empty array filled by `BUILD`.
    Reconstruct,
    /// `numpy.ndarray`: only as `_reconstruct`'s first argument.
    Ndarray,
    /// `numpy.dtype`.
    Dtype,
    /// `numpy.(_)core.numeric._frombuffer` (protocol 5, in-band buffers).
    FromBuffer,
    /// `_codecs.encode`: how protocol 2 writes `bytes` (`encode(str, 'latin1')`).
    CodecsEncode,
    /// `numpy.(_)core.multiarray.scalar`: a numpy scalar from a dtype and its bytes.
    Scalar,
}

impl Callable {
    /// The callable named `module.name`, if it is one of the allowed few.
    pub fn resolve(module: &str, name: &str) -> Option<Callable> {
        let core = matches!(module, "numpy.core.multiarray" | "numpy._core.multiarray");
        let numeric = matches!(module, "numpy.core.numeric" | "numpy._core.numeric");
        match (module, name) {
            (_, "_reconstruct") if core => Some(Callable::Reconstruct),
            (_, "scalar") if core => Some(Callable::Scalar),
            (_, "_frombuffer") if numeric => Some(Callable::FromBuffer),
            ("numpy", "ndarray") => Some(Callable::Ndarray),
            ("numpy", "dtype") => Some(Callable::Dtype),
            ("_codecs", "encode") => Some(Callable::CodecsEncode),
            _ => None,
        }
    }
}

/// Element types an array may hold (object and string dtypes are refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bool,
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F32,
    F64,
}

/// A numpy dtype: element kind and byte order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dtype {
    pub kind: Kind,
    /// Big-endian (`>`) storage; single-byte kinds ignore it.
    pub big_endian: bool,
}

impl Dtype {
    /// Parses numpy's type string (`u1`, `<f4`, `b1`, ...); `None` for anything else.
    pub fn parse(s: &str) -> Option<Dtype> {
        let (big_endian, code) = match s.as_bytes().first() {
            Some(b'>') => (true, &s[1..]),
            Some(b'<' | b'|' | b'=') => (false, &s[1..]),
            _ => (false, s),
        };
        let kind = match code {
            "b1" | "?" => Kind::Bool,
            "u1" => Kind::U8,
            "i1" => Kind::I8,
            "u2" => Kind::U16,
            "i2" => Kind::I16,
            "u4" => Kind::U32,
            "i4" => Kind::I32,
            "u8" => Kind::U64,
            "i8" => Kind::I64,
            "f4" => Kind::F32,
            "f8" => Kind::F64,
            _ => return None,
        };
        Some(Dtype { kind, big_endian })
    }

    pub fn itemsize(&self) -> usize {
        match self.kind {
            Kind::Bool | Kind::U8 | Kind::I8 => 1,
            Kind::U16 | Kind::I16 => 2,
            Kind::U32 | Kind::I32 | Kind::F32 => 4,
            Kind::U64 | Kind::I64 | Kind::F64 => 8,
        }
    }

    /// numpy's name of the dtype, for messages (`uint8`, `>f4`, ...).
    pub fn name(&self) -> String {
        let base = match self.kind {
            Kind::Bool => "bool",
            Kind::U8 => "uint8",
            Kind::I8 => "int8",
            Kind::U16 => "uint16",
            Kind::I16 => "int16",
            Kind::U32 => "uint32",
            Kind::I32 => "int32",
            Kind::U64 => "uint64",
            Kind::I64 => "int64",
            Kind::F32 => "float32",
            Kind::F64 => "float64",
        };
        if self.big_endian && self.itemsize() > 1 {
            format!("{base} (big-endian)")
        } else {
            base.to_string()
        }
    }

    pub fn is_float(&self) -> bool {
        matches!(self.kind, Kind::F32 | Kind::F64)
    }

    /// One element from exactly `itemsize()` bytes, as f64 (exact for every kind but
    /// 64-bit integers beyond 2^53, which no image or mask holds).
    fn decode(&self, b: &[u8]) -> Option<f64> {
        macro_rules! num {
            ($t:ty, $n:expr) => {{
                let a: [u8; $n] = b.try_into().ok()?;
                if self.big_endian {
                    <$t>::from_be_bytes(a)
                } else {
                    <$t>::from_le_bytes(a)
                }
            }};
        }
        Some(match self.kind {
            Kind::Bool => f64::from(u8::from(*b.first()? != 0)),
            Kind::U8 => f64::from(*b.first()?),
            Kind::I8 => f64::from(i8::from_ne_bytes([*b.first()?])),
            Kind::U16 => f64::from(num!(u16, 2)),
            Kind::I16 => f64::from(num!(i16, 2)),
            Kind::U32 => f64::from(num!(u32, 4)),
            Kind::I32 => f64::from(num!(i32, 4)),
            Kind::U64 => num!(u64, 8) as f64,
            Kind::I64 => num!(i64, 8) as f64,
            Kind::F32 => f64::from(num!(f32, 4)),
            Kind::F64 => num!(f64, 8),
        })
    }
}

/// Bytes of a `bytes`/`bytearray` value: a range of the pickle itself (zero-copy, the
/// common case) or bytes the reader had to make (protocol 2's latin-1 strings).
#[derive(Debug, Clone, PartialEq)]
pub enum Buf {
    /// `data[start..start + len]` of the buffer that was parsed.
    Range {
        start: usize,
        len: usize,
    },
    Owned(Arc<[u8]>),
}

impl Buf {
    pub fn len(&self) -> usize {
        match self {
            Buf::Range { len, .. } => *len,
            Buf::Owned(b) => b.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes, given the buffer that was parsed (`None` for another, shorter one).
    pub fn bytes<'d>(&'d self, data: &'d [u8]) -> Option<&'d [u8]> {
        match self {
            Buf::Range { start, len } => data.get(*start..start.checked_add(*len)?),
            Buf::Owned(b) => Some(b),
        }
    }
}

/// A numeric numpy array whose elements are still the pickle's bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    pub shape: Vec<usize>,
    pub dtype: Dtype,
    /// Elements stored in Fortran (column-major) order.
    pub fortran: bool,
    /// Exactly `shape.product() * itemsize` bytes.
    pub data: Buf,
}

impl Array {
    /// Checks that `data` holds exactly the elements `shape` and `dtype` need.
    pub fn new(shape: Vec<usize>, dtype: Dtype, fortran: bool, data: Buf) -> Result<Array, String> {
        let n = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .and_then(|n| n.checked_mul(dtype.itemsize()))
            .ok_or_else(|| format!("array shape {shape:?} overflows"))?;
        if n != data.len() {
            return Err(format!(
                "array of shape {shape:?} and dtype {} needs {n} bytes, the pickle gives {}",
                dtype.name(),
                data.len()
            ));
        }
        Ok(Array {
            shape,
            dtype,
            fortran,
            data,
        })
    }

    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element bytes when they already lie in C (row-major) order: a C-ordered array,
    /// or a Fortran-ordered one with at most one axis longer than 1. Lets readers of the
    /// common case (uint8 images and 0/1 masks straight from numpy) skip the element-wise
    /// decode of [`Array::to_f64_c_order`]. `None` if `data` is not the parsed buffer.
    pub fn c_order_bytes<'d>(&'d self, data: &'d [u8]) -> Option<&'d [u8]> {
        let long_axes = self.shape.iter().filter(|&&d| d > 1).count();
        if self.fortran && long_axes > 1 {
            return None;
        }
        self.data.bytes(data)
    }

    /// Every element in C (row-major) order as f64, decoded from `data` (the buffer that
    /// was parsed). `None` if `data` is not that buffer.
    pub fn to_f64_c_order(&self, data: &[u8]) -> Option<Vec<f64>> {
        let bytes = self.data.bytes(data)?;
        let size = self.dtype.itemsize();
        let n = self.len();
        let mut out = Vec::with_capacity(n);
        if !self.fortran || self.shape.len() < 2 {
            for chunk in bytes.chunks_exact(size) {
                out.push(self.dtype.decode(chunk)?);
            }
        } else {
            // Fortran order: the first index varies fastest in memory.
            let nd = self.shape.len();
            let mut stride = vec![1usize; nd];
            for d in 1..nd {
                stride[d] = stride[d - 1] * self.shape[d - 1];
            }
            let mut idx = vec![0usize; nd];
            for _ in 0..n {
                let off: usize = idx.iter().zip(&stride).map(|(i, s)| i * s).sum();
                let at = off * size;
                out.push(self.dtype.decode(bytes.get(at..at + size)?)?);
                for d in (0..nd).rev() {
                    idx[d] += 1;
                    if idx[d] < self.shape[d] {
                        break;
                    }
                    idx[d] = 0;
                }
            }
        }
        (out.len() == n).then_some(out)
    }
}
