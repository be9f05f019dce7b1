//! Metric rows of slice units join back to the slice they scored: `slice_index` and
//! `z_mm` are columns of the results frame, and polars' join of the frame with the shards
//! of a real ingest (synthetic LIDC studies) finds, for every row, the slice whose masks
//! give the row's value (recomputed with numpy). Frames of schema version 1 (no such
//! columns, written here by pyarrow) still read, and accumulate into version 2.
use std::path::Path;

use eval::metric_rows::{EvalContext, UnitKind};
use eval::predictions::{score_predictions_dir, PredictionWriter, PredictionsHeader, SliceToSave};
use eval::results_frame::{read_results, read_summary, write_results, Conventions};
use eval::unit_metrics::MetricOptions;
use ingest::lidc::{LidcFormat, LidcParams};
use ingest::pipeline::{run_ingest, IngestOptions};
use schemas::manifest::Manifest;
use schemas::parquet_io::open_checked;
use schemas::slice::{SliceColumns, SliceRecord, SCHEMA as SLICE_SCHEMA};
use schemas::Table;
use testkit::run_py;

const CROP: u32 = 32;
/// Every prediction is this disc (p = 0.9 inside, 0.1 outside): its Dice against each
/// slice's rater masks differs from slice to slice, so a row joined to the wrong slice
/// shows.
const DISC: (f32, f32, f32) = (15.0, 16.0, 5.5);

fn disc_probs() -> Vec<f32> {
    (0..CROP * CROP)
        .map(|i| {
            let (r, c) = ((i / CROP) as f32, (i % CROP) as f32);
            if ((c - DISC.0).powi(2) + (r - DISC.1).powi(2)).sqrt() < DISC.2 {
                0.9
            } else {
                0.1
            }
        })
        .collect()
}

fn shard_rows(m: &Manifest) -> Vec<SliceRecord> {
    let mut rows = Vec::new();
    for e in &m.header.shards {
        for batch in open_checked(&m.resolve(&e.path), &SLICE_SCHEMA)
            .unwrap()
            .read_all()
            .unwrap()
        {
            let cols = SliceColumns::new(batch).unwrap();
            rows.extend((0..cols.len()).map(|r| cols.record(r)));
        }
    }
    rows
}

fn ingest_lidc(dir: &Path) -> Manifest {
    let (raw, out) = (dir.join("raw"), dir.join("data"));
    ingest::synth::lidc::write_dataset(&raw, 3, 21).unwrap();
    let format = LidcFormat::new(LidcParams {
        crop_size: CROP,
        ..LidcParams::default()
    });
    let options = IngestOptions {
        folds: 1,
        progress: false,
        threads: Some(2),
        ..IngestOptions::default()
    };
    let summary = run_ingest(&format, &raw, &out, &options).unwrap();
    assert!(summary.slices > 4, "{summary}");
    Manifest::read(&summary.manifest_path).unwrap()
}

fn context() -> EvalContext {
    EvalContext {
        run: "disc-tool".into(),
        method: "disc".into(),
        stage: 1,
        n_samples: 4,
        fold: 0,
        seed: 9,
        ..EvalContext::default()
    }
}

