//! A tiny synthetic multi-rater dataset written as REAL slice shards and a manifest
//! (schemas::slice::to_batch + AtomicParquetWriter, schemas::manifest::Manifest), so the
//! trainer tests read it through the real loader with its checksum and fingerprint checks.
//!
//! Each slice shows a bright disc on a dark noisy background; the four raters draw discs of
//! radius r, r, r+1 and r+1 around the same centre.
#![allow(dead_code)]
use std::path::{Path, PathBuf};

use schemas::manifest::{
    fingerprint, Manifest, ManifestHeader, RaterOrder, ShardEntry, SourceKind, StudyRecord,
};
use schemas::parquet_io::AtomicParquetWriter;
use schemas::slice::{self, SliceRecord};

/// Every test that trains holds this guard for its whole body (the trainer reseeds
/// libtorch's process-wide generator at every step). Not every binary that includes this
/// module trains, hence the allow (as `dead_code` above, for the same reason).
#[allow(unused_imports)]
pub use testkit::torch_rng_lock;

pub const SIZE: u32 = 32;

fn lcg(state: &mut u64) -> f64 {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    ((*state >> 11) as f64) / ((1u64 << 53) as f64)
}

/// One slice of `study`: disc centre and radius vary with (study, slice).
fn make_slice(study: usize, index: usize, seed: u64) -> SliceRecord {
    let mut st = seed ^ ((study as u64) << 32) ^ (index as u64 + 1);
    let n = SIZE as usize;
    let cy = 10.0 + lcg(&mut st) * 12.0;
    let cx = 10.0 + lcg(&mut st) * 12.0;
    let r = 4.0 + lcg(&mut st) * 3.0;
    let radii = [r, r, r + 1.0, r + 1.0];
    let mut image = vec![0f32; n * n];
    let mut masks = vec![0u8; 4 * n * n];
    for y in 0..n {
        for x in 0..n {
            let d = ((y as f64 - cy).powi(2) + (x as f64 - cx).powi(2)).sqrt();
            image[y * n + x] = (if d <= r + 0.5 { 0.8 } else { 0.1 } + 0.1 * lcg(&mut st)) as f32;
            for (k, rk) in radii.iter().enumerate() {
                masks[k * n * n + y * n + x] = u8::from(d <= *rk);
            }
        }
    }
    let mut rec = SliceRecord {
        study_id: format!("S{study:02}"),
        patient_id: format!("P{study:02}"),
        target_id: "t1".into(),
        slice_index: index as i32,
        z_mm: index as f64,
        height: SIZE,
        width: SIZE,
        channels: 1,
        spacing_row_mm: 1.0,
        spacing_col_mm: 1.0,
        image,
        masks,
        raters_present: vec![true; 4],
        rater_area: vec![],
        intersection: vec![],
        union: vec![],
        crop_row0: 0,
        crop_col0: 0,
        source_height: SIZE,
        source_width: SIZE,
        source_files: vec![format!("synthetic/{study}")],
        source_sha256: vec!["0".repeat(64)],
    };
    rec.derive_consensus();
    rec
}

