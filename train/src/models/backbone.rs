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
        Self::with_bottleneck_extra(p, in_channels, decoder_channels, 0)
    }

    /// As [`ResNet34Unet::new`], with `extra` more channels on f5 for the decoder.
    pub fn with_bottleneck_extra(
        p: &nn::Path,
        in_channels: i64,
        decoder_channels: &[i64],
        extra: i64,
    ) -> Self {
        let mut enc_channels = ResNet34Encoder::out_channels();
        enc_channels[4] += extra;
        Self {
            encoder: ResNet34Encoder::new(&(p / "encoder"), in_channels),
            decoder: UnetDecoder::new(&(p / "decoder"), &enc_channels, decoder_channels),
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
        Self::with_bottleneck_extra(p, cfg, 0)
    }

    /// A backbone whose decoder reads `extra` channels more at the bottleneck than the
    /// encoder makes (same variable names as [`Backbone::new`], so ImageNet weights load
    /// into the encoder alike). The caller concatenates them in [`Backbone::decode`]'s
    /// input (TAB's attention maps, baselines.md §5).
    pub fn with_bottleneck_extra(p: &nn::Path, cfg: &ModelConfig, extra: i64) -> Self {
        match cfg.backbone {
            BackboneKind::ResNet34Unet => {
                Self::ResNet34Unet(Box::new(ResNet34Unet::with_bottleneck_extra(
                    p,
                    cfg.in_channels,
                    &cfg.decoder_channels,
                    extra,
                )))
            }
            BackboneKind::SmallUnet { base } => Self::SmallUnet(SmallUnet::with_bottleneck_extra(
                p,
                cfg.in_channels,
                base,
                cfg.small_unet_depth,
                cfg.feature_channels,
                extra,
            )),
        }
    }

    /// Channels of the encoder's deepest map (512 for ResNet-34, base·2^(depth-1) small).
    pub fn bottleneck_channels(cfg: &ModelConfig) -> i64 {
        match cfg.backbone {
            BackboneKind::ResNet34Unet => ResNet34Encoder::out_channels()[4],
            BackboneKind::SmallUnet { base } => base << (cfg.small_unet_depth - 1),
        }
    }

    /// The encoder's maps, shallow first, the bottleneck last.
    pub fn encode(&self, xs: &Tensor, train: bool) -> Vec<Tensor> {
        match self {
            Self::ResNet34Unet(m) => m.encoder.forward_features(xs, train),
            Self::SmallUnet(m) => m.encode(xs, train),
        }
    }

    /// [`Backbone::encode`]'s maps (the last one may carry the extra channels) →
    /// `[B, F, H, W]`.
    pub fn decode(&self, levels: &[Tensor], train: bool) -> Tensor {
        match self {
            Self::ResNet34Unet(m) => m.decoder.forward_t(levels, train),
            Self::SmallUnet(m) => m.decode(levels, train),
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
