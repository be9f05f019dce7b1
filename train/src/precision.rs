//! Mixed precision (`optim.precision = "fp32" | "bf16" | "fp16" | "auto"`): libtorch's
//! autocast around the forward pass and the loss, master weights and Adam state in fp32,
//! a dynamic loss scaler for fp16, and the reductions that must not lose digits (Dice sums,
//! KL, the latent Gaussians) taken in fp32 whatever the autocast dtype (the loss functions
//! cast their inputs; in fp32 that cast is the identity, so fp32 runs are unchanged).
//!
//! tch exposes autocast for CUDA only and with its default dtype (fp16); bf16, and autocast
//! on CPU (oneDNN's AVX-512-BF16 / AMX kernels), need libtorch's `at::autocast` functions of
//! a device type. They are reached here by their C++ symbol names: every argument and
//! result is a bool or a one-byte enum, so the C calling convention is the C++ one; a
//! libtorch that renamed them fails at link time, never at run time.
use serde::{Deserialize, Serialize};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

#[link(name = "torch_cpu")]
extern "C" {
    #[link_name = "_ZN2at8autocast19is_autocast_enabledEN3c1010DeviceTypeE"]
    fn at_is_autocast_enabled(device_type: i8) -> bool;
    #[link_name = "_ZN2at8autocast20set_autocast_enabledEN3c1010DeviceTypeEb"]
    fn at_set_autocast_enabled(device_type: i8, enabled: bool);
    #[link_name = "_ZN2at8autocast18get_autocast_dtypeEN3c1010DeviceTypeE"]
    fn at_get_autocast_dtype(device_type: i8) -> i8;
    #[link_name = "_ZN2at8autocast18set_autocast_dtypeEN3c1010DeviceTypeENS1_10ScalarTypeE"]
    fn at_set_autocast_dtype(device_type: i8, dtype: i8);
    #[link_name = "_ZN2at8autocast17increment_nestingEv"]
    fn at_increment_nesting() -> i32;
    #[link_name = "_ZN2at8autocast17decrement_nestingEv"]
    fn at_decrement_nesting() -> i32;
    #[link_name = "_ZN2at8autocast11clear_cacheEv"]
    fn at_clear_cache();
}

/// `c10::DeviceType` values (c10/core/DeviceType.h).
const DEVICE_CPU: i8 = 0;
const DEVICE_CUDA: i8 = 1;
/// `c10::ScalarType` values (c10/core/ScalarType.h).
const SCALAR_HALF: i8 = 5;
const SCALAR_BFLOAT16: i8 = 15;

/// The arithmetic of the forward pass and the loss.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Everything in fp32 (the authors' code).
    #[default]
    Fp32,
    /// bf16 autocast: fp32's range, no loss scaling needed.
    Bf16,
    /// fp16 autocast with a dynamic loss scaler.
    Fp16,
    /// bf16 on a CUDA device that runs it, fp32 elsewhere (CPU bf16 pays only with
    /// native bf16 matrix units: measure it with `bench/bench_step.sh` before choosing it).
    Auto,
}

impl Precision {
    /// What `Auto` means on `device`; other values are returned as they are.
    pub fn resolve(self, device: Device) -> Precision {
        match (self, device) {
            (Precision::Auto, Device::Cuda(_)) if cuda_runs_bf16(device) => Precision::Bf16,
            (Precision::Auto, Device::Cuda(_)) => Precision::Fp16,
            (Precision::Auto, _) => Precision::Fp32,
            (p, _) => p,
        }
    }

    pub fn is_fp32(&self) -> bool {
        *self == Precision::Fp32
    }

    fn autocast_dtype(self) -> Option<i8> {
        match self {
            Precision::Bf16 => Some(SCALAR_BFLOAT16),
            Precision::Fp16 => Some(SCALAR_HALF),
            Precision::Fp32 | Precision::Auto => None,
        }
    }
}

/// Whether a bf16 matrix product runs on `device` (pre-Ampere GPUs lack bf16 tensor cores;
/// libtorch emulates or refuses there).
fn cuda_runs_bf16(device: Device) -> bool {
    let a = Tensor::ones([8, 8], (Kind::BFloat16, device));
    a.f_matmul(&a).is_ok()
}

