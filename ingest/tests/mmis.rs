//! MmisFormat on h5py-written fixtures (tests/py/mmis_h5py.py): both layouts (3D case
//! files and the official loader's 2D slice files), non-square slices, several dtypes and
//! storage layouts. Every row is compared with h5py + scipy `ndimage.zoom(order=0)` by the
//! same script; bad files are rejected naming file and key while the others are ingested;
//! names that fit no pattern are reported as notices.
use std::path::Path;

use ingest::mmis::{MmisFormat, MmisParams, Normalize};
use ingest::pipeline::{run_ingest, IngestOptions};
use ingest::study::SourceFormat;

fn fixtures(raw: &Path) -> serde_json::Value {
    let (ok, text) = testkit::run_script(
        "mmis_h5py.py",
        &[std::ffi::OsStr::new("write"), raw.as_os_str()],
    );
    assert!(ok, "writing the h5py fixtures failed:\n{text}");
    serde_json::from_slice(&std::fs::read(raw.join("expect.json")).unwrap()).unwrap()
}

fn options() -> IngestOptions {
    IngestOptions {
        threads: Some(2),
        progress: false,
        ..IngestOptions::default()
    }
}

/// Ingests `raw` with `params`, checks the rejects against expect.json and every row
/// against the Python reference; returns the reference's summary line.
fn ingest_and_check(raw: &Path, expect: &serde_json::Value, params: MmisParams) -> String {
    let out = raw.parent().unwrap().join(format!(
        "out-{}-{:?}-{:?}",
        params.crop_size, params.normalize, params.val_from_training
    ));
    let fmt = MmisFormat::new(params.clone());
    let summary = run_ingest(&fmt, raw, &out, &options()).unwrap();
    let bad = expect["bad"].as_object().unwrap();
    let mut rejected: Vec<&str> = summary
        .rejects
        .iter()
        .map(|r| r.study_id.as_str())
        .collect();
    rejected.sort();
    let mut want: Vec<&str> = bad.keys().map(String::as_str).collect();
    want.sort();
    assert_eq!(rejected, want, "rejects: {:#?}", summary.rejects);
    for r in &summary.rejects {
        let e = &bad[&r.study_id];
        assert!(
            r.file.ends_with(e["file"].as_str().unwrap()),
            "{}: reject names {}, expected {}",
            r.study_id,
            r.file,
            e["file"]
        );
        assert!(
            r.reason.contains(e["says"].as_str().unwrap()),
            "{}: reason `{}` lacks `{}`",
            r.study_id,
            r.reason,
            e["says"]
        );
    }
    let normalize = match params.normalize {
        Normalize::None => "none",
        Normalize::Zscore => "zscore",
    };
    let range = params
        .val_from_training
        .map_or("-".to_string(), |(a, b)| format!("{a}..{b}"));
    let size = params.crop_size.to_string();
    let (ok, text) = testkit::run_script(
        "mmis_h5py.py",
        &[
            "check",
            raw.to_str().unwrap(),
            out.to_str().unwrap(),
            &size,
            normalize,
            &range,
        ],
    );
    assert!(ok, "rows disagree with h5py + scipy:\n{text}");
    text
}

#[test]
fn rows_match_h5py_and_scipy_zoom_with_folder_splits() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = tmp.path().join("raw");
    let expect = fixtures(&raw);
    // 8 3D cases (5 + 3 + 4 + 6 + 4 + 2 + 3 + 3 slices) and two 2D-layout cases (12 + 4).
    let text = ingest_and_check(&raw, &expect, MmisParams::default());
    assert!(
        text.contains("46 rows of 10 cases match h5py + scipy zoom (normalize none, size 128, split protocol mmis-folders)"),
        "{text}"
    );
}

#[test]
fn zscore_other_size_and_val_from_training() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = tmp.path().join("raw");
    let expect = fixtures(&raw);
    let params = MmisParams {
        crop_size: 96,
        normalize: Normalize::Zscore,
        val_from_training: Some((80, 99)),
    };
    let text = ingest_and_check(&raw, &expect, params);
    assert!(
        text.contains("46 rows of 10 cases match h5py + scipy zoom (normalize zscore, size 96, split protocol mmis-folders-val80..99)"),
        "{text}"
    );
}

