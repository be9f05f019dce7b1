//! A plain BN U-Net (max-pool down, nearest up, skip concat) with few channels: the
//! test/demo stand-in for the ResNet-34 U-Net. Input H and W must be divisible by
//! 2^(depth-1); depth >= 2 (checked by `ModelConfig::validate`).
use super::init::{batch_norm2d, conv2d, BiasInit, ConvShape, WeightInit};
use super::unet_decoder::upsample2;
use tch::nn::{self, ModuleT};
use tch::Tensor;

/// (3×3 conv → BN → ReLU) × 2.
#[derive(Debug)]
struct DoubleConv {
    conv1: nn::Conv2D,
    bn1: nn::BatchNorm,
    conv2: nn::Conv2D,
    bn2: nn::BatchNorm,
}

impl DoubleConv {
    fn new(p: nn::Path, in_ch: i64, out_ch: i64) -> Self {
        let conv = |name: &str, i| {
            conv2d(
                &p / name,
                i,
                out_ch,
                ConvShape::new(3, 1, 1),
                WeightInit::KaimingUniformFanIn,
                BiasInit::None,
            )
        };
        Self {
            conv1: conv("conv1", in_ch),
            bn1: batch_norm2d(&p / "bn1", out_ch),
            conv2: conv("conv2", out_ch),
            bn2: batch_norm2d(&p / "bn2", out_ch),
        }
    }
}

impl ModuleT for DoubleConv {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let h = xs.apply(&self.conv1).apply_t(&self.bn1, train).relu();
        h.apply(&self.conv2).apply_t(&self.bn2, train).relu()
    }
}

/// Widths `base·2^i` at level i; the last up block outputs `out_channels` at full size.
#[derive(Debug)]
pub struct SmallUnet {
    down: Vec<DoubleConv>,
    up: Vec<DoubleConv>,
}

impl SmallUnet {
    /// Variables `down.{i}.*` (level i, full resolution first) and `up.{j}.*`.
    pub fn new(p: &nn::Path, in_channels: i64, base: i64, depth: i64, out_channels: i64) -> Self {
        let width = |level: i64| base << level;
        let down = (0..depth)
            .map(|l| {
                let i = if l == 0 { in_channels } else { width(l - 1) };
                DoubleConv::new(p / "down" / l, i, width(l))
            })
            .collect();
        let up = (0..depth - 1)
            .map(|j| {
                let level = depth - 2 - j; // level whose skip this block consumes
                let out = if level == 0 {
                    out_channels
                } else {
                    width(level)
                };
                DoubleConv::new(p / "up" / j, width(level + 1) + width(level), out)
            })
            .collect();
        Self { down, up }
    }
}

impl ModuleT for SmallUnet {
    /// `[B, C_in, H, W]` → `[B, out_channels, H, W]`.
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut skips = Vec::new();
        let mut h = xs.shallow_clone();
        for (l, block) in self.down.iter().enumerate() {
            if l > 0 {
                h = h.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false);
            }
            h = block.forward_t(&h, train);
            skips.push(h.shallow_clone());
        }
        skips.pop();
        for block in &self.up {
            let skip = skips.pop().expect("one skip per up block");
            h = block.forward_t(&Tensor::cat(&[&upsample2(&h), &skip], 1), train);
        }
        h
    }
}
