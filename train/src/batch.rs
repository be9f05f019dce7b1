//! A mini-batch as the loader hands it to the training thread (host memory).
use tch::{Device, Tensor};

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
    /// `[B, H, W]`: 1.0 where every PRESENT rater marked the pixel (computed after
    /// augmentation; all 0.0 for a row with no rater present).
    pub intersection: Vec<f32>,
    /// `[B, H, W]`: 1.0 where any PRESENT rater marked the pixel.
    pub union: Vec<f32>,
    /// `[B, H, W]` the fused training target when the dataset carries one (augmented
    /// with the masks' warp), else `None`.
    pub target: Option<Vec<f32>>,
    pub b: usize,
    pub c: usize,
    pub r: usize,
    pub h: usize,
    pub w: usize,
    pub rows: Vec<RowId>,
}

/// Every field of a [`Batch`] as a tensor on one device.
#[derive(Debug)]
pub struct BatchTensors {
    /// `[B, C, H, W]` f32.
    pub images: Tensor,
    /// `[B, R, H, W]` f32 0/1.
    pub masks: Tensor,
    /// `[B, R]` bool.
    pub present: Tensor,
    /// `[B, 1, H, W]` f32 0/1 (channel axis kept so it broadcasts against predictions).
    pub intersection: Tensor,
    /// `[B, 1, H, W]` f32 0/1.
    pub union: Tensor,
}

impl BatchTensors {
    /// The union and intersection `[B, 1, H, W]` Stage I's bound loss covers.
    ///
    /// `mask_absent_raters` (`stage2.mask_absent_raters`): over the raters present on each
    /// image (the loader's `union` / `intersection`). Off, the authors' rule: max and min
    /// over ALL R rater channels, an absent rater counting as its (empty) mask, so the
    /// intersection is empty on every image with an absent rater (their LIDC data pads
    /// missing reads with empty masks).
    pub fn stage1_consensus(&self, mask_absent_raters: bool) -> (Tensor, Tensor) {
        if mask_absent_raters {
            (
                self.union.shallow_clone(),
                self.intersection.shallow_clone(),
            )
        } else {
            (self.masks.amax([1], true), self.masks.amin([1], true))
        }
    }
}

impl Batch {
    /// Images `[B, C, H, W]` and masks `[B, R, H, W]` as f32 tensors on `device`.
    pub fn to_tensors(&self, device: Device) -> (Tensor, Tensor) {
        let t = self.tensors(device, false);
        (t.images, t.masks)
    }

    /// The fused target `[B, 1, H, W]` on `device`, if the batch has one.
    pub fn target_tensor(&self, device: Device) -> Option<Tensor> {
        let shape = [self.b as i64, 1, self.h as i64, self.w as i64];
        self.target
            .as_ref()
            .map(|t| upload(t, &shape, device, false))
    }

    /// Union and intersection `[B, 1, H, W]` as f32 tensors on `device`: `(union, intersection)`.
    pub fn consensus_tensors(&self, device: Device) -> (Tensor, Tensor) {
        let shape = [self.b as i64, 1, self.h as i64, self.w as i64];
        (
            upload(&self.union, &shape, device, false),
            upload(&self.intersection, &shape, device, false),
        )
    }

    /// Every field on `device`. With `pin` and a CUDA device the host copies are made in
    /// page-locked memory and copied asynchronously (the next kernel on the stream waits
    /// for them), which overlaps the upload with work already queued.
    pub fn tensors(&self, device: Device, pin: bool) -> BatchTensors {
        let (b, c, r, h, w) = (
            self.b as i64,
            self.c as i64,
            self.r as i64,
            self.h as i64,
            self.w as i64,
        );
        let pin = pin && device.is_cuda();
        BatchTensors {
            images: upload(&self.images, &[b, c, h, w], device, pin),
            masks: upload(&self.masks, &[b, r, h, w], device, pin),
            present: upload(&self.present, &[b, r], device, pin),
            intersection: upload(&self.intersection, &[b, 1, h, w], device, pin),
            union: upload(&self.union, &[b, 1, h, w], device, pin),
        }
    }
}

fn upload<T: tch::kind::Element>(data: &[T], shape: &[i64], device: Device, pin: bool) -> Tensor {
    let host = Tensor::from_slice(data).reshape(shape);
    if pin {
        // `_pin_memory(device)` copies into the CUDA pinned allocator's memory. The public
        // `pin_memory(device)` (tch's only binding of it takes a Device, never None) does the
        // same after a TORCH_WARN_DEPRECATION ("The argument 'device' of Tensor.pin_memory()
        // is deprecated", plus one from is_pinned) on EVERY call in torch 2.x
        // (aten/src/ATen/native/Memory.cpp); the fresh `host` is never pinned already, so
        // pin_memory's is_pinned short-cut is not needed.
        host.internal_pin_memory(device)
            .to_device_(device, T::KIND, true, false)
    } else if device == Device::Cpu {
        host
    } else {
        host.to_device(device)
    }
}
