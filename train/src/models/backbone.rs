//! The feature extractor chosen by [`BackboneKind`]: `[B, C_in, H, W]` → `[B, F, H, W]`.
use super::resnet34::ResNet34Encoder;
use super::small_unet::SmallUnet;
use super::unet_decoder::UnetDecoder;
use super::{BackboneKind, ModelConfig};
use tch::nn::{self, ModuleT};
use tch::Tensor;

/// smp `Unet(resnet34)` minus its segmentation head; H and W divisible by 32.
#[derive(Debug)]
pub struct ResNet34Unet {
    encoder: ResNet34Encoder,
    decoder: UnetDecoder,
}

impl ResNet34Unet {
    /// Variables under `p/encoder` (torchvision names) and `p/decoder` (smp names).
    pub fn new(p: &nn::Path, in_channels: i64, decoder_channels: &[i64]) -> Self {
        Self {
            encoder: ResNet34Encoder::new(&(p / "encoder"), in_channels),
            decoder: UnetDecoder::new(
                &(p / "decoder"),
                &ResNet34Encoder::out_channels(),
                decoder_channels,
            ),
        }
    }
}

impl ModuleT for ResNet34Unet {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.decoder
            .forward_t(&self.encoder.forward_features(xs, train), train)
    }
}

#[derive(Debug)]
pub enum Backbone {
    ResNet34Unet(Box<ResNet34Unet>),
    SmallUnet(SmallUnet),
}

impl Backbone {
    /// `p` is the backbone path (`backbone`).
    pub fn new(p: &nn::Path, cfg: &ModelConfig) -> Self {
        match cfg.backbone {
            BackboneKind::ResNet34Unet => Self::ResNet34Unet(Box::new(ResNet34Unet::new(
                p,
                cfg.in_channels,
                &cfg.decoder_channels,
            ))),
            BackboneKind::SmallUnet { base } => Self::SmallUnet(SmallUnet::new(
                p,
                cfg.in_channels,
                base,
                cfg.small_unet_depth,
                cfg.feature_channels,
            )),
        }
    }
}

impl ModuleT for Backbone {
    /// BN uses batch statistics (and updates its running ones) iff `train`.
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        match self {
            Self::ResNet34Unet(m) => m.forward_t(xs, train),
            Self::SmallUnet(m) => m.forward_t(xs, train),
        }
    }
}
