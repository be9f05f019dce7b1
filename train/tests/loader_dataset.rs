//! Dataset selection and shard validation on real shard files.
mod loader_support;

use loader_support::{aligned_spec, write_dataset};
use schemas::manifest::{Manifest, RaterOrder};
use train::loader::{Dataset, FoldRole, LoaderError, Selection};

fn dataset_dir() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let m = write_dataset(
        dir.path(),
        &aligned_spec(16, 1, 4, RaterOrder::Identity, vec![]),
    );
    (dir, m)
}

#[test]
fn selections_pick_the_right_studies() {
    let (_d, m) = dataset_dir();
    // 4 studies x 3 slices; folds 0,1,0,1; splits train,train,val,test.
    let count = |sel: Selection| {
        let ds = Dataset::open(&m, &sel).unwrap();
        let mut studies: Vec<String> = ds
            .slices_per_study()
            .keys()
            .map(|s| s.to_string())
            .collect();
        studies.sort();
        (ds.len(), studies)
    };
    assert_eq!(count(Selection::all()).0, 12);
    assert_eq!(
        count(Selection::fold(0, FoldRole::Test)),
        (6, vec!["S000".into(), "S002".into()])
    );
    assert_eq!(
        count(Selection::fold(0, FoldRole::Train)),
        (6, vec!["S001".into(), "S003".into()])
    );
    assert_eq!(
        count(Selection::split("train")),
        (6, vec!["S000".into(), "S001".into()])
    );
    let both = Selection {
        split: Some("train".into()),
        fold: Some((1, FoldRole::Test)),
    };
    assert_eq!(count(both), (3, vec!["S001".into()]));
    // Rows come back as stored: the first row of S000 is its slice 0, 16x16, 4 raters.
    let ds = Dataset::open(&m, &Selection::all()).unwrap();
    assert_eq!(ds.dims(), (1, 4, 16, 16));
    let first = ds.get(0);
    assert_eq!(
        (first.id.study_id.as_str(), first.id.slice_index),
        ("S000", 0)
    );
    assert_eq!(first.image.len(), 256);
    assert_eq!(first.masks.len(), 4 * 256);
}

#[test]
fn empty_selection_names_manifest_and_selection() {
    let (_d, m) = dataset_dir();
    let sel = Selection {
        split: Some("val".into()),
        fold: Some((1, FoldRole::Test)),
    };
    let err = Dataset::open(&m, &sel)
        .err()
        .expect("no study is val and fold 1");
    assert!(matches!(err, LoaderError::EmptySelection { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("manifest.parquet")
            && msg.contains("split=val")
            && msg.contains("fold 1 test"),
        "{msg}"
    );
    let err = Dataset::open(&m, &Selection::fold(7, FoldRole::Test))
        .err()
        .unwrap();
    assert!(err.to_string().contains("fold 7 does not exist"), "{err}");
}

#[test]
fn missing_shard_is_a_clear_error() {
    let (d, m) = dataset_dir();
    let shard = d.path().join("shards/part-001.parquet");
    std::fs::remove_file(&shard).unwrap();
    // The other shard alone still serves its studies.
    assert_eq!(
        Dataset::open(&m, &Selection::split("train")).unwrap().len(),
        6
    );
    let err = Dataset::open(&m, &Selection::all()).err().unwrap();
    assert!(matches!(err, LoaderError::MissingShard { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("part-001.parquet") && msg.contains("does not exist"),
        "{msg}"
    );
}

#[test]
fn changed_shard_fails_its_checksum() {
    let (d, m) = dataset_dir();
    let shard = d.path().join("shards/part-000.parquet");
    let mut bytes = std::fs::read(&shard).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xFF;
    std::fs::write(&shard, bytes).unwrap();
    let err = Dataset::open(&m, &Selection::all()).err().unwrap();
    assert!(matches!(err, LoaderError::ChecksumMismatch { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("part-000.parquet") && msg.contains("SHA-256"),
        "{msg}"
    );
}

#[test]
fn shard_from_another_ingest_fails_its_fingerprint() {
    let (d, m) = dataset_dir();
    // Rewrite shard 0 with a different fingerprint and record its new checksum, so that
    // only the fingerprint check can catch it.
    let shard = d.path().join("shards/part-000.parquet");
    let rows: Vec<_> = {
        let f = schemas::parquet_io::open_checked(&shard, &schemas::slice::SCHEMA).unwrap();
        let batches = f.read_all().unwrap();
        let cols = schemas::slice::SliceColumns::new(batches[0].clone()).unwrap();
        (0..cols.len()).map(|i| cols.record(i)).collect()
    };
    let studies = loader_support::studies(2, 2, 3);
    loader_support::write_shard(&shard, &rows, &"f".repeat(64), &studies);
    let mut manifest = Manifest::read(&m).unwrap();
    manifest.header.shards[0].sha256 = schemas::hashing::sha256_file(&shard).unwrap();
    manifest.write().unwrap();
    let err = Dataset::open(&m, &Selection::all()).err().unwrap();
    assert!(
        matches!(err, LoaderError::FingerprintMismatch { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("part-000.parquet"), "{err}");
}

#[test]
fn not_a_manifest_is_rejected_by_schema_check() {
    let (d, _m) = dataset_dir();
    let err = Dataset::open(&d.path().join("shards/part-000.parquet"), &Selection::all())
        .err()
        .unwrap();
    assert!(err.to_string().contains("part-000.parquet"), "{err}");
}

/// The same rows in another shard order (as two ingests of the same studies write them,
/// their threads finishing in different orders) are served in the same order, so a seed
/// gives the same samples.
#[test]
fn rows_are_served_in_id_order_whatever_the_shard_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = aligned_spec(16, 1, 4, RaterOrder::Identity, vec![]);
    spec.per_shard = 1;
    let m = write_dataset(dir.path(), &spec);
    let mut reversed = Manifest::read(&m).unwrap();
    reversed.header.shards.reverse();
    reversed.path = dir.path().join("manifest_reversed.parquet");
    reversed.write().unwrap();

    let rows = |path: &std::path::Path| {
        let ds = Dataset::open(path, &Selection::all()).unwrap();
        (0..ds.len())
            .map(|i| {
                let s = ds.get(i);
                (
                    s.id.clone(),
                    s.image.to_vec(),
                    s.masks.to_vec(),
                    s.present.to_vec(),
                )
            })
            .collect::<Vec<_>>()
    };
    let (a, b) = (rows(&m), rows(&reversed.path));
    assert_eq!(a.len(), 12);
    let ids: Vec<_> = a
        .iter()
        .map(|r| (r.0.study_id.clone(), r.0.slice_index))
        .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "rows are in (study, target, slice) order");
    assert!(
        a == b,
        "the reversed shard list serves other rows or another order"
    );
}
