//! Per-epoch learning-rate schedules (`optim.schedule`).
//!
//! Every method of the comparison sets its learning rate once per epoch, from the epoch
//! index and the run's epoch count, the way its authors' code does:
//! - `cosine` (the default): D-Persona and the harness that trains the Prob. U-Net, CM and
//!   Pionono baselines (`ycwu1997/D-Persona`, method.md §4): PyTorch's
//!   `CosineAnnealingLR(T_max = epochs, eta_min = 0)` stepped once per epoch.
//! - `poly`: TAB (`Merrical/TAB`, `utils/functions.py::lr_poly`, called with the epoch
//!   index from `trainer/train_riga_tab.py`): `base_lr · (1 − epoch/num_epoch)^power`,
//!   power 0.9.
//! - `step`: Pionono (`arneschmidt/pionono_segmentation`, `src/model_handler.py`): after
//!   epoch `i` finishes, `if i > lr_decay_after_epoch: lr = lr / (1 + lr_decay_param)` for
//!   every parameter group (configs: after epoch 40, param 0.1, i.e. divided by 1.1).
//! - `constant`: no decay.
//!
//! Parameter groups with their own base rate (CM heads, Pionono's latents) follow the same
//! schedule from their own base rate, as PyTorch's schedulers and Pionono's loop do.
use serde::{Deserialize, Serialize};

/// How the learning rate changes from epoch to epoch.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum Schedule {
    /// lr_e = lr0 · (1 + cos(π·e/T)) / 2.
    #[default]
    Cosine,
    /// lr_e = lr0.
    Constant,
    /// lr_e = lr0 · (1 − e/T)^power (TAB: power 0.9).
    Poly { power: f64 },
    /// lr_e = lr0 / (1 + decay)^max(0, e − after_epoch − 1): the rate is divided by
    /// (1 + decay) at the end of every epoch whose index exceeds `after_epoch` (Pionono:
    /// after_epoch 40, decay 0.1).
    Step { after_epoch: u32, decay: f64 },
}

impl Schedule {
    /// Whether this is the default (cosine), which `config.toml` leaves out so that the
    /// configuration hashes of runs made before the key existed do not change.
    pub fn is_default(&self) -> bool {
        *self == Schedule::Cosine
    }

    /// Learning rate of epoch `epoch` (0-based) of a run of `epochs` epochs with base rate
    /// `lr0`.
    pub fn lr(&self, lr0: f64, epoch: u32, epochs: u32) -> f64 {
        match *self {
            Schedule::Cosine => cosine_lr(lr0, epoch, epochs),
            Schedule::Constant => lr0,
            Schedule::Poly { power } => poly_lr(lr0, epoch, epochs, power),
            Schedule::Step { after_epoch, decay } => step_lr(lr0, epoch, after_epoch, decay),
        }
    }

    /// Parameters that cannot train (the config's `validate` reports them).
    pub fn validate(&self) -> Result<(), String> {
        match *self {
            Schedule::Poly { power } if !(power.is_finite() && power > 0.0) => Err(format!(
                "optim.schedule.poly.power must be a finite number > 0, got {power}"
            )),
            Schedule::Step { decay, .. } if !(decay.is_finite() && decay >= 0.0) => Err(format!(
                "optim.schedule.step.decay must be a finite number >= 0, got {decay}"
            )),
            _ => Ok(()),
        }
    }
}

/// Learning rate of epoch `epoch` (0-based) out of `epochs`:
/// lr_e = lr0 · (1 + cos(π·e/T)) / 2.
pub fn cosine_lr(lr0: f64, epoch: u32, epochs: u32) -> f64 {
    if epochs == 0 {
        return lr0;
    }
    lr0 * (1.0 + (std::f64::consts::PI * epoch as f64 / epochs as f64).cos()) / 2.0
}

/// TAB's `lr_poly(base_lr, iter, max_iter, power)` with the epoch as `iter`:
/// lr0 · (1 − e/T)^power. Past the last epoch (e ≥ T) the rate is 0 (Python would raise
/// a negative base to a fractional power; no epoch ≥ T ever trains).
pub fn poly_lr(lr0: f64, epoch: u32, epochs: u32, power: f64) -> f64 {
    if epochs == 0 {
        return lr0;
    }
    let left = 1.0 - epoch as f64 / epochs as f64;
    if left <= 0.0 {
        return 0.0;
    }
    lr0 * left.powf(power)
}

