//! Per-epoch validation (method.md §4): Stage I scores the Dice_match of N prior samples,
//! Stage II the per-rater Dice of the heads (Hungarian-matched or by identity), averaged
//! over the validation UNITS. Units are what `dpersona eval` scores for the manifest: 2D
//! slices for LIDC, a target's slices stacked in `slice_index` order for NIfTI datasets
//! (the paper scores NPC per volume), built by the same [`UnitAssembler`], so that the
//! checkpoint chosen as best is chosen by the metric later reported.
use eval::unit_metrics::{score_unit, MetricOptions, ScoreError};
use tch::{Device, Kind};

use crate::error::TrainError;
use crate::infer::BatchPredictions;
use crate::loader::Loader;
use crate::methods::Method;
use crate::precision::{autocast, Precision};
use crate::seeding::{reseed, Stream};
use crate::units::UnitAssembler;

/// One epoch's validation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Validation {
    /// The method's [`Method::pick`] averaged over the units that have a present rater.
    pub metric: f64,
    /// No pixel of any prediction on the split is foreground (`p > threshold`, the metrics'
    /// rule): the model outputs the empty map, whatever its metric.
    pub empty: bool,
}

/// Validation of `method` over the units of `val`: the method's prediction set [B,S,H,W]
/// for each batch, scored per unit, its [`Method::pick`] averaged over the units that have
/// a present rater. Seeded from the run's seed, the stage and the epoch, so a resumed run
/// validates identically.
pub fn validate(
    method: &dyn Method,
    seed: u64,
    val: &Loader,
    device: Device,
    precision: Precision,
    epoch: u32,
) -> Result<Validation, TrainError> {
    reseed(seed, Stream::Validation, method.stage(), epoch as u64, 0);
    let opts = MetricOptions::default();
    let unit = UnitAssembler::default_unit(val.dataset().manifest());
    let mut units = UnitAssembler::new(unit, val.dataset());
    let (mut sum, mut count) = (0.0f64, 0usize);
    let mut empty = true;
    for batch in val.epoch(0) {
        let batch = batch?;
        let (x, _) = batch.to_tensors(device);
        let probs = autocast(precision, device, || method.predict_set(&x)).to_kind(Kind::Float);
        if empty {
            empty = probs.gt(opts.threshold as f64).any().int64_value(&[]) == 0;
        }
        let preds = BatchPredictions::new(&batch, &probs);
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
            let v = method.pick(&s)?;
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
    Ok(Validation {
        metric: sum / count as f64,
        empty,
    })
}
