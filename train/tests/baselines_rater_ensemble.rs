//! `dpersona train --method unet-rater` without `--rater` trains one U-Net per rater into
//! RUN/rater_K/ (each a normal run with its own config, checkpoints and logs), and
//! `dpersona eval --run RUN` scores the R models as ONE method row set with S = R whose
//! channel k is model k: the identity Dice of rater k in results.parquet equals the Dice,
//! computed here from model k's own checkpoint, of model k's map against rater k's mask.
mod trainer_fixture;

use std::collections::BTreeMap;

use clap::Parser;
use schemas::metrics::MetricRecord;
use train::baselines::BaselineSpec;
use train::checkpoint::{load_weights, read_info, Slot};
use train::loader::{Dataset, Loader, LoaderConfig, Selection};
use train::run_dir::RunDir;
use trainer_fixture::write_dataset;

#[derive(Parser)]
struct TrainCmd {
    #[command(flatten)]
    args: train::cli::TrainArgs,
}

#[derive(Parser)]
struct EvalCmd {
    #[command(flatten)]
    args: train::cli::EvalArgs,
}

const RATERS: usize = 4;

/// Dice of `p > 0.5` against `mask`, with eval's smoothing (empty vs empty = 1).
fn dice(p: &[f32], mask: &[f32]) -> f64 {
    let (mut inter, mut a, mut b) = (0u64, 0u64, 0u64);
    for (&pv, &mv) in p.iter().zip(mask) {
        let (x, y) = (pv > 0.5, mv > 0.5);
        inter += (x && y) as u64;
        a += x as u64;
        b += y as u64;
    }
    (2.0 * inter as f64 + 1e-8) / ((a + b) as f64 + 1e-8)
}

#[test]
fn all_raters_train_into_one_folder_and_evaluate_as_one_method() {
    let _rng = trainer_fixture::torch_rng_lock();
    tch::set_num_threads(1);
    let tmp = tempfile::tempdir().unwrap();
    let manifest = write_dataset(
        &tmp.path().join("data"),
        &["train", "train", "val", "test", "test"],
        2,
        17,
    );
    let cfg = tmp.path().join("cfg.toml");
    std::fs::write(
        &cfg,
        "[optim]\nepochs_stage1 = 2\nbatch_size = 4\n[loader]\nthreads = 1\n",
    )
    .unwrap();
    let root = tmp.path().join("runs").join("unet-rater");
    let (m, c, r) = (
        manifest.to_str().unwrap(),
        cfg.to_str().unwrap(),
        root.to_str().unwrap(),
    );
    let args = TrainCmd::try_parse_from([
        "train",
        "--manifest",
        m,
        "--preset",
        "small",
        "--config",
        c,
        "--device",
        "cpu",
        "--quiet",
        "--out",
        r,
        "--method",
        "unet-rater",
    ])
    .unwrap()
    .args;
    train::cli::run_train(args).unwrap();
    assert!(
        !RunDir::new(&root).exists(),
        "the root holds no run of its own"
    );
    for k in 0..RATERS {
        let member = RunDir::new(root.join(format!("rater_{k}")));
        assert_eq!(member.read_info().unwrap().method, "unet-rater");
        assert_eq!(
            member.read_config().unwrap().baseline,
            Some(BaselineSpec::UnetRater { rater: k as i64 })
        );
        assert!(read_info(&member.stage_dir(1), Slot::Best)
            .unwrap()
            .is_some());
        assert!(member.root.join("train_log.parquet").exists());
    }
    // The folder of all raters is the latest run, so `dpersona eval` finds it unnamed.
    let latest = RunDir::from_latest(&root.parent().unwrap().join("latest")).unwrap();
    assert_eq!(
        std::path::absolute(&latest.root).unwrap(),
        std::path::absolute(&root).unwrap()
    );
    // `--rater all` on a finished folder resumes every member: nothing left to do.
    let args = TrainCmd::try_parse_from([
        "train",
        "--manifest",
        m,
        "--out",
        r,
        "--resume",
        "--device",
        "cpu",
        "--quiet",
    ])
    .unwrap()
    .args;
    train::cli::run_train(args).unwrap();

    let results = tmp.path().join("results.parquet");
    let eval = EvalCmd::try_parse_from([
        "eval",
        "--run",
        r,
        "--out",
        results.to_str().unwrap(),
        "--device",
        "cpu",
    ])
    .unwrap()
    .args;
    train::cli::run_eval(eval).unwrap();
    let (rows, _) = schemas::read_table::<MetricRecord>(&results).unwrap();
    assert!(!rows.is_empty());
    for row in &rows {
        assert_eq!(row.method, "unet-rater");
        assert_eq!(row.run, "unet-rater");
        assert_eq!(row.n_outputs, RATERS as u32, "{}", row.metric);
        assert_eq!(row.checkpoint_sha256.len(), 64);
    }
    let mean_of = |name: &str| {
        let v: Vec<f64> = rows
            .iter()
            .filter(|r| r.metric == name)
            .map(|r| r.value)
            .collect();
        assert!(!v.is_empty(), "no {name} rows");
        v.iter().sum::<f64>() / v.len() as f64
    };

    // Model k alone, from its own checkpoint, against rater k on the test slices.
    let manifest_rec = schemas::manifest::Manifest::read(&manifest).unwrap();
    let dataset = Dataset::from_manifest(manifest_rec, &Selection::split("test")).unwrap();
    let loader = Loader::new(dataset, LoaderConfig::eval(8)).unwrap();
    let mut sums: BTreeMap<usize, (f64, usize)> = BTreeMap::new();
    for k in 0..RATERS {
        let member = RunDir::new(root.join(format!("rater_{k}")));
        let cfg = member.read_config().unwrap();
        let spec = cfg.baseline.clone().unwrap();
        let (mut vs, model) =
            train::methods::build_baseline(&cfg, &spec, tch::Device::Cpu).unwrap();
        let dir = member.stage_dir(1);
        let info = read_info(&dir, Slot::Best).unwrap().unwrap();
        load_weights(&dir, &info, &mut vs).unwrap();
        for batch in loader.epoch(0) {
            let batch = batch.unwrap();
            let (x, _) = batch.to_tensors(tch::Device::Cpu);
            let p: Vec<f32> =
                Vec::try_from(train::methods::predict_set(&model, &x).flatten(0, -1)).unwrap();
            let hw = batch.h * batch.w;
            for b in 0..batch.b {
                if !batch.present[b * batch.r + k] {
                    continue;
                }
                let mask = &batch.masks[(b * batch.r + k) * hw..(b * batch.r + k + 1) * hw];
                let e = sums.entry(k).or_default();
                e.0 += dice(&p[b * hw..(b + 1) * hw], mask);
                e.1 += 1;
            }
        }
    }
    for (k, (sum, n)) in sums {
        let name = eval::metric_rows::names::dice_rater_identity(k + 1);
        let got = mean_of(&name);
        let expect = sum / n as f64;
        assert!(
            (got - expect).abs() < 1e-9,
            "{name}: results {got} vs model {k} alone {expect}"
        );
    }
}
