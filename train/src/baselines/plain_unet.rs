//! The shared backbone with a 1×1 logit head: the model of the per-rater U-Nets
//! (`unet-rater`), the fused-label U-Nets (`mv`, `staple`) and random rater selection
//! (`rs`) (baselines.md §2). They differ only in the target each row is trained on.
use tch::nn::{self, ModuleT};
use tch::Tensor;

use super::outputs::{present_f, select_rater, BaselineBatch, BaselineOutputs, LossTerms};
use crate::losses::generalized_dice_loss;
use crate::models::backbone::Backbone;
use crate::models::init::{conv2d, BiasInit, ConvShape, WeightInit};
use crate::models::ModelConfig;

/// Which target a plain U-Net is trained on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlainTarget {
    /// Rater k's mask; rows where rater k is missing are left out of the loss
    /// (baselines.md §2.1: the image is dropped from model k's epoch).
    Rater(i64),
    /// `BaselineBatch::rater[b]`'s mask per row (RS).
    RandomRater,
    /// `BaselineBatch::target` (a cached MV or STAPLE label).
    Fused,
}

/// Backbone (`backbone.*`, same names as D-Persona so ImageNet weights load alike) + a 1×1
/// conv F → 1 logit (`head.*`; Kaiming-uniform like the smp decoder, zero bias).
#[derive(Debug)]
pub struct PlainUnet {
    backbone: Backbone,
    head: nn::Conv2D,
    target: PlainTarget,
}

impl PlainUnet {
    pub fn new(p: &nn::Path, cfg: &ModelConfig, target: PlainTarget) -> Self {
        if let Err(e) = cfg.validate() {
            panic!("{e}");
        }
        Self {
            backbone: Backbone::new(&(p / "backbone"), cfg),
            head: conv2d(
                p / "head",
                cfg.feature_channels,
                1,
                ConvShape::new(1, 1, 0),
                WeightInit::KaimingUniformFanIn,
                BiasInit::Zero,
            ),
            target,
        }
    }

    pub fn target(&self) -> PlainTarget {
        self.target
    }

    /// Logits `[B, 1, H, W]`.
    pub fn logits(&self, x: &Tensor, train: bool) -> Tensor {
        self.backbone.forward_t(x, train).apply(&self.head)
    }

    /// GDL on this model's target. `None` when no row of the batch has a target (only
    /// possible for `Rater(k)` when rater k read none of the batch's studies): the trainer
    /// skips the step.
    pub fn loss(&self, batch: &BaselineBatch, train: bool) -> Option<LossTerms> {
        let (x, target) = match self.target {
            PlainTarget::Rater(k) => {
                let keep = present_f(batch.present, batch.x)
                    .select(1, k)
                    .gt(0.5)
                    .nonzero()
                    .squeeze_dim(1);
                if keep.numel() == 0 {
                    return None;
                }
                let x = batch.x.index_select(0, &keep);
                let y = batch.y.index_select(0, &keep).narrow(1, k, 1);
                (x, y)
            }
            PlainTarget::RandomRater => {
                (batch.x.shallow_clone(), select_rater(batch.y, batch.rater))
            }
            PlainTarget::Fused => (
                batch.x.shallow_clone(),
                batch
                    .target
                    .expect("a fused-label U-Net needs BaselineBatch::target")
                    .shallow_clone(),
            ),
        };
        let dice = generalized_dice_loss(&self.logits(&x, train), &target);
        Some(LossTerms {
            total: dice.shallow_clone(),
            terms: vec![("dice", dice)],
        })
    }

    /// One deterministic map: consensus = set, S = 1. For `unet-rater` the R models' maps
    /// are stacked by the caller into the personalised outputs and the S = R set.
    pub fn infer(&self, x: &Tensor) -> BaselineOutputs {
        let prob = tch::no_grad(|| self.logits(x, false).sigmoid());
        BaselineOutputs {
            consensus: prob.shallow_clone(),
            per_rater: None,
            set: prob,
        }
    }
}

/// Stacks the outputs of the R per-rater U-Nets (model k first applied to the same `x`):
/// per-rater = `[B, R, H, W]`, set = the same (S = R), consensus = their mean.
pub fn stack_rater_models(outputs: &[BaselineOutputs]) -> BaselineOutputs {
    let maps: Vec<&Tensor> = outputs.iter().map(|o| &o.consensus).collect();
    let per_rater = Tensor::cat(&maps, 1);
    BaselineOutputs {
        consensus: per_rater.mean_dim([1i64].as_slice(), true, None),
        set: per_rater.shallow_clone(),
        per_rater: Some(per_rater),
    }
}
