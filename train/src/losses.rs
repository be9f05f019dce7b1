//! D-Persona's losses (method.md §3): the sigmoid "generalised" Dice loss, the Stage-I
//! objective (reconstruction + KL + bound + L2) and the Stage-II objective.
use crate::models::DPersona;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// Clamp of the GDL's class weights and denominators (`epsilon=1e-6` in the reference).
pub const GDL_EPSILON: f64 = 1e-6;

/// GeneralizedDiceLoss(sigmoid) of the released code, literally (method.md §3.1).
///
/// logits, target `[B, C, H, W]` → scalar. Each channel is flattened over the whole batch;
/// C == 1 gets a background channel (p, t → [p, 1−p], [t, 1−t]). Per channel
/// w = 1/max((Σt)², ε) (no gradient), dice = 2·w·Σpt / max(w·Σ(p+t), ε); loss = 1 − mean.
/// A channel with an empty target everywhere scores dice 0.
pub fn generalized_dice_loss(logits: &Tensor, target: &Tensor) -> Tensor {
    assert_eq!(
        logits.size(),
        target.size(),
        "GDL: logits and target shapes differ"
    );
    // Sums over every pixel of the batch: in fp32 whatever autocast computed the logits in
    // (the identity for fp32 logits).
    let logits = &logits.to_kind(Kind::Float);
    let c = logits.size()[1];
    let flat = |t: &Tensor| t.transpose(0, 1).contiguous().view([c, -1]);
    let mut p = flat(&logits.sigmoid());
    let mut t = flat(&target.to_kind(logits.kind()));
    if c == 1 {
        p = Tensor::cat(&[&p, &(1.0 - &p)], 0);
        t = Tensor::cat(&[&t, &(1.0 - &t)], 0);
    }
    let t_sum = t.sum_dim_intlist(-1, false, None);
    let w = (&t_sum * &t_sum)
        .clamp_min(GDL_EPSILON)
        .reciprocal()
        .detach();
    let intersect = (&p * &t).sum_dim_intlist(-1, false, None) * &w;
    let denominator = ((&p + &t).sum_dim_intlist(-1, false, None) * &w).clamp_min(GDL_EPSILON);
    let dice = intersect * 2.0 / denominator;
    1.0 - dice.mean(None)
}

/// [`generalized_dice_loss`] over the (row, channel) pairs where `present` `[B, C]` (bool)
/// is true: channel c's sums run over the rows whose rater c is present, and a channel with
/// no present row in the batch leaves the mean. With every rater present it equals
/// [`generalized_dice_loss`].
///
/// Why: Stage II's head k is supervised by rater k; in the authors' data an absent rater is
/// an empty mask, which teaches head k to draw nothing on images its rater never saw. The
/// baselines leave absent raters out; `stage2.mask_absent_raters` makes D-Persona do the same.
pub fn masked_generalized_dice_loss(logits: &Tensor, target: &Tensor, present: &Tensor) -> Tensor {
    assert_eq!(
        logits.size(),
        target.size(),
        "GDL: logits and target shapes differ"
    );
    // Sums in fp32 under autocast too (see generalized_dice_loss).
    let logits = &logits.to_kind(Kind::Float);
    let (b, c, h, w) = logits.size4().expect("logits must be [B, C, H, W]");
    assert_eq!(
        present.size(),
        [b, c],
        "masked GDL: present must be [B, C] for logits [B, C, H, W]"
    );
    let m = present
        .to_kind(logits.kind())
        .to_device(logits.device())
        .view([b, c, 1, 1])
        .expand([b, c, h, w], false);
    let flat = |t: &Tensor| t.transpose(0, 1).contiguous().view([c, -1]);
    let mut p = flat(&logits.sigmoid());
    let mut t = flat(&target.to_kind(logits.kind()));
    let mut m = flat(&m);
    if c == 1 {
        p = Tensor::cat(&[&p, &(1.0 - &p)], 0);
        t = Tensor::cat(&[&t, &(1.0 - &t)], 0);
        m = Tensor::cat(&[&m, &m], 0);
    }
    let t_sum = (&t * &m).sum_dim_intlist(-1, false, None);
    let w = (&t_sum * &t_sum)
        .clamp_min(GDL_EPSILON)
        .reciprocal()
        .detach();
    let intersect = (&p * &t * &m).sum_dim_intlist(-1, false, None) * &w;
    let denominator = ((&p + &t) * &m).sum_dim_intlist(-1, false, None) * &w;
    let dice = intersect * 2.0 / denominator.clamp_min(GDL_EPSILON);
    let valid = m
        .sum_dim_intlist(-1, false, None)
        .gt(0.0)
        .to_kind(dice.kind());
    let n_valid = valid.sum(dice.kind()).clamp_min(1.0);
    1.0 - (dice * &valid).sum(valid.kind()) / n_valid
}

