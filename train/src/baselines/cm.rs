//! Confusion-matrix models (baselines.md §4): CM-Global (Tanno et al. 2019: one C×C matrix
//! per rater) and CM-Pixel (Zhang et al. 2020: a per-pixel matrix from a small head per rater).
//!
//! Two forms:
//! - `Faithful` (default): a C = 2 softmax segmentation head p_θ; rater r's prediction is
//!   A⁽ʳ⁾·p_θ with A column-stochastic (softplus, then columns divided by their sums); loss =
//!   NLL of log(A·p) (clamped ≥ 1e-7) against the rater labels + λ·trace (minimised).
//! - `Paper` (`--paper-cm`): the D-Persona harness, C = 1 sigmoid head, the matrix applied to
//!   the raw logit, GDL on the row's sampled rater, trace MAXIMISED (loss − α·trace, α = 1).
//!   With C = 1 every normalised matrix is exactly 1: the rater predictions equal the clean
//!   one and the trace is the constant R. This is the documented collapse the paper's CM
//!   numbers come from (baselines.md §0.4), reproduced on purpose.
use serde::{Deserialize, Serialize};
use tch::nn::{self, ModuleT};
use tch::{Kind, Tensor};

use super::outputs::{present_f, select_rater, BaselineBatch, BaselineOutputs, LossTerms, LrGroup};
use crate::losses::generalized_dice_loss;
use crate::models::backbone::Backbone;
use crate::models::init::{conv2d, BiasInit, ConvShape, WeightInit};
use crate::models::ModelConfig;

