//! The training loop knows no method by name: a method written here, outside the crate,
//! trains through `fit` with resume and early stopping, by implementing `Method` alone.
//!
//! `MeanIntensity` learns one logit toward the mean mask coverage of its batches (a real
//! loss, real Adam steps) and predicts that constant probability everywhere. Coverage is
//! far below 0.5, so its thresholded prediction is empty at every epoch: the validation
//! metric never rises after epoch 0, which is what early stopping must notice.
mod trainer_fixture;

use eval::unit_metrics::UnitScores;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};
use train::baselines::LossTerms;
use train::batch::{Batch, BatchTensors};
use train::checkpoint::{read_info, Slot};
use train::config::{PatienceFrom, TrainConfig};
use train::error::TrainError;
use train::fit::{fit, FitContext};
use train::loader::{Dataset, Loader, LoaderConfig, Selection};
use train::methods::{Method, OptimGroup, StepAt};
use train::optim::{Adam, AdamParams};
use train::run_dir::RunDir;
use train::train_log::TrainLog;
use trainer_fixture::{small_config, write_dataset};

struct MeanIntensity {
    vs: VarStore,
    logit: Tensor,
    epochs: u32,
    lr: f64,
    /// Trained toward this probability instead of the batch's mask coverage.
    toward: Option<f64>,
}

impl MeanIntensity {
    fn new(epochs: u32, lr: f64) -> Self {
        let vs = VarStore::new(Device::Cpu);
        let logit = vs.root().var("logit", &[1], tch::nn::Init::Const(-4.0));
        Self {
            vs,
            logit,
            epochs,
            lr,
            toward: None,
        }
    }

    /// Starts just below 0.5 and learns toward 0.9: the thresholded prediction is the empty
    /// map for the first epochs and the full map from the epoch the logit crosses 0.
    fn leaving_empty(epochs: u32, lr: f64) -> Self {
        let mut m = Self::new(epochs, lr);
        tch::no_grad(|| {
            let _ = m.logit.fill_(-0.3);
        });
        m.toward = Some(0.9);
        m
    }
}

impl Method for MeanIntensity {
    fn stage(&self) -> u8 {
        1
    }
    fn epochs(&self) -> u32 {
        self.epochs
    }
    fn label(&self) -> Option<&'static str> {
        Some("mean-intensity")
    }
    fn vars(&self) -> &VarStore {
        &self.vs
    }
    fn vars_mut(&mut self) -> &mut VarStore {
        &mut self.vs
    }
    fn optimizers(&self) -> Vec<OptimGroup> {
        let params = AdamParams {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        };
        vec![OptimGroup {
            adam: Adam::new(Adam::select(&self.vs, &[], &[]), params, self.lr),
            lr0: self.lr,
        }]
    }
    fn train_step(&self, _batch: &Batch, t: &BatchTensors, _at: StepAt<'_>) -> Option<LossTerms> {
        let coverage = match self.toward {
            Some(p) => Tensor::from(p as f32),
            None => t.masks.to_kind(Kind::Float).mean(Kind::Float),
        };
        let gap = self.logit.sigmoid().squeeze() - coverage;
        let total = &gap * &gap;
        Some(LossTerms {
            terms: vec![("gap", gap.abs())],
            total,
        })
    }
    fn predict_set(&self, x: &Tensor) -> Tensor {
        let (b, _, h, w) = x.size4().unwrap();
        tch::no_grad(|| {
            self.logit
                .sigmoid()
                .view([1, 1, 1, 1])
                .expand([b, 1, h, w], false)
        })
        .contiguous()
    }
    fn metric_name(&self) -> String {
        "dice_match".into()
    }
    fn pick(&self, s: &UnitScores) -> Result<f64, TrainError> {
        Ok(s.dice_match)
    }
}

struct Setup {
    _tmp: tempfile::TempDir,
    run: RunDir,
    cfg: TrainConfig,
    train: Loader,
    val: Loader,
}

fn setup(patience: Option<u32>, min_epochs: Option<u32>) -> Setup {
    setup_from(patience, min_epochs, PatienceFrom::Start)
}

