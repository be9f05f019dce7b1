//! Channels-last (NHWC) memory layout for the convolutional parts (`optim.channels_last`,
//! issue #11). cuDNN's tensor-core convolutions work in NHWC: with NCHW tensors every bf16 or
//! fp16 convolution pays a transpose on the way in and out; PyTorch users get NHWC with
//! `model.to(memory_format=torch.channels_last)` and the same on the input. tch 0.24 binds no
//! memory-format argument, so the layout is made here from strides: a 4-D tensor
//! `[N, C, H, W]` with strides `[H*W*C, 1, W*C, C]` is what `torch.channels_last` is, and
//! libtorch's convolutions, batch norms and element-wise ops keep that layout for their
//! outputs. Values never change, only where they sit in memory: safetensors files are
//! written from a contiguous copy (tch's `copy_data`), so checkpoints do not depend on it.
use tch::nn::VarStore;
use tch::Tensor;

/// The NHWC strides of a 4-D `[N, C, H, W]` size.
fn nhwc_strides(size: &[i64]) -> [i64; 4] {
    let (c, h, w) = (size[1], size[2], size[3]);
    [h * w * c, 1, w * c, c]
}

/// A channels-last copy of a 4-D tensor; any other tensor is returned as it is (shallow).
pub fn to_channels_last(t: &Tensor) -> Tensor {
    let size = t.size();
    if size.len() != 4 || is_channels_last(t) {
        return t.shallow_clone();
    }
    let mut out = Tensor::empty_strided(&size, nhwc_strides(&size), (t.kind(), t.device()));
    tch::no_grad(|| {
        out.copy_(t);
    });
    out.set_requires_grad(t.requires_grad())
}

/// Whether `t` is 4-D and laid out channels-last (sizes of 1 make several strides
/// equivalent; libtorch's own test compares against the canonical strides the same way).
pub fn is_channels_last(t: &Tensor) -> bool {
    let size = t.size();
    size.len() == 4 && {
        let want = nhwc_strides(&size);
        t.stride()
            .iter()
            .zip(&want)
            .zip(&size)
            .all(|((s, w), n)| *n == 1 || s == w)
    }
}

/// Moves every 4-D variable of `vs` (the convolution kernels) to channels-last in place,
/// keeping each variable (and so every shallow clone an optimiser holds): `set_data` swaps
/// the storage behind it. Returns how many were moved.
pub fn vars_to_channels_last(vs: &VarStore) -> usize {
    let mut moved = 0;
    tch::no_grad(|| {
        for (_, mut v) in vs.variables() {
            if v.dim() == 4 && !is_channels_last(&v) {
                let nhwc = to_channels_last(&v.detach());
                v.set_data(&nhwc);
                moved += 1;
            }
        }
    });
    moved
}
