//! LIDC-IDRI: CT series (DICOM) with up to four readers' nodule outlines (XML).
//!
//! - [`claimed_lengths`]: refusing DICOM elements that claim more bytes than the file has,
//!   before dicom-object allocates the claim.
//! - [`pixel_claims`]: refusing compressed pixel data whose header claims a decoded size
//!   the fragments present cannot hold, before the decoder allocates the claim.
//! - [`dicom_series`]: reading a CT series in z order (HU), and any single DICOM image.
//! - [`xml`]: parsing (and writing) LIDC read messages.
//! - [`contour`]: rasterising contours exactly as pylidc's `boolean_mask`.
//! - [`cluster`]: grouping reads into nodules with pylidc's `cluster_annotations` rule.
//! - [`format`]: [`LidcFormat`], the [`crate::study::SourceFormat`] for LIDC.
pub mod claimed_lengths;
pub mod cluster;
pub mod contour;
pub mod dicom_series;
pub mod format;
pub mod pixel_claims;
pub mod rle_check;
pub mod xml;

pub use dicom_series::{read_dicom_pixels, read_series, CtSeries, DicomPixels};
pub use format::{LidcFormat, LidcParams};
