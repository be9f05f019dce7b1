//! Every file format dpersona reads or writes, in one place.
//!
//! Each format is an Arrow schema plus a Rust record type, and every Parquet file carries
//! its schema name and version in its key-value metadata (see [`meta`]), so a reader can
//! say clearly when it was handed the wrong file or one written by a newer dpersona.
//!
//! Modules:
//! - [`meta`]: schema identity (name + version) and its validation.
//! - [`atomic`]: atomic replacement of any file (temp + fsync + rename).
//! - [`parquet_io`]: atomic Parquet writes (temp file + rename) and checked opens.
//! - [`packed_bits`]: the bit-packing of the shards' masks (numpy `packbits` order).
//! - [`slice`]: slice shard rows, the output of ingest and the input of training.
//! - [`manifest`]: the dataset manifest (header, shard list, one row per study).
//! - [`records`]: the serde-based read/write of the small tables below.
//! - [`rejects`]: studies that ingest could not read, with the reason.
//! - [`metrics`]: tidy metric frames and their summaries, the output of eval.
//! - [`diagnostics`]: latent-space diagnostics of a trained run (`dpersona diagnose`).
//! - [`train_log`]: the machine-readable training log.
//! - [`fused`]: fused training labels (MV, STAPLE), cached next to the shards.
//! - [`host_memory`]: glibc kept from returning freed memory to the kernel (ingest and
//!   training both reuse the same buffers over and over; shared here, the crate every stage
//!   depends on).
//! - [`hashing`]: content hashes of files and byte buffers (provenance, checksums).
pub mod atomic;
pub mod diagnostics;
pub mod error;
pub mod fused;
pub mod hashing;
pub mod host_memory;
pub mod manifest;
pub mod meta;
pub mod metrics;
pub mod packed_bits;
pub mod parquet_io;
pub mod records;
pub mod rejects;
pub mod slice;
pub mod train_log;

pub use error::SchemaError;
pub use meta::SchemaId;
pub use records::{read_table, write_table, Table};
