//! `dpersona diagnose` end to end: synthetic LIDC studies -> ingest -> a short small-preset
//! run (both stages) -> diagnose, checked by tests/py/diagnostics_numpy.py against the
//! shards with polars and numpy (coverage of the split's slices, the raters' agreement
//! recomputed, per-rater rows for exactly the present raters, each quantity's range).
use std::path::Path;

fn dpersona(cwd: &Path, args: &[&str]) -> std::process::Output {
    testkit::run_ok(Path::new(env!("CARGO_BIN_EXE_dpersona")), cwd, args)
}

#[test]
fn diagnose_rows_match_the_shards() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    dpersona(
        cwd,
        &["synth", "lidc", "raw", "--studies", "6", "--seed", "4"],
    );
    dpersona(
        cwd,
        &[
            "ingest",
            "lidc",
            "raw",
            "--out",
            "data",
            "--crop-size",
            "32",
        ],
    );
    dpersona(
        cwd,
        &[
            "train",
            "--manifest",
            "data/manifest.parquet",
            "--out",
            "run",
            "--preset",
            "small",
            "--epochs-stage1",
            "2",
            "--epochs-stage2",
            "2",
            "--device",
            "cpu",
            "--threads",
            "1",
            "--quiet",
        ],
    );
    let out = dpersona(
        cwd,
        &[
            "diagnose",
            "--run",
            "run",
            "--split",
            "train",
            "--bank",
            "12",
            "--device",
            "cpu",
            "--threads",
            "1",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    for line in [
        "KL(q||p) per latent dim",
        "head k Dice vs rater k",
        "attention entropy",
    ] {
        assert!(stdout.contains(line), "no '{line}' in:\n{stdout}");
    }
    let frame = cwd.join("run/diagnostics.parquet");
    assert!(frame.is_file(), "no {}:\n{stdout}", frame.display());
    let latent = "6"; // the small preset's model.latent_dim
    let checked = testkit::run_py(
        "diagnostics_numpy.py",
        &[
            frame.to_str().unwrap(),
            cwd.join("data").to_str().unwrap(),
            "train",
            "12",
            latent,
        ],
    );
    assert!(checked.contains("ok:"), "{checked}");
}
