//! `ingest lidc-pickle` on real pickles written by `pickle.dump` of numpy arrays
//! (tests/py/lidc_pickle_reference.py), every row checked against numpy's own arithmetic
//! and the folds against numpy + sklearn; hostile pickles are refused without being run.
use std::path::{Path, PathBuf};

use clap::Parser;
use ingest::cli::{run_ingest, IngestArgs};
use ingest::lidc_pickle::folds::authors_folds;
use ingest::lidc_pickle::{LidcPickleFormat, LidcPickleParams, SplitUnit};
use ingest::pipeline::{run_ingest as pipeline_ingest, IngestError, IngestOptions};

const SCRIPT: &str = "lidc_pickle_reference.py";

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn quiet() -> IngestOptions {
    IngestOptions {
        progress: false,
        threads: Some(2),
        ..IngestOptions::default()
    }
}

fn fixtures() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let fx = dir.path().join("fx");
    testkit::run_py(SCRIPT, &["write", s(&fx)]);
    (dir, fx)
}

fn ingest(file: &Path, out: &Path, split: SplitUnit) -> ingest::pipeline::IngestSummary {
    let format = LidcPickleFormat::new(LidcPickleParams {
        split,
        crop_size: None,
    });
    pipeline_ingest(&format, file, out, &quiet()).unwrap()
}

#[test]
fn folds_match_numpy_and_sklearn() {
    let sizes = ["1", "2", "3", "4", "5", "17", "1000", "15096"];
    let mut args = vec!["folds"];
    args.extend(sizes);
    let json: serde_json::Value =
        serde_json::from_str(testkit::run_py(SCRIPT, &args).trim()).unwrap();
    for n in sizes {
        let case = &json[n];
        let patients: Vec<String> = serde_json::from_value(case["patients"].clone()).unwrap();
        for (unit, key) in [(SplitUnit::Image, "image"), (SplitUnit::Patient, "patient")] {
            let want: Vec<u32> = serde_json::from_value(case[key].clone()).unwrap();
            let got = authors_folds(&patients, unit, 4, 1337);
            assert_eq!(
                got, want,
                "n = {n}, {key} folds differ from numpy + sklearn"
            );
        }
        println!("n = {n}: image and patient folds equal numpy + sklearn");
    }
}

#[test]
fn every_fixture_ingests_like_numpy() {
    let (dir, fx) = fixtures();
    for name in [
        "mm_p2.pkl",
        "mm_p3.pkl",
        "mm_p4.pkl",
        "mm_p5.pkl",
        "old_p2.pkl",
        "old_p5.pkl",
        "knegt_p4.pkl",
    ] {
        let out = dir.path().join(format!("out-{name}"));
        let file = fx.join(name);
        let summary = ingest(&file, &out, SplitUnit::Image);
        assert!(summary.rejects.is_empty(), "{name}: {:?}", summary.rejects);
        if name.starts_with("knegt") {
            assert_eq!(summary.warnings.len(), 1, "{:?}", summary.warnings);
            assert!(
                summary.warnings[0].contains("key `pixel_spacing` of 8 item(s) is not ingested"),
                "{:?}",
                summary.warnings
            );
        } else {
            // `alpha` is known and documented as unused: no warning.
            assert!(
                summary.warnings.is_empty(),
                "{name}: {:?}",
                summary.warnings
            );
        }
        assert_eq!(
            summary.manifest.header.split_protocol.as_deref(),
            Some("lidc-image-kfold4-seed1337")
        );
        testkit::run_py(SCRIPT, &["check", s(&file), s(&out), "image"]);
    }
    let file = fx.join("mm_p4.pkl");
    let out = dir.path().join("out-patient");
    let summary = ingest(&file, &out, SplitUnit::Patient);
    assert_eq!(
        summary.manifest.header.split_protocol.as_deref(),
        Some("lidc-patient-kfold4-seed1337")
    );
    testkit::run_py(SCRIPT, &["check", s(&file), s(&out), "patient"]);
}

