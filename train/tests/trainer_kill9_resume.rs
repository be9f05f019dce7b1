//! A real `kill -9` of a training process, then `--resume`: the run ends with the SAME
//! weights (bit for bit, CPU, one libtorch thread) and the same training log as an
//! uninterrupted run. (trainer_resume.rs covers the in-process `stop_after` version.)
//!
//! The killed process is this test binary re-executed with `child_train_process` (an ignored
//! test that runs `train::cli::run_train` with the arguments in an environment variable), so
//! the child is a real training process with its loader threads, checkpoint writes and log,
//! and SIGKILL gives it no chance to clean up.
mod trainer_fixture;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use schemas::train_log::TrainLogRecord;
use tch::Tensor;
use train::checkpoint::{read_info, Slot};
use trainer_fixture::write_dataset;

const CHILD_ENV: &str = "DPERSONA_TEST_TRAIN_CHILD_ARGS";
const EPOCHS_STAGE1: u32 = 6;
const EPOCHS_STAGE2: u32 = 2;

#[derive(Parser)]
struct TrainCmd {
    #[command(flatten)]
    args: train::cli::TrainArgs,
}

fn run_train(args: &[&str]) {
    let args = TrainCmd::try_parse_from(std::iter::once("train").chain(args.iter().copied()))
        .unwrap()
        .args;
    train::cli::run_train(args).unwrap();
}

/// Runs `train` with the tab-separated arguments in `DPERSONA_TEST_TRAIN_CHILD_ARGS`; only as
/// the child of `kill_9_mid_training_then_resume_matches_an_uninterrupted_run`.
#[test]
#[ignore = "runs only as a child process of the kill -9 test"]
fn child_train_process() {
    let Ok(args) = std::env::var(CHILD_ENV) else {
        return;
    };
    run_train(&args.split('\t').collect::<Vec<_>>());
}

fn weights(run: &Path, stage: u32, slot: Slot) -> HashMap<String, Tensor> {
    let dir = run.join(format!("stage{stage}"));
    let info = read_info(&dir, slot)
        .unwrap()
        .unwrap_or_else(|| panic!("{}: no {} checkpoint", dir.display(), slot.name()));
    Tensor::read_safetensors(dir.join(info.weights))
        .unwrap()
        .into_iter()
        .collect()
}

fn log_rows(run: &Path) -> Vec<(u32, u32, u64, String, String, u64)> {
    let (rows, _) = schemas::read_table::<TrainLogRecord>(&run.join("train_log.parquet")).unwrap();
    rows.iter()
        .map(|r| {
            (
                u32::from(r.stage),
                r.epoch,
                r.step,
                r.kind.clone(),
                r.name.clone(),
                r.value.to_bits(),
            )
        })
        .collect()
}

/// The epoch of stage 1's last checkpoint, once one is on disk.
fn stage1_last_epoch(run: &Path) -> Option<u32> {
    read_info(&run.join("stage1"), Slot::Last)
        .ok()
        .flatten()
        .map(|i| i.epoch)
}

#[test]
fn kill_9_mid_training_then_resume_matches_an_uninterrupted_run() {
    let _rng = trainer_fixture::torch_rng_lock();
    let tmp = tempfile::tempdir().unwrap();
    let manifest = write_dataset(&tmp.path().join("data"), &["train", "train", "val"], 4, 7);
    let cfg = tmp.path().join("cfg.toml");
    std::fs::write(
        &cfg,
        format!(
            "[optim]\nbatch_size = 4\nepochs_stage1 = {EPOCHS_STAGE1}\nepochs_stage2 = {EPOCHS_STAGE2}\n\
             [loader]\nthreads = 1\nprefetch = 2\n\
             [validation]\nsamples = 4\nbank = 8\nbatch_size = 8\n[stage2]\nbank = 8\n"
        ),
    )
    .unwrap();
    let (m, c) = (manifest.to_str().unwrap(), cfg.to_str().unwrap());
    let fresh = |out: &Path| {
        [
            "--manifest",
            m,
            "--preset",
            "small",
            "--config",
            c,
            "--device",
            "cpu",
            "--threads",
            "1",
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ]
        .map(str::to_string)
        .to_vec()
    };

    let full = tmp.path().join("runs").join("full");
    run_train(&fresh(&full).iter().map(String::as_str).collect::<Vec<_>>());

    let killed = tmp.path().join("runs").join("killed");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["child_train_process", "--exact", "--ignored", "--nocapture"])
        .env(CHILD_ENV, fresh(&killed).join("\t"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // SIGKILL as soon as stage 1's first epoch checkpoint is on disk: the child is then
    // inside epoch 1 (training, validating or writing), never at a clean stopping point.
    let start = Instant::now();
    let epoch_at_kill = loop {
        if let Some(e) = stage1_last_epoch(&killed) {
            break e;
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "the child wrote no checkpoint in 300 s"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the child ended before its first checkpoint"
        );
        std::thread::sleep(Duration::from_millis(2));
    };
    child.kill().unwrap(); // SIGKILL on Unix
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child finished before the kill");
    let epoch_after_kill = stage1_last_epoch(&killed).unwrap();
    assert!(
        epoch_after_kill + 1 < EPOCHS_STAGE1,
        "the kill came too late to interrupt stage 1 (last epoch {epoch_after_kill}, first seen {epoch_at_kill})"
    );
    assert!(
        read_info(&killed.join("stage2"), Slot::Last)
            .ok()
            .flatten()
            .is_none(),
        "stage 2 had started before the kill"
    );

    run_train(&[
        "--manifest",
        m,
        "--out",
        killed.to_str().unwrap(),
        "--resume",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--quiet",
    ]);

    for (stage, slot) in [
        (1, Slot::Last),
        (1, Slot::Best),
        (2, Slot::Last),
        (2, Slot::Best),
    ] {
        let (a, b) = (weights(&full, stage, slot), weights(&killed, stage, slot));
        assert_eq!(
            a.len(),
            b.len(),
            "stage {stage} {}: tensor count",
            slot.name()
        );
        for (name, t) in &a {
            assert!(
                t.equal(&b[name]),
                "stage {stage} {}: tensor `{name}` differs after kill -9 + resume",
                slot.name()
            );
        }
    }
    assert_eq!(
        log_rows(&full),
        log_rows(&killed),
        "the training log after kill -9 + resume differs from the uninterrupted run's"
    );
    let leftovers: Vec<String> = walk(&killed)
        .into_iter()
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

/// Every file name under `dir`, recursively.
fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    out
}