#[test]
fn slice_rows_join_the_shards_on_slice_index() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = ingest_lidc(dir.path());
    let slices = shard_rows(&manifest);
    let preds_dir = dir.path().join("preds");
    let writer = PredictionWriter::create(
        &preds_dir,
        &PredictionsHeader::new(&context(), UnitKind::Slice, None),
    )
    .unwrap();
    let disc = disc_probs();
    let probs: Vec<&[f32]> = vec![disc.as_slice(); 4];
    for s in &slices {
        let hw = (s.height * s.width) as usize;
        let raters: Vec<Option<&[u8]>> = (0..s.raters_present.len())
            .map(|k| s.raters_present[k].then(|| &s.masks[k * hw..(k + 1) * hw]))
            .collect();
        writer
            .write_slice(&SliceToSave {
                study_id: &s.study_id,
                target_id: &s.target_id,
                slice_index: s.slice_index,
                height: s.height,
                width: s.width,
                image: &s.image[..hw],
                raters: &raters,
                probs: &probs,
            })
            .unwrap();
    }
    let scored = score_predictions_dir(&preds_dir, &manifest, &MetricOptions::default()).unwrap();
    assert_eq!(scored.units_scored, slices.len(), "{:?}", scored.skipped);
    // Every row names its slice; the slice's own z_mm comes with it.
    for r in &scored.rows {
        let s = slices
            .iter()
            .find(|s| {
                (&s.study_id, &s.target_id, Some(s.slice_index))
                    == (&r.study_id, &r.target_id, r.slice_index)
            })
            .unwrap_or_else(|| panic!("row {r:?} names no shard slice"));
        assert_eq!(r.z_mm, Some(s.z_mm), "{r:?}");
    }
    let results = dir.path().join("results.parquet");
    write_results(&results, &scored.rows, &scored.conventions).unwrap();
    let (back, _) = read_results(&results).unwrap();
    assert_eq!(back, scored.rows);
    let shards: Vec<String> = manifest
        .header
        .shards
        .iter()
        .map(|e| manifest.resolve(&e.path).display().to_string())
        .collect();
    let mut args = vec![
        results.display().to_string(),
        format!("{} {} {} {CROP}", DISC.0, DISC.1, DISC.2),
    ];
    args.extend(shards);
    let out = run_py("results_join_shards.py", &args);
    assert!(out.contains("joined"), "{out}");
}

#[test]
fn a_version_1_frame_still_reads_and_accumulates() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("results.parquet");
    let conv = Conventions::new(&MetricOptions::default(), UnitKind::Slice, 9);
    // pyarrow writes a frame with the version-1 columns and metadata only.
    run_py(
        "metrics_v1_frame.py",
        &[path.display().to_string(), conv.to_json()],
    );
    let (old, read_conv) = read_results(&path).unwrap();
    assert_eq!(read_conv, conv);
    assert_eq!(old.len(), 6);
    assert!(old
        .iter()
        .all(|r| r.slice_index.is_none() && r.z_mm.is_none()));
    assert_eq!(
        old.iter().map(|r| r.value).collect::<Vec<_>>(),
        [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    );
    assert_eq!(old[3].study_id, "S1");
    assert_eq!((old[3].metric.as_str(), old[3].unit_index), ("ged", 1));

    // New rows of another evaluation key go next to the old ones, in a version-2 file.
    let new: Vec<_> = old
        .iter()
        .map(|r| schemas::metrics::MetricRecord {
            run: "new-run".into(),
            slice_index: Some(7),
            z_mm: Some(-12.5),
            value: r.value + 1.0,
            ..r.clone()
        })
        .collect();
    let written = write_results(&path, &new, &conv).unwrap();
    assert_eq!((written.replaced_rows, written.total_rows), (0, 12));
    let (all, _) = read_results(&path).unwrap();
    assert_eq!(&all[..6], &old[..]);
    assert_eq!(&all[6..], &new[..]);
    let file = open_checked(&path, &<schemas::metrics::MetricRecord as Table>::SCHEMA).unwrap();
    assert_eq!(file.version, 2);
    let summary = read_summary(&written.summary).unwrap();
    let old_ged = summary
        .iter()
        .find(|s| s.run == "old-run" && s.metric == "ged" && s.fold.is_none())
        .unwrap();
    assert!((old_ged.mean - 0.25).abs() < 1e-12, "{old_ged:?}");
    // And the same evaluation again replaces only its own rows.
    let again = write_results(&path, &old, &conv).unwrap();
    assert_eq!((again.replaced_rows, again.total_rows), (6, 12));
    // polars reads the mixed file: old rows null, new rows set.
    run_py(
        "results_polars_check.py",
        &[
            path.display().to_string(),
            written.summary.display().to_string(),
        ],
    );
}
