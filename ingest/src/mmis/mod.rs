//! MMIS-2024 Task 1 (NPC-170 GTVp, four raters) HDF5 cases into slice rows.
//!
//! - [`h5`]: the thin adapter over the pure-Rust `hdf5-reader`.
pub mod h5;
