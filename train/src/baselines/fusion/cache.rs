//! Fused labels computed once per (fusion parameters, manifest, study selection) and cached
//! as a `fused_labels` Parquet file next to the shards: `<manifest dir>/fused/<name>.parquet`.
//!
//! The cache key is the canonical JSON of [`CacheKey`]; its SHA-256 names the file and is
//! stored in the file's metadata, and a file is reused only if the stored fingerprint and
//! key equal the requested ones (MONAI's PersistentDataset reuses stale caches silently when
//! its key misses a parameter; ours holds every parameter of the fusion). Writes are atomic
//! (schemas' temp + rename), so a killed run leaves either no file or a whole one.
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use schemas::fused::{FusedLabelRecord, KEY_FINGERPRINT, KEY_FUSION};
use schemas::manifest::{fingerprint, Manifest};
use schemas::slice::{SliceColumns, SliceRecord};
use schemas::{read_table, write_table, SchemaError};
use serde::{Deserialize, Serialize};

use super::mv::{majority_vote, MvRule};
use super::staple::{staple, StapleGranularity, StapleParams};
use crate::batch::RowId;

/// A label fusion and all its parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "lowercase")]
pub enum Fusion {
    Mv { rule: MvRule },
    Staple(StapleParams),
}

impl Fusion {
    /// Short name used in cache file names and logs (`mv-strict`, `staple`).
    pub fn name(&self) -> String {
        match self {
            Fusion::Mv { rule } => format!(
                "mv-{}",
                serde_json::to_value(rule)
                    .expect("enum serialises")
                    .as_str()
                    .unwrap_or("?")
            ),
            Fusion::Staple(_) => "staple".to_string(),
        }
    }
}

/// Everything a cached file depends on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheKey {
    pub fusion: Fusion,
    /// The manifest's preprocessing fingerprint.
    pub manifest_fingerprint: String,
    /// SHA-256 of the shard checksums in manifest order (a re-ingest with equal
    /// parameters but different source data changes it).
    pub shards_sha256: String,
    /// The selected studies, sorted.
    pub studies: Vec<String>,
}

impl CacheKey {
    pub fn new(manifest: &Manifest, studies: &[String], fusion: &Fusion) -> Self {
        let mut studies = studies.to_vec();
        studies.sort();
        studies.dedup();
        let shards: Vec<&str> = manifest
            .header
            .shards
            .iter()
            .map(|s| s.sha256.as_str())
            .collect();
        Self {
            fusion: fusion.clone(),
            manifest_fingerprint: manifest.header.fingerprint.clone(),
            shards_sha256: schemas::hashing::sha256_bytes(shards.join(",").as_bytes()),
            studies,
        }
    }

