//! A mini-batch as the loader hands it to the training thread (host memory).
use tch::{Device, Kind, Tensor};

/// Which slice a batch row came from (for logs, validation and figures).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RowId {
    pub study_id: String,
    pub target_id: String,
    pub slice_index: i32,
}

/// `B` augmented slices. Rater channels are already in the manifest's rater order
/// policy (area-ranked after augmentation for `area_rank`).
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// `[B, C, H, W]` row-major.
    pub images: Vec<f32>,
    /// `[B, R, H, W]` row-major, 0.0 or 1.0.
    pub masks: Vec<f32>,
    /// `[B, R]`: whether rater r read the study of row b.
    pub present: Vec<bool>,
    pub b: usize,
    pub c: usize,
    pub r: usize,
    pub h: usize,
    pub w: usize,
    pub rows: Vec<RowId>,
}

impl Batch {
    /// Images `[B, C, H, W]` and masks `[B, R, H, W]` as f32 tensors on `device`.
    pub fn to_tensors(&self, device: Device) -> (Tensor, Tensor) {
        let shape = |ch: usize| [self.b as i64, ch as i64, self.h as i64, self.w as i64];
        let x = Tensor::from_slice(&self.images).reshape(shape(self.c));
        let y = Tensor::from_slice(&self.masks).reshape(shape(self.r));
        (
            x.to_device(device).to_kind(Kind::Float),
            y.to_device(device).to_kind(Kind::Float),
        )
    }
}
