//! The dataset manifest: what ingest produced and how to read it.
//!
//! `manifest.parquet` has one row per ingested study ([`StudyRecord`]); the dataset-level
//! facts ([`ManifestHeader`]: raters, rater order, crop, normalisation, the fingerprint of
//! every preprocessing parameter, the shard list with checksums) are JSON under the
//! metadata key [`KEY_HEADER`]. Paths inside are relative to the manifest's folder.
use std::path::{Path, PathBuf};

use arrow::datatypes::{DataType, FieldRef};
use serde::{Deserialize, Serialize};

use crate::error::{Result, SchemaError};
use crate::meta::SchemaId;
use crate::records::{field, read_table, write_table, Table};

/// Metadata key holding the [`ManifestHeader`] as JSON.
pub const KEY_HEADER: &str = "dpersona.manifest";

/// Where the studies came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// LIDC-IDRI: DICOM CT series plus LIDC XML reads.
    Lidc,
    /// NIfTI volumes with one label file per rater (nnU-Net-like layout).
    Nifti,
    /// MMIS-2024 HDF5 cases (NPC-170: t1, t1c, t2 and four raters' labels).
    Mmis,
    /// The preprocessed LIDC crops pickled by MedicalMatting or the Prob. U-Net port.
    LidcPickle,
}

impl SourceKind {
    /// Whether a target is a whole 3D volume (NPC-style: metrics per volume, the NPC
    /// augmentation, the paper-npc preset) rather than 2D crops around a nodule
    /// (LIDC-style: metrics per slice, the LIDC augmentation, the paper-lidc preset).
    pub fn is_volumetric(self) -> bool {
        match self {
            SourceKind::Lidc | SourceKind::LidcPickle => false,
            SourceKind::Nifti | SourceKind::Mmis => true,
        }
    }

    /// The preset `train` picks for this kind when none is given.
    pub fn default_preset(self) -> &'static str {
        if self.is_volumetric() {
            "paper-npc"
        } else {
            "paper-lidc"
        }
    }
}

/// How rater channels are ordered when a slice is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RaterOrder {
    /// Channel k is rater k of the manifest (real, identified raters: NPC).
    Identity,
    /// Masks sorted by ascending area per slice, after augmentation (the paper's LIDC
    /// protocol, where readers are anonymous).
    AreaRank,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_picks_its_papers_preset() {
        for (kind, volumetric, preset) in [
            (SourceKind::Lidc, false, "paper-lidc"),
            (SourceKind::LidcPickle, false, "paper-lidc"),
            (SourceKind::Nifti, true, "paper-npc"),
            (SourceKind::Mmis, true, "paper-npc"),
        ] {
            assert_eq!(kind.is_volumetric(), volumetric, "{kind:?}");
            assert_eq!(kind.default_preset(), preset, "{kind:?}");
        }
    }
}

/// One shard file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardEntry {
    /// Path relative to the manifest's folder.
    pub path: String,
    pub rows: u64,
    pub bytes: u64,
    pub sha256: String,
}

/// Dataset-level facts, stored as JSON in the manifest's metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestHeader {
    pub dataset: String,
    pub source_kind: SourceKind,
    /// Rater names in channel order.
    pub raters: Vec<String>,
    pub rater_order: RaterOrder,
    /// Image channel names in channel order.
    pub channels: Vec<String>,
    /// Side of the square crops in pixels.
    pub crop_size: u32,
    /// Human-readable description of the intensity normalisation.
    pub normalisation: String,
    /// Every preprocessing parameter; [`ManifestHeader::fingerprint`] hashes it.
    pub params: serde_json::Value,
    /// SHA-256 of the canonical JSON of `params`.
    pub fingerprint: String,
    /// Number of cross-validation folds the `fold` column was assigned for.
    pub k_folds: u32,
    /// Seed of the patient-level fold and split assignment.
    pub split_seed: u64,
    /// The format's own fold/split protocol (`lidc-image-kfold4-seed1337`, `mmis-folders`,
    /// ...) when it replaced the patient-level draw; absent in older manifests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_protocol: Option<String>,
    pub shards: Vec<ShardEntry>,
    /// Rejects table (relative path), if any study was rejected.
    pub rejects_file: Option<String>,
    pub rejected_studies: u64,
}

