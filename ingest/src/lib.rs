//! Ingest: multi-rater studies (LIDC DICOM + XML, NIfTI) into Parquet slice shards.
//!
//! Modules:
//! - [`study`]: the contract between a source format and the pipeline.
//! - [`lidc`]: LIDC-IDRI CT series + XML reads (DICOM reader, pylidc-exact masks and nodules).
pub mod study;
pub mod lidc;
pub mod cli;