/// Which latent code the Stage-I reconstruction decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ReconFrom {
    /// Paper-time code: a prior sample (issue #1; the posterior then learns only via KL).
    Prior,
    /// HEAD code since `f4ec893`: a posterior sample.
    #[default]
    Posterior,
}

/// Stage-I knobs (method.md §3.2).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage1Options {
    /// K prior samples for the bound loss (`--prior_sample_num`, 10).
    pub k_bound: i64,
    /// Weight β of the bound loss (0.5).
    pub beta: f64,
    /// Factor of the unsquared-norm L2 regulariser (1e-5).
    pub l2: f64,
    pub recon_from: ReconFrom,
}

impl Default for Stage1Options {
    fn default() -> Self {
        Self {
            k_bound: 10,
            beta: 0.5,
            l2: 1e-5,
            recon_from: ReconFrom::default(),
        }
    }
}

/// Scalar terms of one Stage-I step; `total = rec + kl + beta·bound + l2` (l2 already scaled).
#[derive(Debug)]
pub struct Stage1Terms {
    pub rec: Tensor,
    pub kl: Tensor,
    pub bound: Tensor,
    pub l2: Tensor,
    pub total: Tensor,
}

/// Picks rater `rater[b]` of `y` for every row: y `[B, R, H, W]`, rater `[B]` int → `[B, 1, H, W]`.
pub fn select_rater(y: &Tensor, rater: &Tensor) -> Tensor {
    let (b, _, h, w) = y.size4().expect("y must be [B, R, H, W]");
    let index = rater
        .to_kind(Kind::Int64)
        .to_device(y.device())
        .view([b, 1, 1, 1])
        .expand([b, 1, h, w], false);
    y.gather(1, &index, false)
}

/// Bound loss (§3.2 step 4): logits `[B, K, H, W]` of K prior samples; the pixelwise max
/// must cover the union and the min the intersection (`[B, H, W]` or `[B, 1, H, W]`).
/// `max_dim`/`min_dim` send each pixel's gradient to the one sample that attains it.
pub fn bound_loss(sample_logits: &Tensor, union: &Tensor, intersection: &Tensor) -> Tensor {
    let upper = sample_logits.max_dim(1, true).0;
    let lower = sample_logits.min_dim(1, true).0;
    bound_loss_of_extremes(&upper, &lower, union, intersection)
}

/// [`bound_loss`] given the pixelwise max and min logits `[B, 1, H, W]` already (as
/// [`DPersona::decode_extremes`] computes them).
pub fn bound_loss_of_extremes(
    upper: &Tensor,
    lower: &Tensor,
    union: &Tensor,
    intersection: &Tensor,
) -> Tensor {
    let (b, _, h, w) = upper.size4().expect("extremes must be [B, 1, H, W]");
    let target = Tensor::cat(
        &[
            union.reshape([b, 1, h, w]),
            intersection.reshape([b, 1, h, w]),
        ],
        1,
    );
    generalized_dice_loss(&Tensor::cat(&[upper, lower], 1), &target)
}

