//! `dpersona train --folds 0,1,2,3`: the folds of a cross-validation protocol trained at
//! the same time, one child process per fold (`dpersona train --fold K`) into
//! `OUT/fold_K/`, each a normal run (config, checkpoints, logs, resume) whose result is the
//! one a run of that fold alone gives. Processes rather than threads: every random draw is
//! seeded through libtorch's process-global generator, so two folds in one process would
//! race for it. A batch-12, 128x128 step leaves most of a GPU idle; on a CPU the cores are
//! shared out between the folds.
//!
//! `OUT/folds.json` records the flags every fold was started with, so that
//! `--resume --out OUT` continues the started folds and starts the others exactly as the
//! first call would have, and `dpersona eval --run OUT` finds the folds.
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::run_dir::RunDir;

/// File of a folds root: its presence tells a folds root from a run.
pub const FOLDS_FILE: &str = "folds.json";

/// What `OUT/folds.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FoldsRecord {
    /// The folds asked for at the first call, in order.
    pub folds: Vec<u32>,
    /// `dpersona train` arguments shared by every fold (no `--fold`, `--out`, `--resume`,
    /// `--threads`, `--device`, `--quiet`: those are set per call).
    pub args: Vec<String>,
}

/// One call's plan.
pub struct FoldsPlan {
    pub root: PathBuf,
    /// The manifest of this call (a resumed fold checks it against its run's).
    pub manifest: PathBuf,
    pub folds: Vec<u32>,
    /// Folds trained at the same time.
    pub jobs: usize,
    /// Shared arguments (see [`FoldsRecord::args`]); ignored on resume (the record's are used).
    pub args: Vec<String>,
    /// Per-process arguments every child gets (`--device`, `--threads`).
    pub child_flags: Vec<String>,
    pub resume: bool,
}

/// Folder of fold `k`'s run.
pub fn member_dir(root: &Path, k: u32) -> PathBuf {
    root.join(format!("fold_{k}"))
}

/// The fold runs under `root` (fold, folder) in fold order, or `None` when `root` is not a
/// folds root.
pub fn members(root: &Path) -> Option<Vec<(u32, PathBuf)>> {
    let record = read_record(root).ok()?;
    let mut folds = record.folds.clone();
    folds.sort_unstable();
    Some(
        folds
            .into_iter()
            .map(|k| (k, member_dir(root, k)))
            .filter(|(_, d)| RunDir::new(d).exists())
            .collect(),
    )
}

/// Reads `root/folds.json`.
pub fn read_record(root: &Path) -> anyhow::Result<FoldsRecord> {
    let path = root.join(FOLDS_FILE);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not a folds record", path.display()))
}

/// libtorch threads per child on a CPU: the cores shared out between the folds that run at
/// once (at least one each).
pub fn threads_per_job(jobs: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores / jobs.max(1)).max(1)
}

/// Trains (or resumes) every fold of `plan`, `plan.jobs` at a time; each child's output is
/// printed line by line behind `[fold K]`. Every fold runs even when another fails; the
/// error then names the failed folds.
pub fn run_folds(plan: &FoldsPlan) -> anyhow::Result<()> {
    let record_path = plan.root.join(FOLDS_FILE);
    let record = if plan.resume {
        read_record(&plan.root).with_context(|| {
            format!(
                "--resume with --folds: {} is not a folds run (no {FOLDS_FILE})",
                plan.root.display()
            )
        })?
    } else {
        anyhow::ensure!(
            !plan.root.exists() || std::fs::read_dir(&plan.root)?.next().is_none(),
            "{} already exists; pass --resume to continue it or choose another --out",
            plan.root.display()
        );
        std::fs::create_dir_all(&plan.root)
            .with_context(|| format!("creating {}", plan.root.display()))?;
        let record = FoldsRecord {
            folds: plan.folds.clone(),
            args: plan.args.clone(),
        };
        schemas::atomic::write_file_atomic(
            &record_path,
            serde_json::to_string_pretty(&record)?.as_bytes(),
        )?;
        record
    };
    let exe = std::env::current_exe().context("finding the dpersona executable")?;
    let queue = Mutex::new(plan.folds.iter().copied());
    let failed = Mutex::new(Vec::new());
    let print = Mutex::new(());
    std::thread::scope(|s| {
        for _ in 0..plan.jobs.clamp(1, plan.folds.len().max(1)) {
            s.spawn(|| loop {
                let Some(k) = queue.lock().expect("queue").next() else {
                    return;
                };
                let member = member_dir(&plan.root, k);
                let mut argv: Vec<String> = vec!["train".into()];
                if RunDir::new(&member).exists() {
                    argv.extend([
                        "--manifest".into(),
                        path_arg(&plan.manifest),
                        "--resume".into(),
                        "--out".into(),
                        path_arg(&member),
                    ]);
                } else {
                    argv.extend(record.args.iter().cloned());
                    argv.extend([
                        "--fold".into(),
                        k.to_string(),
                        "--out".into(),
                        path_arg(&member),
                    ]);
                }
                argv.extend(plan.child_flags.iter().cloned());
                argv.push("--quiet".into());
                let ok = run_child(&exe, &argv, k, &print);
                let mut f = failed.lock().expect("failed list");
                match ok {
                    Ok(true) => {}
                    Ok(false) => f.push(k),
                    Err(e) => {
                        let _g = print.lock();
                        eprintln!("[fold {k}] could not start: {e:#}");
                        f.push(k);
                    }
                }
            });
        }
    });
    let mut failed = failed.into_inner().expect("failed list");
    failed.sort_unstable();
    anyhow::ensure!(
        failed.is_empty(),
        "fold(s) {failed:?} failed (see their lines above and OUT/fold_K/train.log); \
         `dpersona train --folds ... --resume --out {}` continues them",
        plan.root.display()
    );
    Ok(())
}

fn path_arg(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Runs one child, forwarding its stdout and stderr lines behind `[fold K]`; whether it
/// exited with success.
fn run_child(exe: &Path, argv: &[String], k: u32, print: &Mutex<()>) -> anyhow::Result<bool> {
    let mut child = Command::new(exe)
        .args(argv)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawning {}", exe.display()))?;
    let out = child.stdout.take().expect("piped stdout");
    let err = child.stderr.take().expect("piped stderr");
    std::thread::scope(|s| {
        s.spawn(|| forward(out, k, print, false));
        s.spawn(|| forward(err, k, print, true));
    });
    Ok(child.wait()?.success())
}

fn forward(stream: impl Read, k: u32, print: &Mutex<()>, to_stderr: bool) {
    for line in BufReader::new(stream).lines().map_while(Result::ok) {
        let _g = print.lock();
        if to_stderr {
            eprintln!("[fold {k}] {line}");
        } else {
            println!("[fold {k}] {line}");
        }
    }
}