/// Variable path prefix of the confusion-matrix parameters (their own learning rate).
pub const CM_PREFIX: &str = "cm";
/// Clamp of the noisy probabilities inside the log (Zhang's faithful NLL).
pub const NLL_FLOOR: f64 = 1e-7;
/// Floor of the softplus outputs before column normalisation.
pub const MATRIX_FLOOR: f64 = 1e-30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CmKind {
    /// One matrix per rater for all pixels and images.
    Global,
    /// A matrix per pixel from a per-rater head on the backbone features.
    Pixel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CmForm {
    Faithful,
    Paper,
}

/// Which rater labels a row is supervised with in the faithful form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CmSupervision {
    /// Every present rater's label (Zhang's official training, Tanno's missing-label sum).
    AllPresent,
    /// Only the row's sampled rater (the harness' RS regime).
    Sampled,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
// `default`: a `[baseline]` table in a user config names only the keys it changes.
#[serde(default, deny_unknown_fields)]
pub struct CmOptions {
    pub form: CmForm,
    /// λ (faithful: weight of the minimised trace) or α (paper: weight of the maximised trace).
    pub trace_weight: f64,
    pub supervision: CmSupervision,
    /// Learning rate of the `cm.*` variables (harness: 1e-2; backbone 1e-4).
    pub cm_lr: f64,
}

impl CmOptions {
    /// C = 2, all present raters, λ = 0.01 minimised (Tanno's value; baselines.md §4.4
    /// suggests 0.01–0.4).
    pub fn faithful() -> Self {
        Self {
            form: CmForm::Faithful,
            trace_weight: 0.01,
            supervision: CmSupervision::AllPresent,
            cm_lr: 1e-2,
        }
    }

    /// The harness: C = 1, sampled rater, α = 1 maximised.
    pub fn paper() -> Self {
        Self {
            form: CmForm::Paper,
            trace_weight: 1.0,
            supervision: CmSupervision::Sampled,
            cm_lr: 1e-2,
        }
    }

    /// Classes C of the segmentation head.
    pub fn classes(&self) -> i64 {
        match self.form {
            CmForm::Faithful => 2,
            CmForm::Paper => 1,
        }
    }
}

impl Default for CmOptions {
    fn default() -> Self {
        Self::faithful()
    }
}

/// One CM-Pixel annotator head: two double-conv blocks (3×3 conv without bias → affine
/// InstanceNorm → PReLU, twice each; F → F) and a 1×1 conv to C² channels (+ bias).
#[derive(Debug)]
struct PixelHead {
    convs: Vec<(nn::Conv2D, Tensor, Tensor, Tensor)>, // conv, IN weight, IN bias, PReLU weight
    out: nn::Conv2D,
}

impl PixelHead {
    fn new(p: &nn::Path, f: i64, c: i64) -> Self {
        let convs = (0..4)
            .map(|i| {
                let q = p / "convs" / i;
                let conv = conv2d(
                    &q / "conv",
                    f,
                    f,
                    ConvShape::new(3, 1, 1),
                    WeightInit::KaimingUniformFanIn,
                    BiasInit::None,
                );
                let w = (&q / "norm").var("weight", &[f], nn::Init::Const(1.0));
                let b = (&q / "norm").var("bias", &[f], nn::Init::Const(0.0));
                // nn.PReLU() default: one shared slope, 0.25.
                let a = (&q / "prelu").var("weight", &[1], nn::Init::Const(0.25));
                (conv, w, b, a)
            })
            .collect();
        let out = conv2d(
            p / "out",
            f,
            c * c,
            ConvShape::new(1, 1, 0),
            WeightInit::KaimingUniformFanIn,
            BiasInit::Zero,
        );
        Self { convs, out }
    }

    /// feats `[B, F, H, W]` → unnormalised positive matrices `[B, C², H, W]`.
    fn forward(&self, feats: &Tensor) -> Tensor {
        let mut h = feats.shallow_clone();
        for (conv, w, b, a) in &self.convs {
            h = h
                .apply(conv)
                .instance_norm(
                    Some(w),
                    Some(b),
                    None::<&Tensor>,
                    None::<&Tensor>,
                    true,
                    0.1,
                    1e-5,
                    false,
                )
                .prelu(a);
        }
        h.apply(&self.out).softplus()
    }
}

#[derive(Debug)]
enum Matrices {
    /// `[R, C, C]` raw weights (identity at init).
    Global(Tensor),
    Pixel(Vec<PixelHead>),
}

/// Variables: `backbone.*`, `seg.*` (1×1 F → C), `cm.global` or `cm.heads.{r}.*`.
#[derive(Debug)]
pub struct CmModel {
    backbone: Backbone,
    seg: nn::Conv2D,
    cms: Matrices,
    classes: i64,
    raters: i64,
    opts: CmOptions,
}

impl CmModel {
    pub fn new(p: &nn::Path, cfg: &ModelConfig, kind: CmKind, opts: CmOptions) -> Self {
        if let Err(e) = cfg.validate() {
            panic!("{e}");
        }
        let c = opts.classes();
        let r = cfg.raters;
        let cp = p / CM_PREFIX;
        let cms = match kind {
            CmKind::Global => {
                let w = cp.var("global", &[r, c, c], nn::Init::Const(0.0));
                tch::no_grad(|| {
                    let mut w = w.shallow_clone();
                    w.copy_(
                        &Tensor::eye(c, (Kind::Float, w.device()))
                            .unsqueeze(0)
                            .expand([r, c, c], false),
                    );
                });
                Matrices::Global(w)
            }
            CmKind::Pixel => Matrices::Pixel(
                (0..r)
                    .map(|k| PixelHead::new(&(&cp / "heads" / k), cfg.feature_channels, c))
                    .collect(),
            ),
        };
        Self {
            backbone: Backbone::new(&(p / "backbone"), cfg),
            seg: conv2d(
                p / "seg",
                cfg.feature_channels,
                c,
                ConvShape::new(1, 1, 0),
                WeightInit::KaimingUniformFanIn,
                BiasInit::Zero,
            ),
            cms,
            classes: c,
            raters: r,
            opts,
        }
    }

    /// The variables with their own learning rate.
    pub fn lr_groups(&self) -> Vec<LrGroup> {
        vec![LrGroup {
            prefix: CM_PREFIX,
            lr: self.opts.cm_lr,
        }]
    }

    /// Column-normalised matrices, shaped to broadcast against `[B, R, C(i), C(j), H, W]`:
    /// global → `[1, R, C, C, 1, 1]`, pixel → `[B, R, C, C, H, W]`. A[.., i, j, ..] =
    /// P(rater says i | true j); every column sums to 1.
    pub fn matrices(&self, feats: &Tensor) -> Tensor {
        let c = self.classes;
        let raw = match &self.cms {
            Matrices::Global(w) => w.softplus().view([1, self.raters, c, c, 1, 1]),
            Matrices::Pixel(heads) => {
                let (b, _, h, w) = feats.size4().expect("feats [B, F, H, W]");
                let per: Vec<Tensor> = heads
                    .iter()
                    .map(|hd| hd.forward(feats).view([b, 1, c, c, h, w]))
                    .collect();
                Tensor::cat(&per, 1)
            }
        };
        // softplus underflows to 0 for logits below about −88 (f32); a 0/0 column would be
        // NaN, so the entries are floored at a tiny positive value (with C = 1 the ratio is
        // then still exactly 1, as the paper form requires).
        let raw = raw.clamp_min(MATRIX_FLOOR);
        &raw / raw.sum_dim_intlist([2i64].as_slice(), true, None)
    }

    /// Mean over images and pixels of Σ_r tr(A⁽ʳ⁾) (for CM-Global simply Σ_r tr(A⁽ʳ⁾)).
    fn trace(a: &Tensor) -> Tensor {
        let diag = a.diagonal(0, 2, 3); // [B|1, R, H|1, W|1, C]
        diag.sum_dim_intlist([1i64, 4].as_slice(), false, None)
            .mean(None)
    }

    /// Clean outputs, matrices and rater outputs for a batch.
    /// Faithful: p `[B, C, H, W]` softmax, noisy `[B, R, C, H, W]` = A·p.
    /// Paper: p = the raw logit `[B, 1, H, W]`, noisy = A·logit (still a logit).
    fn forward(&self, x: &Tensor, train: bool) -> (Tensor, Tensor, Tensor) {
        let feats = self.backbone.forward_t(x, train);
        let logits = feats.apply(&self.seg);
        let clean = match self.opts.form {
            CmForm::Faithful => logits.softmax(1, Kind::Float),
            CmForm::Paper => logits,
        };
        let a = self.matrices(&feats);
        // Σ_j A[b, r, i, j, h, w] · p[b, j, h, w].
        let noisy =
            (&a * clean.unsqueeze(1).unsqueeze(2)).sum_dim_intlist([3i64].as_slice(), false, None);
        (clean, a, noisy)
    }

    pub fn loss(&self, batch: &BaselineBatch, train: bool) -> LossTerms {
        let (_, a, noisy) = self.forward(batch.x, train);
        let trace = Self::trace(&a);
        match self.opts.form {
            CmForm::Faithful => {
                // log P(rater says fg) and log P(rater says bg), per rater: [B, R, H, W].
                let logp = noisy.clamp_min(NLL_FLOOR).log();
                let (lbg, lfg) = (logp.select(2, 0), logp.select(2, 1));
                let y = batch.y.to_kind(Kind::Float);
                let y_bg: Tensor = 1.0 - &y;
                let nll: Tensor = (&y * &lfg + y_bg * &lbg).neg();
                let per = nll.mean_dim([2i64, 3].as_slice(), false, None); // [B, R]
                let weight = match self.opts.supervision {
                    CmSupervision::AllPresent => present_f(batch.present, &per),
                    CmSupervision::Sampled => {
                        let r = batch.rater.to_kind(Kind::Int64).to_device(per.device());
                        Tensor::zeros_like(&per).scatter_value(1, &r.view([-1, 1]), 1.0)
                    }
                };
                let b = per.size()[0] as f64;
                let nll = (per * weight).sum(None) / b;
                let total = &nll + &trace * self.opts.trace_weight;
                LossTerms {
                    total,
                    terms: vec![("nll", nll), ("trace", trace)],
                }
            }
            CmForm::Paper => {
                let logits = noisy.squeeze_dim(2); // [B, R, H, W]
                let dice = generalized_dice_loss(
                    &select_rater(&logits, batch.rater),
                    &select_rater(batch.y, batch.rater),
                );
                let total = &dice - &trace * self.opts.trace_weight;
                LossTerms {
                    total,
                    terms: vec![("dice", dice), ("trace", trace)],
                }
            }
        }
    }

    /// Consensus = clean p_θ (foreground), per-rater = A⁽ʳ⁾·p_θ (foreground), set = per-rater
    /// (S = R).
    pub fn infer(&self, x: &Tensor) -> BaselineOutputs {
        tch::no_grad(|| {
            let (clean, _, noisy) = self.forward(x, false);
            let (consensus, per_rater) = match self.opts.form {
                CmForm::Faithful => (clean.narrow(1, 1, 1), noisy.select(2, 1)),
                CmForm::Paper => (clean.sigmoid(), noisy.squeeze_dim(2).sigmoid()),
            };
            BaselineOutputs {
                consensus,
                set: per_rater.shallow_clone(),
                per_rater: Some(per_rater),
            }
        })
    }

    pub fn options(&self) -> &CmOptions {
        &self.opts
    }
}
