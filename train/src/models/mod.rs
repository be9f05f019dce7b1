//! D-Persona's networks (method.md §2): backbone, prior/posterior Gaussians, Fcomb, expert
//! heads with cross-attention, plus ImageNet weight loading.
//!
//! Variable paths (under the `nn::Path` given to [`DPersona::new`]):
//! - `backbone.encoder.{conv1,bn1,layer1..4}.*` torchvision ResNet-34 names and
//!   `backbone.decoder.blocks.{0..4}.{conv1,conv2}.{0,1}.*` smp `UnetDecoder` names
//!   (ResNet-34 U-Net), or `backbone.{down,up}.{i}.{conv1,bn1,conv2,bn2}.*` (small U-Net);
//! - `prior.encoder.layers.{i}.*`, `prior.conv_layer.*`, same under `posterior` (Prob. U-Net
//!   `Sequential` indices);
//! - `fcomb.layers.{0,2,4}.*`, `fcomb.last_layer.*`;
//! - `heads.{k}.layers.{i}.*` (k = expert, Conv_block `Sequential` indices).
pub mod backbone;
pub mod dpersona;
pub mod fcomb;
pub mod gauss_encoder;
pub mod gaussian;
pub mod init;
pub mod memory_format;
pub mod proj_head;
pub mod resnet34;
pub mod small_unet;
pub mod unet_decoder;
pub mod weights;

pub use dpersona::DPersona;
pub use gaussian::Gaussian;
pub use weights::{load_backbone_weights, WeightsError};

use serde::{Deserialize, Serialize};
use tch::nn::VarStore;
use tch::Tensor;

/// Which feature extractor produces the `[B, F, H, W]` map that Fcomb and the heads read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackboneKind {
    /// smp `Unet(resnet34)` without its segmentation head (the paper's backbone).
    /// (kebab-case alone would spell it `res-net34-unet`.)
    #[serde(rename = "resnet34-unet")]
    ResNet34Unet,
    /// A plain BN U-Net with `base` channels at full resolution, for tests and CPU demos.
    SmallUnet { base: i64 },
}

fn default_decoder_channels() -> Vec<i64> {
    vec![256, 128, 64, 32, 16]
}
fn default_head_filters() -> Vec<i64> {
    vec![32, 16]
}
fn default_head_dropout() -> f64 {
    0.1
}
fn default_log_sigma_clamp() -> f64 {
    10.0
}
fn default_small_unet_depth() -> i64 {
    3
}

/// Every size of the model. [`ModelConfig::paper`] is method.md §2 exactly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Image channels C_in: 1 (LIDC) or 3 (NPC).
    pub in_channels: i64,
    /// Raters R = expert heads = mask channels given to the posterior (4).
    pub raters: i64,
    /// Latent dimension D (6).
    pub latent_dim: i64,
    pub backbone: BackboneKind,
    /// Width F of the backbone's full-resolution features (16 = decoder's last width).
    pub feature_channels: i64,
    /// Prior/posterior encoder widths per block ([16,32,64,128,256]); the first is also the
    /// Fcomb hidden width (`num_filters[0]`).
    pub encoder_filters: Vec<i64>,
    /// Convs per prior/posterior block (3).
    pub convs_per_block: i64,
    /// Fcomb 1×1 convs in total, last (logit) conv included (4).
    pub fcomb_convs: i64,
    /// Padding of every 3×3 conv in the expert heads: 3 reproduces the released code (each
    /// conv grows the map by 4 px), 1 is the "intended" same-size padding.
    pub head_padding: i64,
    /// smp decoder widths (256,128,64,32,16); the last must equal `feature_channels`.
    #[serde(default = "default_decoder_channels")]
    pub decoder_channels: Vec<i64>,
    /// Expert-head widths of all levels but the last (32, 16); the last level has
    /// `latent_dim` channels because its pooled output is the attention query.
    #[serde(default = "default_head_filters")]
    pub head_filters: Vec<i64>,
    /// Dropout2d probability in the heads (0.1), active only with `train = true`.
    #[serde(default = "default_head_dropout")]
    pub head_dropout: f64,
    /// logσ of prior and posterior is clamped to ±this (10). Not in the reference (which
    /// never clamps); it keeps σ = exp(logσ) finite so a diverging step shows up as a bad
    /// loss rather than inf/NaN in the KL. Values reached in practice lie far inside.
    #[serde(default = "default_log_sigma_clamp")]
    pub log_sigma_clamp: f64,
    /// Resolution levels of the small U-Net (3 = two poolings); unused by ResNet-34.
    #[serde(default = "default_small_unet_depth")]
    pub small_unet_depth: i64,
    /// The ReLU after the expert heads' last conv (the released code: true). It makes every
    /// query non-negative, so attention can only tilt the bank towards the positive side of
    /// each latent axis: for a large bank the attended code is about μ_p + σ_p² ⊙ q, and
    /// the codes below μ_p on any axis are out of reach. `false` is an ablation that drops
    /// this one ReLU (the query is the pooled last conv, of any sign; same variables).
    /// Left out of `config.toml` when true, so older configurations keep their hash.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub head_query_relu: bool,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// A model configuration that cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum ModelConfigError {
    #[error("model config: {0}")]
    Invalid(String),
}

