//! A plain BN U-Net (max-pool down, nearest up, skip concat) with few channels: the
//! test/demo stand-in for the ResNet-34 U-Net. Input H and W must be divisible by
//! 2^(depth-1); depth >= 2 (checked by `ModelConfig::validate`).
use super::init::{batch_norm2d, conv2d, BiasInit, ConvShape, WeightInit};
use super::relu_owned;
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
        let h = relu_owned(xs.apply(&self.conv1).apply_t(&self.bn1, train));
        relu_owned(h.apply(&self.conv2).apply_t(&self.bn2, train))
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
        Self::with_bottleneck_extra(p, in_channels, base, depth, out_channels, 0)
    }

    /// As [`SmallUnet::new`], but the first up block reads `extra` more channels at the
    /// bottleneck (TAB concatenates its attention maps there; baselines.md §5).
    pub fn with_bottleneck_extra(
        p: &nn::Path,
        in_channels: i64,
        base: i64,
        depth: i64,
        out_channels: i64,
        extra: i64,
    ) -> Self {
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
                let bottom = if j == 0 { extra } else { 0 };
                DoubleConv::new(p / "up" / j, width(level + 1) + bottom + width(level), out)
            })
            .collect();
        Self { down, up }
    }
}

impl SmallUnet {
    /// `[B, C_in, H, W]` → one map per level, full resolution first, the bottleneck
    /// (`base·2^(depth-1)` channels at H/2^(depth-1)) last.
    pub fn encode(&self, xs: &Tensor, train: bool) -> Vec<Tensor> {
        let mut levels = Vec::new();
        let mut h = xs.shallow_clone();
        for (l, block) in self.down.iter().enumerate() {
            if l > 0 {
                h = h.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false);
            }
            h = block.forward_t(&h, train);
            levels.push(h.shallow_clone());
        }
        levels
    }

    /// [`SmallUnet::encode`]'s levels (the bottleneck may carry the `extra` channels) →
    /// `[B, out_channels, H, W]`.
    pub fn decode(&self, levels: &[Tensor], train: bool) -> Tensor {
        let (bottom, skips) = levels
            .split_last()
            .expect("decode needs the encoder levels");
        let mut h = bottom.shallow_clone();
        for (block, skip) in self.up.iter().zip(skips.iter().rev()) {
            h = block.forward_t(&Tensor::cat(&[&upsample2(&h), skip], 1), train);
        }
        h
    }
}

impl ModuleT for SmallUnet {
    /// `[B, C_in, H, W]` → `[B, out_channels, H, W]`.
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.decode(&self.encode(xs, train), train)
    }
}