    /// The canonical JSON (keys sorted) and its SHA-256.
    pub fn canonical(&self) -> (String, String) {
        let value = serde_json::to_value(self).expect("cache key serialises");
        let json = serde_json::to_string(&value).expect("JSON values serialise");
        let fp = fingerprint(&value);
        (json, fp)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FusionError {
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// Fused labels of a selection, looked up by slice.
#[derive(Debug, Clone)]
pub struct FusedLabels {
    /// The cache file.
    pub path: PathBuf,
    /// SHA-256 of the cache key (also in the file's metadata).
    pub fingerprint: String,
    /// True if an existing file was reused, false if it was computed now.
    pub reused: bool,
    pub rows: Vec<FusedLabelRecord>,
    index: HashMap<(String, String, i32), usize>,
}

impl FusedLabels {
    fn new(path: PathBuf, fingerprint: String, reused: bool, rows: Vec<FusedLabelRecord>) -> Self {
        let index = rows
            .iter()
            .enumerate()
            .map(|(k, r)| ((r.study_id.clone(), r.target_id.clone(), r.slice_index), k))
            .collect();
        Self {
            path,
            fingerprint,
            reused,
            rows,
            index,
        }
    }

    /// The `[H·W]` fused label of a batch row, if that slice is in the selection.
    pub fn get(&self, row: &RowId) -> Option<&[f32]> {
        self.index
            .get(&(row.study_id.clone(), row.target_id.clone(), row.slice_index))
            .map(|&k| self.rows[k].label.as_slice())
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// Where the cache for `fingerprint` lives: `<manifest dir>/fused/<name>-<fp[..16]>.parquet`.
pub fn cache_path(manifest: &Manifest, fusion: &Fusion, fingerprint: &str) -> PathBuf {
    manifest
        .dir()
        .join("fused")
        .join(format!("{}-{}.parquet", fusion.name(), &fingerprint[..16]))
}

/// The fused labels of `studies` (all their slices in the manifest's shards): read from the
/// cache if a file with the same key exists, else computed (in parallel over targets) and
/// written atomically.
pub fn fused_labels(
    manifest: &Manifest,
    studies: &[String],
    fusion: &Fusion,
) -> Result<FusedLabels, FusionError> {
    let key = CacheKey::new(manifest, studies, fusion);
    let (json, fp) = key.canonical();
    let path = cache_path(manifest, fusion, &fp);
    if path.exists() {
        let (rows, meta) = read_table::<FusedLabelRecord>(&path)?;
        if meta.get(KEY_FINGERPRINT) == Some(&fp) && meta.get(KEY_FUSION) == Some(&json) {
            return Ok(FusedLabels::new(path, fp, true, rows));
        }
        // Same file name but another key (a 64-bit prefix collision or a hand-edited file):
        // recompute and replace rather than train on labels of another selection.
    }
    let slices = read_selected_slices(manifest, &key.studies)?;
    let rows = fuse_slices(&slices, fusion);
    write_table(
        &path,
        &rows,
        &[(KEY_FUSION, json), (KEY_FINGERPRINT, fp.clone())],
    )?;
    Ok(FusedLabels::new(path, fp, false, rows))
}

/// Every slice row of `studies` from the manifest's shards (shard checksums are the
/// loader's concern; here a study listed but absent from its shard is an error).
fn read_selected_slices(
    manifest: &Manifest,
    studies: &[String],
) -> Result<Vec<SliceRecord>, FusionError> {
    let wanted: HashMap<&str, &str> = manifest
        .studies
        .iter()
        .filter(|s| studies.binary_search(&s.study_id).is_ok())
        .map(|s| (s.study_id.as_str(), s.shard.as_str()))
        .collect();
    if let Some(missing) = studies.iter().find(|s| !wanted.contains_key(s.as_str())) {
        return Err(FusionError::Invalid {
            path: manifest.path.clone(),
            reason: format!("study `{missing}` selected for label fusion is not in the manifest"),
        });
    }
    let mut shards: Vec<&str> = wanted.values().copied().collect();
    shards.sort();
    shards.dedup();
    let mut out = Vec::new();
    for shard in shards {
        let path = manifest.resolve(shard);
        let file = schemas::parquet_io::open_checked(&path, &schemas::slice::SCHEMA)?;
        for batch in file.read_all()? {
            let cols = SliceColumns::new(batch).map_err(|reason| FusionError::Invalid {
                path: path.clone(),
                reason,
            })?;
            for row in 0..cols.len() {
                let rec = cols.record(row);
                if wanted.contains_key(rec.study_id.as_str()) {
                    out.push(rec);
                }
            }
        }
    }
    Ok(out)
}

/// Fuses slice rows (pure; no I/O). Output order: by study, target, slice index.
pub fn fuse_slices(slices: &[SliceRecord], fusion: &Fusion) -> Vec<FusedLabelRecord> {
    let mut groups: BTreeMap<(&str, &str), Vec<&SliceRecord>> = BTreeMap::new();
    for s in slices {
        groups
            .entry((&s.study_id, &s.target_id))
            .or_default()
            .push(s);
    }
    let groups: Vec<Vec<&SliceRecord>> = groups
        .into_values()
        .map(|mut g| {
            g.sort_by_key(|s| s.slice_index);
            g
        })
        .collect();
    groups
        .par_iter()
        .flat_map_iter(|g| fuse_target(g, fusion))
        .collect()
}

fn record(s: &SliceRecord, label: Vec<f32>) -> FusedLabelRecord {
    FusedLabelRecord {
        study_id: s.study_id.clone(),
        target_id: s.target_id.clone(),
        slice_index: s.slice_index,
        height: s.height,
        width: s.width,
        label,
        sensitivity: Vec::new(),
        specificity: Vec::new(),
        iterations: 0,
        converged: true,
    }
}

/// Fuses the slices of one target (sorted by slice index).
fn fuse_target(slices: &[&SliceRecord], fusion: &Fusion) -> Vec<FusedLabelRecord> {
    match fusion {
        Fusion::Mv { rule } => slices
            .iter()
            .map(|s| {
                let hw = (s.height * s.width) as usize;
                record(s, majority_vote(&s.masks, &s.raters_present, hw, *rule))
            })
            .collect(),
        Fusion::Staple(params) => match params.granularity {
            StapleGranularity::Slice => slices
                .iter()
                .map(|s| {
                    let hw = (s.height * s.width) as usize;
                    let res = staple(&s.masks, &s.raters_present, hw, params);
                    let mut rec = record(s, res.label(params.output));
                    rec.sensitivity = res.sensitivity;
                    rec.specificity = res.specificity;
                    rec.iterations = res.iterations;
                    rec.converged = res.converged;
                    rec
                })
                .collect(),
            StapleGranularity::Volume => {
                // Rater presence is per study, so it is the same on every slice of a target.
                let present = &slices[0].raters_present;
                let r = present.len();
                let sizes: Vec<usize> = slices
                    .iter()
                    .map(|s| (s.height * s.width) as usize)
                    .collect();
                let n: usize = sizes.iter().sum();
                let mut masks = Vec::with_capacity(r * n);
                for k in 0..r {
                    for (s, &hw) in slices.iter().zip(&sizes) {
                        masks.extend_from_slice(&s.masks[k * hw..(k + 1) * hw]);
                    }
                }
                let res = staple(&masks, present, n, params);
                let label = res.label(params.output);
                let mut offset = 0;
                slices
                    .iter()
                    .zip(&sizes)
                    .map(|(s, &hw)| {
                        let mut rec = record(s, label[offset..offset + hw].to_vec());
                        offset += hw;
                        rec.sensitivity = res.sensitivity.clone();
                        rec.specificity = res.specificity.clone();
                        rec.iterations = res.iterations;
                        rec.converged = res.converged;
                        rec
                    })
                    .collect()
            }
        },
    }
}

/// Convenience for callers that hold a manifest path.
pub fn fused_labels_for(
    manifest_path: &Path,
    studies: &[String],
    fusion: &Fusion,
) -> Result<FusedLabels, FusionError> {
    let manifest = Manifest::read(manifest_path)?;
    fused_labels(&manifest, studies, fusion)
}