impl ModelConfig {
    /// The released D-Persona model (method.md §2) for `in_channels` image channels.
    pub fn paper(in_channels: i64) -> Self {
        Self {
            in_channels,
            raters: 4,
            latent_dim: 6,
            backbone: BackboneKind::ResNet34Unet,
            feature_channels: 16,
            encoder_filters: vec![16, 32, 64, 128, 256],
            convs_per_block: 3,
            fcomb_convs: 4,
            head_padding: 3,
            decoder_channels: default_decoder_channels(),
            head_filters: default_head_filters(),
            head_dropout: default_head_dropout(),
            log_sigma_clamp: default_log_sigma_clamp(),
            small_unet_depth: default_small_unet_depth(),
            head_query_relu: true,
        }
    }

    /// A small model of the same structure (small U-Net base 8, 3 levels, encoders
    /// [8,16,32], 2 convs per block) for tests and the CPU demo; 64×64 crops work.
    pub fn small(in_channels: i64) -> Self {
        Self {
            backbone: BackboneKind::SmallUnet { base: 8 },
            feature_channels: 8,
            encoder_filters: vec![8, 16, 32],
            convs_per_block: 2,
            head_filters: vec![16, 8],
            ..Self::paper(in_channels)
        }
    }

    /// Checks the sizes fit together (called by [`DPersona::new`]).
    pub fn validate(&self) -> Result<(), ModelConfigError> {
        let bad = |m: String| Err(ModelConfigError::Invalid(m));
        if self.in_channels < 1 || self.raters < 1 || self.latent_dim < 1 {
            return bad(format!(
                "in_channels {}, raters {}, latent_dim {} must all be >= 1",
                self.in_channels, self.raters, self.latent_dim
            ));
        }
        if self.encoder_filters.is_empty() || self.encoder_filters.iter().any(|&f| f < 1) {
            return bad(format!(
                "encoder_filters {:?} must be non-empty and positive",
                self.encoder_filters
            ));
        }
        if self.convs_per_block < 1 || self.fcomb_convs < 2 {
            return bad(format!(
                "convs_per_block {} must be >= 1 and fcomb_convs {} >= 2",
                self.convs_per_block, self.fcomb_convs
            ));
        }
        if self.head_padding < 0 || !(0.0..1.0).contains(&self.head_dropout) {
            return bad(format!(
                "head_padding {} must be >= 0 and head_dropout {} in [0,1)",
                self.head_padding, self.head_dropout
            ));
        }
        if self.log_sigma_clamp <= 0.0 {
            return bad(format!(
                "log_sigma_clamp {} must be > 0",
                self.log_sigma_clamp
            ));
        }
        match &self.backbone {
            BackboneKind::ResNet34Unet => {
                if self.decoder_channels.len() != 5
                    || self.decoder_channels.last() != Some(&self.feature_channels)
                {
                    return bad(format!(
                        "resnet34-unet needs 5 decoder_channels ending in feature_channels {}, got {:?}",
                        self.feature_channels, self.decoder_channels
                    ));
                }
            }
            BackboneKind::SmallUnet { base } => {
                if *base < 1 || self.small_unet_depth < 2 {
                    return bad(format!(
                        "small-unet base {base} must be >= 1 and depth {} >= 2",
                        self.small_unet_depth
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Whether variable `name` lies under path `prefix` ("" = everything; `heads` matches
/// `heads.0.layers.0.weight`, not `heads_x`).
pub fn under_prefix(name: &str, prefix: &str) -> bool {
    prefix.is_empty()
        || name == prefix
        || (name.starts_with(prefix) && name.as_bytes().get(prefix.len()) == Some(&b'.'))
}

/// Number of trainable scalars under path `prefix` ("" = all). BN running statistics are
/// buffers, not parameters, and are not counted.
pub fn count_parameters(vs: &VarStore, prefix: &str) -> i64 {
    vs.variables()
        .iter()
        .filter(|(name, t)| under_prefix(name, prefix) && t.requires_grad())
        .map(|(_, t)| t.numel() as i64)
        .sum()
}

/// ReLU in place on a tensor the caller owns, as torchvision's and
/// segmentation_models_pytorch's `ReLU(inplace=True)`: the values and gradients are the same
/// (the ops before it, BatchNorm, conv and add, do not keep their output for backward), but
/// no second activation-sized buffer is allocated, page-faulted and zeroed per layer, which
/// is what made our CPU step slower than PyTorch's on the same libtorch.
pub(crate) fn relu_owned(mut t: Tensor) -> Tensor {
    let _ = t.relu_();
    t
}
