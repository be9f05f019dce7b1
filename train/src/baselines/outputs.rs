//! What every baseline model hands to the trainer (loss terms) and to evaluation (outputs).
use tch::{Kind, Tensor};

/// The supervision a baseline's loss reads for one mini-batch (all on the model's device).
pub struct BaselineBatch<'a> {
    /// `[B, C_in, H, W]` images.
    pub x: &'a Tensor,
    /// `[B, R, H, W]` all raters' masks (0/1; missing raters all zero).
    pub y: &'a Tensor,
    /// `[B, R]` bool: rater r read row b.
    pub present: &'a Tensor,
    /// `[B]` int64: the rater drawn for each row (RS rule, `fusion::RandomRater`); used by the
    /// methods that train on one rater per sample (Prob. U-Net, Pionono, RS, paper CM).
    pub rater: &'a Tensor,
    /// `[B, 1, H, W]` a precomputed target (fused MV/STAPLE label, augmented like the masks);
    /// only the fused-label U-Nets read it.
    pub target: Option<&'a Tensor>,
}

/// Named scalar loss terms of one step, for the training log; `total` is what is minimised
/// (it already includes every weighted term).
#[derive(Debug)]
pub struct LossTerms {
    pub total: Tensor,
    /// `(name, value)` of each unweighted term, in a fixed order per method.
    pub terms: Vec<(&'static str, Tensor)>,
}

impl LossTerms {
    /// The terms as f64 (`total` first), for logging and the NaN policy: stacked on the
    /// device and copied to the host in ONE transfer, so that a GPU step waits for the host
    /// once rather than once per term (each f32 scalar widens to f64 exactly as
    /// `double_value` would).
    pub fn values(&self) -> Vec<(&'static str, f64)> {
        let names: Vec<&'static str> = std::iter::once("total")
            .chain(self.terms.iter().map(|(n, _)| *n))
            .collect();
        let scalars: Vec<Tensor> = std::iter::once(&self.total)
            .chain(self.terms.iter().map(|(_, t)| t))
            .map(|t| t.detach().reshape([1]).to_kind(Kind::Double))
            .collect();
        let host = Tensor::cat(&scalars, 0).to_device(tch::Device::Cpu);
        let values = Vec::<f64>::try_from(&host).expect("f64 loss terms");
        names.into_iter().zip(values).collect()
    }
}

/// A method's predictions for a batch, as PROBABILITY maps in [0, 1] (not logits: the CM
/// models' rater outputs are mixtures of probabilities and have no logit form).
#[derive(Debug)]
pub struct BaselineOutputs {
    /// `[B, 1, H, W]` the method's consensus / "gold" prediction.
    pub consensus: Tensor,
    /// `[B, R, H, W]` personalised predictions in rater order, where the method has them.
    pub per_rater: Option<Tensor>,
    /// `[B, S, H, W]` the prediction set for GED / Dice_match / Dice_soft (baselines.md §7):
    /// prior samples (Prob. U-Net), the R rater outputs (CM, Pionono) or the consensus (S = 1).
    pub set: Tensor,
}

impl BaselineOutputs {
    /// S, the size of the prediction set (record it in every result row).
    pub fn count(&self) -> i64 {
        self.set.size()[1]
    }
}

/// A variable group that needs its own learning rate (baselines.md §1: CM matrices 1e-2,
/// Pionono latents 2e-2): every variable whose path starts with `prefix` + `.`.
#[derive(Debug, Clone, PartialEq)]
pub struct LrGroup {
    pub prefix: &'static str,
    pub lr: f64,
}

/// Rows of `y` `[B, R, H, W]` at rater `rater[b]` → `[B, 1, H, W]`.
pub fn select_rater(y: &Tensor, rater: &Tensor) -> Tensor {
    crate::losses::select_rater(y, rater)
}

/// `[B, R]` presence as float 0/1 on `like`'s device.
pub(crate) fn present_f(present: &Tensor, like: &Tensor) -> Tensor {
    present.to_kind(Kind::Float).to_device(like.device())
}