/// The Stage-I objective for one mini-batch (method.md §3.2).
///
/// x `[B, C_in, H, W]`; y `[B, R, H, W]` (all raters, given to the posterior); union and
/// intersection `[B, H, W]` (or `[B,1,H,W]`) over the present raters; rater `[B]` int:
/// reconstruction target per row (pass the same index for every row for the paper's
/// per-batch rule). `train` is the backbone's BN mode. Draws from torch's global RNG.
// The argument list is the shared API contract (train_api.md).
#[allow(clippy::too_many_arguments)]
pub fn stage1_losses(
    model: &DPersona,
    x: &Tensor,
    y: &Tensor,
    union: &Tensor,
    intersection: &Tensor,
    rater: &Tensor,
    opts: &Stage1Options,
    train: bool,
) -> Stage1Terms {
    let feats = model.features(x, train);
    let prior = model.prior(x);
    let posterior = model.posterior(x, y);
    let kl = posterior.kl(&prior).mean(None);
    let z_rec = match opts.recon_from {
        ReconFrom::Prior => prior.rsample(),
        ReconFrom::Posterior => posterior.rsample(),
    };
    let z_bound = prior.rsample_n(opts.k_bound);
    let (rec_logits, upper, lower) = model.decode_with_extremes(&feats, &z_rec, &z_bound);
    let rec = generalized_dice_loss(&rec_logits, &select_rater(y, rater));
    let bound = bound_loss_of_extremes(&upper, &lower, union, intersection);
    let l2 = model.l2_penalty() * opts.l2;
    let total = &rec + &kl + &bound * opts.beta + &l2;
    Stage1Terms {
        rec,
        kl,
        bound,
        l2,
        total,
    }
}

/// How Stage II's bank of prior draws is made at a training step.
#[derive(Debug, Clone, Copy)]
pub enum BankDraw<'a> {
    /// `M` fresh draws per image from torch's generator (the authors').
    Fresh(i64),
    /// `μ + σ·ε` with a given ε `[B, M, D]` (`stage2.fixed_bank`: the same ε for an image
    /// at every epoch).
    Fixed(&'a Tensor),
}

/// The Stage-II objective (method.md §3.3): 4-channel GDL of the heads' logits
/// `[B, R, H, W]` against y `[B, R, H, W]` (head k ↔ rater channel k). With `present`
/// (`[B, R]` bool, `stage2.mask_absent_raters`) head k is scored only on the images whose
/// rater k is present ([`masked_generalized_dice_loss`]); `None` is the authors' loss.
///
/// The bank (`bank_size` prior draws per image) is drawn without gradient, and the backbone
/// features are computed without a graph: only the heads (and Fcomb, whose gradients the
/// Stage-II optimiser ignores) receive gradients. BN still updates its running statistics
/// when `backbone_train` (the paper: true). `heads_train` switches the heads' Dropout2d.
pub fn stage2_loss(
    model: &DPersona,
    x: &Tensor,
    y: &Tensor,
    bank: BankDraw<'_>,
    backbone_train: bool,
    heads_train: bool,
    present: Option<&Tensor>,
) -> Tensor {
    let (feats, bank) = tch::no_grad(|| {
        // Features first, then the prior and its draws: the order (and so the RNG stream)
        // of every run made before `fixed_bank` existed.
        let feats = model.features(x, backbone_train);
        let prior = model.prior(x);
        let bank = match bank {
            BankDraw::Fresh(m) => prior.sample_n(m),
            BankDraw::Fixed(eps) => prior.with_eps(eps),
        };
        (feats, bank)
    });
    let logits = model.personalised(&feats, &bank, heads_train);
    match present {
        None => generalized_dice_loss(&logits, y),
        Some(present) => masked_generalized_dice_loss(&logits, y, present),
    }
}
