//! Every format survives a write and a read, and readers refuse files that are not theirs.
use schemas::manifest::{
    fingerprint, Manifest, ManifestHeader, RaterOrder, ShardEntry, SourceKind, StudyRecord,
};
use schemas::parquet_io::{open_checked, AtomicParquetWriter};
use schemas::slice::{self, SliceColumns, SliceRecord};
use schemas::{SchemaError, SchemaId};

fn slice_record(seed: u32) -> SliceRecord {
    let (h, w, r) = (4u32, 5u32, 3usize);
    let hw = (h * w) as usize;
    let masks: Vec<u8> = (0..r * hw)
        .map(|i| (i as u32 * 7 + seed).is_multiple_of(3) as u8)
        .collect();
    let mut rec = SliceRecord {
        study_id: format!("study-{seed}"),
        patient_id: "p1".into(),
        target_id: "nodule-1".into(),
        slice_index: seed as i32,
        z_mm: -12.5 + seed as f64,
        height: h,
        width: w,
        channels: 1,
        spacing_row_mm: 0.7,
        spacing_col_mm: 0.8,
        image: (0..hw).map(|i| i as f32 / hw as f32).collect(),
        masks,
        raters_present: vec![true, false, true],
        rater_area: vec![],
        intersection: vec![],
        union: vec![],
        crop_row0: -3,
        crop_col0: 10,
        source_height: 512,
        source_width: 512,
        source_files: vec!["a.dcm".into(), "a.xml".into()],
        source_sha256: vec!["00".into(), "11".into()],
    };
    rec.derive_consensus();
    rec
}

#[test]
fn consensus_uses_only_present_raters() {
    let rec = slice_record(1);
    let hw = 20;
    for p in 0..hw {
        let a = rec.masks[p];
        let c = rec.masks[2 * hw + p];
        assert_eq!(rec.intersection[p], a.min(c), "pixel {p}");
        assert_eq!(rec.union[p], a.max(c), "pixel {p}");
    }
    let area: Vec<u32> = (0..3)
        .map(|k| {
            rec.masks[k * hw..(k + 1) * hw]
                .iter()
                .map(|&v| v as u32)
                .sum()
        })
        .collect();
    assert_eq!(rec.rater_area, area);
}

#[test]
fn slice_shard_roundtrip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shard.parquet");
    let rows: Vec<SliceRecord> = (0..5).map(slice_record).collect();
    let mut w = AtomicParquetWriter::create(&path, slice::schema(), &slice::SCHEMA, 2).unwrap();
    w.write(&slice::to_batch(&rows[..3])).unwrap();
    w.write(&slice::to_batch(&rows[3..])).unwrap();
    w.set_metadata(slice::KEY_FINGERPRINT, "abc".into());
    assert_eq!(w.rows_written(), 5);
    w.finish().unwrap();

    let file = open_checked(&path, &slice::SCHEMA).unwrap();
    assert_eq!(
        file.metadata
            .get(slice::KEY_FINGERPRINT)
            .map(String::as_str),
        Some("abc")
    );
    assert_eq!(
        file.builder.metadata().num_row_groups(),
        3,
        "row groups of at most 2 rows"
    );
    let mut back = Vec::new();
    for batch in file.read_all().unwrap() {
        let cols = SliceColumns::new(batch).unwrap();
        for i in 0..cols.len() {
            back.push(cols.record(i));
        }
    }
    assert_eq!(back, rows);
}

#[test]
fn reader_refuses_wrong_and_newer_schemas() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.parquet");
    let newer = SchemaId::new("slices", slice::SCHEMA.version + 1);
    let mut w = AtomicParquetWriter::create(&path, slice::schema(), &newer, 8).unwrap();
    w.write(&slice::to_batch(&[slice_record(0)])).unwrap();
    w.finish().unwrap();
    match open_checked(&path, &slice::SCHEMA) {
        Err(SchemaError::NewerVersion {
            found, supported, ..
        }) => {
            assert_eq!(
                (found, supported),
                (slice::SCHEMA.version + 1, slice::SCHEMA.version)
            )
        }
        other => panic!("expected NewerVersion, got {:?}", other.err()),
    }
    let msg = open_checked(&path, &SchemaId::new("manifest", 1))
        .err()
        .unwrap()
        .to_string();
    assert!(
        msg.contains("s.parquet") && msg.contains("`slices`") && msg.contains("`manifest`"),
        "{msg}"
    );
}