fn setup_from(patience: Option<u32>, min_epochs: Option<u32>, from: PatienceFrom) -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let manifest = write_dataset(&tmp.path().join("data"), &["train", "train", "val"], 4, 3);
    let mut cfg = small_config("");
    cfg.validation.patience = patience;
    cfg.validation.min_epochs = min_epochs;
    cfg.validation.patience_from = from;
    let loader = |split: &str, cfg: LoaderConfig| {
        Loader::new(
            Dataset::open(&manifest, &Selection::split(split)).unwrap(),
            cfg,
        )
        .unwrap()
    };
    let train = loader(
        "train",
        LoaderConfig {
            batch_size: 4,
            threads: 1,
            shuffle: true,
            seed: 5,
            ..LoaderConfig::default()
        },
    );
    let val = loader(
        "val",
        LoaderConfig {
            threads: 1,
            ..LoaderConfig::eval(4)
        },
    );
    let run = RunDir::new(tmp.path().join("run"));
    std::fs::create_dir_all(&run.root).unwrap();
    Setup {
        _tmp: tmp,
        run,
        cfg,
        train,
        val,
    }
}

fn fit_once(s: &Setup, method: &mut MeanIntensity) -> train::checkpoint::CheckpointInfo {
    let ctx = FitContext {
        cfg: &s.cfg,
        run: &s.run,
        device: Device::Cpu,
        train: &s.train,
        val: &s.val,
        progress: false,
        fingerprint: "test".into(),
        backbone_weights: None,
        stop_after: None,
    };
    let mut log = TrainLog::open(&s.run).unwrap();
    fit(method, &ctx, &mut log).unwrap().unwrap()
}

#[test]
fn early_stopping_ends_a_stage_whose_metric_stops_rising_and_resume_keeps_it_ended() {
    let s = setup(Some(2), None);
    let logit0 = MeanIntensity::new(10, 3e-2).logit.double_value(&[0]);
    let mut m = MeanIntensity::new(10, 3e-2);
    let best = fit_once(&s, &mut m);
    let dir = s.run.stage_dir(1);
    let last = read_info(&dir, Slot::Last).unwrap().unwrap();
    // Epoch 0 sets the metric; epochs 1 and 2 only tie it: patience 2 is spent after epoch 2.
    assert_eq!(last.epoch, 2, "stopped after epoch 2 of 10");
    assert_eq!(last.rose_epoch, Some(0));
    assert_eq!(best.epoch, 2, "a tie still moves `best` to the later epoch");
    assert!(
        m.logit.double_value(&[0]) > logit0,
        "the method really trained: its logit moved toward the mask coverage"
    );
    let text = std::fs::read_to_string(s.run.text_log_path()).unwrap();
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(
        text.lines()
            .nth(2)
            .unwrap()
            .contains("early stop: no better val dice_match for 2 epochs"),
        "{text}"
    );
    assert!(text.contains("| mean-intensity | total "), "{text}");
    let log = TrainLog::open(&s.run).unwrap();
    let events: Vec<_> = log
        .rows()
        .iter()
        .filter(|r| r.kind == "event" && r.name == "early_stop")
        .map(|r| r.epoch)
        .collect();
    assert_eq!(events, vec![2]);

    // Resuming a stopped stage trains nothing more.
    let again = fit_once(&s, &mut MeanIntensity::new(10, 3e-2));
    assert_eq!(again, best);
    let last_again = read_info(&dir, Slot::Last).unwrap().unwrap();
    assert_eq!(last_again, last);
}

#[test]
fn without_patience_every_epoch_trains() {
    let s = setup(None, None);
    fit_once(&s, &mut MeanIntensity::new(5, 3e-2));
    let last = read_info(&s.run.stage_dir(1), Slot::Last).unwrap().unwrap();
    assert_eq!(last.epoch, 4);
    assert_eq!(last.rose_epoch, Some(0));
}

#[test]
fn min_epochs_holds_early_stopping_back_until_the_warm_up_is_over() {
    // Patience 2 alone stops after epoch 2 (see above); min_epochs 5 keeps the stage going
    // through epoch 4, then it stops, and a resume keeps it stopped.
    let s = setup(Some(2), Some(5));
    let best = fit_once(&s, &mut MeanIntensity::new(10, 3e-2));
    let last = read_info(&s.run.stage_dir(1), Slot::Last).unwrap().unwrap();
    assert_eq!(last.epoch, 4, "stopped after the 5th epoch");
    let again = fit_once(&s, &mut MeanIntensity::new(10, 3e-2));
    assert_eq!(again, best);
    assert_eq!(
        read_info(&s.run.stage_dir(1), Slot::Last).unwrap().unwrap(),
        last
    );
}

