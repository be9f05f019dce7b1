//! torchvision ResNet-34 without avgpool/fc, as smp's `ResNetEncoder` uses it (method.md §2.2).
//!
//! Variable names are torchvision's (`conv1`, `bn1`, `layer{1..4}.{i}.conv{1,2}`,
//! `.bn{1,2}`, `.downsample.{0,1}`) so ImageNet weights load by name.
use super::init::{batch_norm2d, conv2d, BiasInit, ConvShape, WeightInit};
use super::relu_owned;
use tch::nn::{self, ModuleT};
use tch::Tensor;

/// Blocks per stage of ResNet-34 (torchvision `[3, 4, 6, 3]`).
pub const RESNET34_LAYERS: [i64; 4] = [3, 4, 6, 3];
/// Stage widths of every torchvision BasicBlock ResNet.
pub const RESNET_WIDTHS: [i64; 4] = [64, 128, 256, 512];

/// torchvision initialises ResNet convs with Kaiming-normal over fan_out.
fn resnet_conv(p: nn::Path, i: i64, o: i64, shape: ConvShape) -> nn::Conv2D {
    conv2d(
        p,
        i,
        o,
        shape,
        WeightInit::KaimingNormalFanOut,
        BiasInit::None,
    )
}

/// 3×3 → BN → ReLU → 3×3 → BN → (+ shortcut) → ReLU.
#[derive(Debug)]
struct BasicBlock {
    conv1: nn::Conv2D,
    bn1: nn::BatchNorm,
    conv2: nn::Conv2D,
    bn2: nn::BatchNorm,
    downsample: Option<(nn::Conv2D, nn::BatchNorm)>,
}

impl BasicBlock {
    fn new(p: nn::Path, in_ch: i64, out_ch: i64, stride: i64) -> Self {
        let downsample = (stride != 1 || in_ch != out_ch).then(|| {
            let d = &p / "downsample";
            (
                resnet_conv(&d / "0", in_ch, out_ch, ConvShape::new(1, stride, 0)),
                batch_norm2d(&d / "1", out_ch),
            )
        });
        Self {
            conv1: resnet_conv(&p / "conv1", in_ch, out_ch, ConvShape::new(3, stride, 1)),
            bn1: batch_norm2d(&p / "bn1", out_ch),
            conv2: resnet_conv(&p / "conv2", out_ch, out_ch, ConvShape::new(3, 1, 1)),
            bn2: batch_norm2d(&p / "bn2", out_ch),
            downsample,
        }
    }
}

impl ModuleT for BasicBlock {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let h = relu_owned(xs.apply(&self.conv1).apply_t(&self.bn1, train));
        let mut h = h.apply(&self.conv2).apply_t(&self.bn2, train);
        // `out += identity; relu(out)` in place, as torchvision's BasicBlock.
        match &self.downsample {
            Some((conv, bn)) => h += xs.apply(conv).apply_t(bn, train),
            None => h += xs,
        };
        relu_owned(h)
    }
}

/// The encoder half of the paper's backbone.
#[derive(Debug)]
pub struct ResNet34Encoder {
    conv1: nn::Conv2D,
    bn1: nn::BatchNorm,
    layers: Vec<Vec<BasicBlock>>,
}

impl ResNet34Encoder {
    /// `p` is the encoder's path (`backbone.encoder`).
    pub fn new(p: &nn::Path, in_channels: i64) -> Self {
        let conv1 = resnet_conv(
            p / "conv1",
            in_channels,
            RESNET_WIDTHS[0],
            ConvShape::new(7, 2, 3),
        );
        let bn1 = batch_norm2d(p / "bn1", RESNET_WIDTHS[0]);
        let mut in_ch = RESNET_WIDTHS[0];
        let mut layers = Vec::new();
        for (li, (&n, &width)) in RESNET34_LAYERS.iter().zip(RESNET_WIDTHS.iter()).enumerate() {
            let lp = p / format!("layer{}", li + 1);
            let first_stride = if li == 0 { 1 } else { 2 };
            let blocks = (0..n)
                .map(|bi| {
                    let stride = if bi == 0 { first_stride } else { 1 };
                    let block = BasicBlock::new(&lp / bi, in_ch, width, stride);
                    in_ch = width;
                    block
                })
                .collect();
            layers.push(blocks);
        }
        Self { conv1, bn1, layers }
    }

    /// Channels of f1..f5 (the skips and the bottom map).
    pub fn out_channels() -> [i64; 5] {
        [
            RESNET_WIDTHS[0],
            RESNET_WIDTHS[0],
            RESNET_WIDTHS[1],
            RESNET_WIDTHS[2],
            RESNET_WIDTHS[3],
        ]
    }

    /// `[B, C_in, H, W]` → `[f1, .., f5]`: 64@H/2, 64@H/4, 128@H/8, 256@H/16, 512@H/32.
    pub fn forward_features(&self, x: &Tensor, train: bool) -> Vec<Tensor> {
        let f1 = relu_owned(x.apply(&self.conv1).apply_t(&self.bn1, train));
        let mut h = f1.max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false);
        let mut feats = vec![f1];
        for blocks in &self.layers {
            for block in blocks {
                h = block.forward_t(&h, train);
            }
            feats.push(h.shallow_clone());
        }
        feats
    }
}
