//! The product's five commands, end to end, exactly as a user types them.
//!
//! Runs the real `dpersona` binary in an empty working folder with the short forms our users
//! asked for (`synth lidc ./raw`, `ingest lidc ./raw`, `train --manifest …`,
//! `eval --out results.parquet`, `report results.parquet`): each later command must find what
//! the earlier one wrote through the defaults (`data/`, `runs/latest`) and say where it wrote.
//! The run is tiny (a few studies, 32x32 crops, one epoch per stage) so it fits the test
//! budget; the numbers are not checked here, the metric tests check those.

use std::path::Path;
use std::process::Output;

/// Runs `dpersona ARGS` in `cwd`, failing the test with both streams when it exits non-zero.
fn dpersona(cwd: &Path, args: &[&str]) -> Output {
    testkit::run_ok(Path::new(env!("CARGO_BIN_EXE_dpersona")), cwd, args)
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A PNG starts with its 8-byte signature and is not trivially small.
fn assert_png(path: &Path) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 200,
        "{} is not a PNG image",
        path.display()
    );
}

#[test]
fn synth_ingest_train_eval_report_with_the_default_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();

    dpersona(
        cwd,
        &["synth", "lidc", "./raw", "--studies", "6", "--seed", "11"],
    );
    assert!(cwd.join("raw/LIDC-IDRI").is_dir());

    // No --out: the shards and the manifest land in ./data, and the command says so.
    let ingest = dpersona(cwd, &["ingest", "lidc", "./raw", "--crop-size", "32"]);
    assert!(
        text(&ingest).contains("data"),
        "ingest does not say where it wrote:\n{}",
        text(&ingest)
    );
    let manifest = cwd.join("data/manifest.parquet");
    assert!(manifest.is_file(), "no data/manifest.parquet");

    // No --out: a run folder under ./runs, recorded as the latest run.
    let train = dpersona(
        cwd,
        &[
            "train",
            "--manifest",
            "data/manifest.parquet",
            "--preset",
            "small",
            "--epochs-stage1",
            "1",
            "--epochs-stage2",
            "1",
            "--device",
            "cpu",
            "--seed",
            "5",
        ],
    );
    let runs: Vec<_> = std::fs::read_dir(cwd.join("runs"))
        .expect("train made no runs/ folder")
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(runs.len(), 1, "expected one run folder, found {runs:?}");
    let run = &runs[0];
    let run_name = run.file_name().unwrap().to_string_lossy().to_string();
    assert!(
        text(&train).contains(&run_name),
        "train does not name its run folder {run_name}:\n{}",
        text(&train)
    );
    for stage in ["stage1", "stage2"] {
        assert!(
            run.join(stage).join("best.json").is_file(),
            "{stage} has no best checkpoint in {}",
            run.display()
        );
    }

    // No --run, no --manifest: the latest run and its manifest are used, and named.
    let eval = dpersona(
        cwd,
        &[
            "eval",
            "--out",
            "results.parquet",
            "--samples",
            "4",
            "--bank",
            "8",
            "--device",
            "cpu",
            "--save-predictions",
            "predictions",
        ],
    );
    assert!(
        text(&eval).contains(&run_name),
        "eval does not name the run it picked:\n{}",
        text(&eval)
    );
    assert!(cwd.join("results.parquet").is_file());

    let report = dpersona(
        cwd,
        &[
            "report",
            "results.parquet",
            "--figures",
            "figures",
            "--run",
            run.to_str().unwrap(),
            "--predictions",
            "predictions/stage1_n4",
            "--predictions",
            "predictions/stage2_bank8",
        ],
    );
    let table = String::from_utf8_lossy(&report.stdout).to_string();
    for column in ["GED", "Dice_soft", "Dice_max", "Dice_match", "Dice_mean"] {
        assert!(table.contains(column), "report lacks {column}:\n{table}");
    }
    // One row for Stage I with 4 samples, one for Stage II: both stages were scored.
    let body: Vec<&str> = table.lines().filter(|l| l.contains("dpersona")).collect();
    assert_eq!(
        body.len(),
        2,
        "expected a Stage I and a Stage II row:\n{table}"
    );

    // Stage-I samples (Fig. 4), Stage-II heads against their raters (Fig. 5), the run's curves.
    let curves = format!("curves_{run_name}.png");
    for name in [
        "samples_stage1_n4.png",
        "personalised_stage2_bank8.png",
        curves.as_str(),
    ] {
        assert_png(&cwd.join("figures").join(name));
    }
}
