//! Writes small but real datasets (slice shards + manifest) for the loader tests, with the
//! same writers ingest uses (`schemas::slice::to_batch`, `AtomicParquetWriter`, `Manifest`).
#![allow(dead_code)]
use std::path::{Path, PathBuf};

use schemas::manifest::{
    fingerprint, Manifest, ManifestHeader, RaterOrder, ShardEntry, SourceKind, StudyRecord,
};
use schemas::parquet_io::AtomicParquetWriter;
use schemas::slice::{schema, to_batch, SliceRecord, KEY_FINGERPRINT, KEY_STUDIES, SCHEMA};

/// One study of a test dataset.
#[derive(Clone, Debug)]
pub struct StudySpec {
    pub id: String,
    pub fold: u32,
    pub split: String,
    pub slices: usize,
}

/// `(study index, slice index) -> (image [C,H,W], masks [R,H,W], present [R])`.
pub type MakeSlice = Box<dyn Fn(usize, usize) -> (Vec<f32>, Vec<u8>, Vec<bool>)>;

/// What the slices of a test dataset look like.
pub struct Spec {
    pub size: usize,
    pub channels: usize,
    pub raters: usize,
    pub order: RaterOrder,
    pub source: SourceKind,
    pub studies: Vec<StudySpec>,
    /// Studies per shard file.
    pub per_shard: usize,
    pub make: MakeSlice,
}

/// `n` studies over `k` folds, split train/val/test by index, `slices` slices each.
pub fn studies(n: usize, k: u32, slices: usize) -> Vec<StudySpec> {
    (0..n)
        .map(|i| StudySpec {
            id: format!("S{i:03}"),
            fold: i as u32 % k,
            split: ["train", "train", "val", "test"][i % 4].to_string(),
            slices,
        })
        .collect()
}

/// Deterministic pseudo-random numbers for test pictures (splitmix64).
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// An axis-aligned ellipse mask `[H*W]` centred at `(cy, cx)` with radii `(ry, rx)`.
pub fn ellipse(size: usize, cy: f64, cx: f64, ry: f64, rx: f64) -> Vec<u8> {
    let mut m = vec![0u8; size * size];
    for r in 0..size {
        for c in 0..size {
            let (dy, dx) = ((r as f64 - cy) / ry, (c as f64 - cx) / rx);
            m[r * size + c] = (dy * dy + dx * dx <= 1.0) as u8;
        }
    }
    m
}

/// Nested ellipses of different sizes per rater, off-centre so that rotations move them;
/// `missing` raters get an all-zero mask and `present = false`.
pub fn nested_masks(
    size: usize,
    seed: u64,
    raters: usize,
    missing: &[usize],
) -> (Vec<u8>, Vec<bool>) {
    let s = size as f64;
    let cy = s * (0.3 + 0.4 * (mix(seed) % 100) as f64 / 100.0);
    let cx = s * (0.3 + 0.4 * (mix(seed + 1) % 100) as f64 / 100.0);
    let mut masks = Vec::with_capacity(raters * size * size);
    let mut present = Vec::with_capacity(raters);
    // A seed-dependent rater permutation so that manifest order is not area order.
    let shift = (mix(seed + 2) % raters as u64) as usize;
    for k in 0..raters {
        if missing.contains(&k) {
            masks.extend(std::iter::repeat_n(0u8, size * size));
            present.push(false);
            continue;
        }
        let grow = ((k + shift) % raters) as f64;
        masks.extend(ellipse(
            size,
            cy,
            cx,
            s * (0.06 + 0.03 * grow),
            s * (0.09 + 0.025 * grow),
        ));
        present.push(true);
    }
    (masks, present)
}