#[test]
fn dropped_writer_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.parquet");
    {
        let mut w = AtomicParquetWriter::create(&path, slice::schema(), &slice::SCHEMA, 8).unwrap();
        w.write(&slice::to_batch(&[slice_record(0)])).unwrap();
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

fn manifest(path: std::path::PathBuf) -> Manifest {
    let params = serde_json::json!({"crop_size": 128, "window": [-1350.0, 150.0]});
    Manifest {
        path,
        header: ManifestHeader {
            dataset: "lidc".into(),
            source_kind: SourceKind::Lidc,
            raters: (1..=4).map(|k| format!("reader_{k}")).collect(),
            rater_order: RaterOrder::AreaRank,
            channels: vec!["ct".into()],
            crop_size: 128,
            normalisation: "HU window [-1350, 150] -> [0, 1]".into(),
            fingerprint: fingerprint(&params),
            params,
            k_folds: 4,
            split_seed: 1337,
            split_protocol: None,
            shards: vec![ShardEntry {
                path: "shards/shard-00000.parquet".into(),
                rows: 10,
                bytes: 1234,
                sha256: "ff".into(),
            }],
            rejects_file: None,
            rejected_studies: 0,
        },
        studies: vec![StudyRecord {
            study_id: "1.2.3".into(),
            patient_id: "LIDC-IDRI-0001".into(),
            source_path: "LIDC-IDRI/LIDC-IDRI-0001".into(),
            n_targets: 2,
            n_slices: 10,
            volume_depth: 120,
            volume_height: 512,
            volume_width: 512,
            fold: 3,
            split: "test".into(),
            shard: "shards/shard-00000.parquet".into(),
        }],
    }
}

#[test]
fn manifest_roundtrip_and_fingerprint_check() {
    let dir = tempfile::tempdir().unwrap();
    let m = manifest(dir.path().join("manifest.parquet"));
    m.write().unwrap();
    let back = Manifest::read(&m.path).unwrap();
    assert_eq!(back, m);
    assert_eq!(
        back.resolve("shards/a.parquet"),
        dir.path().join("shards/a.parquet")
    );

    let mut tampered = m.clone();
    tampered.header.params = serde_json::json!({"crop_size": 64});
    tampered.write().unwrap();
    let msg = Manifest::read(&m.path).err().unwrap().to_string();
    assert!(msg.contains("fingerprint"), "{msg}");
}

#[test]
fn fingerprint_ignores_key_order() {
    let a: serde_json::Value = serde_json::from_str(r#"{"a": 1, "b": [1, 2]}"#).unwrap();
    let b: serde_json::Value = serde_json::from_str(r#"{"b": [1, 2], "a": 1}"#).unwrap();
    assert_eq!(fingerprint(&a), fingerprint(&b));
    let c: serde_json::Value = serde_json::from_str(r#"{"b": [2, 1], "a": 1}"#).unwrap();
    assert_ne!(fingerprint(&a), fingerprint(&c));
}

/// A packed mask column whose byte count does not fit its row's raters x height x width
/// is refused with the row and the column named, not unpacked into garbage.
#[test]
fn packed_masks_of_the_wrong_length_are_refused() {
    use arrow::array::{ArrayRef, BinaryArray, RecordBatch};
    use std::sync::Arc;
    let batch = slice::to_batch(&[slice_record(1), slice_record(2)]);
    // 3 raters x 4 x 5 = 60 values = 8 bytes; row 1 gets 7.
    let short = BinaryArray::from(vec![&[0u8; 8][..], &[0u8; 7][..]]);
    let index = batch.schema().index_of(slice::col::MASKS).unwrap();
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    columns[index] = Arc::new(short);
    let bad = RecordBatch::try_new(batch.schema(), columns).unwrap();
    let err = SliceColumns::new(bad)
        .err()
        .expect("a short mask is refused");
    assert!(
        err.contains("row 1") && err.contains("`masks`") && err.contains("7 packed bytes"),
        "{err}"
    );
    // The well-formed batch unpacks to the records' own masks.
    let cols = SliceColumns::new(batch).unwrap();
    assert_eq!(cols.masks(1), &slice_record(2).masks[..]);
    assert_eq!(cols.union(0), &slice_record(1).union[..]);
}