#[test]
fn bad_items_are_rejects_naming_file_and_key() {
    let (dir, fx) = fixtures();
    let file = fx.join("bad_p4.pkl");
    let out = dir.path().join("out");
    let summary = ingest(&file, &out, SplitUnit::Image);
    for r in &summary.rejects {
        println!("reject {}: {}", r.study_id, r.reason);
    }
    let reasons: Vec<&str> = summary.rejects.iter().map(|r| r.reason.as_str()).collect();
    assert_eq!(summary.rejects.len(), 6);
    for want in [
        "missing key `masks`",
        "holds 3 masks",
        "holds 2 at pixel",
        "NaN",
        "image has shape [64, 64]",
        "mask 0 has shape [128, 64]",
    ] {
        assert!(
            reasons.iter().any(|r| r.contains(want)),
            "no reject says `{want}`: {reasons:?}"
        );
    }
    // The checker names the bad keys independently (the fixture writer's list).
    let keys: Vec<String> = summary.rejects.iter().map(|r| r.study_id.clone()).collect();
    let mut args = vec![
        "check".to_string(),
        s(&file).into(),
        s(&out).into(),
        "image".into(),
    ];
    args.extend(keys);
    testkit::run_py(SCRIPT, &args);
}

#[test]
fn malicious_pickles_are_refused_and_never_run() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("pwned");
    let mal = dir.path().join("mal");
    testkit::run_py(SCRIPT, &["malicious", s(&mal), s(&marker)]);
    for (file, name) in [
        ("os_system.pkl", "os.system"),
        ("posix_system.pkl", "posix.system"),
        ("eval.pkl", "builtins.eval"),
        ("popen.pkl", "subprocess.Popen"),
    ] {
        let path = mal.join(file);
        let format = LidcPickleFormat::new(LidcPickleParams::default());
        let err = pipeline_ingest(&format, &path, &dir.path().join("out"), &quiet()).unwrap_err();
        let text = format!(
            "{err}: {}",
            std::error::Error::source(&err).map_or(String::new(), |e| e.to_string())
        );
        println!("{file}: {text}");
        assert!(matches!(err, IngestError::Discover { .. }), "{text}");
        assert!(
            text.contains(&format!("global {name} is not allowed")) && text.contains(file),
            "{text}"
        );
        assert!(!marker.exists(), "{file} was executed");
    }
}

#[test]
fn truncated_and_foreign_files_are_clear_errors() {
    let (dir, fx) = fixtures();
    let data = std::fs::read(fx.join("mm_p4.pkl")).unwrap();
    let cases = [
        (
            "truncated.pkl",
            data[..data.len() / 2].to_vec(),
            "truncated?",
        ),
        ("text.pkl", b"image,masks\n1,2\n".to_vec(), "not read"),
        ("empty.pkl", Vec::new(), "empty"),
    ];
    for (name, bytes, want) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let format = LidcPickleFormat::new(LidcPickleParams::default());
        let err = pipeline_ingest(&format, &path, &dir.path().join("out"), &quiet()).unwrap_err();
        let text = format!("{}", std::error::Error::source(&err).unwrap());
        println!("{name}: {text}");
        assert!(text.contains(name) && text.contains(want), "{text}");
    }
    let missing = dir.path().join("nope.pkl");
    let format = LidcPickleFormat::new(LidcPickleParams::default());
    let err = pipeline_ingest(&format, &missing, &dir.path().join("out"), &quiet()).unwrap_err();
    assert!(matches!(err, IngestError::MissingInput(_)), "{err}");
}

/// The same shape as the `dpersona` binary's command line (src/main.rs).
#[derive(Parser)]
#[command(name = "dpersona")]
enum Cli {
    Ingest(IngestArgs),
}

fn cli(args: &[&str]) -> anyhow::Result<()> {
    let Cli::Ingest(a) =
        Cli::try_parse_from(std::iter::once("dpersona").chain(args.iter().copied()))?;
    run_ingest(a)
}

#[test]
fn cli_reads_the_file_and_refuses_split_flags() {
    let (dir, fx) = fixtures();
    let file = fx.join("knegt_p4.pkl");
    let out = dir.path().join("cli-out");
    cli(&[
        "ingest",
        "lidc-pickle",
        s(&file),
        "--out",
        s(&out),
        "--split-protocol",
        "patient",
    ])
    .unwrap();
    testkit::run_py(SCRIPT, &["check", s(&file), s(&out), "patient"]);
    let err = cli(&[
        "ingest",
        "lidc-pickle",
        s(&file),
        "--out",
        s(&out),
        "--folds",
        "5",
    ])
    .unwrap_err();
    assert!(format!("{err}").contains("--folds cannot be used"), "{err}");
    let err = cli(&[
        "ingest",
        "lidc-pickle",
        s(&file),
        "--out",
        s(&out),
        "--crop-size",
        "64",
    ])
    .unwrap_err();
    assert!(
        format!("{err:#}").contains("differs from the pickle's 128x128"),
        "{err:#}"
    );
}
