//! Probabilistic U-Net as run in the D-Persona harness (baselines.md §3): D-Persona's Stage-I
//! networks with three deltas — the posterior sees the image and ONE mask (the rater drawn
//! for that row), the reconstruction target is that rater's mask, and there is no bound loss
//! (KL weight α, 1.0). Evaluation draws S prior samples (10 by default).
use serde::{Deserialize, Serialize};
use tch::nn::{self, ModuleT};
use tch::Tensor;

use super::outputs::{select_rater, BaselineBatch, BaselineOutputs, LossTerms};
use crate::losses::generalized_dice_loss;
use crate::models::backbone::Backbone;
use crate::models::dpersona::LatentParts;
use crate::models::ModelConfig;

/// Prob. U-Net knobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
// `default`: a `[baseline]` table in a user config names only the keys it changes.
#[serde(default, deny_unknown_fields)]
pub struct ProbUnetOptions {
    /// KL weight α (harness: 1.0).
    pub kl_weight: f64,
    /// Factor of the unsquared-norm L2 penalty on prior, posterior and Fcomb hidden convs.
    pub l2: f64,
    /// Prior samples at evaluation (`val_step` default 10).
    pub eval_samples: i64,
}

impl Default for ProbUnetOptions {
    fn default() -> Self {
        Self {
            kl_weight: 1.0,
            l2: 1e-5,
            eval_samples: 10,
        }
    }
}

/// Variables: `backbone.*`, `prior.*`, `posterior.*` (C_in + 1 input channels), `fcomb.*`.
#[derive(Debug)]
pub struct ProbUnet {
    backbone: Backbone,
    latent: LatentParts,
    opts: ProbUnetOptions,
}

impl ProbUnet {
    pub fn new(p: &nn::Path, cfg: &ModelConfig, opts: ProbUnetOptions) -> Self {
        if let Err(e) = cfg.validate() {
            panic!("{e}");
        }
        Self {
            backbone: Backbone::new(&(p / "backbone"), cfg),
            // D-Persona's Stage-I parts; the posterior sees one mask instead of R.
            latent: LatentParts::new(p, cfg, 1),
            opts,
        }
    }

    /// rec (GDL of a posterior-sample decode vs the row's rater) + α·KL(q‖p) (mean over the
    /// batch) + l2. Draws from torch's global RNG.
    pub fn loss(&self, batch: &BaselineBatch, train: bool) -> LossTerms {
        let y_r = select_rater(batch.y, batch.rater);
        let feats = self.backbone.forward_t(batch.x, train);
        let prior = self.latent.prior.forward(batch.x);
        let posterior = self
            .latent
            .posterior
            .forward(&Tensor::cat(&[batch.x, &y_r], 1));
        let kl = posterior.kl(&prior).mean(None);
        let z = posterior.rsample().unsqueeze(1);
        let rec = generalized_dice_loss(&self.latent.fcomb.forward(&feats, &z), &y_r);
        let l2 = self.latent.l2_norms() * self.opts.l2;
        let total = &rec + &kl * self.opts.kl_weight + &l2;
        LossTerms {
            total,
            terms: vec![("rec", rec), ("kl", kl), ("l2", l2)],
        }
    }

    /// `samples` prior draws (`dist.sample()`, not the mean) decoded: set `[B, S, H, W]`,
    /// consensus = their mean probability, no personalised outputs.
    pub fn infer(&self, x: &Tensor, samples: i64) -> BaselineOutputs {
        tch::no_grad(|| {
            let feats = self.backbone.forward_t(x, false);
            let z = self.latent.prior.forward(x).sample_n(samples);
            let set = self.latent.fcomb.forward(&feats, &z).sigmoid();
            BaselineOutputs {
                consensus: set.mean_dim([1i64].as_slice(), true, None),
                per_rater: None,
                set,
            }
        })
    }

    pub fn options(&self) -> &ProbUnetOptions {
        &self.opts
    }
}
