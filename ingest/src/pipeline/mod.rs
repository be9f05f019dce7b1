//! The ingest pipeline: any [`SourceFormat`] into Parquet slice shards plus a manifest.
//!
//! ```text
//! RAW ──discover──► studies ──(skip those already in finished shards)──► load in parallel
//!     ──► one writer: OUT/shards/shard-NNNNN.parquet (whole studies, rolled every --shard-rows)
//!     ──► OUT/rejects.parquet (studies that failed) ──► OUT/manifest.parquet (written last)
//! ```
//! Every file is written under a temporary name and renamed into place, so a run killed at
//! any moment leaves finished shards (kept and skipped by the next run, see [`resume`]) and
//! at most some temporary files (deleted by the next run).
//!
//! Modules:
//! - [`parallel_load`]: rayon loaders feeding one writer through a bounded channel.
//! - [`shard_writer`]: rolling shards of whole studies, with their metadata.
//! - [`shard_file`]: one shard file, each row group's columns encoded on two threads.
//! - [`image_chunk`]: the image column chunk dictionary-encoded without hashing when its
//!   values are uint8 over 255 ([`byte_scaled`]), in the hybrid encoding of [`rle_hybrid`].
//! - [`resume`]: what a previous run left behind.
//! - [`folds`]: the patient-level fold and train/val/test assignment.
//! - [`manifest_build`]: the manifest and the rejects table.
pub mod byte_scaled;
pub mod folds;
pub mod image_chunk;
pub mod manifest_build;
pub mod parallel_load;
pub mod resume;
pub mod rle_hybrid;
pub mod shard_file;
pub mod shard_writer;

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};

use schemas::manifest::{fingerprint, Manifest};
use schemas::rejects::RejectRecord;
use schemas::SchemaError;

use crate::study::{SourceFormat, StudyError};
use manifest_build::{SplitOptions, MANIFEST_FILE, REJECTS_FILE};
use shard_writer::{ShardWriter, DEFAULT_ROW_GROUP_ROWS, SHARD_DIR};

/// Default rows per shard: about 60-250 MB of 128 x 128 slices before compression, few
/// enough files for a listing to stay readable, small enough to copy or re-make quickly.
pub const DEFAULT_SHARD_ROWS: usize = 2048;

/// How [`run_ingest`] behaves. `Default` gives the CLI's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct IngestOptions {
    /// Abort on the first study that fails to load instead of rejecting it.
    pub strict: bool,
    /// Delete the shards, manifest and rejects of an earlier run in the output folder first.
    pub overwrite: bool,
    /// Loader threads; `None` = one per core.
    pub threads: Option<usize>,
    /// Cross-validation folds (patient level).
    pub folds: u32,
    /// Seed of the fold and split assignment.
    pub split_seed: u64,
    /// Share of patients in the `val` split.
    pub val_fraction: f64,
    /// Share of patients in the `test` split.
    pub test_fraction: f64,
    /// A shard is closed once it holds at least this many rows (it holds whole studies).
    pub shard_rows: usize,
    /// Rows per Parquet row group (see [`shard_writer::DEFAULT_ROW_GROUP_ROWS`]).
    pub row_group_rows: usize,
    /// Draw a progress bar and print rejected studies on stderr.
    pub progress: bool,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            strict: false,
            overwrite: false,
            threads: None,
            folds: 4,
            split_seed: 1337,
            val_fraction: 0.1,
            test_fraction: 0.2,
            shard_rows: DEFAULT_SHARD_ROWS,
            row_group_rows: DEFAULT_ROW_GROUP_ROWS,
            progress: true,
        }
    }
}

/// What an ingest run did.
#[derive(Debug, Clone)]
pub struct IngestSummary {
    pub out: PathBuf,
    pub manifest_path: PathBuf,
    /// Studies the format found in the raw folder.
    pub studies_found: usize,
    /// Studies in the manifest (loaded now or by an earlier run).
    pub studies_ok: usize,
    /// Of those, studies found in finished shards of an earlier run and not read again.
    pub studies_resumed: usize,
    pub rejects: Vec<RejectRecord>,
    pub rejects_path: Option<PathBuf>,
    pub slices: u64,
    pub shards: usize,
    /// Temporary files of a killed run that were deleted.
    pub temp_files_removed: usize,
    /// Patients per split (`train`, `val`, `test`).
    pub patients_per_split: std::collections::BTreeMap<String, usize>,
    /// What the run noticed and did anyway (files the format will not ingest, fewer
    /// patients than folds), each already printed on stderr as `warning: ...`.
    pub warnings: Vec<String>,
    pub manifest: Manifest,
}

