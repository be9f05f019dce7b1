//! Ingest: multi-rater studies (LIDC DICOM + XML, NIfTI) into Parquet slice shards.
//!
//! Modules:
//! - [`study`]: the contract between a source format and the pipeline.
//! - [`pipeline`]: any source format into Parquet slice shards, rejects and a manifest (resumable).
//! - [`cli`]: the `dpersona synth` and `dpersona ingest` commands.
//! - [`lidc`]: LIDC-IDRI CT series + XML reads (DICOM reader, pylidc-exact masks and nodules).
pub mod study;
pub mod lidc;
pub mod cli;
pub mod pipeline;
