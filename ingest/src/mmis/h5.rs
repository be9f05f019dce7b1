//! A thin adapter over `hdf5-reader` (pure Rust, read-only): one MMIS `.h5` file's
//! datasets as `f64` (images, voxel spacing) or `u8` (labels), with errors that name the
//! key. README.md ("Why hdf5-reader reads HDF5") says why this crate and not the C library.
//!
//! The file is read into memory once ([`H5File::read`]): the same bytes are hashed for the
//! manifest and parsed, and nothing is memory-mapped (a file truncated while mapped would
//! raise SIGBUS instead of an error).
//!
//! hdf5-reader panics on some malformed object headers (found by the fuzz target
//! `mmis_h5`: a v1/v2 contiguous layout message whose dimensions multiply past `u64`
//! overflows in `messages::layout::parse_v1_v2`, reached from listing the root group).
//! Those headers are parsed lazily deep inside the crate, so we cannot check them first
//! without writing our own HDF5 parser; instead every call into the crate runs under
//! [`contain`], which turns a panic into an error (the caller adds the file's path).
//!
//! Memory: a dataset's shape is a claim of the file, and hdf5-reader allocates (and fills)
//! the whole claimed array before it looks at what is stored; h5py writes a 1.4 KB file
//! for an unwritten 1000^3 float64 dataset, whose read would take 8 GB. So before any
//! read, [`H5File::check_claim`] compares the claim with what the file can hold: an
//! uncompressed dataset's bytes must be in the file, a chunked one (the only layout that
//! can be compressed) can decode to at most [`DEFLATE_MAX_RATIO`] times the file's length.
//! The same bound goes to hdf5-reader as its own read limit, and its chunk cache is off
//! (each dataset is read once, so a cache would only hold memory).
use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use hdf5_reader::{Datatype, H5Type, Hdf5File, OpenOptions};

/// The most a DEFLATE stream can expand (zlib's documented limit: 1032:1, reached by runs
/// of 258-byte matches). gzip is the only compression h5py offers besides LZF and szip
/// and the one the MMIS release uses; shuffle and Fletcher-32 do not expand. A chunked
/// dataset claiming more than this times the file's length cannot be stored in it (a
/// file of unwritten chunks read as fill values could, but holds no case).
pub const DEFLATE_MAX_RATIO: u64 = 1032;

/// An opened HDF5 file and the SHA-256 of its bytes.
pub struct H5File {
    file: Hdf5File,
    /// Length of the file in bytes: what every dataset's claimed size is checked against.
    len: u64,
    pub sha256: String,
}

/// One dataset read whole: its shape and its values in C order (last axis fastest).
#[derive(Debug, Clone, PartialEq)]
pub struct Array<T> {
    pub shape: Vec<usize>,
    pub data: Vec<T>,
}

