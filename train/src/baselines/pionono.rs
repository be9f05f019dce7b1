//! Pionono (Schmidt et al., ICCV 2023) on the shared backbone (baselines.md §6): a learnable
//! full-covariance Gaussian q(z|r) = N(μ_r, L_r L_rᵀ) per rater, a fixed isotropic prior
//! N(0, σ_p² I), and a 1×1 head over [features ⊕ tile(z)].
//!
//! The official code uses `tril(param)` raw, which a negative diagonal would make invalid;
//! here L_r = strictly-lower(param) + diag(|diag(param)|), equal to the raw form at init
//! (L = 2I) and always a valid Cholesky factor.
use serde::{Deserialize, Serialize};
use tch::nn::{self, ModuleT};
use tch::{Kind, Tensor};

use super::outputs::{select_rater, BaselineBatch, BaselineOutputs, LossTerms, LrGroup};
use crate::losses::generalized_dice_loss;
use crate::models::backbone::Backbone;
use crate::models::ModelConfig;

/// Variable path prefix of μ_r and L_r (their own learning rate, 0.02).
pub const LATENT_PREFIX: &str = "latents";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
// `default`: a `[baseline]` table in a user config names only the keys it changes.
#[serde(default, deny_unknown_fields)]
pub struct PiononoOptions {
    /// Latent size k (8; NOT the Prob. U-Net's 6).
    pub latent_dim: i64,
    /// σ_p of the fixed prior N(0, σ_p² I) (scale_tril 2·I).
    pub z_prior_sigma: f64,
    /// μ_r initialised as N(0, 1)·this (8).
    pub z_posterior_init_sigma: f64,
    /// L_r initialised as this·I (2).
    pub z_posterior_init_scale: f64,
    /// MC samples per image in training; their logits are averaged (5).
    pub mc_samples: i64,
    /// MC samples per rater at evaluation; logits averaged (20).
    pub eval_samples: i64,
    /// Weight of the mean-over-batch KL (0.0005).
    pub kl_factor: f64,
    /// Weight of the unsquared L2 norms of the head's hidden convs (1e-5).
    pub reg_factor: f64,
    /// Head 1×1 convs in total (`no_head_layers`, 3): first, (n−2) hidden, last.
    pub head_layers: i64,
    /// Hidden width of the head (16).
    pub head_width: i64,
    /// Learning rate of the `latents.*` variables (0.02).
    pub latent_lr: f64,
}

impl Default for PiononoOptions {
    fn default() -> Self {
        Self {
            latent_dim: 8,
            z_prior_sigma: 2.0,
            z_posterior_init_sigma: 8.0,
            z_posterior_init_scale: 2.0,
            mc_samples: 5,
            eval_samples: 20,
            kl_factor: 0.0005,
            reg_factor: 1e-5,
            head_layers: 3,
            head_width: 16,
            latent_lr: 0.02,
        }
    }
}

/// Variables: `backbone.*`, `latents.mu` `[R, k]`, `latents.tril` `[R, k, k]`,
/// `head.layers.{i}.*` (Xavier-uniform weights, zero bias).
#[derive(Debug)]
pub struct Pionono {
    backbone: Backbone,
    mu: Tensor,
    tril: Tensor,
    head: Vec<nn::Conv2D>,
    opts: PiononoOptions,
}

impl Pionono {
    pub fn new(p: &nn::Path, cfg: &ModelConfig, opts: PiononoOptions) -> Self {
        if let Err(e) = cfg.validate() {
            panic!("{e}");
        }
        assert!(
            opts.head_layers >= 2,
            "Pionono head needs at least 2 layers"
        );
        let (r, k) = (cfg.raters, opts.latent_dim);
        let lp = p / LATENT_PREFIX;
        let mu = lp.var(
            "mu",
            &[r, k],
            nn::Init::Randn {
                mean: 0.0,
                stdev: opts.z_posterior_init_sigma,
            },
        );
        let tril = lp.var("tril", &[r, k, k], nn::Init::Const(0.0));
        tch::no_grad(|| {
            let mut t = tril.shallow_clone();
            let eye = Tensor::eye(k, (Kind::Float, t.device())) * opts.z_posterior_init_scale;
            t.copy_(&eye.unsqueeze(0).expand([r, k, k], false));
        });
        // Weights are overwritten with Xavier-uniform below (tch has no Xavier init).
        let cfg_conv = nn::ConvConfig {
            bs_init: nn::Init::Const(0.0),
            ..Default::default()
        };
        let hp = p / "head" / "layers";
        let mut head = Vec::new();
        let mut in_ch = cfg.feature_channels + k;
        for i in 0..opts.head_layers {
            let out = if i == opts.head_layers - 1 {
                1
            } else {
                opts.head_width
            };
            let conv = nn::conv2d(&hp / i, in_ch, out, 1, cfg_conv);
            xavier_uniform_(&conv.ws, in_ch, out);
            head.push(conv);
            in_ch = out;
        }
        Self {
            backbone: Backbone::new(&(p / "backbone"), cfg),
            mu,
            tril,
            head,
            opts,
        }
    }

    pub fn lr_groups(&self) -> Vec<LrGroup> {
        vec![LrGroup {
            prefix: LATENT_PREFIX,
            lr: self.opts.latent_lr,
        }]
    }

    /// μ `[R, k]` (the variable itself).
    pub fn mu(&self) -> &Tensor {
        &self.mu
    }

    /// L `[R, k, k]`: strictly-lower part of the parameter plus |its diagonal|.
    pub fn scale_tril(&self) -> Tensor {
        let diag = self.tril.diagonal(0, 1, 2).abs().diag_embed(0, 1, 2);
        self.tril.tril(-1) + diag
    }

