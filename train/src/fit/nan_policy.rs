//! The NaN policy every training loop shares (issue: "non-finite loss terms skip the step and
//! are counted; too many in a row stop with an error naming the step and the term"): a step
//! whose loss terms are not all finite takes no optimiser step, is counted and logged as a
//! `skipped_nonfinite` event, and `max_consecutive` such steps in a row end the run.
use super::epoch_end::log_row;
use crate::error::TrainError;
use crate::train_log::TrainLog;

/// Non-finite steps of one stage: the running count (kept in checkpoints, so it survives a
/// resume) and the current streak.
pub struct NanGuard {
    /// Steps skipped so far in the stage.
    pub skipped: u64,
    consecutive: u32,
    max_consecutive: u32,
}

impl NanGuard {
    pub fn new(skipped: u64, max_consecutive: u32) -> Self {
        Self {
            skipped,
            consecutive: 0,
            max_consecutive,
        }
    }

    /// True when every loss term of the step is finite (the caller steps the optimiser);
    /// false when the step is skipped (counted and logged); an error naming the step and the
    /// term to blame when the streak reaches `max_consecutive`. `values` lists `total` first,
    /// then its components.
    #[allow(clippy::too_many_arguments)]
    pub fn admit(
        &mut self,
        values: &[(&'static str, f64)],
        stage: u8,
        epoch: u32,
        step: u64,
        lr: f64,
        elapsed_s: f64,
        log: &mut TrainLog,
    ) -> Result<bool, TrainError> {
        let Some((term, value)) = first_nonfinite(values) else {
            self.consecutive = 0;
            return Ok(true);
        };
        self.consecutive += 1;
        self.skipped += 1;
        log.push(log_row(
            stage,
            epoch,
            step,
            "event",
            "skipped_nonfinite",
            1.0,
            lr,
            elapsed_s,
        ));
        if self.consecutive >= self.max_consecutive {
            return Err(TrainError::NonFinite {
                stage,
                epoch,
                step,
                term: term.to_string(),
                value: *value,
                count: self.consecutive,
                max: self.max_consecutive,
            });
        }
        Ok(false)
    }
}

/// The loss term to blame for a non-finite step: the first non-finite component (`rec`,
/// `kl`, ...) rather than `total` (listed first, and non-finite whenever any component is),
/// so that the stop error says which term broke; `total` only when it alone is non-finite.
fn first_nonfinite<'a>(values: &'a [(&'static str, f64)]) -> Option<&'a (&'static str, f64)> {
    let bad = |(_, v): &&(&str, f64)| !v.is_finite();
    values
        .iter()
        .skip(1)
        .find(bad)
        .or_else(|| values.first().filter(bad))
}
