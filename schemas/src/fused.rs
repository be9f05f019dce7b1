//! Fused training labels (majority vote, STAPLE): one row per slice, computed once per
//! manifest selection and cached next to the shards.
//!
//! A cache file is only valid for the exact fusion parameters, manifest and study
//! selection it was made from; that key is stored as JSON under [`KEY_FUSION`] and its
//! SHA-256 under [`KEY_FINGERPRINT`], and a reader compares the fingerprint before reusing
//! the file (a stale cache would silently train on the wrong labels).
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, FieldRef};
use serde::{Deserialize, Serialize};

use crate::meta::SchemaId;
use crate::records::{field, Table};

/// Metadata key: the canonical JSON of the cache key (fusion parameters, manifest
/// fingerprint, selected studies).
pub const KEY_FUSION: &str = "dpersona.fusion";
/// Metadata key: SHA-256 of [`KEY_FUSION`]'s value.
pub const KEY_FINGERPRINT: &str = "dpersona.fusion_fingerprint";

/// The fused label of one slice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FusedLabelRecord {
    pub study_id: String,
    pub target_id: String,
    pub slice_index: i32,
    pub height: u32,
    pub width: u32,
    /// `[H, W]` row-major: 0/1 for hard labels, in [0, 1] for soft ones.
    pub label: Vec<f32>,
    /// `[R]` STAPLE sensitivity per rater (NaN for a missing rater); empty for other fusions.
    pub sensitivity: Vec<f64>,
    /// `[R]` STAPLE specificity per rater (NaN for a missing rater); empty for other fusions.
    pub specificity: Vec<f64>,
    /// EM iterations run (0 where a guard decided the label or for other fusions).
    pub iterations: u32,
    /// Whether EM met its convergence rule (true for guards and other fusions).
    pub converged: bool,
}

fn list_of(name: &str, item: DataType) -> FieldRef {
    Arc::new(Field::new(
        name,
        DataType::List(Arc::new(Field::new("item", item, false))),
        false,
    ))
}

impl Table for FusedLabelRecord {
    const SCHEMA: SchemaId = SchemaId::new("fused_labels", 1);
    fn fields() -> Vec<FieldRef> {
        vec![
            field("study_id", DataType::Utf8),
            field("target_id", DataType::Utf8),
            field("slice_index", DataType::Int32),
            field("height", DataType::UInt32),
            field("width", DataType::UInt32),
            list_of("label", DataType::Float32),
            list_of("sensitivity", DataType::Float64),
            list_of("specificity", DataType::Float64),
            field("iterations", DataType::UInt32),
            field("converged", DataType::Boolean),
        ]
    }
}
