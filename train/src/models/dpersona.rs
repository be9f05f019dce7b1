//! The whole D-Persona model (method.md §2.1): backbone, prior, posterior, Fcomb, R heads.
use super::backbone::Backbone;
use super::fcomb::Fcomb;
use super::gauss_encoder::GaussEncoder;
use super::proj_head::{attend, ProjHead};
use super::{Gaussian, ModelConfig};
use tch::nn::{self, ModuleT};
use tch::Tensor;

/// Path prefix of the Stage-II trainable variables.
pub const HEADS_PREFIX: &str = "heads";

/// The conditional-VAE parts that D-Persona's Stage I shares with the Prob. U-Net baseline
/// (baselines.md §3): prior p(z|x) under `p/prior`, posterior q(z|x, masks) under
/// `p/posterior` and Fcomb under `p/fcomb`, sized by `cfg`.
#[derive(Debug)]
pub struct LatentParts {
    pub prior: GaussEncoder,
    pub posterior: GaussEncoder,
    pub fcomb: Fcomb,
}

impl LatentParts {
    /// `posterior_masks`: mask channels the posterior reads beside the image (all R raters
    /// for D-Persona, the one sampled rater for the Prob. U-Net).
    pub fn new(p: &nn::Path, cfg: &ModelConfig, posterior_masks: i64) -> Self {
        let enc = |name: &str, in_ch| {
            GaussEncoder::new(
                &(p / name),
                in_ch,
                &cfg.encoder_filters,
                cfg.convs_per_block,
                cfg.latent_dim,
                cfg.log_sigma_clamp,
            )
        };
        Self {
            prior: enc("prior", cfg.in_channels),
            posterior: enc("posterior", cfg.in_channels + posterior_masks),
            fcomb: Fcomb::new(
                &(p / "fcomb"),
                cfg.feature_channels,
                cfg.latent_dim,
                cfg.encoder_filters[0],
                cfg.fcomb_convs,
            ),
        }
    }

    /// Σ ‖W‖₂ (unsquared Frobenius norms) over prior, posterior and Fcomb's hidden convs.
    pub fn l2_norms(&self) -> Tensor {
        self.prior.l2_norms() + self.posterior.l2_norms() + self.fcomb.l2_norms()
    }
}

#[derive(Debug)]
pub struct DPersona {
    cfg: ModelConfig,
    backbone: Backbone,
    prior: GaussEncoder,
    posterior: GaussEncoder,
    fcomb: Fcomb,
    heads: Vec<ProjHead>,
}

impl DPersona {
    /// Builds every variable under `p` (sub-paths `backbone`, `prior`, `posterior`, `fcomb`,
    /// `heads`). Panics with the reason if `cfg.validate()` fails; call it first to get an
    /// error instead.
    pub fn new(p: &nn::Path, cfg: &ModelConfig) -> Self {
        if let Err(e) = cfg.validate() {
            panic!("{e}");
        }
        let mut head_widths = cfg.head_filters.clone();
        head_widths.push(cfg.latent_dim);
        let hp = p / HEADS_PREFIX;
        // Built in the order backbone, prior, posterior, Fcomb, heads: the initialisation
        // draws (and so a seeded run's weights) do not depend on how the parts are grouped.
        let backbone = Backbone::new(&(p / "backbone"), cfg);
        let LatentParts {
            prior,
            posterior,
            fcomb,
        } = LatentParts::new(p, cfg, cfg.raters);
        Self {
            backbone,
            prior,
            posterior,
            fcomb,
            heads: (0..cfg.raters)
                .map(|k| {
                    ProjHead::new(
                        &(&hp / k),
                        cfg.feature_channels,
                        &head_widths,
                        cfg.head_padding,
                        cfg.head_dropout,
                    )
                    .with_query_relu(cfg.head_query_relu)
                })
                .collect(),
            cfg: cfg.clone(),
        }
    }

    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// Backbone features `[B, C_in, H, W]` → `[B, F, H, W]`; BN in train mode iff `train`.
    pub fn features(&self, x: &Tensor, train: bool) -> Tensor {
        self.backbone.forward_t(x, train)
    }

