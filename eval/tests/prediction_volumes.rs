//! NIfTI prediction volumes: what PredictionWriter::write_volume writes is read back by
//! nibabel with the same values, dtype, shape and affine; a layout written by nibabel is
//! scored by score_predictions_dir to the numpy reference's metrics (1e-9); bad volumes
//! (0/255 values, wrong depth) are refused naming the file.

use std::path::Path;

use eval::metric_rows::{EvalContext, UnitKind};
use eval::prediction_volumes::{read_geometry, VolumeToSave};
use eval::predictions::{
    score_predictions_dir, PredictionFiles, PredictionWriter, PredictionsHeader,
};
use eval::unit_metrics::MetricOptions;
use schemas::manifest::{
    fingerprint, Manifest, ManifestHeader, RaterOrder, ShardEntry, SourceKind, StudyRecord,
};
use schemas::slice::{schema, to_batch, SliceRecord, SCHEMA as SLICE_SCHEMA};
use serde_json::{json, Value};

/// Non-square on purpose: a swapped x/y would change the shape nibabel sees.
const H: u32 = 20;
const W: u32 = 24;
const ROW_MM: f64 = 0.8;
const COL_MM: f64 = 0.7;
const Z_STEP: f64 = 2.5;

/// (study, target, slices).
const VOLUMES: [(&str, &str, i32); 3] = [("ST0", "1", 3), ("ST1", "1", 3), ("ST2", "2", 2)];

fn disc(cx: f32, cy: f32, r: f32) -> Vec<u8> {
    (0..H * W)
        .map(|i| ((((i % W) as f32 - cx).powi(2) + ((i / W) as f32 - cy).powi(2)).sqrt() < r) as u8)
        .collect()
}

fn slice(study: &str, target: &str, z: i32) -> SliceRecord {
    let hw = (H * W) as usize;
    let s = study.as_bytes()[2] - b'0';
    let mut masks = Vec::with_capacity(4 * hw);
    for k in 0..4 {
        masks.extend(disc(
            11.0 + z as f32 + k as f32 * 0.7,
            9.0 - s as f32,
            6.5 - k as f32 + s as f32 * 0.4,
        ));
    }
    // ST1 lacks rater 4.
    let present = vec![true, true, true, study != "ST1"];
    if study == "ST1" {
        masks[3 * hw..].fill(0);
    }
    let mut r = SliceRecord {
        study_id: study.into(),
        patient_id: format!("P{s}"),
        target_id: target.into(),
        slice_index: z,
        z_mm: 10.0 + Z_STEP * z as f64,
        height: H,
        width: W,
        channels: 1,
        spacing_row_mm: ROW_MM,
        spacing_col_mm: COL_MM,
        image: (0..hw)
            .map(|i| ((i * 7919 + z as usize) % 251) as f32 / 25.0)
            .collect(),
        masks,
        raters_present: present,
        rater_area: vec![],
        intersection: vec![],
        union: vec![],
        crop_row0: 0,
        crop_col0: 0,
        source_height: H,
        source_width: W,
        source_files: vec![],
        source_sha256: vec![],
    };
    r.derive_consensus();
    r
}

/// Slices of every volume, written to the shard in DESCENDING slice order (stacking must sort).
fn all_slices() -> Vec<SliceRecord> {
    VOLUMES
        .iter()
        .flat_map(|&(s, t, d)| (0..d).rev().map(move |z| slice(s, t, z)))
        .collect()
}

