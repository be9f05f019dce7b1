//! Synthetic multi-rater studies written in the real on-disk formats, for tests and demos.
//!
//! - [`phantom`]: the shared anatomy and rater model (lesions, vessels, four rater styles).
//! - [`nifti`]: phantoms as an NPC-style NIfTI dataset (3 MR-like channels, one label per rater).
//! - [`lidc`]: phantoms as LIDC-IDRI CT DICOM series plus LIDC XML reads.
pub mod lidc;
pub mod nifti;
pub mod phantom;