fn device_type(device: Device) -> i8 {
    match device {
        Device::Cuda(_) => DEVICE_CUDA,
        _ => DEVICE_CPU,
    }
}

/// Runs `f` under autocast for `precision` on `device` (fp32: just runs it), restoring
/// the previous autocast state afterwards (and clearing autocast's weight-cast cache when
/// the outermost region ends, as `torch.autocast.__exit__` does).
pub fn autocast<T>(precision: Precision, device: Device, f: impl FnOnce() -> T) -> T {
    let Some(dtype) = precision.autocast_dtype() else {
        return f();
    };
    let dev = device_type(device);
    // SAFETY: plain-data arguments; these functions only touch libtorch's thread-local
    // autocast state (see the module documentation for the symbol names).
    let (was_enabled, was_dtype) = unsafe {
        let prev = (at_is_autocast_enabled(dev), at_get_autocast_dtype(dev));
        at_set_autocast_enabled(dev, true);
        at_set_autocast_dtype(dev, dtype);
        at_increment_nesting();
        prev
    };
    let restore = Restore {
        dev,
        was_enabled,
        was_dtype,
    };
    let out = f();
    drop(restore);
    out
}

/// Puts the autocast state back even when `f` panics.
struct Restore {
    dev: i8,
    was_enabled: bool,
    was_dtype: i8,
}

impl Drop for Restore {
    fn drop(&mut self) {
        // SAFETY: as in `autocast`.
        unsafe {
            if at_decrement_nesting() == 0 {
                at_clear_cache();
            }
            at_set_autocast_enabled(self.dev, self.was_enabled);
            at_set_autocast_dtype(self.dev, self.was_dtype);
        }
    }
}

/// Backward pass of one step's loss: plain, or scaled and unscaled again by `scaler` (fp16).
/// True when the optimiser should step (always without a scaler; with one, when no
/// gradient overflowed).
pub fn backward(loss: &Tensor, scaler: Option<&mut LossScaler>, vs: &VarStore) -> bool {
    match scaler {
        None => {
            loss.backward();
            true
        }
        Some(s) => {
            s.scale_loss(loss).backward();
            s.unscale_and_update(vs)
        }
    }
}

/// fp16's dynamic loss scaling (`torch.cuda.amp.GradScaler`'s rule): the loss is
/// multiplied by `scale` before backward so that small fp16 gradients do not flush to
/// zero; the gradients are divided by it again before the optimiser step. A step whose
/// gradients overflowed is skipped and the scale halved; after `growth_interval` good
/// steps in a row it doubles.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LossScaler {
    pub scale: f64,
    /// Good steps since the last change of scale.
    pub good_steps: u32,
    #[serde(skip, default = "default_growth_interval")]
    pub growth_interval: u32,
}

fn default_growth_interval() -> u32 {
    2000
}

impl Default for LossScaler {
    /// GradScaler's defaults: 2^16, doubled every 2000 good steps.
    fn default() -> Self {
        Self {
            scale: 65536.0,
            good_steps: 0,
            growth_interval: default_growth_interval(),
        }
    }
}

impl LossScaler {
    /// The loss to call `backward` on.
    pub fn scale_loss(&self, loss: &Tensor) -> Tensor {
        loss * self.scale
    }

    /// Divides every gradient of `vs` by the scale; true when all are finite (take the
    /// step), false when one overflowed (skip it). Updates the scale either way.
    pub fn unscale_and_update(&mut self, vs: &VarStore) -> bool {
        let inv = 1.0 / self.scale;
        let mut finite = true;
        tch::no_grad(|| {
            for v in vs.trainable_variables() {
                let mut g = v.grad();
                if !g.defined() {
                    continue;
                }
                let _ = g.g_mul_scalar_(inv);
                if finite && !bool::try_from(g.isfinite().all()).unwrap_or(false) {
                    finite = false;
                }
            }
        });
        if finite {
            self.good_steps += 1;
            if self.good_steps >= self.growth_interval {
                self.scale *= 2.0;
                self.good_steps = 0;
            }
        } else {
            self.scale *= 0.5;
            self.good_steps = 0;
        }
        finite
    }
}