#[test]
fn stray_names_and_slice_gaps_are_notices() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = tmp.path().join("raw");
    let expect = fixtures(&raw);
    let fmt = MmisFormat::new(MmisParams::default());
    fmt.discover(&raw).unwrap();
    let notices = fmt.notices();
    let names: Vec<String> = notices
        .iter()
        .map(|n| n.file.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let mut want: Vec<String> = expect["notices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    want.sort();
    let mut got = names.clone();
    got.sort();
    assert_eq!(got, want, "{notices:#?}");
    let gap = &notices[names
        .iter()
        .position(|n| n == "Sample_8_slice_0.h5")
        .unwrap()];
    assert!(gap.reason.contains("lack k = 2"), "{gap}");
    // --strict stops on them.
    let strict = IngestOptions {
        strict: true,
        ..options()
    };
    let err = run_ingest(&fmt, &raw, &tmp.path().join("out"), &strict).unwrap_err();
    assert!(
        err.to_string().contains("README.md") || err.to_string().contains("left out"),
        "{err}"
    );
}

#[test]
fn an_empty_or_foreign_folder_is_an_error_of_the_whole_input() {
    let tmp = tempfile::tempdir().unwrap();
    let fmt = MmisFormat::new(MmisParams::default());
    let err = fmt.discover(tmp.path()).unwrap_err();
    assert!(err.reason.contains("no MMIS cases"), "{err}");
    std::fs::create_dir(tmp.path().join("training")).unwrap();
    std::fs::write(tmp.path().join("training/Sample_1.nii.gz"), b"x").unwrap();
    let err = fmt.discover(tmp.path()).unwrap_err();
    assert!(err.reason.contains("no MMIS cases"), "{err}");
    assert!(
        fmt.notices().is_empty(),
        "discover failed: nothing recorded"
    );
}

/// The command line as `dpersona ingest` parses it (the binary flattens the same args).
#[derive(clap::Parser)]
struct Cli {
    #[command(flatten)]
    ingest: ingest::cli::IngestArgs,
}

fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
    use clap::Parser;
    Cli::try_parse_from(std::iter::once("ingest").chain(args.iter().copied()))
}

#[test]
fn cli_runs_end_to_end_and_refuses_the_seeded_split_flags() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = tmp.path().join("raw");
    fixtures(&raw);
    let out = tmp.path().join("out-cli");
    let (raw_s, out_s) = (raw.to_str().unwrap(), out.to_str().unwrap());
    let cli = parse(&[
        "mmis",
        raw_s,
        "--out",
        out_s,
        "--val-from-training",
        "80..99",
    ])
    .unwrap();
    ingest::cli::run_ingest(cli.ingest).unwrap();
    let (ok, text) = testkit::run_script(
        "mmis_h5py.py",
        &["check", raw_s, out_s, "128", "none", "80..99"],
    );
    assert!(ok && text.contains("46 rows of 10 cases match"), "{text}");

    for flag in [
        ["--folds", "5"],
        ["--split-seed", "1"],
        ["--val-fraction", "0.3"],
        ["--test-fraction", "0"],
    ] {
        let cli = parse(&["mmis", raw_s, "--out", out_s, flag[0], flag[1]]).unwrap();
        let err = ingest::cli::run_ingest(cli.ingest).unwrap_err().to_string();
        assert!(
            err.contains(flag[0]) && err.contains("cannot be used"),
            "{err}"
        );
    }
    for bad in ["99..80", "80-99"] {
        assert!(
            parse(&["mmis", raw_s, "--val-from-training", bad]).is_err(),
            "{bad}"
        );
    }
    assert!(parse(&["mmis", raw_s, "--normalize", "minmax"]).is_err());
    let help = match parse(&["mmis", "--help"]) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("--help parses to an error carrying the text"),
    };
    for flag in [
        "--normalize",
        "--val-from-training",
        "--crop-size",
        "--out",
        "--strict",
        "--overwrite",
        "--threads",
        "--shard-rows",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
    }
    assert!(help.contains("do not apply"), "{help}");
}
