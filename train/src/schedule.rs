//! The per-epoch cosine learning-rate schedule (method.md §4): PyTorch's
//! `CosineAnnealingLR(T_max = epochs, eta_min = 0)` stepped once per epoch.

/// Learning rate of epoch `epoch` (0-based) out of `epochs`:
/// lr_e = lr0 · (1 + cos(π·e/T)) / 2.
pub fn cosine_lr(lr0: f64, epoch: u32, epochs: u32) -> f64 {
    if epochs == 0 {
        return lr0;
    }
    lr0 * (1.0 + (std::f64::consts::PI * epoch as f64 / epochs as f64).cos()) / 2.0
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
    }
}
