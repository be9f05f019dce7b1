//! The contract between a source format (LIDC, NIfTI) and the ingest pipeline.
//!
//! A format finds its studies in a raw folder ([`SourceFormat::discover`]) and turns one
//! study into slice rows ([`SourceFormat::load`]). The pipeline (`pipeline.rs`) runs
//! `load` on many studies in parallel, writes shards, records rejects and resumes; it
//! knows nothing about DICOM or NIfTI.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use schemas::manifest::{RaterOrder, SourceKind};
use schemas::slice::SliceRecord;

/// One study found in the raw folder, not yet read.
#[derive(Debug, Clone, PartialEq)]
pub struct StudyInput {
    /// Unique within the dataset (LIDC: SeriesInstanceUID; NIfTI: case id).
    pub study_id: String,
    pub patient_id: String,
    /// Folder or main file of the study, relative to the raw folder (for the manifest).
    pub source_path: String,
    /// Every file the study is made of (absolute or cwd-relative), for hashing and errors.
    pub files: Vec<PathBuf>,
}

/// A study read and cut into slice rows.
#[derive(Debug, Clone, PartialEq)]
pub struct StudyOutput {
    /// Slice rows, ordered by target then slice index; may be empty (no target).
    pub slices: Vec<SliceRecord>,
    pub n_targets: u32,
    /// Source volume shape (depth, height, width) of the grid slices were cut from.
    pub volume_shape: [u32; 3],
}

/// Why one study could not be used. Always names the file at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}: {reason}", file.display())]
pub struct StudyError {
    pub file: PathBuf,
    pub reason: String,
}

impl StudyError {
    pub fn new(file: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        StudyError {
            file: file.into(),
            reason: reason.into(),
        }
    }
}

/// What the stored image values look like, which decides how shards encode them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageValues {
    /// Few distinct values (CT windowed from integer HU: at most the window's width in
    /// HU), which a Parquet dictionary codes in ~11 bits instead of 32: for 50 synthetic
    /// LIDC studies the shards shrank from 11 to 7.7 MB and ingest's CPU time by a fifth,
    /// zstd having a third of the bytes to squeeze.
    Quantised,
    /// Nearly every value distinct (z-scored intensities): a dictionary would only fill up
    /// and be abandoned, so values are stored plainly.
    Continuous,
}

/// Dataset-level facts a format contributes to the manifest header.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetFacts {
    pub dataset: String,
    pub source_kind: SourceKind,
    pub raters: Vec<String>,
    pub rater_order: RaterOrder,
    pub channels: Vec<String>,
    pub crop_size: u32,
    pub normalisation: String,
    /// Every parameter that changes the output; hashed into the fingerprint.
    pub params: serde_json::Value,
    /// How the shards encode the image column (not part of the fingerprint: the values
    /// read back are the same either way).
    pub image_values: ImageValues,
}

/// The fold and split of every study, fixed by the format's own protocol (the authors'
/// LIDC folds over the pickle's items, the MMIS release's folders) and used instead of the
/// pipeline's seeded patient-level draw ([`crate::pipeline::folds`]).
#[derive(Debug, Clone, PartialEq)]
pub struct PresetSplit {
    /// Recorded in the manifest header (`split_protocol`), e.g. `lidc-image-kfold4-seed1337`.
    pub protocol: String,
    /// Number of folds the `fold` values count (1 when the protocol has none).
    pub k_folds: u32,
    /// `study_id` -> (fold, split), for every study `discover` returned.
    pub by_study: BTreeMap<String, (u32, String)>,
}

/// A readable source format.
pub trait SourceFormat: Sync {
    /// Finds the studies under `raw`. An error here is about the whole input (for example
    /// an empty folder or an unreadable `dataset.json`), not about one study.
    fn discover(&self, raw: &Path) -> Result<Vec<StudyInput>, StudyError>;

    /// Reads one study. An error rejects this study only.
    fn load(&self, study: &StudyInput) -> Result<StudyOutput, StudyError>;

    /// Facts for the manifest header (known after `discover`).
    fn facts(&self) -> DatasetFacts;

    /// The format's own fold and split of the studies (known after `discover`); `None`
    /// lets the pipeline assign them per patient from `--folds` and `--split-seed`.
    fn preset_split(&self) -> Option<PresetSplit> {
        None
    }

    /// Files and entries in the raw folder that `discover` found but will not ingest
    /// (a name that fits no pattern, labels without images, a count that disagrees with
    /// the dataset's own description), each naming the file (known after `discover`).
    /// The pipeline prints them as warnings, and `--strict` stops on them: nothing in
    /// the input is left out without a word.
    fn notices(&self) -> Vec<StudyError> {
        Vec::new()
    }
}