/// Writes the shards and `manifest.parquet` under `dir`; returns the manifest path.
pub fn write_dataset(dir: &Path, spec: &Spec) -> PathBuf {
    let params = serde_json::json!({ "test": "loader", "size": spec.size });
    let fp = fingerprint(&params);
    let mut shards = Vec::new();
    let mut records = Vec::new();
    for (g, group) in spec.studies.chunks(spec.per_shard.max(1)).enumerate() {
        let rel = format!("shards/part-{g:03}.parquet");
        let path = dir.join(&rel);
        let first = g * spec.per_shard.max(1);
        let mut rows = Vec::new();
        for (j, st) in group.iter().enumerate() {
            for z in 0..st.slices {
                rows.push(slice_record(spec, first + j, st, z));
            }
            records.push(StudyRecord {
                study_id: st.id.clone(),
                patient_id: format!("P-{}", st.id),
                source_path: st.id.clone(),
                n_targets: 1,
                n_slices: st.slices as u32,
                volume_depth: st.slices as u32,
                volume_height: spec.size as u32,
                volume_width: spec.size as u32,
                fold: st.fold,
                split: st.split.clone(),
                shard: rel.clone(),
            });
        }
        write_shard(&path, &rows, &fp, group);
        shards.push(ShardEntry {
            path: rel,
            rows: rows.len() as u64,
            bytes: std::fs::metadata(&path).unwrap().len(),
            sha256: schemas::hashing::sha256_file(&path).unwrap(),
        });
    }
    let manifest = Manifest {
        path: dir.join("manifest.parquet"),
        header: ManifestHeader {
            dataset: "loader-test".into(),
            source_kind: spec.source,
            raters: (0..spec.raters).map(|k| format!("rater{k}")).collect(),
            rater_order: spec.order,
            channels: (0..spec.channels).map(|k| format!("ch{k}")).collect(),
            crop_size: spec.size as u32,
            normalisation: "test pictures".into(),
            params,
            fingerprint: fp,
            k_folds: spec.studies.iter().map(|s| s.fold + 1).max().unwrap_or(1),
            split_seed: 0,
            split_protocol: None,
            shards,
            rejects_file: None,
            rejected_studies: 0,
        },
        studies: records,
    };
    manifest.write().unwrap();
    manifest.path
}

/// Writes one shard file with the given fingerprint (row groups of 4 rows).
pub fn write_shard(path: &Path, rows: &[SliceRecord], fp: &str, studies: &[StudySpec]) {
    let mut w = AtomicParquetWriter::create(path, schema(), &SCHEMA, 4).unwrap();
    w.write(&to_batch(rows)).unwrap();
    w.set_metadata(KEY_FINGERPRINT, fp.to_string());
    let ids: Vec<&str> = studies.iter().map(|s| s.id.as_str()).collect();
    w.set_metadata(KEY_STUDIES, serde_json::to_string(&ids).unwrap());
    w.finish().unwrap();
}

fn slice_record(spec: &Spec, study: usize, st: &StudySpec, z: usize) -> SliceRecord {
    let (image, masks, present) = (spec.make)(study, z);
    let n = spec.size as u32;
    let mut rec = SliceRecord {
        study_id: st.id.clone(),
        patient_id: format!("P-{}", st.id),
        target_id: "T0".into(),
        slice_index: z as i32,
        z_mm: z as f64,
        height: n,
        width: n,
        channels: spec.channels as u32,
        spacing_row_mm: 1.0,
        spacing_col_mm: 1.0,
        image,
        masks,
        raters_present: present,
        rater_area: vec![],
        intersection: vec![],
        union: vec![],
        crop_row0: 0,
        crop_col0: 0,
        source_height: n,
        source_width: n,
        source_files: vec![format!("{}.dcm", st.id)],
        source_sha256: vec!["0".repeat(64)],
    };
    rec.derive_consensus();
    rec
}

/// A dataset whose image channel 0 equals rater 0's mask (as 0.0/1.0) and whose other
/// channels hold a pseudo-random texture; rater `missing` (if any) did not read.
pub fn aligned_spec(
    size: usize,
    channels: usize,
    raters: usize,
    order: RaterOrder,
    missing: Vec<usize>,
) -> Spec {
    Spec {
        size,
        channels,
        raters,
        order,
        source: SourceKind::Lidc,
        studies: studies(4, 2, 3),
        per_shard: 2,
        make: Box::new(move |s, z| {
            let seed = (s * 1000 + z) as u64;
            let (masks, present) = nested_masks(size, seed, raters, &missing);
            let first = (0..raters).find(|k| !missing.contains(k)).unwrap();
            let hw = size * size;
            let mut image: Vec<f32> = masks[first * hw..(first + 1) * hw]
                .iter()
                .map(|&v| v as f32)
                .collect();
            for ch in 1..channels {
                image.extend(
                    (0..hw).map(|p| (mix(seed * 31 + (ch * hw + p) as u64) % 1000) as f32 / 1000.0),
                );
            }
            (image, masks, present)
        }),
    }
}
