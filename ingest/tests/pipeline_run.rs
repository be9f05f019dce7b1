//! The ingest pipeline end to end on a small real format (text studies, real Parquet).
mod pipeline_support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use ingest::pipeline::{run_ingest, IngestError, IngestOptions};
use ingest::study::SourceFormat;
use pipeline_support::{polars_check, write_dataset, write_study, TextFormat};
use schemas::manifest::{fingerprint, Manifest};
use schemas::parquet_io::open_checked;
use schemas::rejects::RejectRecord;
use schemas::slice::{self, SliceColumns, SliceRecord, KEY_FINGERPRINT, KEY_STUDIES};

fn options() -> IngestOptions {
    IngestOptions {
        threads: Some(2),
        shard_rows: 10,
        row_group_rows: 4,
        progress: false,
        ..IngestOptions::default()
    }
}

/// Every row of every shard listed in the manifest, with the shard it came from.
fn read_rows(manifest: &Manifest) -> Vec<(String, SliceRecord)> {
    let mut rows = Vec::new();
    for entry in &manifest.header.shards {
        let file = open_checked(&manifest.resolve(&entry.path), &slice::SCHEMA).unwrap();
        for batch in file.read_all().unwrap() {
            let cols = SliceColumns::new(batch).unwrap();
            for r in 0..cols.len() {
                rows.push((entry.path.clone(), cols.record(r)));
            }
        }
    }
    rows
}

fn key(r: &SliceRecord) -> (String, String, i32) {
    (r.study_id.clone(), r.target_id.clone(), r.slice_index)
}

fn expected_rows(format: &TextFormat, raw: &Path) -> Vec<SliceRecord> {
    let mut all: Vec<SliceRecord> = format
        .discover(raw)
        .unwrap()
        .iter()
        .flat_map(|s| format.load(s).map(|o| o.slices).unwrap_or_default())
        .collect();
    all.sort_by_key(key);
    all
}

