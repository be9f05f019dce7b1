//! `scripts/reproduce.sh` end to end on tiny copies of the paper's own data files: an
//! MMIS-2024 release folder written by h5py and a MedicalMatting-style pickle written by
//! `pickle.dump`, each taken through ingest, training (the tiny `small` preset, one epoch
//! per stage instead of the paper's), evaluation and the report, then run again to show
//! that a finished protocol is resumed, not redone. The numbers are not checked here (the
//! metric tests do that); what is checked is that every step ran with the paper's protocol
//! choices: the authors' folds, the release's splits, one report row per stage over folds.

use std::path::Path;
use std::process::{Command, Output};

use schemas::manifest::{Manifest, SourceKind};

fn reproduce(dataset: &str, input: &Path, out: &Path, extra: &[(&str, &str)]) -> Output {
    let root = testkit::workspace_root();
    let mut cmd = Command::new("bash");
    cmd.arg(root.join("scripts/reproduce.sh"))
        .args([dataset.as_ref(), input.as_os_str(), out.as_os_str()])
        .env("DPERSONA", env!("CARGO_BIN_EXE_dpersona"))
        .env("REPRO_PRESET", "small")
        .env("REPRO_EPOCHS_STAGE1", "1")
        .env("REPRO_EPOCHS_STAGE2", "1")
        .env("REPRO_SAMPLES", "2")
        .env("REPRO_BANK", "4")
        .env("REPRO_DEVICE", "cpu");
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let output = cmd.output().expect("run bash");
    let text = text(&output);
    assert!(
        output.status.success(),
        "reproduce.sh {dataset} failed:\n{text}"
    );
    output
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The report's table rows (lines that start with the method name).
fn report_rows(text: &str) -> Vec<&str> {
    text.lines().filter(|l| l.starts_with("dpersona")).collect()
}

#[test]
fn npc_protocol_from_an_mmis_release_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = tmp.path().join("MMIS2024TASK1");
    testkit::run_py("reproduce_fixtures.py", &["npc", raw.to_str().unwrap()]);
    let out = tmp.path().join("repro");
    let first = text(&reproduce("npc", &raw, &out, &[]));

    let manifest = Manifest::read(&out.join("data/manifest.parquet")).unwrap();
    assert_eq!(manifest.header.source_kind, SourceKind::Mmis);
    assert_eq!(
        manifest.header.split_protocol.as_deref(),
        Some("mmis-folders")
    );
    let splits: Vec<(&str, &str)> = manifest
        .studies
        .iter()
        .map(|s| (s.study_id.as_str(), s.split.as_str()))
        .collect();
    assert_eq!(
        splits,
        [
            ("Sample_0", "train"),
            ("Sample_1", "train"),
            ("Sample_2", "train"),
            ("Sample_3", "train"),
            ("Sample_4", "train"),
            ("Sample_5", "val"),
            ("Sample_6", "val")
        ]
    );
    // No testing/ folder: the val split is evaluated, and the user is told why.
    assert!(first.contains("no testing/ folder"), "{first}");
    let rows = report_rows(&first);
    assert_eq!(rows.len(), 2, "one row per stage:\n{first}");
    assert!(
        first.contains("unit volume") && first.contains("scored on the ingest grid"),
        "NPC units are volumes on the 128 x 128 grid, and the report says so:\n{first}"
    );

    // A second run finds everything done.
    let again = text(&reproduce("npc", &raw, &out, &[]));
    assert!(again.contains("already evaluated"), "{again}");
    assert!(
        again.contains("0 rejected") && again.contains("7 resumed"),
        "{again}"
    );
    assert_eq!(
        report_rows(&again),
        rows,
        "a resumed protocol reports the same"
    );

    // The short form our users type: a manifest renamed `npc.parquet` trains as well.
    let data = out.join("data");
    std::fs::copy(data.join("manifest.parquet"), data.join("npc.parquet")).unwrap();
    let train = Command::new(env!("CARGO_BIN_EXE_dpersona"))
        .current_dir(&data)
        .args(["train", "--manifest", "npc.parquet", "--preset", "small"])
        .args(["--stage", "1", "--epochs-stage1", "1", "--device", "cpu"])
        .args(["--out", "renamed", "--quiet"])
        .output()
        .unwrap();
    assert!(train.status.success(), "{}", text(&train));
    assert!(data.join("renamed/stage1/best.json").is_file());
}

#[test]
fn lidc_protocol_from_a_medicalmatting_pickle_over_two_folds() {
    let tmp = tempfile::tempdir().unwrap();
    let pickle = tmp.path().join("lidc_attributes.pkl");
    testkit::run_py("reproduce_fixtures.py", &["lidc", pickle.to_str().unwrap()]);
    let out = tmp.path().join("repro");
    let first = text(&reproduce("lidc", &pickle, &out, &[("REPRO_FOLDS", "0 1")]));

    let manifest = Manifest::read(&out.join("data/manifest.parquet")).unwrap();
    assert_eq!(manifest.header.source_kind, SourceKind::LidcPickle);
    assert_eq!(
        manifest.header.split_protocol.as_deref(),
        Some("lidc-image-kfold4-seed1337")
    );
    assert_eq!(manifest.studies.len(), 16);
    for fold in ["fold0", "fold1"] {
        let run = out.join("runs").join(fold).join("dpersona");
        assert!(run.join("stage2/best.json").is_file(), "{}", run.display());
    }
    // Both folds' runs are named `dpersona`: one row per stage, over the two folds.
    let rows = report_rows(&first);
    assert_eq!(rows.len(), 2, "one row per stage:\n{first}");
    assert!(
        first.contains("unit slice"),
        "LIDC crops are slice units:\n{first}"
    );
}