/// The validation metric per epoch, from the Parquet training log.
fn val_metrics(s: &Setup) -> Vec<f64> {
    let log = TrainLog::open(&s.run).unwrap();
    log.rows()
        .iter()
        .filter(|r| r.kind == "val")
        .map(|r| r.value)
        .collect()
}

fn events(s: &Setup, name: &str) -> Vec<u32> {
    let log = TrainLog::open(&s.run).unwrap();
    log.rows()
        .iter()
        .filter(|r| r.kind == "event" && r.name == name)
        .map(|r| r.epoch)
        .collect()
}

#[test]
fn after_empty_holds_patience_while_every_prediction_is_empty_and_says_so() {
    // The always-empty method that `start` stops after epoch 2 (above): with `after-empty`
    // its empty epochs spend no patience, every epoch trains, and the log says why.
    let s = setup_from(Some(2), None, PatienceFrom::AfterEmpty);
    fit_once(&s, &mut MeanIntensity::new(6, 3e-2));
    let last = read_info(&s.run.stage_dir(1), Slot::Last).unwrap().unwrap();
    assert_eq!(last.epoch, 5, "all 6 epochs trained");
    assert_eq!(last.empty_epoch, Some(5));
    assert!(events(&s, "early_stop").is_empty());
    assert_eq!(events(&s, "ends_empty"), vec![5]);
    let text = std::fs::read_to_string(s.run.text_log_path()).unwrap();
    let lines: Vec<_> = text.lines().collect();
    assert!(
        lines[1].contains("every val prediction empty: patience waits"),
        "{text}"
    );
    assert!(
        lines[5].contains("every val prediction is still empty at the stage's end"),
        "{text}"
    );
}

#[test]
fn after_empty_counts_patience_from_the_last_empty_epoch_and_resume_keeps_it() {
    let (patience, epochs) = (2u32, 14);
    let s = setup_from(Some(patience), None, PatienceFrom::AfterEmpty);
    let best = fit_once(&s, &mut MeanIntensity::leaving_empty(epochs, 3e-2));
    let metrics = val_metrics(&s);
    // Where the prediction left the empty map, read off the metric (empty and full maps
    // score differently on these masks); the set-up only tests the rule if that is later
    // than `patience`, where `start` stops (below).
    let left = metrics
        .iter()
        .position(|m| *m != metrics[0])
        .unwrap_or_else(|| panic!("metric never moved: {metrics:?}")) as u32;
    assert!(
        left > patience + 1,
        "left the empty map at epoch {left}: {metrics:?}"
    );
    // The last strict rise, from the metrics alone.
    let mut rose = 0;
    for (e, m) in metrics.iter().enumerate() {
        if *m
            > metrics[..e]
                .iter()
                .cloned()
                .fold(f64::NEG_INFINITY, f64::max)
        {
            rose = e as u32;
        }
    }
    let from = rose.max(left - 1);
    let last = read_info(&s.run.stage_dir(1), Slot::Last).unwrap().unwrap();
    assert_eq!(last.empty_epoch, Some(left - 1));
    assert_eq!(last.epoch, from + patience, "{metrics:?}");
    assert_eq!(events(&s, "early_stop"), vec![from + patience]);
    assert!(events(&s, "ends_empty").is_empty());
    let again = fit_once(&s, &mut MeanIntensity::leaving_empty(epochs, 3e-2));
    assert_eq!(again, best);
    assert_eq!(
        read_info(&s.run.stage_dir(1), Slot::Last).unwrap().unwrap(),
        last
    );

    // The same run under `start` stops after epoch `patience`, on the empty map.
    let s = setup_from(Some(patience), None, PatienceFrom::Start);
    fit_once(&s, &mut MeanIntensity::leaving_empty(epochs, 3e-2));
    let last = read_info(&s.run.stage_dir(1), Slot::Last).unwrap().unwrap();
    assert_eq!(last.epoch, patience);
    assert_eq!(events(&s, "ends_empty"), vec![patience]);
}
