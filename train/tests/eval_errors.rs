//! Bad input to `dpersona eval` (train::evaluate): a manifest that disagrees with the run
//! (raters, channels, crop size), a missing checkpoint (best.json or its weights file gone)
//! and an empty split, each a clear error naming the file and what is wrong.
mod trainer_fixture;

use std::path::{Path, PathBuf};

use schemas::manifest::Manifest;
use train::evaluate::{evaluate, EvalOptions};
use train::trainer::{train, Stages};
use trainer_fixture::{options, small_config, write_dataset};

fn eval_opts(run: &Path, manifest: Option<PathBuf>, out: &Path, split: &str) -> EvalOptions {
    EvalOptions {
        run_name: None,
        run: run.to_path_buf(),
        manifest,
        out: out.to_path_buf(),
        split: split.into(),
        fold: None,
        samples: vec![2],
        bank: 4,
        unit: None,
        stages: vec![],
        ged_empty_pair: 1.0,
        seed: 1,
        save_predictions: None,
        device: tch::Device::Cpu,
        batch_size: 4,
    }
}

/// A copy of `manifest` (and its shard) in `dir` with its header edited by `edit`.
fn edited_manifest(manifest: &Path, dir: &Path, edit: impl FnOnce(&mut Manifest)) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let mut m = Manifest::read(manifest).unwrap();
    for s in &m.header.shards {
        std::fs::copy(m.resolve(&s.path), dir.join(&s.path)).unwrap();
    }
    m.path = dir.join("manifest.parquet");
    edit(&mut m);
    m.write().unwrap();
    m.path
}

fn message(e: train::evaluate::EvalError) -> String {
    format!("{:#}", anyhow::Error::from(e))
}

#[test]
fn eval_refuses_disagreeing_manifests_missing_checkpoints_and_empty_splits() {
    let _rng = trainer_fixture::torch_rng_lock();
    let tmp = tempfile::tempdir().unwrap();
    let manifest = write_dataset(&tmp.path().join("data"), &["train", "val", "test"], 2, 3);
    let run = tmp.path().join("run");
    let cfg = small_config("[optim]\nepochs_stage1 = 1\nepochs_stage2 = 1\n");
    train(&options(&manifest, &run, cfg, Stages::Both)).unwrap();
    let out = tmp.path().join("results.parquet");
    // The run evaluates on its own manifest.
    evaluate(&eval_opts(&run, None, &out, "test")).unwrap();

    // Raters: a manifest naming 3 raters for a run trained with 4.
    let three = edited_manifest(&manifest, &tmp.path().join("three"), |m| {
        m.header.raters.pop();
    });
    let err = message(evaluate(&eval_opts(&run, Some(three.clone()), &out, "test")).unwrap_err());
    assert!(
        err.contains(three.to_str().unwrap())
            && err.contains("3 raters")
            && err.contains("trained with 4"),
        "{err}"
    );

    // Channels: two image channels for a one-channel run.
    let two = edited_manifest(&manifest, &tmp.path().join("two"), |m| {
        m.header.channels.push("pet".into());
    });
    let err = message(evaluate(&eval_opts(&run, Some(two.clone()), &out, "test")).unwrap_err());
    assert!(
        err.contains(two.to_str().unwrap())
            && err.contains("2 image channels (ct, pet)")
            && err.contains("trained with 1"),
        "{err}"
    );

    // Crop size: 48 px crops for a run trained on 32 px.
    let crop = edited_manifest(&manifest, &tmp.path().join("crop"), |m| {
        m.header.crop_size = 48;
    });
    let err = message(evaluate(&eval_opts(&run, Some(crop.clone()), &out, "test")).unwrap_err());
    assert!(
        err.contains(crop.to_str().unwrap()) && err.contains("48x48") && err.contains("32x32"),
        "{err}"
    );

    // Empty split: no study is in `holdout`.
    let err = message(evaluate(&eval_opts(&run, None, &out, "holdout")).unwrap_err());
    assert!(
        err.contains("split=holdout") && err.contains("matches no study"),
        "{err}"
    );

    // Missing weights: best.json names a safetensors file that is gone.
    let best = train::checkpoint::read_info(&run.join("stage2"), train::checkpoint::Slot::Best)
        .unwrap()
        .unwrap();
    let weights = run.join("stage2").join(&best.weights);
    std::fs::remove_file(&weights).unwrap();
    let err = message(evaluate(&eval_opts(&run, None, &out, "test")).unwrap_err());
    assert!(
        err.contains(weights.to_str().unwrap()) && err.contains("missing"),
        "{err}"
    );

    // Missing sidecar: stage 1's best.json gone, stage 1 asked for explicitly.
    std::fs::remove_file(run.join("stage1/best.json")).unwrap();
    let mut opts = eval_opts(&run, None, &out, "test");
    opts.stages = vec![1];
    let err = message(evaluate(&opts).unwrap_err());
    assert!(
        err.contains(run.join("stage1").to_str().unwrap()) && err.contains("best.json"),
        "{err}"
    );
    // No stage left with a best checkpoint.
    std::fs::remove_file(run.join("stage2/best.json")).unwrap();
    let err = message(evaluate(&eval_opts(&run, None, &out, "test")).unwrap_err());
    assert!(
        err.contains(run.to_str().unwrap()) && err.contains("no stage has a best checkpoint"),
        "{err}"
    );
}