fn write_manifest(dir: &Path, slices: &[SliceRecord]) -> Manifest {
    let shard = dir.join("shard-0.parquet");
    let bytes = schemas::parquet_io::write_batches(
        &shard,
        &SLICE_SCHEMA,
        schema(),
        &[to_batch(slices)],
        &[],
    )
    .unwrap();
    let params = json!({"test": "prediction_volumes"});
    let studies = VOLUMES
        .iter()
        .enumerate()
        .map(|(i, &(s, _, d))| StudyRecord {
            study_id: s.into(),
            patient_id: format!("P{i}"),
            source_path: String::new(),
            n_targets: 1,
            n_slices: d as u32,
            volume_depth: d as u32,
            volume_height: H,
            volume_width: W,
            fold: 0,
            split: "test".into(),
            shard: "shard-0.parquet".into(),
        })
        .collect();
    let m = Manifest {
        path: dir.join("manifest.parquet"),
        header: ManifestHeader {
            dataset: "test".into(),
            source_kind: SourceKind::Nifti,
            raters: (1..=4).map(|k| format!("A{k}")).collect(),
            rater_order: RaterOrder::Identity,
            channels: vec!["t1".into()],
            crop_size: W,
            normalisation: "none".into(),
            fingerprint: fingerprint(&params),
            params,
            k_folds: 1,
            split_seed: 1,
            split_protocol: None,
            shards: vec![ShardEntry {
                path: "shard-0.parquet".into(),
                rows: slices.len() as u64,
                bytes,
                sha256: String::new(),
            }],
            rejects_file: None,
            rejected_studies: 0,
        },
        studies,
    };
    m.write().unwrap();
    Manifest::read(&m.path).unwrap()
}

/// Rater slots, N probability maps and the image of one stacked volume, each `[D·H·W]`.
type Stacked = (Vec<Option<Vec<u8>>>, Vec<Vec<f32>>, Vec<f32>);

/// A volume's stacked `[D·H·W]` maps: labels per rater and N made-up probabilities.
fn stacked(study: &str, target: &str, depth: i32, n: usize) -> Stacked {
    let hw = (H * W) as usize;
    let slices: Vec<SliceRecord> = (0..depth).map(|z| slice(study, target, z)).collect();
    let raters = (0..4)
        .map(|k| {
            slices[0].raters_present[k].then(|| {
                slices
                    .iter()
                    .flat_map(|s| s.masks[k * hw..(k + 1) * hw].to_vec())
                    .collect()
            })
        })
        .collect();
    let image = slices.iter().flat_map(|s| s.image.clone()).collect();
    let voxels = depth as usize * hw;
    let probs = (0..n)
        .map(|j| {
            (0..voxels)
                .map(|i| {
                    let (x, y) = (
                        (i % W as usize) as f32,
                        ((i / W as usize) % H as usize) as f32,
                    );
                    let d = ((x - 12.0 - j as f32 * 0.5).powi(2) + (y - 9.0).powi(2)).sqrt() - 5.0;
                    1.0 / (1.0 + (d * 0.9).exp())
                })
                .collect()
        })
        .collect();
    (raters, probs, image)
}