#[test]
fn shards_hold_every_row_with_metadata_and_the_manifest_describes_them() {
    let dir = tempfile::tempdir().unwrap();
    let (raw, out) = (dir.path().join("raw"), dir.path().join("out"));
    write_dataset(&raw, 10, 7);
    let format = TextFormat::new();
    let summary = run_ingest(&format, &raw, &out, &options()).unwrap();
    let manifest = Manifest::read(&out.join("manifest.parquet")).unwrap();

    // Rows: exactly what the format loads, each once.
    let expected = expected_rows(&TextFormat::new(), &raw);
    let rows = read_rows(&manifest);
    let mut got: Vec<SliceRecord> = rows.iter().map(|(_, r)| r.clone()).collect();
    got.sort_by_key(key);
    assert_eq!(got.len(), expected.len());
    assert_eq!(got, expected, "shard rows differ from the format's slices");
    assert_eq!(summary.slices as usize, expected.len());
    assert_eq!(
        (
            summary.studies_found,
            summary.studies_ok,
            summary.rejects.len()
        ),
        (10, 10, 0)
    );

    // Header.
    let h = &manifest.header;
    let facts = format.facts();
    assert_eq!(h.fingerprint, fingerprint(&facts.params));
    assert_eq!(h.raters, facts.raters);
    assert_eq!(
        (h.k_folds, h.split_seed, h.rejects_file.clone()),
        (4, 1337, None)
    );
    assert!(
        h.shards.len() >= 3,
        "10-row shards over {} rows",
        expected.len()
    );
    assert_eq!(summary.shards, h.shards.len());

    // Shards: metadata, whole studies, rolled at >= shard_rows, checksums.
    let mut shard_of: BTreeMap<String, String> = BTreeMap::new();
    for (i, entry) in h.shards.iter().enumerate() {
        let path = manifest.resolve(&entry.path);
        let file = open_checked(&path, &slice::SCHEMA).unwrap();
        assert_eq!(file.metadata[KEY_FINGERPRINT], h.fingerprint);
        let listed: Vec<String> = serde_json::from_str(&file.metadata[KEY_STUDIES]).unwrap();
        let row_groups: Vec<i64> = file
            .builder
            .metadata()
            .row_groups()
            .iter()
            .map(|g| g.num_rows())
            .collect();
        assert!(
            row_groups.iter().all(|&n| n <= 4),
            "row groups {row_groups:?} exceed 4 rows"
        );
        let in_rows: BTreeSet<String> = rows
            .iter()
            .filter(|(p, _)| p == &entry.path)
            .map(|(_, r)| r.study_id.clone())
            .collect();
        assert_eq!(in_rows, listed.iter().cloned().collect::<BTreeSet<_>>());
        for s in &listed {
            assert!(
                shard_of.insert(s.clone(), entry.path.clone()).is_none(),
                "{s} in two shards"
            );
        }
        let n = rows.iter().filter(|(p, _)| p == &entry.path).count() as u64;
        assert_eq!(entry.rows, n);
        if i + 1 < h.shards.len() {
            assert!(n >= 10, "a closed shard has at least --shard-rows rows");
        }
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(entry.bytes, bytes.len() as u64);
        assert_eq!(entry.sha256, schemas::hashing::sha256_bytes(&bytes));
    }

    // One study row per study, matching the rows.
    assert_eq!(manifest.studies.len(), 10);
    for s in &manifest.studies {
        let mine: Vec<&SliceRecord> = rows
            .iter()
            .map(|(_, r)| r)
            .filter(|r| r.study_id == s.study_id)
            .collect();
        assert_eq!(s.n_slices as usize, mine.len());
        let targets: BTreeSet<&str> = mine.iter().map(|r| r.target_id.as_str()).collect();
        assert_eq!(s.n_targets as usize, targets.len());
        assert_eq!(s.shard, shard_of[&s.study_id]);
        assert_eq!(s.source_path, format!("{}.study", s.study_id));
        assert_eq!([s.volume_height, s.volume_width], [64, 64]);
    }
    // No stray files.
    let names: BTreeSet<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        names,
        ["manifest.parquet", "shards"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
}

#[test]
fn folds_and_splits_are_patient_level() {
    let dir = tempfile::tempdir().unwrap();
    let (raw, out) = (dir.path().join("raw"), dir.path().join("out"));
    // 30 studies of 12 patients: most patients have several studies.
    write_dataset(&raw, 30, 12);
    let opts = IngestOptions {
        folds: 3,
        split_seed: 7,
        val_fraction: 0.25,
        test_fraction: 0.25,
        ..options()
    };
    run_ingest(&TextFormat::new(), &raw, &out, &opts).unwrap();
    let m = Manifest::read(&out.join("manifest.parquet")).unwrap();
    let mut per_patient: BTreeMap<&str, BTreeSet<(u32, &str)>> = BTreeMap::new();
    for s in &m.studies {
        per_patient
            .entry(&s.patient_id)
            .or_default()
            .insert((s.fold, &s.split));
    }
    assert_eq!(per_patient.len(), 12);
    for (p, set) in &per_patient {
        assert_eq!(
            set.len(),
            1,
            "patient {p} is in several folds/splits: {set:?}"
        );
    }
    let count = |f: &dyn Fn(&(u32, &str)) -> bool| {
        per_patient
            .values()
            .filter(|s| f(s.iter().next().unwrap()))
            .count()
    };
    for fold in 0..3 {
        assert_eq!(count(&|a| a.0 == fold), 4, "12 patients in 3 folds of 4");
    }
    assert_eq!(count(&|a| a.1 == "test"), 3);
    assert_eq!(count(&|a| a.1 == "val"), 3);
    assert_eq!(count(&|a| a.1 == "train"), 6);

    // Another seed moves patients; the same seed reproduces the assignment.
    let out2 = dir.path().join("out2");
    run_ingest(&TextFormat::new(), &raw, &out2, &opts).unwrap();
    let again = Manifest::read(&out2.join("manifest.parquet")).unwrap();
    let assignment = |m: &Manifest| {
        m.studies
            .iter()
            .map(|s| (s.study_id.clone(), s.fold, s.split.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(assignment(&m), assignment(&again));
    let out3 = dir.path().join("out3");
    run_ingest(
        &TextFormat::new(),
        &raw,
        &out3,
        &IngestOptions {
            split_seed: 8,
            ..opts
        },
    )
    .unwrap();
    let other = Manifest::read(&out3.join("manifest.parquet")).unwrap();
    assert_ne!(assignment(&m), assignment(&other));
}

#[test]
fn bad_studies_are_rejected_and_strict_stops() {
    let dir = tempfile::tempdir().unwrap();
    let (raw, out) = (dir.path().join("raw"), dir.path().join("out"));
    write_dataset(&raw, 6, 6);
    write_study(&raw, "S900", "P90", 1, 2, Some("pixel data is truncated"));
    let summary = run_ingest(&TextFormat::new(), &raw, &out, &options()).unwrap();
    assert_eq!((summary.studies_ok, summary.rejects.len()), (6, 1));
    let rejects_path = out.join("rejects.parquet");
    assert_eq!(
        summary.rejects_path.as_deref(),
        Some(rejects_path.as_path())
    );
    let (rejects, _) = schemas::read_table::<RejectRecord>(&rejects_path).unwrap();
    assert_eq!(rejects.len(), 1);
    assert_eq!(rejects[0].study_id, "S900");
    assert!(
        rejects[0].file.ends_with("S900.study"),
        "{}",
        rejects[0].file
    );
    assert_eq!(rejects[0].reason, "pixel data is truncated");
    let m = Manifest::read(&out.join("manifest.parquet")).unwrap();
    assert_eq!(
        (m.header.rejected_studies, m.header.rejects_file.as_deref()),
        (1, Some("rejects.parquet"))
    );
    assert!(m.studies.iter().all(|s| s.study_id != "S900"));
    assert!(summary.to_string().contains("1 rejected"), "{summary}");

    let strict_out = dir.path().join("strict");
    let err = run_ingest(
        &TextFormat::new(),
        &raw,
        &strict_out,
        &IngestOptions {
            strict: true,
            ..options()
        },
    )
    .unwrap_err();
    assert!(
        matches!(err, IngestError::Strict { ref study_id, .. } if study_id == "S900"),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("S900") && msg.contains("pixel data is truncated") && msg.contains("--strict"),
        "{msg}"
    );
    assert!(!strict_out.join("manifest.parquet").exists());
}

#[test]
fn empty_or_missing_input_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw");
    std::fs::create_dir(&raw).unwrap();
    let err = run_ingest(
        &TextFormat::new(),
        &raw,
        &dir.path().join("out"),
        &options(),
    )
    .unwrap_err();
    assert!(matches!(err, IngestError::NoStudies(_)));
    assert!(
        err.to_string().contains("no studies found in") && err.to_string().contains("raw"),
        "{err}"
    );
    let err = run_ingest(
        &TextFormat::new(),
        &dir.path().join("nope"),
        &dir.path().join("out"),
        &options(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
}

#[test]
fn a_crashed_run_resumes_without_lost_or_duplicated_rows() {
    let dir = tempfile::tempdir().unwrap();
    let (raw, out) = (dir.path().join("raw"), dir.path().join("out"));
    write_dataset(&raw, 24, 10);
    let opts = IngestOptions {
        threads: Some(1),
        ..options()
    };

    // Reference: one uninterrupted run.
    let reference_out = dir.path().join("reference");
    run_ingest(&TextFormat::new(), &raw, &reference_out, &opts).unwrap();
    let reference = Manifest::read(&reference_out.join("manifest.parquet")).unwrap();

    // A run that crashes after 15 studies, leaving finished shards, the open shard's
    // temporary file deleted on unwind, plus a torn temp file as kill -9 would leave.
    let crashing = TextFormat::panicking_after(15);
    let crashed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_ingest(&crashing, &raw, &out, &opts)
    }));
    assert!(crashed.is_err(), "the format was meant to panic");
    assert!(!out.join("manifest.parquet").exists());
    let finished: Vec<_> = std::fs::read_dir(out.join("shards"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        !finished.is_empty(),
        "the crash came after some shards were finished"
    );
    std::fs::write(
        out.join("shards/.shard-00042.parquet.999999.tmp"),
        b"torn write",
    )
    .unwrap();

    let format = TextFormat::new();
    let summary = run_ingest(&format, &raw, &out, &opts).unwrap();
    assert!(
        summary.studies_resumed > 0 && summary.studies_resumed < 24,
        "{summary}"
    );
    assert_eq!(
        format.loads(),
        24 - summary.studies_resumed,
        "resumed studies are not read again"
    );
    assert_eq!(summary.temp_files_removed, 1);
    assert!(!out.join("shards/.shard-00042.parquet.999999.tmp").exists());

    let resumed = Manifest::read(&out.join("manifest.parquet")).unwrap();
    let sorted = |m: &Manifest| {
        let mut v: Vec<SliceRecord> = read_rows(m).into_iter().map(|(_, r)| r).collect();
        v.sort_by_key(key);
        v
    };
    let (a, b) = (sorted(&reference), sorted(&resumed));
    let keys: BTreeSet<_> = b.iter().map(key).collect();
    assert_eq!(keys.len(), b.len(), "duplicated rows after resume");
    assert_eq!(a.len(), b.len());
    assert_eq!(a, b, "resumed rows differ from an uninterrupted run");
    let facts = |m: &Manifest| {
        m.studies
            .iter()
            .map(|s| (s.study_id.clone(), s.n_slices, s.fold, s.split.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(facts(&reference), facts(&resumed));

    // A finished output folder: a rerun reads nothing and keeps the manifest's shards.
    let format = TextFormat::new();
    let again = run_ingest(&format, &raw, &out, &opts).unwrap();
    assert_eq!((again.studies_resumed, format.loads()), (24, 0));
    assert_eq!(
        Manifest::read(&out.join("manifest.parquet"))
            .unwrap()
            .header,
        resumed.header
    );
}

#[test]
fn other_parameters_in_the_output_folder_need_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let (raw, out) = (dir.path().join("raw"), dir.path().join("out"));
    write_dataset(&raw, 4, 4);
    run_ingest(&TextFormat::new(), &raw, &out, &options()).unwrap();
    let changed = TextFormat::with_level(2.0);
    let err = run_ingest(&changed, &raw, &out, &options()).unwrap_err();
    assert!(
        matches!(err, IngestError::FingerprintMismatch { .. }),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("--out") && msg.contains("--overwrite"),
        "{msg}"
    );

    let summary = run_ingest(
        &changed,
        &raw,
        &out,
        &IngestOptions {
            overwrite: true,
            ..options()
        },
    )
    .unwrap();
    assert_eq!(summary.studies_resumed, 0);
    let m = Manifest::read(&out.join("manifest.parquet")).unwrap();
    assert_eq!(m.header.fingerprint, fingerprint(&changed.facts().params));
    let rows = read_rows(&m);
    assert!(
        rows.iter().all(|(_, r)| r.image.iter().any(|&v| v > 1.0)),
        "rows come from the new parameters"
    );
}

/// Writes an empty shard claiming `version` of the slices schema into `out`.
fn shard_of_version(out: &Path, version: u32) {
    let id = schemas::SchemaId::new("slices", version);
    let mut w = schemas::parquet_io::AtomicParquetWriter::create(
        &out.join("shards/shard-00000.parquet"),
        slice::schema(),
        &id,
        4,
    )
    .unwrap();
    w.write(&slice::to_batch(&[])).unwrap();
    w.finish().unwrap();
}

#[test]
fn a_shard_of_another_schema_version_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (raw, out) = (dir.path().join("raw"), dir.path().join("out"));
    write_dataset(&raw, 2, 2);
    let newer = slice::SCHEMA.version + 1;
    shard_of_version(&out, newer);
    let err = run_ingest(&TextFormat::new(), &raw, &out, &options()).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            IngestError::Schema(schemas::SchemaError::NewerVersion { .. })
        ),
        "{msg}"
    );
    assert!(
        msg.contains("shard-00000.parquet")
            && msg.contains(&format!("version {newer}"))
            && msg.contains("upgrade dpersona"),
        "{msg}"
    );
    // Version 1 stored masks unpacked: an old output folder is refused with the way out,
    // not resumed into a mix of layouts.
    shard_of_version(&out, 1);
    let err = run_ingest(&TextFormat::new(), &raw, &out, &options()).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            IngestError::Schema(schemas::SchemaError::OlderVersion { found: 1, .. })
        ),
        "{msg}"
    );
    assert!(
        msg.contains("shard-00000.parquet") && msg.contains("--overwrite"),
        "{msg}"
    );
}

#[test]
fn polars_reads_shards_and_manifest_and_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let (raw, out) = (dir.path().join("raw"), dir.path().join("out"));
    write_dataset(&raw, 9, 5);
    run_ingest(&TextFormat::new(), &raw, &out, &options()).unwrap();
    let text = polars_check(&out, 9);
    // The data had missing raters: the check saw rows with and without rater 2.
    assert!(
        text.contains("(True, True, False)") && text.contains("(True, True, True)"),
        "{text}"
    );
}
