//! MMIS-2024 Task 1 (NPC-170 GTVp, four raters) HDF5 cases into slice rows.
//!
//! - [`layout`]: the release's folders (3D `Sample_<n>.h5`, the official loader's 2D
//!   `Sample_<n>_slice_<k>.h5`) and what is left out.
//! - [`h5`]: the thin adapter over the pure-Rust `hdf5-reader`.
//! - [`format`]: [`MmisFormat`], the [`crate::study::SourceFormat`] of this layout.
pub mod format;
pub mod h5;
pub mod layout;

pub use format::{MmisFormat, MmisParams, Normalize};
