//! Ingest: multi-rater studies (LIDC DICOM + XML, NIfTI) into Parquet slice shards.
//!
//! Modules:
//! - [`study`]: the contract between a source format and the pipeline.
//! - [`pipeline`]: any source format into Parquet slice shards, rejects and a manifest (resumable).
//! - [`lidc`]: LIDC-IDRI CT series + XML reads (DICOM reader, pylidc-exact masks and nodules).
//! - [`cli`]: the `dpersona synth` and `dpersona ingest` commands.
//! - [`synth`]: synthetic multi-rater studies (phantom anatomy, NIfTI and LIDC writers).
//! - [`nifti`]: NIfTI-1 multi-rater datasets (NPC-style layout) into slice rows.
//! - [`pickle`]: a restricted unpickler (numpy arrays, dicts, lists; never executes).
//! - [`lidc_pickle`]: preprocessed LIDC pickles with the authors' exact folds.
pub mod cli;
pub mod lidc;
pub mod lidc_pickle;
pub mod nifti;
pub mod pickle;
pub mod pipeline;
pub mod study;
pub mod synth;
