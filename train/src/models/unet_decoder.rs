//! smp `UnetDecoder` (v0.3.3) with BN, no attention, no centre block (method.md §2.2).
//!
//! Each block: nearest ×2 upsample → concat skip (if any) → (3×3 conv no bias → BN → ReLU)×2.
//! Variable names mirror smp: `blocks.{i}.conv1.0.weight` (conv), `blocks.{i}.conv1.1.*` (BN).
use super::init::{batch_norm2d, conv2d, BiasInit, ConvShape, WeightInit};
use super::relu_owned;
use tch::nn::{self, ModuleT};
use tch::Tensor;

/// smp `Conv2dReLU`: conv (index 0) → BN (index 1) → ReLU.
#[derive(Debug)]
struct Conv2dReLU {
    conv: nn::Conv2D,
    bn: nn::BatchNorm,
}

impl Conv2dReLU {
    fn new(p: nn::Path, in_ch: i64, out_ch: i64) -> Self {
        Self {
            // smp `initialize_decoder`: Kaiming-uniform fan_in, BN weight 1 bias 0.
            conv: conv2d(
                &p / "0",
                in_ch,
                out_ch,
                ConvShape::new(3, 1, 1),
                WeightInit::KaimingUniformFanIn,
                BiasInit::None,
            ),
            bn: batch_norm2d(&p / "1", out_ch),
        }
    }
}

impl ModuleT for Conv2dReLU {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        relu_owned(xs.apply(&self.conv).apply_t(&self.bn, train))
    }
}

#[derive(Debug)]
struct DecoderBlock {
    conv1: Conv2dReLU,
    conv2: Conv2dReLU,
}

/// Nearest-neighbour ×2 upsampling (`F.interpolate(scale_factor=2, mode="nearest")`).
pub fn upsample2(x: &Tensor) -> Tensor {
    let s = x.size();
    x.upsample_nearest2d([s[2] * 2, s[3] * 2], Some(2.0), Some(2.0))
}

/// The decoder half of the paper's backbone.
#[derive(Debug)]
pub struct UnetDecoder {
    blocks: Vec<DecoderBlock>,
}

impl UnetDecoder {
    /// `encoder_channels`: channels of f1..f5 (shallow to deep); `decoder_channels`: one width
    /// per block (deep to shallow). Block i reads the previous output (f5 for i=0) and the
    /// skip f_{4-i}; the last blocks get no skip once f1 is used (f0 never is).
    pub fn new(p: &nn::Path, encoder_channels: &[i64], decoder_channels: &[i64]) -> Self {
        let rev: Vec<i64> = encoder_channels.iter().rev().copied().collect();
        let mut in_chs = vec![rev[0]];
        in_chs.extend_from_slice(&decoder_channels[..decoder_channels.len() - 1]);
        let blocks = decoder_channels
            .iter()
            .enumerate()
            .map(|(i, &out)| {
                let skip = rev.get(i + 1).copied().unwrap_or(0);
                let bp = p / "blocks" / i;
                DecoderBlock {
                    conv1: Conv2dReLU::new(&bp / "conv1", in_chs[i] + skip, out),
                    conv2: Conv2dReLU::new(&bp / "conv2", out, out),
                }
            })
            .collect();
        Self { blocks }
    }

    /// `feats` = [f1..f5] from the encoder → `[B, decoder_channels.last(), 32·H5, 32·W5]`.
    pub fn forward_t(&self, feats: &[Tensor], train: bool) -> Tensor {
        let mut skips = feats.iter().rev();
        let mut x = skips
            .next()
            .expect("decoder needs the encoder's features")
            .shallow_clone();
        for block in &self.blocks {
            x = upsample2(&x);
            if let Some(skip) = skips.next() {
                x = Tensor::cat(&[&x, skip], 1);
            }
            x = block
                .conv2
                .forward_t(&block.conv1.forward_t(&x, train), train);
        }
        x
    }
}
