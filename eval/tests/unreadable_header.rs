//! A predictions folder whose `predictions.json` is there but unreadable is an error naming
//! that file, for the figures as for scoring; it used to be taken for a PNG folder and
//! drawn (or counted) as one, whatever the header said.
use eval::figures::{one_prediction_per_rater, samples_figure};
use eval::metric_rows::{EvalContext, UnitKind};
use eval::predictions::{PredictionWriter, PredictionsHeader, SliceToSave, HEADER_FILE};

#[test]
fn an_unreadable_header_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let preds = dir.path().join("preds");
    let ctx = EvalContext {
        run: "r".into(),
        method: "m".into(),
        stage: 1,
        ..EvalContext::default()
    };
    let writer =
        PredictionWriter::create(&preds, &PredictionsHeader::new(&ctx, UnitKind::Slice, None))
            .unwrap();
    let (h, w) = (4u32, 5u32);
    let mask: Vec<u8> = (0..h * w).map(|i| (i % 3 == 0) as u8).collect();
    let p: Vec<f32> = mask.iter().map(|&m| m as f32 * 0.8).collect();
    let image = vec![0.5f32; (h * w) as usize];
    writer
        .write_slice(&SliceToSave {
            study_id: "S",
            target_id: "1",
            slice_index: 3,
            height: h,
            width: w,
            image: &image,
            raters: &[Some(mask.as_slice())],
            probs: &[p.as_slice()],
        })
        .unwrap();
    // Readable: one prediction for one rater slot.
    assert!(one_prediction_per_rater(&preds).unwrap());

    let header = preds.join(HEADER_FILE);
    for broken in [
        "{\"format\": \"dpersona-predictions\", \"version\": 2",
        "not json at all",
    ] {
        std::fs::write(&header, broken).unwrap();
        let err = one_prediction_per_rater(&preds).unwrap_err().to_string();
        assert!(
            err.contains(&header.display().to_string()) && err.contains("does not parse"),
            "{err}"
        );
        let err = samples_figure(&preds, &dir.path().join("fig.png"), 4)
            .unwrap_err()
            .to_string();
        assert!(err.contains(&header.display().to_string()), "{err}");
    }
    // A header that cannot be read at all (a folder in its place) names it too.
    std::fs::remove_file(&header).unwrap();
    std::fs::create_dir(&header).unwrap();
    let err = one_prediction_per_rater(&preds).unwrap_err().to_string();
    assert!(err.contains(&header.display().to_string()), "{err}");
}
