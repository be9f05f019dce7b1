//! Ingest: multi-rater studies (LIDC DICOM + XML, NIfTI) into Parquet slice shards.
//!
//! Modules:
//! - [`study`]: the contract between a source format and the pipeline.
pub mod study;
pub mod cli;
