//! Builds `OUT/manifest.parquet` (and `OUT/rejects.parquet`) from the finished shards.
//!
//! The manifest is written last and atomically, so its presence means the shards it lists
//! are complete; it is rebuilt from the shards' own metadata on every run, which is what
//! makes a resumed run's manifest identical to an uninterrupted one.
use std::collections::BTreeMap;
use std::path::Path;

use schemas::hashing::sha256_file;
use schemas::manifest::{fingerprint, Manifest, ManifestHeader, ShardEntry, StudyRecord};
use schemas::rejects::RejectRecord;
use schemas::write_table;

use super::folds;
use super::shard_writer::{FinishedShard, SHARD_DIR};
use super::IngestError;
use crate::study::{DatasetFacts, PresetSplit};

/// File name of the manifest inside the output folder.
pub const MANIFEST_FILE: &str = "manifest.parquet";
/// File name of the rejects table inside the output folder.
pub const REJECTS_FILE: &str = "rejects.parquet";

/// What the fold/split assignment needs.
#[derive(Debug, Clone, Copy)]
pub struct SplitOptions {
    pub folds: u32,
    pub seed: u64,
    pub val_fraction: f64,
    pub test_fraction: f64,
}

/// Writes the rejects table (or removes a stale one) and the manifest.
///
/// `extra_patients`: patients of studies that were found but are not in any shard
/// (rejected ones); they take part in the fold assignment so that fixing a rejected study
/// later does not move every other patient to another fold. `preset`: the format's own
/// fold and split of every study, which replaces that assignment.
pub fn write_manifest(
    out: &Path,
    facts: &DatasetFacts,
    shards: &[FinishedShard],
    rejects: &[RejectRecord],
    extra_patients: &[String],
    split: SplitOptions,
    preset: Option<&PresetSplit>,
) -> Result<Manifest, IngestError> {
    let rejects_path = out.join(REJECTS_FILE);
    let rejects_file = if rejects.is_empty() {
        if rejects_path.exists() {
            std::fs::remove_file(&rejects_path).map_err(|e| IngestError::io(&rejects_path, e))?;
        }
        None
    } else {
        write_table(&rejects_path, rejects, &[])?;
        Some(REJECTS_FILE.to_string())
    };

    let patients = shards
        .iter()
        .flat_map(|s| s.studies.iter().map(|w| w.patient_id.as_str()))
        .chain(extra_patients.iter().map(String::as_str));
    let assignment = folds::assign(
        patients,
        split.folds,
        split.seed,
        split.val_fraction,
        split.test_fraction,
    )?;

    let mut entries = Vec::with_capacity(shards.len());
    let mut studies = Vec::new();
    for shard in shards {
        let name = shard
            .path
            .file_name()
            .expect("shard paths have a file name")
            .to_string_lossy();
        let relative = format!("{SHARD_DIR}/{name}");
        let bytes = std::fs::metadata(&shard.path)
            .map_err(|e| IngestError::io(&shard.path, e))?
            .len();
        entries.push(ShardEntry {
            path: relative.clone(),
            rows: shard.rows,
            bytes,
            sha256: match &shard.sha256 {
                Some(sha) => sha.clone(),
                None => sha256_file(&shard.path)?,
            },
        });
        for w in &shard.studies {
            let (fold, split) = match preset {
                Some(p) => p.by_study.get(&w.study_id).cloned().ok_or_else(|| {
                    IngestError::Options(format!(
                        "the {} protocol assigns no fold to study `{}` (of shard {relative})",
                        p.protocol, w.study_id
                    ))
                })?,
                None => {
                    let a = assignment[&w.patient_id];
                    (a.fold, a.split.to_string())
                }
            };
            studies.push(StudyRecord {
                study_id: w.study_id.clone(),
                patient_id: w.patient_id.clone(),
                source_path: w.source_path.clone(),
                n_targets: w.n_targets,
                n_slices: w.n_slices,
                volume_depth: w.volume_shape[0],
                volume_height: w.volume_shape[1],
                volume_width: w.volume_shape[2],
                fold,
                split,
                shard: relative.clone(),
            });
        }
    }
    studies.sort_by(|a, b| a.study_id.cmp(&b.study_id));

    let header = ManifestHeader {
        dataset: facts.dataset.clone(),
        source_kind: facts.source_kind,
        raters: facts.raters.clone(),
        rater_order: facts.rater_order,
        channels: facts.channels.clone(),
        crop_size: facts.crop_size,
        normalisation: facts.normalisation.clone(),
        params: facts.params.clone(),
        fingerprint: fingerprint(&facts.params),
        k_folds: preset.map_or(split.folds, |p| p.k_folds),
        split_seed: split.seed,
        split_protocol: preset.map(|p| p.protocol.clone()),
        shards: entries,
        rejects_file,
        rejected_studies: rejects.len() as u64,
    };
    let manifest = Manifest {
        path: out.join(MANIFEST_FILE),
        header,
        studies,
    };
    manifest.write()?;
    Ok(manifest)
}

/// Patients per split, for the summary.
pub fn split_counts(manifest: &Manifest) -> BTreeMap<String, usize> {
    let mut patients: BTreeMap<&str, &str> = BTreeMap::new();
    for s in &manifest.studies {
        patients.insert(&s.patient_id, &s.split);
    }
    let mut counts = BTreeMap::new();
    for split in patients.values() {
        *counts.entry(split.to_string()).or_insert(0) += 1;
    }
    counts
}