#[test]
fn written_volumes_read_back_by_nibabel() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_manifest(dir.path(), &all_slices());
    let studies: Vec<String> = VOLUMES.iter().map(|v| v.0.to_string()).collect();
    let geometry = read_geometry(&manifest, &studies).unwrap();
    let ctx = EvalContext {
        run: "r".into(),
        method: "dpersona".into(),
        stage: 1,
        n_samples: 3,
        seed: 5,
        ..Default::default()
    };
    let header = PredictionsHeader::new(&ctx, UnitKind::Volume, None);
    assert_eq!(header.files, PredictionFiles::Nifti);
    let writer = PredictionWriter::create(&dir.path().join("preds"), &header).unwrap();
    let mut meta = Vec::new();
    let mut blob: Vec<u8> = Vec::new();
    for &(s, t, d) in &VOLUMES {
        let (raters, probs, image) = stacked(s, t, d, 3);
        let g = geometry[&(s.to_string(), t.to_string())];
        assert_eq!(g.spacing_mm, [Z_STEP, ROW_MM, COL_MM]);
        assert_eq!(g.origin_z_mm, 10.0);
        let rater_refs: Vec<Option<&[u8]>> = raters.iter().map(|m| m.as_deref()).collect();
        let prob_refs: Vec<&[f32]> = probs.iter().map(Vec::as_slice).collect();
        writer
            .write_volume(&VolumeToSave {
                study_id: s,
                target_id: t,
                depth: d as u32,
                height: H,
                width: W,
                geometry: g,
                image: &image,
                raters: &rater_refs,
                probs: &prob_refs,
            })
            .unwrap();
        meta.push(json!({
            "study": s, "target": t, "shape": [d, H, W], "n": 3, "r": 4,
            "present": raters.iter().map(Option::is_some).collect::<Vec<_>>(),
            "spacing": g.spacing_mm, "origin_z": g.origin_z_mm,
        }));
        for p in &probs {
            blob.extend(p.iter().flat_map(|v| v.to_le_bytes()));
        }
        for m in &raters {
            match m {
                Some(m) => blob.extend_from_slice(m),
                None => blob.extend(std::iter::repeat_n(0u8, d as usize * (H * W) as usize)),
            }
        }
        blob.extend(image.iter().flat_map(|v| v.to_le_bytes()));
    }
    std::fs::write(
        dir.path().join("expected.json"),
        serde_json::to_string(&meta).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.path().join("expected.bin"), &blob).unwrap();
    let out = testkit::run_py(
        "prediction_volumes_nibabel.py",
        &["check-written", dir.path().to_str().unwrap()],
    );
    assert!(out.contains("3 volumes read by nibabel"), "{out}");

    // Scored back from the folder: one unit per target, float32 kept exactly.
    let scored = score_predictions_dir(
        &dir.path().join("preds"),
        &manifest,
        &MetricOptions::default(),
    )
    .unwrap();
    assert_eq!(scored.units_scored, 3);
    assert!(scored.rows.iter().all(|r| r.unit == "volume"));
    for &(s, t, d) in &VOLUMES {
        let (raters, probs, _) = stacked(s, t, d, 3);
        let direct = eval::unit_metrics::score_unit(
            &raters.iter().map(|m| m.as_deref()).collect::<Vec<_>>(),
            &probs.iter().map(Vec::as_slice).collect::<Vec<_>>(),
            &MetricOptions::default(),
        )
        .unwrap();
        let rows: Vec<_> = scored.rows.iter().filter(|r| r.study_id == s).collect();
        let named = direct.named_values();
        assert_eq!(rows.len(), named.len(), "{s}");
        for (r, (name, v)) in rows.iter().zip(&named) {
            assert_eq!((&r.metric, r.value), (name, *v), "{s}");
        }
    }
}

#[test]
fn nibabel_layout_is_scored_like_numpy() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_manifest(dir.path(), &all_slices());
    let shard = dir.path().join("shard-0.parquet");
    testkit::run_py(
        "prediction_volumes_nibabel.py",
        &[
            "write-layout",
            shard.to_str().unwrap(),
            dir.path().to_str().unwrap(),
        ],
    );
    let expected: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("expected.json")).unwrap())
            .unwrap();
    assert_eq!(expected.len(), 3);
    let scored = score_predictions_dir(
        &dir.path().join("preds"),
        &manifest,
        &MetricOptions::default(),
    )
    .unwrap();
    assert_eq!(scored.header.files, PredictionFiles::Nifti);
    assert_eq!(scored.units_scored, 3);
    for e in &expected {
        let study = e["study"].as_str().unwrap();
        for metric in [
            "ged",
            "dice_soft",
            "dice_max",
            "dice_max_per_sample",
            "dice_match",
        ] {
            let got = scored
                .rows
                .iter()
                .find(|r| r.study_id == study && r.metric == metric)
                .unwrap_or_else(|| panic!("{study} {metric}"))
                .value;
            let want = e[metric].as_f64().unwrap();
            assert!(
                (got - want).abs() <= 1e-9,
                "{study} {metric}: dpersona {got}, numpy {want}"
            );
        }
    }

    // Bad inputs name the file and what is wrong.
    let opts = MetricOptions::default();
    let err = score_predictions_dir(&dir.path().join("bad_range"), &manifest, &opts)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("ST0/1/pred_02.nii.gz") && err.contains("is 255") && err.contains("[0, 1]"),
        "{err}"
    );
    let err = score_predictions_dir(&dir.path().join("bad_depth"), &manifest, &opts)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("ST0/1/pred_03.nii.gz") && err.contains("expected (24, 20, 3)"),
        "{err}"
    );
}
