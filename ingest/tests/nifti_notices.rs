//! `ingest nifti` leaves nothing out in silence: every file of `images/` or `labels/` that
//! makes up no case, and a `numTraining` that disagrees with the cases found, is a warning
//! naming the file, and `--strict` stops on it. Each scenario edits a fresh synthetic
//! dataset (files written by our synth, or re-saved by nibabel) and runs the real pipeline.
use std::path::{Path, PathBuf};

use ingest::nifti::{NiftiFormat, NiftiParams};
use ingest::pipeline::{run_ingest, IngestError, IngestOptions, IngestSummary};
use ingest::synth::nifti as synth;
use testkit::run_py;

const STUDIES: usize = 2;

fn options(strict: bool) -> IngestOptions {
    IngestOptions {
        threads: Some(2),
        // One fold: two (or one) patients never make the fewer-patients-than-folds warning.
        folds: 1,
        progress: false,
        strict,
        ..IngestOptions::default()
    }
}

fn format() -> NiftiFormat {
    NiftiFormat::new(NiftiParams {
        crop_size: 32,
        ..NiftiParams::default()
    })
}

fn image(raw: &Path, case: &str, c: usize) -> PathBuf {
    synth::image_path(&raw.join("images"), case, c)
}

fn label(raw: &Path, case: &str, rater: &str, ending: &str) -> PathBuf {
    raw.join("labels").join(format!("{case}_{rater}{ending}"))
}

/// Every file of `case` (3 channels, 4 raters) as the synth wrote it.
fn case_files(raw: &Path, case: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = (0..3).map(|c| image(raw, case, c)).collect();
    files.extend(
        synth::rater_names()
            .iter()
            .map(|r| label(raw, case, r, ".nii.gz")),
    );
    files
}

/// Ingests `raw` twice: without --strict it must succeed with exactly `expected` warnings
/// (file, words the warning must contain) and `ingested` studies; with --strict it must
/// stop on one of them, naming the file.
fn check(raw: &Path, expected: &[(PathBuf, &str)], ingested: usize) -> IngestSummary {
    let out = raw.with_file_name("out");
    let summary = run_ingest(&format(), raw, &out, &options(false))
        .unwrap_or_else(|e| panic!("ingest failed: {e}"));
    assert_eq!(
        summary.warnings.len(),
        expected.len(),
        "warnings: {:#?}",
        summary.warnings
    );
    for (file, words) in expected {
        let want = format!("{}: ", file.display());
        assert!(
            summary
                .warnings
                .iter()
                .any(|w| w.starts_with(&want) && w.contains(words)),
            "no warning `{want}...{words}...` in {:#?}",
            summary.warnings
        );
    }
    assert_eq!(summary.studies_ok, ingested, "{summary}");
    assert!(
        summary
            .to_string()
            .contains(&format!("warnings: {} (printed above)", expected.len())),
        "{summary}"
    );

    let strict_out = raw.with_file_name("strict");
    let err = run_ingest(&format(), raw, &strict_out, &options(true)).unwrap_err();
    let IngestError::StrictNotice { source } = &err else {
        panic!("--strict should stop on a notice, got: {err}");
    };
    assert!(
        expected.iter().any(|(f, _)| *f == source.file),
        "--strict stopped on {} ({err}), not one of the expected files",
        source.file.display()
    );
    let msg = err.to_string();
    assert!(
        msg.contains(&source.file.display().to_string()) && msg.contains("--strict"),
        "{msg}"
    );
    assert!(!strict_out.join("manifest.parquet").exists());
    summary
}

fn fresh() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let raw = tmp.path().join("raw");
    synth::write_dataset(&raw, STUDIES, 5).unwrap();
    (tmp, raw)
}

#[test]
fn the_clean_synthetic_dataset_has_no_warning() {
    let (_t, raw) = fresh();
    let out = raw.with_file_name("out");
    let summary = run_ingest(&format(), &raw, &out, &options(true)).unwrap();
    assert_eq!(summary.warnings, Vec::<String>::new());
    assert_eq!(summary.studies_ok, STUDIES);
}

/// The example: a case written as `.nii` next to a dataset.json saying `.nii.gz`
/// used to vanish ("1 found", no message). Now each of its files is named, and so is
/// dataset.json, whose numTraining (2) no longer matches the one case found.
#[test]
fn a_case_with_another_file_ending_is_named_file_by_file() {
    let (_t, raw) = fresh();
    let case = synth::case_id(1);
    let old = case_files(&raw, &case);
    let new: Vec<PathBuf> = old
        .iter()
        .map(|p| PathBuf::from(p.to_str().unwrap().strip_suffix(".gz").unwrap()))
        .collect();
    let args: Vec<&Path> = old
        .iter()
        .zip(&new)
        .flat_map(|(a, b)| [a.as_path(), b.as_path()])
        .collect();
    run_py("nifti_resave.py", &args);
    let mut expected: Vec<(PathBuf, &str)> = new
        .iter()
        .map(|p| {
            (
                p.clone(),
                "ends in `.nii` but dataset.json's file_ending is `.nii.gz`: not ingested",
            )
        })
        .collect();
    expected.push((
        raw.join("dataset.json"),
        "numTraining is 2 but images/ holds 1 case(s)",
    ));
    check(&raw, &expected, 1);
}

