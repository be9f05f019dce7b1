//! NIfTI-1 multi-rater datasets (NPC / MMIS-style, nnU-Net-like layout) into slice rows.
//!
//! - [`dataset_json`]: `RAW/dataset.json` (channels, raters, file ending, rater order).
//! - [`layout`]: which files make up which case; a notice for every entry that makes up none.
//! - [`volume`]: one NIfTI-1 file → f64 voxels (scaled like nibabel `get_fdata()`) + affine.
//! - [`slicing`]: axial slices (row = y, col = x), nearest resampling, crops.
//! - [`format`]: [`NiftiFormat`], the [`crate::study::SourceFormat`] of this layout.
pub mod dataset_json;
pub mod format;
pub mod layout;
pub mod slicing;
pub mod volume;

pub use format::{CropMode, NiftiFormat, NiftiParams, SliceGrid};
