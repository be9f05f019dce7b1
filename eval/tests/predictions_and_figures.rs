//! The predictions folder: written by PredictionWriter, scored back against a real manifest
//! and shard (slice and volume units, area ranking), and drawn as figures; `dpersona report`
//! end to end with figures and training curves.
use std::path::Path;

use eval::metric_rows::{EvalContext, UnitKind};
use eval::predictions::{
    quantise_probability, score_predictions_dir, PredictionWriter, PredictionsHeader, SliceToSave,
};
use eval::unit_metrics::{score_unit, MetricOptions};
use schemas::manifest::{
    fingerprint, Manifest, ManifestHeader, RaterOrder, ShardEntry, SourceKind, StudyRecord,
};
use schemas::slice::{schema, to_batch, SliceRecord, SCHEMA as SLICE_SCHEMA};
use schemas::train_log::TrainLogRecord;

const SIDE: u32 = 24;

fn disc(cx: f32, cy: f32, r: f32) -> Vec<u8> {
    (0..SIDE * SIDE)
        .map(|i| {
            ((((i % SIDE) as f32 - cx).powi(2) + ((i / SIDE) as f32 - cy).powi(2)).sqrt() < r) as u8
        })
        .collect()
}

fn slice(study: usize, z: i32) -> SliceRecord {
    let hw = (SIDE * SIDE) as usize;
    // Rater k draws a disc of radius 8 - 1.5k (so area order is the REVERSE of slot order);
    // study 1 lacks rater 4.
    let mut masks = Vec::with_capacity(4 * hw);
    for k in 0..4 {
        masks.extend(disc(
            12.0 + z as f32,
            12.0,
            8.0 - 1.5 * k as f32 + study as f32 * 0.3,
        ));
    }
    let present = vec![true, true, true, study != 1];
    if study == 1 {
        masks[3 * hw..].fill(0);
    }
    let mut r = SliceRecord {
        study_id: format!("ST{study}"),
        patient_id: format!("P{study}"),
        target_id: "1".into(),
        slice_index: z,
        z_mm: z as f64,
        height: SIDE,
        width: SIDE,
        channels: 1,
        spacing_row_mm: 1.0,
        spacing_col_mm: 1.0,
        image: (0..hw).map(|i| ((i * 7919) % 255) as f32 / 255.0).collect(),
        masks,
        raters_present: present,
        rater_area: vec![],
        intersection: vec![],
        union: vec![],
        crop_row0: 0,
        crop_col0: 0,
        source_height: SIDE,
        source_width: SIDE,
        source_files: vec![],
        source_sha256: vec![],
    };
    r.derive_consensus();
    r
}

/// Personalised predictions: head k predicts rater k's disc, shifted by one pixel.
fn probs_for(s: &SliceRecord) -> Vec<Vec<f32>> {
    (0..4)
        .map(|k| {
            disc(13.0 + s.slice_index as f32, 12.0, 8.0 - 1.5 * k as f32)
                .iter()
                .enumerate()
                .map(|(i, &v)| {
                    if v == 1 {
                        0.6 + 0.1 * (i % 4) as f32
                    } else {
                        0.05 * (i % 5) as f32
                    }
                })
                .collect()
        })
        .collect()
}

fn write_manifest(dir: &Path, slices: &[SliceRecord], order: RaterOrder) -> Manifest {
    let shard = dir.join("shard-0.parquet");
    let bytes = schemas::parquet_io::write_batches(
        &shard,
        &SLICE_SCHEMA,
        schema(),
        &[to_batch(slices)],
        &[],
    )
    .unwrap();
    let params = serde_json::json!({"test": true});
    let studies = (0..3)
        .map(|s| StudyRecord {
            study_id: format!("ST{s}"),
            patient_id: format!("P{s}"),
            source_path: String::new(),
            n_targets: 1,
            n_slices: 2,
            volume_depth: 2,
            volume_height: SIDE,
            volume_width: SIDE,
            fold: s as u32 % 2,
            split: "test".into(),
            shard: "shard-0.parquet".into(),
        })
        .collect();
    let m = Manifest {
        path: dir.join("manifest.parquet"),
        header: ManifestHeader {
            dataset: "test".into(),
            source_kind: SourceKind::Nifti,
            raters: (1..=4).map(|k| format!("A{k}")).collect(),
            rater_order: order,
            channels: vec!["ct".into()],
            crop_size: SIDE,
            normalisation: "none".into(),
            fingerprint: fingerprint(&params),
            params,
            k_folds: 2,
            split_seed: 1,
            split_protocol: None,
            shards: vec![ShardEntry {
                path: "shard-0.parquet".into(),
                rows: slices.len() as u64,
                bytes,
                sha256: String::new(),
            }],
            rejects_file: None,
            rejected_studies: 0,
        },
        studies,
    };
    m.write().unwrap();
    Manifest::read(&m.path).unwrap()
}