/// Pionono's decay: the rate of epoch `e` after the end-of-epoch divisions of epochs
/// after_epoch+1 .. e−1: lr0 / (1 + decay)^max(0, e − after_epoch − 1).
pub fn step_lr(lr0: f64, epoch: u32, after_epoch: u32, decay: f64) -> f64 {
    let divisions = epoch.saturating_sub(after_epoch.saturating_add(1));
    lr0 / (1.0 + decay).powi(divisions as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_at_lr0_halves_midway_and_ends_near_zero() {
        assert_eq!(cosine_lr(1e-4, 0, 100), 1e-4);
        assert!((cosine_lr(1e-4, 50, 100) - 5e-5).abs() < 1e-18);
        // T_max = epochs: the last epoch (e = T-1) still trains with a small positive rate.
        let last = cosine_lr(1e-4, 99, 100);
        assert!(last > 0.0 && last < 1e-7, "{last}");
        assert!(cosine_lr(1e-4, 100, 100).abs() < 1e-20);
        assert_eq!(Schedule::Cosine.lr(1e-4, 50, 100), cosine_lr(1e-4, 50, 100));
    }

    /// TAB's README run: 5e-5, power 0.9, 300 epochs. By hand: epoch 150 →
    /// 5e-5 · 0.5^0.9 = 5e-5 · 0.5358867312... = 2.67943366...e-5; epoch 299 →
    /// 5e-5 · (1/300)^0.9 = 5e-5 · 0.0058964534... = 2.94822670...e-7.
    #[test]
    fn poly_matches_tab_lr_poly_by_hand() {
        let s = Schedule::Poly { power: 0.9 };
        assert_eq!(s.lr(5e-5, 0, 300), 5e-5);
        let mid = s.lr(5e-5, 150, 300);
        assert!((mid - 2.679_433_66e-5).abs() < 1e-13, "{mid}");
        let last = s.lr(5e-5, 299, 300);
        assert!((last - 2.948_226_70e-7).abs() < 1e-15, "{last}");
        assert_eq!(s.lr(5e-5, 300, 300), 0.0);
        // power 1 is linear decay: 1e-3 · (1 − 3/4).
        assert!((poly_lr(1e-3, 3, 4, 1.0) - 2.5e-4).abs() < 1e-18);
    }

    /// Pionono's loop with after_epoch 40, decay 0.1: epochs 0..=41 train with lr0 (the
    /// first division happens at the END of epoch 41), epoch 42 with lr0/1.1, epoch 43 with
    /// lr0/1.21, epoch 99 with lr0/1.1^58.
    #[test]
    fn step_matches_pionono_loop_by_hand() {
        let s = Schedule::Step {
            after_epoch: 40,
            decay: 0.1,
        };
        for e in 0..=41 {
            assert_eq!(s.lr(1e-4, e, 100), 1e-4, "epoch {e}");
        }
        assert!((s.lr(1e-4, 42, 100) - 1e-4 / 1.1).abs() < 1e-18);
        assert!((s.lr(1e-4, 43, 100) - 1e-4 / 1.21).abs() < 1e-18);
        let last = s.lr(1e-4, 99, 100);
        assert!((last - 1e-4 / 1.1f64.powi(58)).abs() < 1e-18, "{last}");
        // The same loop simulated: divide at the end of every epoch i > after_epoch.
        let mut lr = 1e-4;
        for e in 0..100u32 {
            assert!((s.lr(1e-4, e, 100) - lr).abs() <= 1e-12 * lr, "epoch {e}");
            if e > 40 {
                lr /= 1.1;
            }
        }
    }

    #[test]
    fn constant_never_decays() {
        assert_eq!(Schedule::Constant.lr(3e-3, 0, 10), 3e-3);
        assert_eq!(Schedule::Constant.lr(3e-3, 9, 10), 3e-3);
    }

    #[test]
    fn bad_parameters_are_errors_naming_the_key() {
        let e = Schedule::Poly { power: 0.0 }.validate().unwrap_err();
        assert!(e.contains("optim.schedule.poly.power"), "{e}");
        let e = Schedule::Step {
            after_epoch: 0,
            decay: -0.5,
        }
        .validate()
        .unwrap_err();
        assert!(e.contains("optim.schedule.step.decay"), "{e}");
        assert!(Schedule::Cosine.validate().is_ok());
    }
}