#[test]
fn names_that_fit_no_pattern_are_named() {
    let (_t, raw) = fresh();
    let case = synth::case_id(0);
    let src = image(&raw, &case, 0);
    let copy = |name: &str| {
        let p = src.with_file_name(name);
        std::fs::copy(&src, &p).unwrap();
        p
    };
    let renamed = copy(&format!("{case}_t1.nii.gz"));
    let short = copy(&format!("{case}_000.nii.gz"));
    let extra_channel = copy(&format!("{case}_0003.nii.gz"));
    let notes = raw.join("images").join("README.txt");
    std::fs::write(&notes, "exported on Tuesday").unwrap();
    let folder = raw.join("images").join("old");
    std::fs::create_dir(&folder).unwrap();
    let label_src = label(&raw, &case, &synth::rater_names()[0], ".nii.gz");
    let unknown_rater = label(&raw, &case, "a5", ".nii.gz");
    std::fs::copy(&label_src, &unknown_rater).unwrap();
    // Hidden files are never data and stay unmentioned.
    std::fs::write(raw.join("images").join(".DS_Store"), "x").unwrap();
    check(
        &raw,
        &[
            (renamed, "name fits no CASE_XXXX.nii.gz pattern"),
            (short, "name fits no CASE_XXXX.nii.gz pattern"),
            (
                extra_channel,
                "channel index 0003, but dataset.json names 3 channel(s) (0000..0002)",
            ),
            (notes, "name fits no CASE_XXXX.nii.gz pattern"),
            (folder, "is a folder"),
            (
                unknown_rater,
                "fits no CASE_RATER.nii.gz pattern for the raters",
            ),
        ],
        STUDIES,
    );
}

#[test]
fn labels_without_images_are_named() {
    let (_t, raw) = fresh();
    let case = synth::case_id(1);
    for c in 0..3 {
        std::fs::remove_file(image(&raw, &case, c)).unwrap();
    }
    let mut expected: Vec<(PathBuf, &str)> = synth::rater_names()
        .iter()
        .map(|r| {
            (
                label(&raw, &case, r, ".nii.gz"),
                "labels without images: images/ holds no CASE_XXXX.nii.gz file of case `synth_001`",
            )
        })
        .collect();
    expected.push((
        raw.join("dataset.json"),
        "numTraining is 2 but images/ holds 1 case(s)",
    ));
    check(&raw, &expected, 1);
}

#[test]
fn a_num_training_that_disagrees_is_named() {
    let (_t, raw) = fresh();
    let path = raw.join("dataset.json");
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    json["numTraining"] = 5.into();
    std::fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
    check(
        &raw,
        &[(path.clone(), "numTraining is 5 but images/ holds 2 case(s)")],
        STUDIES,
    );
    // Absent numTraining: nothing to compare, no warning.
    json.as_object_mut().unwrap().remove("numTraining");
    std::fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
    let out = raw.with_file_name("out_absent");
    let summary = run_ingest(&format(), &raw, &out, &options(true)).unwrap();
    assert_eq!(summary.warnings, Vec::<String>::new());
}

/// Images without labels stay what they were: a reject naming the missing label file
/// (listed in rejects.parquet), not a notice.
#[test]
fn images_without_labels_are_a_reject_naming_the_label_file() {
    let (_t, raw) = fresh();
    let case = synth::case_id(1);
    for r in synth::rater_names() {
        std::fs::remove_file(label(&raw, &case, &r, ".nii.gz")).unwrap();
    }
    let out = raw.with_file_name("out");
    let summary = run_ingest(&format(), &raw, &out, &options(false)).unwrap();
    assert_eq!(summary.warnings, Vec::<String>::new());
    assert_eq!((summary.studies_ok, summary.rejects.len()), (1, 1));
    let first = label(&raw, &case, &synth::rater_names()[0], ".nii.gz");
    assert_eq!(summary.rejects[0].study_id, case);
    assert_eq!(summary.rejects[0].file, first.display().to_string());
    assert!(
        summary.rejects[0].reason.contains("missing label file"),
        "{:?}",
        summary.rejects[0]
    );
}

/// When nothing fits dataset.json's ending, the error says what was found instead.
#[test]
fn no_case_at_all_says_what_was_found_instead() {
    let (_t, raw) = fresh();
    let mut old = Vec::new();
    for i in 0..STUDIES {
        old.extend(case_files(&raw, &synth::case_id(i)));
    }
    let new: Vec<String> = old
        .iter()
        .map(|p| p.to_str().unwrap().strip_suffix(".gz").unwrap().to_string())
        .collect();
    let args: Vec<&str> = old
        .iter()
        .zip(&new)
        .flat_map(|(a, b)| [a.to_str().unwrap(), b.as_str()])
        .collect();
    run_py("nifti_resave.py", &args);
    let out = raw.with_file_name("out");
    let err = run_ingest(&format(), &raw, &out, &options(false)).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("no image files named CASE_XXXX.nii.gz")
            && msg.contains("14 other entries found, the first: ")
            && msg.contains("synth_000_0000.nii: ends in `.nii`"),
        "{msg}"
    );
}