/// Writes `splits.len()` studies (study i gets split `splits[i]`, fold i % 2) with
/// `slices` slices each into `dir`; returns the manifest path.
pub fn write_dataset(dir: &Path, splits: &[&str], slices: usize, seed: u64) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let params = serde_json::json!({"synthetic": "discs", "size": SIZE, "seed": seed});
    let fp = fingerprint(&params);
    let shard_name = "shard_0000.parquet";
    let shard_path = dir.join(shard_name);
    let mut rows = Vec::new();
    let mut studies = Vec::new();
    for (i, split) in splits.iter().enumerate() {
        for s in 0..slices {
            rows.push(make_slice(i, s, seed));
        }
        studies.push(StudyRecord {
            study_id: format!("S{i:02}"),
            patient_id: format!("P{i:02}"),
            source_path: format!("synthetic/{i}"),
            n_targets: 1,
            n_slices: slices as u32,
            volume_depth: slices as u32,
            volume_height: SIZE,
            volume_width: SIZE,
            fold: (i % 2) as u32,
            split: split.to_string(),
            shard: shard_name.into(),
        });
    }
    let mut w =
        AtomicParquetWriter::create(&shard_path, slice::schema(), &slice::SCHEMA, 16).unwrap();
    w.set_metadata(slice::KEY_FINGERPRINT, fp.clone());
    let ids: Vec<String> = studies.iter().map(|s| s.study_id.clone()).collect();
    w.set_metadata(slice::KEY_STUDIES, serde_json::to_string(&ids).unwrap());
    w.write(&slice::to_batch(&rows)).unwrap();
    let bytes = w.finish().unwrap();
    let manifest = Manifest {
        path: dir.join("manifest.parquet"),
        header: ManifestHeader {
            dataset: "discs".into(),
            source_kind: SourceKind::Lidc,
            raters: (1..=4).map(|k| format!("rater{k}")).collect(),
            rater_order: RaterOrder::Identity,
            channels: vec!["ct".into()],
            crop_size: SIZE,
            normalisation: "synthetic, [0,1]".into(),
            params,
            fingerprint: fp,
            k_folds: 2,
            split_seed: 0,
            split_protocol: None,
            shards: vec![ShardEntry {
                path: shard_name.into(),
                rows: rows.len() as u64,
                bytes,
                sha256: schemas::hashing::sha256_file(&shard_path).unwrap(),
            }],
            rejects_file: None,
            rejected_studies: 0,
        },
        studies,
    };
    manifest.write().unwrap();
    manifest.path
}

/// The `small` preset with test-sized settings merged over it.
pub fn small_config(extra: &str) -> train::config::TrainConfig {
    let base = "[optim]\nbatch_size = 4\n[loader]\nthreads = 1\nprefetch = 2\n[validation]\nsamples = 4\nbank = 8\nbatch_size = 8\n[stage2]\nbank = 8\n";
    let mut v: toml::Value = base.parse::<toml::Table>().map(toml::Value::Table).unwrap();
    train::config::merge_toml(
        &mut v,
        extra
            .parse::<toml::Table>()
            .map(toml::Value::Table)
            .unwrap(),
    );
    train::config::TrainConfig::resolve("small", Some((&toml::to_string(&v).unwrap(), "test")))
        .unwrap()
}

pub fn options(
    manifest: &Path,
    run: &Path,
    cfg: train::config::TrainConfig,
    stages: train::trainer::Stages,
) -> train::trainer::TrainOptions {
    train::trainer::TrainOptions {
        manifest: manifest.to_path_buf(),
        run: run.to_path_buf(),
        config: cfg,
        preset: "small".into(),
        fold: None,
        stages,
        device: tch::Device::Cpu,
        resume: false,
        backbone_weights: None,
        progress: false,
        latest_pointer: None,
        stop_after: None,
    }
}

/// A batch of `b` 64x64 images in [0, 1] (drawn from torch's RNG: seed it first) with four
/// raters' nested discs (radius² 100..220 around (30, 34)): `(x, masks, union,
/// intersection)`, the inputs of one Stage-I loss.
pub fn disc_batch(b: i64) -> (tch::Tensor, tch::Tensor, tch::Tensor, tch::Tensor) {
    use tch::{Device, Kind, Tensor};
    let x = Tensor::rand([b, 1, 64, 64], (Kind::Float, Device::Cpu));
    let yy = Tensor::arange(64, (Kind::Float, Device::Cpu));
    let r2 = (yy.view([64, 1]) - 30.0).square() + (yy.view([1, 64]) - 34.0).square();
    let masks: Vec<Tensor> = [100.0, 140.0, 180.0, 220.0]
        .iter()
        .map(|r: &f64| r2.le(*r).to_kind(Kind::Float))
        .collect();
    let y = Tensor::stack(&masks, 0).unsqueeze(0).repeat([b, 1, 1, 1]);
    let union = y.amax([1i64].as_slice(), false);
    let inter = y.amin([1i64].as_slice(), false);
    (x, y, union, inter)
}

/// ‖a − b‖ / ‖b‖ in f64.
pub fn rel_err(a: &tch::Tensor, b: &tch::Tensor) -> f64 {
    let a = a.to_kind(tch::Kind::Double);
    let b = b.to_kind(tch::Kind::Double);
    (&a - &b).norm().double_value(&[]) / b.norm().double_value(&[]).max(1e-12)
}