/// The fingerprint of a parameter set: SHA-256 of its JSON with keys sorted.
pub fn fingerprint(params: &serde_json::Value) -> String {
    // serde_json's default map is a BTreeMap, so `to_string` already sorts keys.
    crate::hashing::sha256_bytes(
        serde_json::to_string(params)
            .expect("JSON values serialise")
            .as_bytes(),
    )
}

/// One ingested study.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudyRecord {
    pub study_id: String,
    pub patient_id: String,
    /// Source folder or file, relative to the ingest input.
    pub source_path: String,
    /// Targets (nodules / lesions) with at least one slice.
    pub n_targets: u32,
    /// Slice rows in the shards.
    pub n_slices: u32,
    /// Shape of the source volume (depth, height, width) in the grid slices were cut from.
    pub volume_depth: u32,
    pub volume_height: u32,
    pub volume_width: u32,
    /// Cross-validation fold (patient level), 0..k_folds.
    pub fold: u32,
    /// `train`, `val` or `test` (patient level).
    pub split: String,
    /// Shard holding this study's rows (relative path).
    pub shard: String,
}

impl Table for StudyRecord {
    const SCHEMA: SchemaId = SchemaId::new("manifest", 1);
    fn fields() -> Vec<FieldRef> {
        vec![
            field("study_id", DataType::Utf8),
            field("patient_id", DataType::Utf8),
            field("source_path", DataType::Utf8),
            field("n_targets", DataType::UInt32),
            field("n_slices", DataType::UInt32),
            field("volume_depth", DataType::UInt32),
            field("volume_height", DataType::UInt32),
            field("volume_width", DataType::UInt32),
            field("fold", DataType::UInt32),
            field("split", DataType::Utf8),
            field("shard", DataType::Utf8),
        ]
    }
}

/// A manifest as read from disk.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// The manifest file itself.
    pub path: PathBuf,
    pub header: ManifestHeader,
    pub studies: Vec<StudyRecord>,
}

impl Manifest {
    /// The folder relative paths in the manifest are resolved against.
    pub fn dir(&self) -> PathBuf {
        self.path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    }

    /// Absolute (or cwd-relative) path of an entry of the manifest.
    pub fn resolve(&self, relative: &str) -> PathBuf {
        self.dir().join(relative)
    }

    pub fn read(path: &Path) -> Result<Self> {
        let (studies, metadata) = read_table::<StudyRecord>(path)?;
        let raw = metadata.get(KEY_HEADER).ok_or_else(|| {
            SchemaError::invalid(
                path,
                StudyRecord::SCHEMA.name,
                format!("metadata key `{KEY_HEADER}` is missing"),
            )
        })?;
        let header: ManifestHeader = serde_json::from_str(raw).map_err(|e| {
            SchemaError::invalid(
                path,
                StudyRecord::SCHEMA.name,
                format!("header JSON does not parse: {e}"),
            )
        })?;
        let expected = fingerprint(&header.params);
        if header.fingerprint != expected {
            return Err(SchemaError::invalid(
                path,
                StudyRecord::SCHEMA.name,
                format!(
                    "fingerprint {} does not match its parameters ({expected})",
                    header.fingerprint
                ),
            ));
        }
        Ok(Manifest {
            path: path.to_path_buf(),
            header,
            studies,
        })
    }

    /// Writes the manifest atomically to `self.path`.
    pub fn write(&self) -> Result<u64> {
        let header = serde_json::to_string_pretty(&self.header).expect("header serialises");
        write_table(&self.path, &self.studies, &[(KEY_HEADER, header)])
    }
}
