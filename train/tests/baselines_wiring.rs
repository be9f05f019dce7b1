//! Every baseline that needs no fused label trains through `trainer::train` (same loader,
//! checkpoints, logs, NaN policy) on tiny synthetic shards without a non-finite step, and
//! `evaluate` writes its rows into results.parquet under the method's name with S, the size
//! of the method's prediction set, in `n_outputs`. A CM run (two learning-rate groups) stopped
//! and resumed ends with the same weights as an uninterrupted one.
mod trainer_fixture;

use std::collections::HashMap;
use std::path::Path;

use schemas::metrics::MetricRecord;
use schemas::train_log::TrainLogRecord;
use tch::Tensor;
use train::baselines::fusion::{MvRule, StapleParams};
use train::baselines::{BaselineSpec, CmOptions, PiononoOptions, ProbUnetOptions, TabOptions};
use train::checkpoint::{read_info, Slot};
use train::evaluate::{evaluate, EvalOptions};
use train::run_dir::RunDir;
use train::trainer::{train, Stages};
use trainer_fixture::{options, small_config, write_dataset};

/// Raters drawn by the fixture.
const RATERS: u32 = 4;

fn eval_opts(run: &Path, out: &Path) -> EvalOptions {
    EvalOptions {
        run_name: None,
        run: run.to_path_buf(),
        manifest: None,
        out: out.to_path_buf(),
        split: "test".into(),
        fold: None,
        samples: vec![4],
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

fn config(spec: BaselineSpec, epochs: u32) -> train::config::TrainConfig {
    let mut cfg = small_config(&format!("[optim]\nepochs_stage1 = {epochs}\n"));
    cfg.baseline = Some(spec);
    cfg
}

#[test]
fn each_baseline_trains_and_evaluates_under_its_name() {
    let _rng = trainer_fixture::torch_rng_lock();
    tch::set_num_threads(1);
    let tmp = tempfile::tempdir().unwrap();
    let manifest = write_dataset(
        &tmp.path().join("data"),
        &["train", "train", "val", "test"],
        4,
        11,
    );
    let prob = ProbUnetOptions::default();
    // (spec, expected S)
    let cases: Vec<(BaselineSpec, u32)> = vec![
        (BaselineSpec::Rs, 1),
        (BaselineSpec::UnetRater { rater: 2 }, 1),
        (
            BaselineSpec::ProbUnet(prob.clone()),
            prob.eval_samples as u32,
        ),
        (BaselineSpec::CmGlobal(CmOptions::default()), RATERS),
        (BaselineSpec::CmPixel(CmOptions::default()), RATERS),
        (BaselineSpec::Pionono(PiononoOptions::default()), RATERS),
        (
            BaselineSpec::Mv {
                rule: MvRule::Strict,
            },
            1,
        ),
        (BaselineSpec::Staple(StapleParams::default()), 1),
        (BaselineSpec::Tab(TabOptions::default()), RATERS),
    ];
    let results = tmp.path().join("results.parquet");
    for (spec, _) in &cases {
        let name = spec.name();
        let run = tmp.path().join(name);
        let summary = train(&options(
            &manifest,
            &run,
            config(spec.clone(), 1),
            Stages::Both,
        ))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(summary.completed, "{name}");
        assert_eq!(summary.best.len(), 1, "{name}: one stage");
        assert!(summary.best[0].1.metric.is_finite(), "{name}");

        let info = RunDir::new(&run).read_info().unwrap();
        assert_eq!(info.method, name);
        let cfg = RunDir::new(&run).read_config().unwrap();
        assert_eq!(
            cfg.baseline.as_ref(),
            Some(spec),
            "{name}: config.toml round trip"
        );

        let (log, _) =
            schemas::read_table::<TrainLogRecord>(&run.join("train_log.parquet")).unwrap();
        let train_rows: Vec<&TrainLogRecord> = log.iter().filter(|r| r.kind == "train").collect();
        assert!(!train_rows.is_empty(), "{name}: no training step logged");
        // Events other than a stage ending on empty predictions (`ends_empty`, likely after
        // one epoch) are non-finite steps or fp16 overflows.
        let bad = |r: &&TrainLogRecord| {
            (r.kind == "event" && r.name != "ends_empty") || !r.value.is_finite()
        };
        assert!(
            !log.iter().any(|r| bad(&r)),
            "{name}: a non-finite step or value: {:?}",
            log.iter().find(bad)
        );

        let ev = evaluate(&eval_opts(&run, &results)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(ev.lines.len(), 1, "{name}");
        assert!(ev.lines[0].units > 0, "{name}");
    }

    let (rows, _) = schemas::read_table::<MetricRecord>(&results).unwrap();
    let mut by_method: HashMap<&str, Vec<&MetricRecord>> = HashMap::new();
    for r in &rows {
        by_method.entry(r.method.as_str()).or_default().push(r);
    }
    assert_eq!(
        by_method.len(),
        cases.len(),
        "methods: {:?}",
        by_method.keys()
    );
    for (spec, s) in &cases {
        let rs = &by_method[spec.name()];
        assert!(!rs.is_empty(), "{}", spec.name());
        for r in rs {
            assert_eq!(
                r.n_outputs,
                *s,
                "{}: n_outputs of {}",
                spec.name(),
                r.metric
            );
            assert_eq!(r.stage, 1);
            assert_eq!(r.run, spec.name());
            assert_eq!(r.checkpoint_sha256.len(), 64);
        }
        assert!(rs.iter().any(|r| r.metric == eval::metric_rows::names::GED));
    }
}

fn load(dir: &Path, slot: Slot) -> HashMap<String, Tensor> {
    let info = read_info(dir, slot).unwrap().unwrap();
    Tensor::read_safetensors(dir.join(info.weights))
        .unwrap()
        .into_iter()
        .collect()
}

#[test]
fn resumed_cm_run_equals_uninterrupted_run() {
    let _rng = trainer_fixture::torch_rng_lock();
    tch::set_num_threads(1);
    let tmp = tempfile::tempdir().unwrap();
    let manifest = write_dataset(&tmp.path().join("data"), &["train", "val"], 4, 3);
    let cfg = config(BaselineSpec::CmGlobal(CmOptions::default()), 2);

    let full = tmp.path().join("full");
    assert!(
        train(&options(&manifest, &full, cfg.clone(), Stages::Both))
            .unwrap()
            .completed
    );

    let parts = tmp.path().join("parts");
    let mut o = options(&manifest, &parts, cfg, Stages::Both);
    o.stop_after = Some((1, 0));
    assert!(!train(&o).unwrap().completed);
    o.resume = true;
    o.stop_after = None;
    assert!(train(&o).unwrap().completed);

    let (a, b) = (
        load(&full.join("stage1"), Slot::Last),
        load(&parts.join("stage1"), Slot::Last),
    );
    assert_eq!(a.len(), b.len());
    assert!(
        a.keys().any(|k| k.starts_with("cm.")),
        "CM variables present"
    );
    for (name, t) in &a {
        assert!(t.equal(&b[name]), "tensor `{name}` differs after resume");
    }
}

#[derive(clap::Parser)]
struct TrainCmd {
    #[command(flatten)]
    args: train::cli::TrainArgs,
}

#[derive(clap::Parser)]
struct EvalCmd {
    #[command(flatten)]
    args: train::cli::EvalArgs,
}

fn train_args(args: &[&str]) -> train::cli::TrainArgs {
    use clap::Parser;
    TrainCmd::try_parse_from(std::iter::once("train").chain(args.iter().copied()))
        .unwrap()
        .args
}

#[test]
fn cli_method_flag_trains_evaluates_and_rejects_bad_combinations() {
    let _rng = trainer_fixture::torch_rng_lock();
    use clap::Parser;
    tch::set_num_threads(1);
    let tmp = tempfile::tempdir().unwrap();
    let manifest = write_dataset(&tmp.path().join("data"), &["train", "val", "test"], 2, 5);
    let m = manifest.to_str().unwrap();
    let cfg = tmp.path().join("cfg.toml");
    std::fs::write(
        &cfg,
        "[optim]\nepochs_stage1 = 1\nbatch_size = 4\n[loader]\nthreads = 1\n",
    )
    .unwrap();
    let c = cfg.to_str().unwrap();
    let run = tmp.path().join("runs").join("rs");
    let r = run.to_str().unwrap();
    let common = [
        "--manifest",
        m,
        "--preset",
        "small",
        "--config",
        c,
        "--device",
        "cpu",
        "--quiet",
    ];

    let err = |extra: &[&str], out: &str| {
        let mut a: Vec<&str> = common.to_vec();
        a.extend_from_slice(&["--out", out]);
        a.extend_from_slice(extra);
        format!("{:#}", train::cli::run_train(train_args(&a)).unwrap_err())
    };
    let other = tmp.path().join("other");
    let o = other.to_str().unwrap();
    // (`--method unet-rater` alone trains every rater: baselines_rater_ensemble.rs.)
    let e = err(&["--method", "rs", "--rater", "1"], o);
    assert!(e.contains("--rater only applies"), "{e}");
    let e = err(&["--method", "unet-rater", "--rater", "9"], o);
    assert!(e.contains("rater 9"), "{e}");

    let mut a: Vec<&str> = common.to_vec();
    a.extend_from_slice(&["--out", r, "--method", "rs"]);
    train::cli::run_train(train_args(&a)).unwrap();
    assert_eq!(RunDir::new(&run).read_info().unwrap().method, "rs");
    // A resumed run keeps its method: naming one again is refused, resuming without works.
    let mut a: Vec<&str> = vec!["--manifest", m, "--out", r, "--resume", "--quiet"];
    let e = format!(
        "{:#}",
        train::cli::run_train(train_args(&[a.as_slice(), &["--method", "rs"]].concat()))
            .unwrap_err()
    );
    assert!(e.contains("--method"), "{e}");
    a.extend_from_slice(&["--device", "cpu"]);
    train::cli::run_train(train_args(&a)).unwrap();

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
    assert!(
        rows.iter().all(|r| r.method == "rs" && r.n_outputs == 1),
        "{:?}",
        rows[0]
    );
}

/// Majority (strict: more than half of the present raters) of `masks` `[R, HW]`.
fn strict_majority(masks: &[f32], present: &[bool], hw: usize) -> Vec<f32> {
    let n = present.iter().filter(|&&p| p).count();
    (0..hw)
        .map(|i| {
            let votes: usize = present
                .iter()
                .enumerate()
                .filter(|(_, &p)| p)
                .map(|(k, _)| (masks[k * hw + i] > 0.5) as usize)
                .sum();
            f32::from(u8::from(n > 0 && 2 * votes > n))
        })
        .collect()
}

#[test]
fn loader_target_goes_through_the_masks_augmentation() {
    let _rng = trainer_fixture::torch_rng_lock();
    use train::loader::{Dataset, Loader, LoaderConfig, Selection};
    let tmp = tempfile::tempdir().unwrap();
    let manifest = write_dataset(&tmp.path().join("data"), &["train", "train"], 4, 9);
    let m = schemas::manifest::Manifest::read(&manifest).unwrap();
    let ds = Dataset::from_manifest(m.clone(), &Selection::split("train")).unwrap();
    let (_, r, h, w) = ds.dims();
    let hw = h * w;
    // Targets computed here from the RAW masks; the loader must warp them like the masks.
    let raw: Vec<(train::batch::RowId, Vec<f32>)> = (0..ds.len())
        .map(|i| {
            let s = ds.get(i);
            let masks: Vec<f32> = s.masks.iter().map(|&v| v as f32).collect();
            (s.id.clone(), strict_majority(&masks, s.present, hw))
        })
        .collect();
    let ds = Dataset::from_manifest(m, &Selection::split("train"))
        .unwrap()
        .with_targets(|id| raw.iter().find(|(i, _)| i == id).map(|(_, t)| t.as_slice()))
        .unwrap();
    let loader = Loader::new(
        ds,
        LoaderConfig {
            batch_size: 4,
            threads: 1,
            shuffle: true,
            augment: train::loader::AugmentKind::Lidc,
            seed: 3,
            ..LoaderConfig::default()
        },
    )
    .unwrap();
    let (mut rows, mut moved) = (0, 0);
    for epoch in 0..3 {
        for batch in loader.epoch(epoch) {
            let batch = batch.unwrap();
            let target = batch.target.as_ref().expect("batch carries the target");
            for b in 0..batch.b {
                let want = strict_majority(
                    &batch.masks[b * r * hw..(b + 1) * r * hw],
                    &batch.present[b * r..(b + 1) * r],
                    hw,
                );
                let got = &target[b * hw..(b + 1) * hw];
                assert_eq!(got, want.as_slice(), "{:?}", batch.rows[b]);
                let id = &batch.rows[b];
                let unwarped = &raw.iter().find(|(i, _)| i == id).unwrap().1;
                moved += usize::from(got != unwarped.as_slice());
                rows += 1;
            }
        }
    }
    // The check means something only if augmentation actually moved some labels.
    assert!(moved > 0, "no augmented row among {rows}");
}

#[test]
fn baseline_table_overrides_single_keys_and_rejects_unknown_ones() {
    let _rng = trainer_fixture::torch_rng_lock();
    let cfg = small_config("[baseline]\nmethod = \"cm-global\"\ncm_lr = 0.05\n");
    let want = CmOptions {
        cm_lr: 0.05,
        ..CmOptions::default()
    };
    assert_eq!(cfg.baseline, Some(BaselineSpec::CmGlobal(want)));
    let err = train::config::TrainConfig::resolve(
        "small",
        Some((
            "[baseline]\nmethod = \"pionono\"\nkl_facter = 1.0\n",
            "mine.toml",
        )),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("kl_facter") && err.contains("mine.toml"),
        "{err}"
    );
    let err = train::config::TrainConfig::resolve(
        "small",
        Some(("[baseline]\nmethod = \"nope\"\n", "mine.toml")),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("nope"), "{err}");
}

/// `train --method NAME --preset compare` resolves the preset, then the method's authors'
/// settings (presets/compare/NAME.toml), then --config, then the flags.
#[test]
fn preset_compare_applies_each_methods_authors_settings() {
    use train::schedule::Schedule;
    let tmp = tempfile::tempdir().unwrap();
    let manifest_path = write_dataset(&tmp.path().join("data"), &["train", "val", "test"], 2, 5);
    let manifest = schemas::manifest::Manifest::read(&manifest_path).unwrap();
    let m = manifest_path.to_str().unwrap();
    let resolve = |extra: &[&str]| {
        let mut a = vec!["--manifest", m, "--preset", "compare"];
        a.extend_from_slice(extra);
        train::cli::resolve_config(&train_args(&a), &manifest)
            .unwrap()
            .1
    };
    let dp = resolve(&[]);
    assert_eq!((dp.optim.lr, dp.optim.schedule), (1e-3, Schedule::Cosine));
    assert!(dp.stage2.mask_absent_raters && dp.baseline.is_none());

    let tab = resolve(&["--method", "tab", "--seed", "8"]);
    assert_eq!(tab.optim.lr, 5e-4);
    assert_eq!(tab.optim.schedule, Schedule::Poly { power: 0.9 });
    assert_eq!(tab.seed, 8);
    assert!(matches!(tab.baseline, Some(BaselineSpec::Tab(ref o)) if o.rank == 7));

    let mv = resolve(&["--method", "mv", "--mv", "inclusive"]);
    assert_eq!((mv.optim.lr, mv.optim.schedule), (1e-3, Schedule::Cosine));
    assert_eq!(
        mv.baseline,
        Some(BaselineSpec::Mv {
            rule: MvRule::Inclusive
        })
    );

    // --config wins over the method's file key by key.
    let mine = tmp.path().join("mine.toml");
    std::fs::write(
        &mine,
        "[baseline]\nmethod = \"pionono\"\nlatent_lr = 0.01\n",
    )
    .unwrap();
    let pio = resolve(&[
        "--method",
        "pionono",
        "--config",
        mine.to_str().unwrap(),
        "--epochs-stage1",
        "3",
    ]);
    assert_eq!(
        pio.optim.schedule,
        Schedule::Step {
            after_epoch: 40,
            decay: 0.1
        }
    );
    assert_eq!(pio.optim.epochs_stage1, 3);
    let want = PiononoOptions {
        latent_lr: 0.01,
        ..PiononoOptions::default()
    };
    assert_eq!(pio.baseline, Some(BaselineSpec::Pionono(want)));

    // Another preset has no method files: --method tab --preset small is the small preset.
    let small = train::cli::resolve_config(
        &train_args(&["--manifest", m, "--preset", "small", "--method", "tab"]),
        &manifest,
    )
    .unwrap()
    .1;
    assert_eq!(small.optim.schedule, Schedule::Cosine);
    assert_eq!(small.optim.lr, 3e-3);
}
