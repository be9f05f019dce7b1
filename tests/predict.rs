//! `dpersona predict` end to end: synthetic studies -> ingest -> train (small preset, CPU)
//! -> predict, checked by tests/py/predict_outputs_nibabel.py with nibabel, numpy, scipy,
//! pyarrow and pydicom: an NPC-style run (NIfTI in, against what `dpersona eval
//! --save-predictions` wrote for the same case) and an LIDC-style run (DICOM series and
//! `--roi` in, against the ingested crops, plus the DICOM SEG), and the bad-input cases.
use std::path::{Path, PathBuf};
use std::process::Output;

fn run(cwd: &Path, args: &[&str]) -> Output {
    testkit::run_in(Path::new(env!("CARGO_BIN_EXE_dpersona")), cwd, args)
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `dpersona ARGS`, failing the test with both streams when it exits non-zero.
fn dpersona(cwd: &Path, args: &[&str]) -> Output {
    testkit::run_ok(Path::new(env!("CARGO_BIN_EXE_dpersona")), cwd, args)
}

fn py(args: &[&str]) -> String {
    testkit::run_py("predict_outputs_nibabel.py", args)
}

const CASE: &str = "synth_004";
const CROP: &str = "32";

/// The raw folder of one case of `raw` (its channel and label files, and dataset.json).
fn one_case_raw(raw: &Path, out: &Path, case: &str) {
    for sub in ["images", "labels"] {
        std::fs::create_dir_all(out.join(sub)).unwrap();
        for e in std::fs::read_dir(raw.join(sub)).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            if name.starts_with(&format!("{case}_")) {
                std::fs::copy(&p, out.join(sub).join(&name)).unwrap();
            }
        }
    }
    std::fs::copy(raw.join("dataset.json"), out.join("dataset.json")).unwrap();
}

fn mtimes(dir: &Path) -> Vec<(PathBuf, std::time::SystemTime)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let t = p.metadata().unwrap().modified().unwrap();
            (p, t)
        })
        .collect();
    v.sort();
    v
}

#[test]
fn predict_matches_eval_and_keeps_the_input_grid() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    dpersona(
        cwd,
        &["synth", "nifti", "raw", "--studies", "6", "--seed", "3"],
    );
    // Every slice kept, so eval's volume of a case is the whole scan, as predict's is.
    let ingest = |raw: &str, out: &str| {
        dpersona(
            cwd,
            &[
                "ingest",
                "nifti",
                raw,
                "--out",
                out,
                "--crop-size",
                CROP,
                "--empty-slice-share",
                "1",
            ],
        )
    };
    ingest("raw", "data");
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
            "1",
            "--epochs-stage2",
            "1",
            "--device",
            "cpu",
            "--seed",
            "5",
            "--quiet",
        ],
    );
    // eval on a manifest holding only CASE (fold 0 of a one-patient ingest): its draws
    // start from the reseed, as predict's do for each case.
    one_case_raw(&cwd.join("raw"), &cwd.join("raw1"), CASE);
    ingest("raw1", "data1");
    dpersona(
        cwd,
        &[
            "eval",
            "--run",
            "run",
            "--manifest",
            "data1/manifest.parquet",
            "--fold",
            "0",
            "--samples",
            "3",
            "--bank",
            "6",
            "--device",
            "cpu",
            "--save-predictions",
            "evalpred",
            "--out",
            "results.parquet",
        ],
    );
    let predict_args = [
        "predict",
        "--run",
        "run",
        "raw1/images",
        "--out",
        "pred",
        "--samples",
        "3",
        "--bank",
        "6",
        "--device",
        "cpu",
        "--save-model-grid",
        "--quiet",
    ];
    let out = dpersona(cwd, &predict_args);
    assert!(
        text(&out).contains("predicted 1 case"),
        "predict does not report its case:\n{}",
        text(&out)
    );
    let input0 = cwd.join(format!("raw1/images/{CASE}_0000.nii.gz"));
    let facts = py(&[
        "check",
        cwd.join("pred").to_str().unwrap(),
        CASE,
        input0.to_str().unwrap(),
        cwd.join(format!("evalpred/stage1_n3/{CASE}/lesion"))
            .to_str()
            .unwrap(),
        cwd.join(format!("evalpred/stage2_bank6/{CASE}/lesion"))
            .to_str()
            .unwrap(),
        "3",
        "4",
    ]);
    println!("{facts}");

    // predict.json records the run, both checkpoints' SHA-256 and the case.
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cwd.join("pred/predict.json")).unwrap())
            .unwrap();
    let checkpoints = doc["settings"]["checkpoints"].as_array().unwrap();
    assert_eq!(checkpoints.len(), 2, "{doc}");
    assert!(checkpoints
        .iter()
        .all(|c| c["sha256"].as_str().unwrap().len() == 64));
    assert_eq!(doc["cases"][CASE]["status"], "predicted", "{doc}");
    assert!(doc["conventions"]["uncertainty"]
        .as_str()
        .unwrap()
        .starts_with("variance"));

    // `report` draws the case: the scan, each rater's mask, the uncertainty.
    dpersona(
        cwd,
        &[
            "report",
            "--predict-case",
            &format!("pred/{CASE}"),
            "--figures",
            "figs",
        ],
    );
    let png = std::fs::read(cwd.join(format!("figs/predict_{CASE}.png"))).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 1000);

    // A rerun skips the written case and leaves its files alone.
    let before = mtimes(&cwd.join("pred").join(CASE));
    let again = dpersona(cwd, &predict_args);
    assert!(
        text(&again).contains("predicted 0 cases, skipped 1"),
        "{}",
        text(&again)
    );
    assert_eq!(before, mtimes(&cwd.join("pred").join(CASE)));
    // Another seed into the same folder is refused rather than mixed in.
    let mut other: Vec<&str> = predict_args.to_vec();
    other.extend(["--seed", "1"]);
    let refused = run(cwd, &other);
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("other settings"),
        "{}",
        text(&refused)
    );

    // Bad input: each case refused with its file named, the good one still predicted.
    let goods: Vec<String> = (0..3)
        .map(|c| {
            cwd.join(format!("raw1/images/{CASE}_{c:04}.nii.gz"))
                .display()
                .to_string()
        })
        .collect();
    py(&[
        "make-bad",
        cwd.join("bad").to_str().unwrap(),
        &goods[0],
        &goods[1],
        &goods[2],
    ]);
    let bad = run(
        cwd,
        &[
            "predict",
            "--run",
            "run",
            "bad",
            "--out",
            "badpred",
            "--samples",
            "2",
            "--bank",
            "4",
            "--device",
            "cpu",
            "--quiet",
        ],
    );
    let msg = text(&bad);
    assert!(
        !bad.status.success(),
        "bad cases must fail the call:\n{msg}"
    );
    for (case, what) in [
        ("fewchan", "fewchan_0000.nii.gz"),
        ("fewchan", "wrong channel count"),
        ("flat", "flat_0000.nii.gz"),
        ("flat", "expected a 3D volume"),
        ("corrupt", "corrupt_0000.nii.gz"),
        ("corrupt", "not a readable NIfTI-1 file"),
    ] {
        assert!(
            msg.lines()
                .any(|l| l.contains(&format!("case {case}")) && l.contains(what)),
            "no error for case {case} saying `{what}`:\n{msg}"
        );
    }
    assert!(msg.contains("3 cases could not be predicted"), "{msg}");
    assert!(cwd.join("badpred/good/rater_1.nii.gz").is_file(), "{msg}");
    for case in ["fewchan", "flat", "corrupt"] {
        assert!(!cwd.join("badpred").join(case).exists());
    }
}