fn value(rows: &[schemas::metrics::MetricRecord], study: &str, metric: &str) -> f64 {
    rows.iter()
        .find(|r| r.study_id == study && r.metric == metric)
        .unwrap_or_else(|| panic!("{study} {metric}"))
        .value
}

#[test]
fn predictions_round_trip_score_and_draw() {
    let dir = tempfile::tempdir().unwrap();
    let slices: Vec<SliceRecord> = (0..3)
        .flat_map(|s| (0..2).map(move |z| slice(s, z)))
        .collect();
    let manifest = write_manifest(dir.path(), &slices, RaterOrder::Identity);
    let ctx = EvalContext {
        run: "r1".into(),
        method: "dpersona".into(),
        stage: 2,
        bank: 50,
        seed: 1337,
        ..Default::default()
    };
    let pred_dir = dir.path().join("preds");
    let writer = PredictionWriter::create(
        &pred_dir,
        &PredictionsHeader::new(&ctx, UnitKind::Slice, None),
    )
    .unwrap();
    let hw = (SIDE * SIDE) as usize;
    for s in &slices {
        let probs = probs_for(s);
        let raters: Vec<Option<&[u8]>> = (0..4)
            .map(|k| s.raters_present[k].then(|| &s.masks[k * hw..(k + 1) * hw]))
            .collect();
        let p: Vec<&[f32]> = probs.iter().map(Vec::as_slice).collect();
        writer
            .write_slice(&SliceToSave {
                study_id: &s.study_id,
                target_id: &s.target_id,
                slice_index: s.slice_index,
                height: SIDE,
                width: SIDE,
                image: &s.image,
                raters: &raters,
                probs: &p,
            })
            .unwrap();
    }
    let opts = MetricOptions::default();
    let scored = score_predictions_dir(&pred_dir, &manifest, &opts).unwrap();
    assert_eq!(scored.units_scored, 6);
    assert!(scored.skipped.is_empty());
    // Each slice unit equals scoring the 8-bit probabilities directly; binarised metrics
    // equal the unquantised ones (threshold-preserving rounding).
    for (u, s) in slices.iter().enumerate() {
        let probs = probs_for(s);
        let q: Vec<Vec<f32>> = probs
            .iter()
            .map(|p| {
                p.iter()
                    .map(|&v| quantise_probability(v) as f32 / 255.0)
                    .collect()
            })
            .collect();
        let raters: Vec<Option<&[u8]>> = (0..4)
            .map(|k| s.raters_present[k].then(|| &s.masks[k * hw..(k + 1) * hw]))
            .collect();
        let direct = score_unit(
            &raters,
            &q.iter().map(Vec::as_slice).collect::<Vec<_>>(),
            &opts,
        )
        .unwrap();
        let exact = score_unit(
            &raters,
            &probs.iter().map(Vec::as_slice).collect::<Vec<_>>(),
            &opts,
        )
        .unwrap();
        let rows: Vec<_> = scored
            .rows
            .iter()
            .filter(|r| r.unit_index == u as u32)
            .collect();
        assert_eq!(rows[0].study_id, s.study_id);
        assert_eq!(
            rows[0].fold,
            manifest
                .studies
                .iter()
                .find(|m| m.study_id == s.study_id)
                .unwrap()
                .fold
        );
        let named = direct.named_values();
        assert_eq!(rows.len(), named.len());
        for (r, (name, v)) in rows.iter().zip(&named) {
            assert_eq!((&r.metric, r.value), (name, *v));
        }
        assert_eq!(direct.ged, exact.ged);
        assert_eq!(direct.dice_match, exact.dice_match);
        assert_eq!(direct.dice_rater_identity, exact.dice_rater_identity);
        // Study 1 lacks rater 4: no row for it.
        let has_a4 = rows.iter().any(|r| r.metric == "dice_rater_4_identity");
        assert_eq!(has_a4, s.study_id != "ST1");
    }

    // Volume units: each target's two slices stacked.
    // PNG slice folders scored as volumes (a volume's slices saved one by one).
    let vol_header = PredictionsHeader::new(&ctx, UnitKind::Volume, Some(7))
        .with_files(eval::predictions::PredictionFiles::Png);
    PredictionWriter::create(&pred_dir, &vol_header).unwrap();
    let vol = score_predictions_dir(&pred_dir, &manifest, &opts).unwrap();
    assert_eq!(vol.units_scored, 3);
    assert!(vol.rows.iter().all(|r| r.unit == "volume" && r.fold == 7));
    let two: Vec<&SliceRecord> = slices.iter().filter(|s| s.study_id == "ST2").collect();
    let cat_masks: Vec<Vec<u8>> = (0..4)
        .map(|k| {
            two.iter()
                .flat_map(|s| s.masks[k * hw..(k + 1) * hw].to_vec())
                .collect()
        })
        .collect();
    let cat_probs: Vec<Vec<f32>> = (0..4)
        .map(|j| {
            two.iter()
                .flat_map(|s| {
                    probs_for(s)[j]
                        .iter()
                        .map(|&v| quantise_probability(v) as f32 / 255.0)
                        .collect::<Vec<_>>()
                })
                .collect()
        })
        .collect();
    let direct = score_unit(
        &cat_masks
            .iter()
            .map(|m| Some(m.as_slice()))
            .collect::<Vec<_>>(),
        &cat_probs.iter().map(Vec::as_slice).collect::<Vec<_>>(),
        &opts,
    )
    .unwrap();
    assert_eq!(value(&vol.rows, "ST2", "ged"), direct.ged);
    assert_eq!(value(&vol.rows, "ST2", "dice_soft"), direct.dice_soft);
    assert_eq!(
        value(&vol.rows, "ST2", "dice_rater_3_identity"),
        direct.dice_rater_identity.unwrap()[2].unwrap()
    );

    // Area ranking: slot 1 becomes the smallest mask (manifest rater 4), so head 1 (which
    // predicts manifest rater 1's large disc) now scores badly against slot 1.
    PredictionWriter::create(
        &pred_dir,
        &PredictionsHeader::new(&ctx, UnitKind::Slice, None),
    )
    .unwrap();
    let ranked_manifest = write_manifest(&dir.path().join("ranked"), &slices, RaterOrder::AreaRank);
    let ranked = score_predictions_dir(&pred_dir, &ranked_manifest, &opts).unwrap();
    let id_a1 = value(&scored.rows, "ST0", "dice_rater_1_identity");
    let rk_a1 = value(&ranked.rows, "ST0", "dice_rater_1_identity");
    assert!(
        id_a1 > 0.8 && rk_a1 < id_a1 - 0.2,
        "identity {id_a1}, area-ranked {rk_a1}"
    );
    assert_eq!(
        value(&scored.rows, "ST0", "dice_match"),
        value(&ranked.rows, "ST0", "dice_match")
    );

    // Figures and the report end to end.
    let results = dir.path().join("results.parquet");
    eval::results_frame::write_results(&results, &scored.rows, &scored.conventions).unwrap();
    let run_dir = dir.path().join("run_a");
    let log: Vec<TrainLogRecord> = (0..20)
        .flat_map(|step| {
            let e = step / 5;
            let mut v = vec![TrainLogRecord {
                stage: 1,
                epoch: e,
                step: step as u64,
                kind: "train".into(),
                name: "total".into(),
                value: 1.0 / (1.0 + step as f64),
                lr: 1e-4,
                elapsed_s: step as f64,
            }];
            if step % 5 == 4 {
                v.push(TrainLogRecord {
                    stage: 1,
                    epoch: e,
                    step: step as u64,
                    kind: "val".into(),
                    name: "dice_match".into(),
                    value: 0.5 + 0.1 * e as f64,
                    lr: 1e-4,
                    elapsed_s: step as f64,
                });
            }
            v
        })
        .collect();
    schemas::write_table(&run_dir.join("train_log.parquet"), &log, &[]).unwrap();
    let figs = dir.path().join("figs");
    eval::cli::run_report(eval::cli::ReportArgs {
        results: vec![results.clone()],
        markdown: true,
        by_method: false,
        claims: true,
        figures: Some(figs.clone()),
        runs: vec![run_dir],
        predictions: vec![pred_dir.clone()],
        predict_cases: vec![],
        figure_slices: 3,
    })
    .unwrap();
    for (name, w, h) in [
        (
            "samples_preds.png",
            8 + 3 * (48 + 8),
            20 + 3 * (48 + 28) + 8,
        ),
        ("personalised_preds.png", 8 + 4 * 56, 20 + 3 * 76 + 8),
        // One stage: the `total` loss panel and the validation panel.
        (
            "curves_run_a.png",
            2 * eval::curves::PANEL_W as usize,
            (eval::curves::TITLE_H + eval::curves::PANEL_H) as usize,
        ),
    ] {
        let img = eval::raster::read_grey_png(&figs.join(name));
        // RGB figures are refused by the greyscale reader; decode the header with png.
        assert!(img.is_err());
        let dec = png::Decoder::new(std::io::BufReader::new(
            std::fs::File::open(figs.join(name)).unwrap(),
        ));
        let info = dec.read_info().unwrap();
        assert_eq!(
            (info.info().width, info.info().height),
            (w as u32, h as u32),
            "{name}"
        );
    }
    if let Ok(keep) = std::env::var("EVAL_KEEP_FIGURES") {
        for f in [
            "samples_preds.png",
            "personalised_preds.png",
            "curves_run_a.png",
        ] {
            std::fs::copy(figs.join(f), Path::new(&keep).join(f)).unwrap();
        }
    }
}