impl H5File {
    /// Reads and parses `path`; the error says what is wrong with the file (not HDF5,
    /// truncated, unreadable).
    pub fn read(path: &Path) -> Result<Self, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read the file: {e}"))?;
        Self::from_bytes(bytes)
    }

    /// Parses a whole file already in memory ([`H5File::read`] without the file system:
    /// the fuzz target `mmis_h5` feeds arbitrary bytes here). Errors name no path; the
    /// caller adds it.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, String> {
        let sha256 = schemas::hashing::sha256_bytes(&bytes);
        let len = bytes.len() as u64;
        let most = usize::try_from(len.saturating_mul(DEFLATE_MAX_RATIO)).unwrap_or(usize::MAX);
        let options = OpenOptions::default()
            .with_chunk_cache_bytes(0)
            .with_max_read_bytes(most)
            .with_max_chunk_bytes(most.min(hdf5_reader::DEFAULT_MAX_CHUNK_BYTES));
        let file = contain("parsing the superblock", || {
            Hdf5File::from_vec_with_options(bytes, options)
                .map_err(|e| format!("not a readable HDF5 file ({e})"))
        })?;
        Ok(H5File { file, len, sha256 })
    }

    /// Refuses dataset `ds` (key `key`) when its claimed size (shape times element size)
    /// is more than the file can hold: the file's length for an uncompressed (contiguous
    /// or compact) dataset, [`DEFLATE_MAX_RATIO`] times it for a chunked one. Called
    /// before any read, because hdf5-reader allocates the claim first.
    fn check_claim(&self, ds: &hdf5_reader::Dataset, key: &str) -> Result<(), String> {
        let elem = ds
            .raw_element_size()
            .map_err(|e| format!("`{key}`: unreadable datatype ({e})"))?;
        let shape = ds.shape();
        let claim = shape
            .iter()
            .try_fold(elem as u128, |n, &d| n.checked_mul(u128::from(d)))
            .unwrap_or(u128::MAX);
        let dims = shape
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(" x ");
        let (most, stored) = match ds.chunks() {
            None => (u128::from(self.len), "uncompressed"),
            Some(_) => (
                u128::from(self.len) * u128::from(DEFLATE_MAX_RATIO),
                "chunked (compressed at most 1032:1, DEFLATE's limit)",
            ),
        };
        if claim > most {
            return Err(format!(
                "`{key}`: the dataset claims {dims} values of {elem} bytes ({claim} bytes, \
                 stored {stored}), more than the file's {} bytes can hold (corrupt file)",
                self.len
            ));
        }
        Ok(())
    }

    /// Whether the root group has a member `key`. An unreadable root group is an error.
    pub fn has(&self, key: &str) -> Result<bool, String> {
        contain("listing the root group", || self.has_unguarded(key))
    }

    fn has_unguarded(&self, key: &str) -> Result<bool, String> {
        let root = self
            .file
            .root_group()
            .map_err(|e| format!("cannot read the root group ({e})"))?;
        let (groups, datasets) = root
            .member_names()
            .map_err(|e| format!("cannot list the root group ({e})"))?;
        Ok(datasets.iter().chain(&groups).any(|n| n == key))
    }

    /// Dataset `key` as `f64`, from any integer or floating-point type of up to 8 bytes,
    /// either byte order (64-bit integers beyond 2^53 lose precision, as in numpy's
    /// `astype(float64)`).
    pub fn read_f64(&self, key: &str) -> Result<Array<f64>, String> {
        contain(&format!("reading `{key}`"), || self.read_f64_unguarded(key))
    }

    fn read_f64_unguarded(&self, key: &str) -> Result<Array<f64>, String> {
        let ds = self.dataset(key)?;
        self.check_claim(&ds, key)?;
        let shape = ds.shape().iter().map(|&n| n as usize).collect();
        let data = match ds.dtype().clone() {
            Datatype::FloatingPoint { size: 4, .. } => widen::<f32>(&ds, key)?,
            Datatype::FloatingPoint { size: 8, .. } => widen::<f64>(&ds, key)?,
            Datatype::FixedPoint { size, signed, .. } => match (size, signed) {
                (1, false) => widen::<u8>(&ds, key)?,
                (1, true) => widen::<i8>(&ds, key)?,
                (2, false) => widen::<u16>(&ds, key)?,
                (2, true) => widen::<i16>(&ds, key)?,
                (4, false) => widen::<u32>(&ds, key)?,
                (4, true) => widen::<i32>(&ds, key)?,
                (8, false) => read::<u64>(&ds, key)?
                    .into_iter()
                    .map(|v| v as f64)
                    .collect(),
                (8, true) => read::<i64>(&ds, key)?
                    .into_iter()
                    .map(|v| v as f64)
                    .collect(),
                _ => return Err(format!("`{key}`: unsupported integer size {size} bytes")),
            },
            other => return Err(format!("`{key}`: not a numeric dataset ({other:?})")),
        };
        Ok(Array { shape, data })
    }

    fn dataset(&self, key: &str) -> Result<hdf5_reader::Dataset, String> {
        if !self.has(key)? {
            return Err(format!("no dataset `{key}`"));
        }
        self.file
            .dataset(key)
            .map_err(|e| format!("`{key}`: cannot open the dataset ({e})"))
    }
}

thread_local! {
    /// How many [`contain`] calls are running on this thread (they nest: `read_f64` calls
    /// `has`).
    static CONTAINING: Cell<u32> = const { Cell::new(0) };
}

/// Whether this thread is inside [`contain`], so that a panic hook may let the panic
/// unwind to it: the fuzz target's libFuzzer hook aborts on every panic, caught or not,
/// and wraps itself to skip the panics this adapter turns into errors.
pub fn panic_is_contained() -> bool {
    CONTAINING.with(|c| c.get() > 0)
}

/// Runs `f` (a call into hdf5-reader), turning a panic into an error that says what was
/// being done. The default panic hook still prints the panic message to stderr.
fn contain<R>(doing: &str, f: impl FnOnce() -> Result<R, String>) -> Result<R, String> {
    CONTAINING.with(|c| c.set(c.get() + 1));
    let result = catch_unwind(AssertUnwindSafe(f));
    CONTAINING.with(|c| c.set(c.get() - 1));
    result.unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".into());
        Err(format!(
            "malformed HDF5 file: hdf5-reader panicked while {doing} ({why})"
        ))
    })
}

fn read<T: H5Type + Clone>(ds: &hdf5_reader::Dataset, key: &str) -> Result<Vec<T>, String> {
    let a = ds
        .read_array::<T>()
        .map_err(|e| format!("`{key}`: cannot read the values ({e})"))?;
    // C order (logical order): the raw vector only when it already is that order.
    Ok(if a.is_standard_layout() {
        a.into_raw_vec_and_offset().0
    } else {
        a.iter().cloned().collect()
    })
}

fn widen<T: H5Type + Clone + Into<f64>>(
    ds: &hdf5_reader::Dataset,
    key: &str,
) -> Result<Vec<f64>, String> {
    Ok(read::<T>(ds, key)?.into_iter().map(Into::into).collect())
}