/// DICOM series folders under `dir` (folders holding `.dcm` files), sorted.
fn series_folders(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            found.extend(series_folders(&p));
        } else if p.extension().is_some_and(|x| x == "dcm") && !found.contains(&dir.to_path_buf()) {
            found.push(dir.to_path_buf());
        }
    }
    found.sort();
    found
}

#[test]
fn lidc_runs_predict_roi_crops_from_dicom() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    dpersona(
        cwd,
        &["synth", "lidc", "raw", "--studies", "6", "--seed", "11"],
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
            CROP,
        ],
    );
    // Long enough (about a minute on 2 cores) for Stage II to mark pixels, so that the
    // masks, their windows and the SEG frames are checked on something other than zeros.
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
            "15",
            "--epochs-stage2",
            "10",
            "--device",
            "cpu",
            "--seed",
            "5",
            "--quiet",
        ],
    );
    let shard = std::fs::read_dir(cwd.join("data/shards"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "parquet"))
        .unwrap();
    let roi = cwd.join("roi.csv");
    let series = cwd.join(
        py(&[
            "roi-from-shard",
            shard.to_str().unwrap(),
            roi.to_str().unwrap(),
        ])
        .trim(),
    );
    let case = series.file_name().unwrap().to_string_lossy().to_string();
    let all = series_folders(&cwd.join("raw"));
    let other = all.iter().find(|s| **s != series).unwrap().clone();
    let other_case = other.file_name().unwrap().to_string_lossy().to_string();
    // A folder holding two series.
    let mixed = cwd.join("mixed");
    std::fs::create_dir(&mixed).unwrap();
    for (tag, dir) in [("a", &series), ("b", &other)] {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "dcm") {
                let name = format!("{tag}-{}", p.file_name().unwrap().to_string_lossy());
                std::fs::copy(&p, mixed.join(name)).unwrap();
            }
        }
    }
    let mut csv = std::fs::read_to_string(&roi).unwrap();
    csv.push_str(&format!("{other_case},5000,10,2\nmixed,16,16,2\n"));
    std::fs::write(&roi, csv).unwrap();

    let inputs = [
        series.to_str().unwrap(),
        other.to_str().unwrap(),
        mixed.to_str().unwrap(),
    ];
    let mut args = vec!["predict", "--run", "run"];
    args.extend(inputs);
    args.extend([
        "--out",
        "pred",
        "--samples",
        "3",
        "--bank",
        "6",
        "--device",
        "cpu",
    ]);
    args.extend(["--quiet", "--save-model-grid"]);
    // Without --roi the run refuses, saying what it needs.
    let refused = run(cwd, &args);
    assert!(!refused.status.success());
    assert!(text(&refused).contains("--roi FILE"), "{}", text(&refused));

    args.extend(["--roi", "roi.csv"]);
    let out = run(cwd, &args);
    let msg = text(&out);
    assert!(
        !out.status.success(),
        "two bad cases must fail the call:\n{msg}"
    );
    assert!(
        msg.lines()
            .any(|l| l.contains(&format!("case {other_case}"))
                && l.contains("roi.csv line 4")
                && l.contains("outside the volume")),
        "no error for the ROI outside the volume:\n{msg}"
    );
    assert!(
        msg.lines()
            .any(|l| l.contains("case mixed") && l.contains("belongs to series")),
        "no error for the folder with two series:\n{msg}"
    );
    assert!(msg.contains("predicted 1 case"), "{msg}");
    println!(
        "{}",
        py(&[
            "check-lidc",
            cwd.join("pred").to_str().unwrap(),
            &case,
            series.to_str().unwrap(),
            shard.to_str().unwrap(),
            roi.to_str().unwrap(),
        ])
    );
}
