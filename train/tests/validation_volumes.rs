//! Per-epoch validation scores the units `dpersona eval` scores: on a NIfTI manifest a
//! target's slices are stacked into one volume (not averaged slice by slice). A tiny Stage I
//! run trains on a NIfTI-kind manifest (validation runs on volumes inside training), then
//! `fit::validation::validate` on its best checkpoint equals the mean Dice_match of volumes
//! stacked here by hand from the same seeded predictions, and differs from the slice mean;
//! `evaluate` on the run saves NIfTI volumes that score back to its own rows.
mod trainer_fixture;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use eval::unit_metrics::{score_unit, MetricOptions};
use schemas::manifest::{Manifest, SourceKind};
use train::checkpoint::{self, Slot};
use train::infer::{predict, BatchPredictions, Outputs};
use train::loader::{Dataset, Loader, LoaderConfig, Selection};
use train::methods::{DPersonaStage, Method};
use train::seeding::{reseed, Stream};
use train::trainer::{train, Stages};
use trainer_fixture::{options, small_config, write_dataset};

/// The fixture's manifest and shard, copied with `source_kind = nifti`.
fn as_nifti(manifest: &Path, dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let mut m = Manifest::read(manifest).unwrap();
    for s in &m.header.shards {
        std::fs::copy(m.resolve(&s.path), dir.join(&s.path)).unwrap();
    }
    m.path = dir.join("manifest.parquet");
    m.header.source_kind = SourceKind::Nifti;
    m.write().unwrap();
    m.path
}

