//! Train a tiny run through the library, evaluate it with `evaluate` (eval crate scoring),
//! and read the metric frame back; and the small preset overfits a handful of slices.
mod trainer_fixture;

use train::evaluate::{evaluate, EvalOptions};
use train::trainer::{train, Stages};
use trainer_fixture::{options, small_config, write_dataset};

fn eval_opts(
    run: &std::path::Path,
    out: &std::path::Path,
    split: &str,
    samples: Vec<u32>,
) -> EvalOptions {
    EvalOptions {
        run_name: None,
        run: run.to_path_buf(),
        manifest: None,
        out: out.to_path_buf(),
        split: split.into(),
        fold: None,
        samples,
        bank: 8,
        unit: None,
        stages: vec![],
        ged_empty_pair: 1.0,
        seed: 1337,
        save_predictions: None,
        device: tch::Device::Cpu,
        batch_size: 8,
    }
}

#[test]
fn train_then_eval_writes_a_readable_frame() {
    let _rng = trainer_fixture::torch_rng_lock();
    let tmp = tempfile::tempdir().unwrap();
    let manifest = write_dataset(
        &tmp.path().join("data"),
        &["train", "train", "val", "test"],
        3,
        11,
    );
    let run = tmp.path().join("run");
    let cfg = small_config("[optim]\nepochs_stage1 = 1\nepochs_stage2 = 1\n");
    train(&options(&manifest, &run, cfg, Stages::Both)).unwrap();
    let out = tmp.path().join("results.parquet");
    let summary = evaluate(&eval_opts(&run, &out, "test", vec![4, 6])).unwrap();
    // Stage 1 at N = 4 and 6, stage 2 once; the test study has 3 slices (slice units).
    assert_eq!(summary.lines.len(), 3);
    assert!(summary.lines.iter().all(|l| l.units == 3));
    let (rows, conv) = eval::results_frame::read_results(&out).unwrap();
    assert_eq!(conv.seed, 1337);
    let s1 = train::checkpoint::read_info(&run.join("stage1"), train::checkpoint::Slot::Best)
        .unwrap()
        .unwrap();
    let sha = schemas::hashing::sha256_file(&run.join("stage1").join(&s1.weights)).unwrap();
    let stage1_rows: Vec<_> = rows
        .iter()
        .filter(|r| r.stage == 1 && r.n_samples == 4)
        .collect();
    assert!(!stage1_rows.is_empty());
    assert!(stage1_rows
        .iter()
        .all(|r| r.checkpoint_sha256 == sha && r.n_outputs == 4 && r.unit == "slice"));
    let stage2: Vec<_> = rows.iter().filter(|r| r.stage == 2).collect();
    assert!(
        stage2.iter().any(|r| r.metric == "dice_mean_identity"),
        "stage 2 has one output per rater"
    );
    assert!(stage2.iter().all(|r| r.n_outputs == 4 && r.bank == 8));
    assert!(eval::results_frame::summary_path(&out).exists());
}

#[test]
fn small_preset_overfits_a_handful_of_slices() {
    let _rng = trainer_fixture::torch_rng_lock();
    let tmp = tempfile::tempdir().unwrap();
    let manifest = write_dataset(&tmp.path().join("data"), &["train", "train", "val"], 4, 5);
    let run = tmp.path().join("run");
    let cfg =
        small_config("[optim]\nepochs_stage1 = 40\nepochs_stage2 = 1\nbatch_size = 4\nlr = 3e-3\n");
    train(&options(&manifest, &run, cfg, Stages::One)).unwrap();
    let out = tmp.path().join("results.parquet");
    let summary = evaluate(&eval_opts(&run, &out, "train", vec![10])).unwrap();
    let line = &summary.lines[0];
    println!("overfit: {line:?}");
    assert_eq!(line.units, 8);
    assert!(
        line.dice_match > 0.9,
        "Dice_match on the training slices {}",
        line.dice_match
    );
}