    /// p(z|x): `[B, C_in, H, W]` → μ, logσ `[B, D]`.
    pub fn prior(&self, x: &Tensor) -> Gaussian {
        self.prior.forward(x)
    }

    /// q(z|x,Y): image and ALL R masks `y` `[B, R, H, W]` concatenated on channels.
    pub fn posterior(&self, x: &Tensor, y: &Tensor) -> Gaussian {
        self.posterior.forward(&Tensor::cat(&[x, y], 1))
    }

    /// The prior and posterior nets themselves (shape tests, diagnostics).
    pub fn prior_net(&self) -> &GaussEncoder {
        &self.prior
    }
    pub fn posterior_net(&self) -> &GaussEncoder {
        &self.posterior
    }
    pub fn fcomb(&self) -> &Fcomb {
        &self.fcomb
    }
    pub fn heads(&self) -> &[ProjHead] {
        &self.heads
    }

    /// One code per image: feats `[B, F, H, W]`, z `[B, D]` → logits `[B, 1, H, W]`.
    pub fn decode(&self, feats: &Tensor, z: &Tensor) -> Tensor {
        self.fcomb.forward(feats, &z.unsqueeze(1))
    }

    /// N codes per image: z `[B, N, D]` → logits `[B, N, H, W]`.
    pub fn decode_many(&self, feats: &Tensor, z: &Tensor) -> Tensor {
        self.fcomb.forward(feats, z)
    }

    /// Pixelwise max and min over N codes z `[B, N, D]` of the decoded logits, each
    /// `[B, 1, H, W]`, with max/min's gradients (see [`Fcomb::forward_extremes`]).
    pub fn decode_extremes(&self, feats: &Tensor, z: &Tensor) -> (Tensor, Tensor) {
        self.fcomb.forward_extremes(feats, z)
    }

    /// [`Self::decode`] of `z_one` `[B, D]` and [`Self::decode_extremes`] of `z` `[B, N, D]`
    /// in one Fcomb pass (a Stage-I step's reconstruction and bound-loss decodes):
    /// (logits `[B, 1, H, W]`, upper, lower).
    pub fn decode_with_extremes(
        &self,
        feats: &Tensor,
        z_one: &Tensor,
        z: &Tensor,
    ) -> (Tensor, Tensor, Tensor) {
        self.fcomb
            .forward_with_extremes(feats, &z_one.unsqueeze(1), z)
    }

    /// Attention queries of the R heads `[B, R, D]` (dropout active iff `train`).
    pub fn queries(&self, feats: &Tensor, train: bool) -> Tensor {
        let qs: Vec<Tensor> = self.heads.iter().map(|h| h.query(feats, train)).collect();
        Tensor::stack(&qs, 1)
    }

    /// The R expert codes `[B, R, D]` picked from `bank` `[B, M, D]` by cross-attention.
    pub fn expert_codes(&self, feats: &Tensor, bank: &Tensor, train: bool) -> Tensor {
        attend(&self.queries(feats, train), bank)
    }

    /// Stage-II output: bank `[B, M, D]` → one logit map per head `[B, R, H, W]`.
    pub fn personalised(&self, feats: &Tensor, bank: &Tensor, train: bool) -> Tensor {
        self.decode_many(feats, &self.expert_codes(feats, bank, train))
    }

    /// Σ ‖W‖₂ (UNSQUARED Frobenius norms, biases included) over the prior, the posterior and
    /// Fcomb's hidden convs; multiply by the L2 factor (1e-5) in the loss.
    pub fn l2_penalty(&self) -> Tensor {
        self.prior.l2_norms() + self.posterior.l2_norms() + self.fcomb.l2_norms()
    }

    /// "heads": the Stage-II trainable variables' path prefix.
    pub fn head_prefix() -> &'static str {
        HEADS_PREFIX
    }
}