impl fmt::Display for IngestSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "studies: {} found, {} ingested ({} resumed from an earlier run), {} rejected",
            self.studies_found,
            self.studies_ok,
            self.studies_resumed,
            self.rejects.len()
        )?;
        writeln!(
            f,
            "slices:  {} rows in {} shard(s) under {}",
            self.slices,
            self.shards,
            self.out.join(SHARD_DIR).display()
        )?;
        let splits: Vec<String> = self
            .patients_per_split
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        match &self.manifest.header.split_protocol {
            Some(protocol) => writeln!(
                f,
                "patients: {} ({} folds, the {protocol} protocol)",
                splits.join(", "),
                self.manifest.header.k_folds,
            )?,
            None => writeln!(
                f,
                "patients: {} ({} folds, seed {})",
                splits.join(", "),
                self.manifest.header.k_folds,
                self.manifest.header.split_seed
            )?,
        }
        if !self.warnings.is_empty() {
            writeln!(f, "warnings: {} (printed above)", self.warnings.len())?;
        }
        if let Some(r) = &self.rejects_path {
            writeln!(f, "rejects: {}", r.display())?;
        }
        write!(f, "manifest: {}", self.manifest_path.display())
    }
}

/// Why an ingest run failed.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("input {0} does not exist (a folder, or the file of a one-file format)")]
    MissingInput(PathBuf),
    #[error("no studies found in {0}; is it the right folder (for synthetic data run `dpersona synth` first)?")]
    NoStudies(PathBuf),
    #[error("cannot list the studies in {raw}: {source}")]
    Discover {
        raw: PathBuf,
        #[source]
        source: StudyError,
    },
    #[error("study id `{study_id}` is found twice in the input ({first} and {second})")]
    DuplicateStudy {
        study_id: String,
        first: String,
        second: String,
    },
    #[error("{source} (--strict stops on any input left out)")]
    StrictNotice {
        #[source]
        source: StudyError,
    },
    #[error(
        "study `{study_id}` could not be read (--strict stops at the first bad study): {source}"
    )]
    Strict {
        study_id: String,
        #[source]
        source: StudyError,
    },
    #[error(
        "{path} was made with other preprocessing parameters (fingerprint {found}, this run {expected}); \
         choose another --out folder or pass --overwrite to replace it"
    )]
    FingerprintMismatch {
        path: PathBuf,
        found: String,
        expected: String,
    },
    #[error("{path}: bad shard: {reason}")]
    BadShard { path: PathBuf, reason: String },
    #[error(transparent)]
    Folds(#[from] folds::FoldError),
    #[error("invalid option: {0}")]
    Options(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error("cannot start the loader threads: {0}")]
    Threads(#[from] rayon::ThreadPoolBuildError),
    #[error("the loaders stopped before every study was sent (a format panicked?)")]
    Interrupted,
}

impl IngestError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        IngestError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Converts the studies `format` finds under `raw` into shards and a manifest in `out`.
///
/// Resumes: studies already in finished shards with the same fingerprint are not read
/// again. Rejected studies are retried on every run (they are not in any shard).
pub fn run_ingest(
    format: &dyn SourceFormat,
    raw: &Path,
    out: &Path,
    options: &IngestOptions,
) -> Result<IngestSummary, IngestError> {
    check_options(options)?;
    // A folder for most formats, one file for the pickle; the format says which it needs.
    if !raw.is_dir() && !raw.is_file() {
        return Err(IngestError::MissingInput(raw.to_path_buf()));
    }
    // One pool for discovery (a format may parallelise it) and loading, sized by --threads.
    let mut builder = rayon::ThreadPoolBuilder::new();
    if let Some(n) = options.threads {
        builder = builder.num_threads(n);
    }
    let pool = builder.build()?;
    let found = pool
        .install(|| format.discover(raw))
        .map_err(|source| IngestError::Discover {
            raw: raw.to_path_buf(),
            source,
        })?;
    if found.is_empty() {
        return Err(IngestError::NoStudies(raw.to_path_buf()));
    }
    let mut by_id = std::collections::BTreeMap::new();
    for s in &found {
        if let Some(first) = by_id.insert(s.study_id.as_str(), s.source_path.as_str()) {
            return Err(IngestError::DuplicateStudy {
                study_id: s.study_id.clone(),
                first: first.to_string(),
                second: s.source_path.clone(),
            });
        }
    }

    let mut warnings = Vec::new();
    for notice in format.notices() {
        if options.strict {
            return Err(IngestError::StrictNotice { source: notice });
        }
        warnings.push(notice.to_string());
    }
    let preset = format.preset_split();
    if preset.is_none() {
        let patients: BTreeSet<&str> = found.iter().map(|s| s.patient_id.as_str()).collect();
        warnings.extend(folds::fewer_patients_than_folds(
            patients.len(),
            options.folds,
        ));
    }
    if options.progress {
        for w in &warnings {
            eprintln!("warning: {w}");
        }
    }

    let facts = format.facts();
    let fp = fingerprint(&facts.params);
    let shard_dir = out.join(SHARD_DIR);
    std::fs::create_dir_all(&shard_dir).map_err(|e| IngestError::io(&shard_dir, e))?;
    if options.overwrite {
        remove_previous_run(out)?;
    }
    let temp_files_removed =
        resume::remove_temp_files(&shard_dir)? + resume::remove_temp_files(out)?;
    check_manifest_fingerprint(&out.join(MANIFEST_FILE), &fp)?;
    let previous = resume::scan_shards(&shard_dir, &fp)?;

    let done: BTreeSet<&str> = previous
        .iter()
        .flat_map(|s| s.studies.iter().map(|w| w.study_id.as_str()))
        .collect();
    let todo: Vec<_> = found
        .iter()
        .filter(|s| !done.contains(s.study_id.as_str()))
        .cloned()
        .collect();
    let studies_resumed = found.len() - todo.len();

    let progress = if options.progress {
        let pb = ProgressBar::new(todo.len() as u64);
        pb.set_style(
            ProgressStyle::with_template(
                "{prefix} [{bar:30}] {pos}/{len} studies {elapsed_precise} (eta {eta})",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        pb.set_prefix("ingest");
        if studies_resumed > 0 {
            parallel_load::print_line(
                &pb,
                &format!(
                    "resuming: {studies_resumed} studies already in {} finished shard(s) are skipped",
                    previous.len()
                ),
            );
        }
        pb
    } else {
        ProgressBar::hidden()
    };

    let first_index = previous.last().map_or(0, |s| s.index + 1);
    let writer = ShardWriter::new(
        &shard_dir,
        &fp,
        options.shard_rows,
        options.row_group_rows,
        facts.image_values,
        first_index,
    );
    let loaded = parallel_load::load_and_write(
        format,
        &todo,
        &pool,
        writer,
        facts.raters.len(),
        options.strict,
        options.progress.then_some(&progress),
    )?;
    progress.finish_and_clear();

    let mut shards = previous;
    shards.extend(loaded.shards);
    let rejected_patients: Vec<String> = loaded
        .rejects
        .iter()
        .filter_map(|r| {
            found
                .iter()
                .find(|s| s.study_id == r.study_id)
                .map(|s| s.patient_id.clone())
        })
        .collect();
    let manifest = manifest_build::write_manifest(
        out,
        &facts,
        &shards,
        &loaded.rejects,
        &rejected_patients,
        SplitOptions {
            folds: options.folds,
            seed: options.split_seed,
            val_fraction: options.val_fraction,
            test_fraction: options.test_fraction,
        },
        preset.as_ref(),
    )?;
    Ok(IngestSummary {
        out: out.to_path_buf(),
        manifest_path: manifest.path.clone(),
        studies_found: found.len(),
        studies_ok: manifest.studies.len(),
        studies_resumed,
        rejects_path: manifest.header.rejects_file.as_ref().map(|r| out.join(r)),
        rejects: loaded.rejects,
        slices: shards.iter().map(|s| s.rows).sum(),
        shards: shards.len(),
        temp_files_removed,
        patients_per_split: manifest_build::split_counts(&manifest),
        warnings,
        manifest,
    })
}

fn check_options(o: &IngestOptions) -> Result<(), IngestError> {
    if o.shard_rows == 0 || o.row_group_rows == 0 {
        return Err(IngestError::Options(
            "--shard-rows and the row group size must be at least 1".into(),
        ));
    }
    if o.threads == Some(0) {
        return Err(IngestError::Options("--threads must be at least 1".into()));
    }
    if o.folds == 0 {
        return Err(folds::FoldError::NoFolds.into());
    }
    folds::check_fractions(o.val_fraction, o.test_fraction)?;
    Ok(())
}

/// An existing manifest made with other parameters is refused like a foreign shard.
fn check_manifest_fingerprint(path: &Path, fp: &str) -> Result<(), IngestError> {
    if !path.exists() {
        return Ok(());
    }
    let manifest = Manifest::read(path)?;
    if manifest.header.fingerprint != fp {
        return Err(IngestError::FingerprintMismatch {
            path: path.to_path_buf(),
            found: manifest.header.fingerprint,
            expected: fp.to_string(),
        });
    }
    Ok(())
}

/// Deletes what an ingest writes (shards, manifest, rejects) and nothing else.
fn remove_previous_run(out: &Path) -> Result<(), IngestError> {
    let shard_dir = out.join(SHARD_DIR);
    for entry in std::fs::read_dir(&shard_dir).map_err(|e| IngestError::io(&shard_dir, e))? {
        let entry = entry.map_err(|e| IngestError::io(&shard_dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if shard_writer::parse_shard_name(&name).is_some() {
            std::fs::remove_file(entry.path()).map_err(|e| IngestError::io(&entry.path(), e))?;
        }
    }
    for name in [MANIFEST_FILE, REJECTS_FILE] {
        let p = out.join(name);
        if p.exists() {
            std::fs::remove_file(&p).map_err(|e| IngestError::io(&p, e))?;
        }
    }
    Ok(())
}
