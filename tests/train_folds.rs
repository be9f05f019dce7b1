//! `dpersona train --folds 0,1`: the folds train at the same time, one process each, and
//! each fold's checkpoints are byte-identical to a run of that fold alone (`--threads 1`
//! makes CPU runs bit-reproducible). A resume changes nothing; `eval --run OUT` scores
//! every fold on its own fold (checked with polars).
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

fn dpersona(cwd: &Path, args: &[&str]) -> Output {
    testkit::run_ok(Path::new(env!("CARGO_BIN_EXE_dpersona")), cwd, args)
}

/// SHA-256 of every safetensors file under `dir`, by path relative to it.
fn checkpoint_hashes(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for stage in ["stage1", "stage2"] {
        let d = dir.join(stage);
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "safetensors") {
                let rel = format!("{stage}/{}", p.file_name().unwrap().to_string_lossy());
                out.insert(rel, schemas::hashing::sha256_file(&p).unwrap());
            }
        }
    }
    out
}

#[test]
fn concurrent_folds_equal_separate_runs_bit_for_bit() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    dpersona(
        cwd,
        &["synth", "lidc", "raw", "--studies", "8", "--seed", "5"],
    );
    dpersona(
        cwd,
        &["ingest", "lidc", "raw", "--crop-size", "32", "--folds", "2"],
    );
    let common = [
        "--manifest",
        "data/manifest.parquet",
        "--preset",
        "small",
        "--seed",
        "9",
        "--epochs-stage1",
        "2",
        "--epochs-stage2",
        "1",
        "--select-on",
        "test",
        "--threads",
        "1",
        "--device",
        "cpu",
        "--quiet",
    ];
    let together = |extra: &[&str]| {
        let mut a = vec!["train"];
        a.extend(common);
        a.extend(extra);
        dpersona(cwd, &a)
    };
    let out = together(&["--folds", "0,1", "--out", "runs/cv"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("2 folds, 2 at a time, 1 threads each"),
        "{said}"
    );
    assert!(
        said.contains("[fold 1]"),
        "children's lines carry their fold: {said}"
    );

    for k in ["0", "1"] {
        together(&["--fold", k, "--out", &format!("runs/alone{k}")]);
        let cv = checkpoint_hashes(&cwd.join(format!("runs/cv/fold_{k}")));
        let alone = checkpoint_hashes(&cwd.join(format!("runs/alone{k}")));
        assert!(
            cv.len() >= 6,
            "best + last (+ Adam state) of two stages: {cv:?}"
        );
        assert_eq!(
            cv, alone,
            "fold {k}: concurrent run differs from the run alone"
        );
    }
    let before = checkpoint_hashes(&cwd.join("runs/cv/fold_0"));

    // A resume of the finished folds trains nothing more.
    dpersona(
        cwd,
        &[
            "train",
            "--manifest",
            "data/manifest.parquet",
            "--resume",
            "--out",
            "runs/cv",
            "--threads",
            "1",
            "--quiet",
        ],
    );
    assert_eq!(checkpoint_hashes(&cwd.join("runs/cv/fold_0")), before);

    // One eval call scores both folds, each on its own held-out fold.
    let eval = dpersona(
        cwd,
        &[
            "eval",
            "--run",
            "runs/cv",
            "--out",
            "results.parquet",
            "--samples",
            "2",
            "--bank",
            "4",
            "--threads",
            "1",
        ],
    );
    let said = String::from_utf8_lossy(&eval.stdout);
    assert!(said.contains("fold_0") && said.contains("fold_1"), "{said}");
    let folds = testkit::run_py(
        "frame_folds.py",
        &[cwd.join("results.parquet").to_string_lossy().as_ref()],
    );
    // Both folds under the root's name, so the report averages over them in one row.
    assert_eq!(folds.trim(), "[0, 1] ['cv']", "{folds}");
}