    /// KL(q(z|r) ‖ N(0, σ_p² I)) per rater `[R]`, closed form:
    /// ½[‖L_r‖²_F/σ_p² + ‖μ_r‖²/σ_p² − k + k·ln σ_p² − 2Σ ln|diag L_r|].
    pub fn kl_per_rater(&self) -> Tensor {
        let k = self.opts.latent_dim as f64;
        let var_p = self.opts.z_prior_sigma.powi(2);
        let l = self.scale_tril();
        let tr = l
            .square()
            .sum_dim_intlist([1i64, 2].as_slice(), false, None)
            / var_p;
        let maha = self
            .mu
            .square()
            .sum_dim_intlist([1i64].as_slice(), false, None)
            / var_p;
        let logdet_q = l
            .diagonal(0, 1, 2)
            .log()
            .sum_dim_intlist([1i64].as_slice(), false, None)
            * 2.0;
        (tr + maha - k + k * var_p.ln() - logdet_q) * 0.5
    }

    /// `n` reparameterised codes per row from q(z | rater[b]) → `[B, n, k]`.
    fn sample(&self, rater: &Tensor, n: i64) -> Tensor {
        let r = rater.to_kind(Kind::Int64).to_device(self.mu.device());
        let mu = self.mu.index_select(0, &r); // [B, k]
        let l = self.scale_tril().index_select(0, &r); // [B, k, k]
        let b = mu.size()[0];
        let eps = Tensor::randn([b, self.opts.latent_dim, n], (Kind::Float, mu.device()));
        mu.unsqueeze(1) + l.matmul(&eps).transpose(1, 2)
    }

    /// Head over [feats ⊕ tile(z)]: feats `[B, F, H, W]`, z `[B, n, k]` → logits `[B, n, H, W]`.
    fn decode(&self, feats: &Tensor, z: &Tensor) -> Tensor {
        let (b, f, h, w) = feats.size4().expect("feats [B, F, H, W]");
        let (n, k) = (z.size()[1], z.size()[2]);
        let tiled = z.reshape([b * n, k, 1, 1]).expand([b * n, k, h, w], false);
        let feats = feats
            .unsqueeze(1)
            .expand([b, n, f, h, w], false)
            .reshape([b * n, f, h, w]);
        let mut x = Tensor::cat(&[feats, tiled], 1);
        let last = self.head.len() - 1;
        for (i, conv) in self.head.iter().enumerate() {
            x = x.apply(conv);
            if i < last {
                x = x.relu();
            }
        }
        x.reshape([b, n, h, w])
    }

    /// GDL(mean of `mc_samples` logit maps, the row's rater mask) + kl_factor·mean_b KL(q(z|r_b)‖p)
    /// + reg_factor·Σ‖W‖ over the head's hidden convs. Draws from torch's global RNG.
    pub fn loss(&self, batch: &BaselineBatch, train: bool) -> LossTerms {
        let feats = self.backbone.forward_t(batch.x, train);
        let z = self.sample(batch.rater, self.opts.mc_samples);
        let logits = self
            .decode(&feats, &z)
            .mean_dim([1i64].as_slice(), true, None);
        let dice = generalized_dice_loss(&logits, &select_rater(batch.y, batch.rater));
        let r = batch.rater.to_kind(Kind::Int64).to_device(self.mu.device());
        let kl = self.kl_per_rater().index_select(0, &r).mean(None);
        let mut norms = Vec::new();
        for conv in &self.head[..self.head.len() - 1] {
            norms.push(conv.ws.norm());
            if let Some(b) = &conv.bs {
                norms.push(b.norm());
            }
        }
        let reg = Tensor::stack(&norms, 0).sum(None);
        let total = &dice + &kl * self.opts.kl_factor + &reg * self.opts.reg_factor;
        LossTerms {
            total,
            terms: vec![("dice", dice), ("kl", kl), ("reg", reg)],
        }
    }

    /// The D-Persona harness' `val_step`: per rater, `samples` codes from q(z|r), logits
    /// averaged, sigmoid → per-rater `[B, R, H, W]` = set (S = R); consensus = their mean.
    pub fn infer(&self, x: &Tensor, samples: i64) -> BaselineOutputs {
        tch::no_grad(|| {
            let feats = self.backbone.forward_t(x, false);
            let b = feats.size()[0];
            let r = self.mu.size()[0];
            let maps: Vec<Tensor> = (0..r)
                .map(|k| {
                    let rater = Tensor::full([b], k, (Kind::Int64, feats.device()));
                    let z = self.sample(&rater, samples);
                    self.decode(&feats, &z)
                        .mean_dim([1i64].as_slice(), true, None)
                        .sigmoid()
                })
                .collect();
            let per_rater = Tensor::cat(&maps, 1);
            BaselineOutputs {
                consensus: per_rater.mean_dim([1i64].as_slice(), true, None),
                set: per_rater.shallow_clone(),
                per_rater: Some(per_rater),
            }
        })
    }

    pub fn options(&self) -> &PiononoOptions {
        &self.opts
    }
}

/// Xavier-uniform (gain 1) U(±√(6/(fan_in + fan_out))) for a 1×1 conv weight.
fn xavier_uniform_(w: &Tensor, fan_in: i64, fan_out: i64) {
    let bound = (6.0 / (fan_in + fan_out) as f64).sqrt();
    tch::no_grad(|| {
        let mut w = w.shallow_clone();
        let _ = w.uniform_(-bound, bound);
    });
}
