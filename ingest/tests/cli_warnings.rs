//! What `dpersona ingest` prints on stderr when the input is not all good, read from a real
//! process (this test binary re-executed as `child_cli_process`, running the real CLI code)
//! whose stderr is a pipe, as in a batch job or CI log: fewer patients than `--folds` is a
//! warning and the ingest goes on; of many rejects only the first 20 are printed, then a
//! count; notices of `ingest nifti` appear as `warning: FILE: ...`.
use std::path::Path;
use std::process::Command;

use clap::Parser;
use ingest::cli::{run_ingest, run_synth, IngestArgs, SynthArgs};
use ingest::synth::nifti as synth;
use schemas::manifest::Manifest;

/// The same shape as the `dpersona` binary's command line (src/main.rs).
#[derive(Parser)]
#[command(name = "dpersona")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(clap::Subcommand)]
enum Cmd {
    Synth(SynthArgs),
    Ingest(IngestArgs),
}

fn run(args: &[&str]) -> anyhow::Result<()> {
    let cli = Cli::try_parse_from(std::iter::once("dpersona").chain(args.iter().copied()))?;
    match cli.command {
        Cmd::Synth(a) => run_synth(a),
        Cmd::Ingest(a) => run_ingest(a),
    }
}

const CHILD_ENV: &str = "DPERSONA_TEST_CLI_ARGS";

/// Runs the CLI with the arguments in `DPERSONA_TEST_CLI_ARGS` (tab-separated); only as
/// the child of the tests below. An error exits 1 after printing it like `dpersona` does.
#[test]
#[ignore = "runs only as a child process of the tests in this file"]
fn child_cli_process() {
    let Ok(args) = std::env::var(CHILD_ENV) else {
        return;
    };
    let args: Vec<&str> = args.split('\t').collect();
    if let Err(e) = run(&args) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// Runs the CLI in a child process with stdout and stderr piped; (success, stdout, stderr).
fn run_child(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["child_cli_process", "--exact", "--ignored", "--nocapture"])
        .env(CHILD_ENV, args.join("\t"))
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    println!("--- child stdout\n{stdout}--- child stderr\n{stderr}---");
    (out.status.success(), stdout, stderr)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn fewer_patients_than_folds_is_a_warning_and_the_ingest_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (raw, out) = (dir.path().join("raw"), dir.path().join("data"));
    run(&["synth", "nifti", s(&raw), "--studies", "3", "--seed", "3"]).unwrap();
    let (ok, stdout, stderr) = run_child(&[
        "ingest",
        "nifti",
        s(&raw),
        "--out",
        s(&out),
        "--folds",
        "4",
        "--crop-size",
        "32",
    ]);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("warning: 3 patient(s) for 4 folds: folds 3..3 hold no patient"),
        "{stderr}"
    );
    assert!(stdout.contains("warnings: 1 (printed above)"), "{stdout}");
    let m = Manifest::read(&out.join("manifest.parquet")).unwrap();
    assert_eq!(m.header.k_folds, 4);
    let mut folds: Vec<u32> = m.studies.iter().map(|s| s.fold).collect();
    folds.sort();
    assert_eq!(
        folds,
        [0, 1, 2],
        "the first folds are filled, one patient each"
    );
}

#[test]
fn only_the_first_20_rejects_are_printed_then_a_count() {
    let dir = tempfile::tempdir().unwrap();
    let (raw, out) = (dir.path().join("raw"), dir.path().join("data"));
    run(&["synth", "nifti", s(&raw), "--studies", "26", "--seed", "4"]).unwrap();
    // 25 broken cases (one rater's label file missing), one good one.
    let rater = &synth::rater_names()[0];
    for i in 1..26 {
        let case = synth::case_id(i);
        std::fs::remove_file(
            raw.join("labels")
                .join(format!("{case}_{rater}{}", synth::FILE_ENDING)),
        )
        .unwrap();
    }
    let (ok, stdout, stderr) = run_child(&[
        "ingest",
        "nifti",
        s(&raw),
        "--out",
        s(&out),
        "--folds",
        "1",
        "--crop-size",
        "32",
    ]);
    assert!(ok, "{stderr}");
    let rejected: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("rejected "))
        .collect();
    assert_eq!(rejected.len(), 20, "{stderr}");
    // Studies load in parallel, so which 20 come first varies; each line names its own
    // broken case and that case's missing file, and no case twice.
    let broken: Vec<String> = (1..26).map(synth::case_id).collect();
    let mut named = std::collections::BTreeSet::new();
    for line in &rejected {
        let case = broken
            .iter()
            .find(|c| line.starts_with(&format!("rejected {c}: ")))
            .unwrap_or_else(|| panic!("`{line}` names no broken case"));
        assert!(
            line.contains(&format!("{case}_{rater}{}", synth::FILE_ENDING))
                && line.contains(&format!("missing label file of rater `{rater}`")),
            "{line}"
        );
        assert!(named.insert(case.clone()), "{case} printed twice");
    }
    assert!(
        stderr.contains("... and 5 more rejected studies (every one is listed in rejects.parquet)"),
        "{stderr}"
    );
    assert!(stdout.contains("26 found, 1 ingested"), "{stdout}");
    assert!(stdout.contains("25 rejected"), "{stdout}");
    let (rejects, _) =
        schemas::read_table::<schemas::rejects::RejectRecord>(&out.join("rejects.parquet"))
            .unwrap();
    assert_eq!(rejects.len(), 25);
}

#[test]
fn nifti_notices_are_printed_and_strict_stops_on_them() {
    let dir = tempfile::tempdir().unwrap();
    let (raw, out) = (dir.path().join("raw"), dir.path().join("data"));
    run(&["synth", "nifti", s(&raw), "--studies", "2", "--seed", "6"]).unwrap();
    let stray = raw.join("labels").join("synth_007_expert.nii.gz");
    std::fs::copy(
        raw.join("labels").join(format!(
            "synth_000_{}{}",
            synth::rater_names()[0],
            synth::FILE_ENDING
        )),
        &stray,
    )
    .unwrap();
    let args = |o: &Path, strict: bool| {
        let mut a = vec![
            "ingest",
            "nifti",
            s(&raw),
            "--crop-size",
            "32",
            "--folds",
            "2",
        ];
        a.extend(["--out", s(o)]);
        if strict {
            a.push("--strict");
        }
        a.into_iter().map(str::to_string).collect::<Vec<_>>()
    };
    let a = args(&out, false);
    let (ok, stdout, stderr) = run_child(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(ok, "{stderr}");
    let want = format!(
        "warning: {}: name fits no CASE_RATER.nii.gz pattern",
        stray.display()
    );
    assert!(stderr.contains(&want), "want `{want}` in\n{stderr}");
    assert!(stdout.contains("2 found, 2 ingested"), "{stdout}");

    let strict_out = dir.path().join("strict");
    let a = args(&strict_out, true);
    let (ok, _, stderr) = run_child(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!ok, "--strict should stop:\n{stderr}");
    assert!(
        stderr.contains(&stray.display().to_string())
            && stderr.contains("--strict stops on any input left out"),
        "{stderr}"
    );
    assert!(!strict_out.join("manifest.parquet").exists());
}