#[test]
fn nifti_validation_scores_stacked_volumes() {
    let _rng = trainer_fixture::torch_rng_lock();
    let tmp = tempfile::tempdir().unwrap();
    let lidc = write_dataset(
        &tmp.path().join("data"),
        &["train", "val", "val", "val"],
        3,
        9,
    );
    let manifest = as_nifti(&lidc, &tmp.path().join("nifti"));
    let run = tmp.path().join("run");
    let cfg = small_config("[optim]\nepochs_stage1 = 1\nepochs_stage2 = 1\n");
    train(&options(&manifest, &run, cfg.clone(), Stages::One)).unwrap();

    let cfg = train::run_dir::RunDir::new(&run).read_config().unwrap();
    let best = checkpoint::read_info(&run.join("stage1"), Slot::Best)
        .unwrap()
        .unwrap();
    let mut stage1 = DPersonaStage::new(&cfg, 1, tch::Device::Cpu).unwrap();
    checkpoint::load_weights(&run.join("stage1"), &best, stage1.vars_mut()).unwrap();
    let model = stage1.model();
    let dataset = Dataset::open(&manifest, &Selection::split("val")).unwrap();
    assert_eq!(dataset.len(), 9);
    let loader = Loader::new(
        dataset,
        LoaderConfig {
            threads: 1,
            ..LoaderConfig::eval(4)
        },
    )
    .unwrap();
    let got = train::fit::validation::validate(
        &stage1,
        cfg.seed,
        &loader,
        tch::Device::Cpu,
        train::precision::Precision::Fp32,
        7,
    )
    .unwrap();
    let (got, got_empty) = (got.metric, got.empty);

    // The same seeded predictions, stacked per study here: slice_index -> (probs, raters).
    reseed(cfg.seed, Stream::Validation, 1, 7, 0);
    type SliceMaps = (Vec<Vec<f32>>, Vec<Vec<u8>>);
    let mut volumes: BTreeMap<String, BTreeMap<i32, SliceMaps>> = BTreeMap::new();
    let opts = MetricOptions::default();
    let mut slice_scores = Vec::new();
    for batch in loader.epoch(0) {
        let batch = batch.unwrap();
        let (x, _) = batch.to_tensors(tch::Device::Cpu);
        let preds = BatchPredictions::new(
            &batch,
            &predict(model, &x, Outputs::Samples(cfg.validation.samples)),
        );
        for b in 0..batch.b {
            slice_scores.push(preds.score(b, &opts).unwrap().dice_match);
            let probs = preds.probs_of(b).iter().map(|p| p.to_vec()).collect();
            let raters = preds
                .raters_of(b)
                .iter()
                .map(|r| r.unwrap().to_vec())
                .collect();
            volumes
                .entry(batch.rows[b].study_id.clone())
                .or_default()
                .insert(batch.rows[b].slice_index, (probs, raters));
        }
    }
    assert_eq!(volumes.len(), 3);
    let mut volume_scores = Vec::new();
    for slices in volumes.values() {
        assert_eq!(slices.len(), 3);
        let n = slices.values().next().unwrap().0.len();
        let probs: Vec<Vec<f32>> = (0..n)
            .map(|j| slices.values().flat_map(|s| s.0[j].clone()).collect())
            .collect();
        let raters: Vec<Vec<u8>> = (0..4)
            .map(|k| slices.values().flat_map(|s| s.1[k].clone()).collect())
            .collect();
        let s = score_unit(
            &raters
                .iter()
                .map(|m| Some(m.as_slice()))
                .collect::<Vec<_>>(),
            &probs.iter().map(Vec::as_slice).collect::<Vec<_>>(),
            &opts,
        )
        .unwrap();
        volume_scores.push(s.dice_match);
    }
    let want = volume_scores.iter().sum::<f64>() / volume_scores.len() as f64;
    // `empty`: no predicted pixel above the metrics' strict 0.5 threshold, anywhere.
    let any_foreground = volumes
        .values()
        .flat_map(|slices| slices.values())
        .any(|(probs, _)| probs.iter().flatten().any(|p| *p > 0.5));
    assert_eq!(got_empty, !any_foreground);
    let slice_mean = slice_scores.iter().sum::<f64>() / slice_scores.len() as f64;
    println!("validation {got}, volumes {want}, slices {slice_mean}");
    assert!(
        (got - want).abs() < 1e-12,
        "validate {got} vs volumes {want}"
    );
    assert!(
        (got - slice_mean).abs() > 1e-6,
        "volume and slice means coincide ({got}); the test cannot tell them apart"
    );

    // `dpersona eval` on the same run scores volumes too, saves them as NIfTI, and the saved
    // folder scored back gives the same rows (float32 probabilities are kept exactly).
    let out = tmp.path().join("results.parquet");
    let preds = tmp.path().join("preds");
    let summary = train::evaluate::evaluate(&train::evaluate::EvalOptions {
        run_name: None,
        run: run.clone(),
        manifest: None,
        out: out.clone(),
        split: "val".into(),
        fold: None,
        samples: vec![3],
        bank: 4,
        unit: None,
        stages: vec![1],
        ged_empty_pair: 1.0,
        seed: 1,
        save_predictions: Some(preds.clone()),
        device: tch::Device::Cpu,
        batch_size: 4,
    })
    .unwrap();
    assert_eq!(summary.lines[0].units, 3);
    let folder = preds.join("stage1_n3");
    assert!(folder.join("S01/t1/pred_03.nii.gz").exists());
    assert!(!folder.join("S01/t1/slice_0000").exists());
    let (rows, conv) = eval::results_frame::read_results(&out).unwrap();
    assert_eq!(conv.unit, eval::metric_rows::UnitKind::Volume);
    let scored = eval::predictions::score_predictions_dir(
        &folder,
        &Manifest::read(&manifest).unwrap(),
        &opts,
    )
    .unwrap();
    assert_eq!(scored.units_scored, 3);
    assert_eq!(scored.rows.len(), rows.len());
    for r in &scored.rows {
        let e = rows
            .iter()
            .find(|e| e.study_id == r.study_id && e.metric == r.metric)
            .unwrap_or_else(|| panic!("{} {}", r.study_id, r.metric));
        assert_eq!(e.value, r.value, "{} {}", r.study_id, r.metric);
    }
}
