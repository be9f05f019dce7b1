//! Per-epoch validation (method.md §4): Stage I scores the Dice_match of N prior samples,
//! Stage II the per-rater Dice of the heads (Hungarian-matched or by identity), averaged
//! over the validation UNITS. Units are what `dpersona eval` scores for the manifest: 2D
//! slices for LIDC, a target's slices stacked in `slice_index` order for NIfTI datasets
//! (the paper scores NPC per volume), built by the same [`UnitAssembler`], so that the
//! checkpoint chosen as best is chosen by the metric later reported.
use eval::unit_metrics::{score_unit, MetricOptions, ScoreError, UnitScores};
use tch::{Device, Tensor};

use crate::config::{Stage2Selection, TrainConfig};
use crate::evaluate::UnitAssembler;
use crate::infer::{predict, BatchPredictions, Outputs};
use crate::loader::Loader;
use crate::models::DPersona;
use crate::seeding::{reseed, Stream};
use crate::trainer::TrainError;

/// Mean validation metric of `model` over the units of `val` (seeded from the run's seed,
/// the stage and the epoch, so a resumed run validates identically).
pub fn validate(
    cfg: &TrainConfig,
    model: &DPersona,
    val: &Loader,
    device: Device,
    stage: u8,
    epoch: u32,
) -> Result<f64, TrainError> {
    let outputs = if stage == 1 {
        Outputs::Samples(cfg.validation.samples)
    } else {
        Outputs::Personalised {
            bank: cfg.validation.bank,
        }
    };
    let selection = cfg.validation.stage2_selection;
    let pick = |s: &UnitScores| match (stage, selection) {
        (1, _) => Ok(s.dice_match),
        (_, Stage2Selection::Matched) => Ok(s.dice_mean_matched),
        (_, Stage2Selection::Identity) => s
            .dice_mean_identity
            .ok_or_else(|| TrainError::Validation("identity Dice needs one head per rater".into())),
    };
    let predict_fn = |x: &Tensor| predict(model, x, outputs);
    validate_with(cfg.seed, &predict_fn, &pick, val, device, stage, epoch)
}

/// The validation loop every method shares: `predict` maps a batch of images to its
/// prediction set [B,S,H,W] (probabilities), `pick` reads the selection metric off a unit's
/// scores; returns its mean over the units that have a present rater.
pub fn validate_with(
    seed: u64,
    predict_fn: &dyn Fn(&Tensor) -> Tensor,
    pick: &dyn Fn(&UnitScores) -> Result<f64, TrainError>,
    val: &Loader,
    device: Device,
    stage: u8,
    epoch: u32,
) -> Result<f64, TrainError> {
    reseed(seed, Stream::Validation, stage, epoch as u64, 0);
    let opts = MetricOptions::default();
    let unit = UnitAssembler::default_unit(val.dataset().manifest());
    let mut units = UnitAssembler::new(unit, val.dataset());
    let (mut sum, mut count) = (0.0f64, 0usize);
    for batch in val.epoch(0) {
        let batch = batch?;
        let (x, _) = batch.to_tensors(device);
        let preds = BatchPredictions::new(&batch, &predict_fn(&x));
        let chw = batch.c * batch.h * batch.w;
        for b in 0..batch.b {
            let image = &batch.images[b * chw..b * chw + batch.h * batch.w];
            let Some(u) = units.push(
                &batch.rows[b],
                &preds.probs_of(b),
                &preds.raters_of(b),
                image,
            ) else {
                continue;
            };
            let s = match score_unit(&u.rater_refs(), &u.prob_refs(), &opts) {
                Ok(s) => s,
                // A unit no rater read carries no label to validate against.
                Err(ScoreError::NoRaters) => continue,
                Err(e) => {
                    return Err(TrainError::Validation(format!(
                        "{}/{}: {e}",
                        u.id.study_id, u.id.target_id
                    )))
                }
            };
            let v = pick(&s)?;
            sum += v;
            count += 1;
        }
    }
    units.finish().map_err(TrainError::Validation)?;
    if count == 0 {
        return Err(TrainError::Validation(format!(
            "no validation {} has a present rater",
            match unit {
                eval::metric_rows::UnitKind::Slice => "slice",
                eval::metric_rows::UnitKind::Volume => "volume",
            }
        )));
    }
    Ok(sum / count as f64)
}
