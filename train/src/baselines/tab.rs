//! TAB (Liao et al., MICCAI 2023) in the "minimal faithful version on the shared backbone"
//! of baselines.md §5: the shared encoder's deepest map → 1×1 projection to d_model → one
//! post-norm DETR transformer encoder layer and one decoder layer (8 heads, sine positional
//! encoding) over Q = R + 1 learnable queries (query 0 = the global "meta" annotator,
//! query r + 1 = rater r) → per query 8 attention maps over the bottleneck, concatenated to
//! the bottleneck map, and the SHARED U-Net decoder run once per query (batch B·Q) → three
//! 1×1 heads on the full-resolution features: μ, diag = |conv| + 1e-5 and rank-7 factors W,
//! the low-rank Gaussian N(μ, W Wᵀ + diag(d)) over the flattened H·W logits of each query.
//!
//! Deltas from the official code, and why:
//! - the DETR mask head (ConvTranspose up-blocks) is replaced by the shared decoder, as
//!   baselines.md prescribes for a comparison on one backbone; it ends in BN + ReLU already,
//!   so TAB's extra `bnout` is not added;
//! - the official head reshapes the `[rank, H, W]` factor map to `[H·W, rank]` with a raw
//!   `view` (mixing pixels and factors); here factor k of pixel n is channel k at pixel n;
//! - samples are drawn in f32 (the official code uses f64): x = μ + W ε₁ + √d ⊙ ε₂ needs no
//!   Cholesky or inverse, so f32 is enough for the loss;
//! - learning rate and schedule are the shared trainer's (cosine), not TAB's poly decay.
use std::f64::consts::PI;

use serde::{Deserialize, Serialize};
use tch::nn::{self, Init};
use tch::{Kind, Reduction, Tensor};

use super::outputs::{present_f, BaselineBatch, BaselineOutputs, LossTerms};
use crate::models::backbone::Backbone;
use crate::models::init::{conv2d, BiasInit, ConvShape, WeightInit};
use crate::models::{BackboneKind, ModelConfig};

/// d_model of the paper's transformer (ResNet-34 backbone).
const PAPER_D_MODEL: i64 = 256;
/// Floor added to |diag conv| so the covariance stays positive definite (official code).
const DIAG_FLOOR: f64 = 1e-5;
/// DETR's sine encoding: temperature and the scale of the normalised coordinates.
const POS_TEMPERATURE: f64 = 10000.0;
const POS_SCALE: f64 = 2.0 * PI;
/// LayerNorm epsilon (PyTorch default).
const LN_EPS: f64 = 1e-5;

/// TAB knobs (baselines.md §5; official README values).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
// `default`: a `[baseline]` table in a user config names only the keys it changes.
#[serde(default, deny_unknown_fields)]
pub struct TabOptions {
    /// Transformer width. Absent: 256 on the ResNet-34 U-Net (the paper), the bottleneck
    /// width (base·2^(depth−1)) on the small U-Net, so the small preset stays small.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub d_model: Option<i64>,
    /// Attention heads of the transformer and of the attention-map module (8).
    pub heads: i64,
    /// FFN width. Absent: 2·d_model (512 at 256, the paper).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ffn: Option<i64>,
    /// Dropout in the transformer layers (0.1), active only in training.
    pub dropout: f64,
    /// Rank of the covariance factor W (README command: 7).
    pub rank: i64,
    /// λ, weight of the per-rater sample losses (README: 1.0).
    pub rater_weight: f64,
    /// 0: the prediction set is the R personalised maps sigmoid(μ_r) (S = R). N > 0: the
    /// set is N samples of the global query as the official GED code draws them (an
    /// independent Normal at the global mean; see `variance_as_std`) (S = N).
    pub eval_samples: i64,
    /// The official GED sampling passes the per-pixel VARIANCE (diag W Wᵀ + d) as the
    /// Normal's std (true, harness parity); false uses its square root.
    pub variance_as_std: bool,
}

impl Default for TabOptions {
    fn default() -> Self {
        Self {
            d_model: None,
            heads: 8,
            ffn: None,
            dropout: 0.1,
            rank: 7,
            rater_weight: 1.0,
            eval_samples: 0,
            variance_as_std: true,
        }
    }
}

impl TabOptions {
    /// d_model for the backbone of `cfg`.
    pub fn d_model_for(&self, cfg: &ModelConfig) -> i64 {
        self.d_model.unwrap_or(match cfg.backbone {
            BackboneKind::ResNet34Unet => PAPER_D_MODEL,
            BackboneKind::SmallUnet { .. } => Backbone::bottleneck_channels(cfg),
        })
    }

    /// Checks the sizes fit together (sine encoding needs an even d_model, heads divide it).
    pub fn validate(&self, cfg: &ModelConfig) -> Result<(), String> {
        let d = self.d_model_for(cfg);
        if self.heads < 1 || d < 2 || d % 2 != 0 || d % self.heads != 0 {
            return Err(format!(
                "tab: d_model {d} must be even and divisible by heads {}",
                self.heads
            ));
        }
        if self.rank < 1 || self.ffn.is_some_and(|f| f < 1) || self.eval_samples < 0 {
            return Err(format!(
                "tab: rank {} and ffn {:?} must be >= 1, eval_samples {} >= 0",
                self.rank, self.ffn, self.eval_samples
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(format!("tab: dropout {} must be in [0, 1)", self.dropout));
        }
        Ok(())
    }
}

/// Xavier-uniform init of a `[fan_out, fan_in]` weight (DETR resets every transformer
/// matrix this way).
fn xavier(fan_in: i64, fan_out: i64) -> Init {
    let a = (6.0 / (fan_in + fan_out) as f64).sqrt();
    Init::Uniform { lo: -a, up: a }
}

/// A linear layer with Xavier weights and either zero bias (`zero_bias`) or PyTorch's
/// default U(±1/√fan_in) bias.
fn linear(p: nn::Path, i: i64, o: i64, zero_bias: bool) -> nn::Linear {
    let b = 1.0 / (i as f64).sqrt();
    nn::linear(
        p,
        i,
        o,
        nn::LinearConfig {
            ws_init: xavier(i, o),
            bs_init: Some(if zero_bias {
                Init::Const(0.0)
            } else {
                Init::Uniform { lo: -b, up: b }
            }),
            bias: true,
        },
    )
}

fn layer_norm(p: nn::Path, d: i64) -> nn::LayerNorm {
    nn::layer_norm(
        p,
        vec![d],
        nn::LayerNormConfig {
            eps: LN_EPS,
            ..Default::default()
        },
    )
}

/// `torch.nn.MultiheadAttention` (packed in-projection, batch first): `in_proj` `[3d, d]`.
#[derive(Debug)]
struct MultiHeadAttention {
    in_proj: nn::Linear,
    out_proj: nn::Linear,
    heads: i64,
    dropout: f64,
}

impl MultiHeadAttention {
    fn new(p: nn::Path, d: i64, heads: i64, dropout: f64) -> Self {
        Self {
            in_proj: nn::linear(
                &p / "in_proj",
                d,
                3 * d,
                nn::LinearConfig {
                    ws_init: xavier(d, 3 * d),
                    bs_init: Some(Init::Const(0.0)),
                    bias: true,
                },
            ),
            out_proj: linear(&p / "out_proj", d, d, true),
            heads,
            dropout,
        }
    }

    /// q `[B, L, d]`, k and v `[B, S, d]` → `[B, L, d]`.
    fn forward(&self, q: &Tensor, k: &Tensor, v: &Tensor, train: bool) -> Tensor {
        let (b, l, d) = q.size3().expect("[B, L, d]");
        let s = k.size()[1];
        let dh = d / self.heads;
        let w = self.in_proj.ws.chunk(3, 0);
        let bias = self
            .in_proj
            .bs
            .as_ref()
            .expect("in_proj has a bias")
            .chunk(3, 0);
        let split = |x: &Tensor, i: usize, len: i64| {
            x.linear(&w[i], Some(&bias[i]))
                .view([b, len, self.heads, dh])
                .transpose(1, 2)
        };
        let (qh, kh, vh) = (split(q, 0, l), split(k, 1, s), split(v, 2, s));
        let att = (qh.matmul(&kh.transpose(-2, -1)) / (dh as f64).sqrt())
            .softmax(-1, Kind::Float)
            .dropout(self.dropout, train);
        att.matmul(&vh)
            .transpose(1, 2)
            .contiguous()
            .view([b, l, d])
            .apply(&self.out_proj)
    }
}

/// Linear → ReLU → dropout → linear.
#[derive(Debug)]
struct FeedForward {
    linear1: nn::Linear,
    linear2: nn::Linear,
    dropout: f64,
}

impl FeedForward {
    fn new(p: &nn::Path, d: i64, ffn: i64, dropout: f64) -> Self {
        Self {
            linear1: linear(p / "linear1", d, ffn, false),
            linear2: linear(p / "linear2", ffn, d, false),
            dropout,
        }
    }

    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        x.apply(&self.linear1)
            .relu()
            .dropout(self.dropout, train)
            .apply(&self.linear2)
    }
}

/// DETR `TransformerEncoderLayer`, post-norm.
#[derive(Debug)]
struct EncoderLayer {
    self_attn: MultiHeadAttention,
    ffn: FeedForward,
    norm1: nn::LayerNorm,
    norm2: nn::LayerNorm,
    dropout: f64,
}

impl EncoderLayer {
    fn new(p: &nn::Path, d: i64, heads: i64, ffn: i64, dropout: f64) -> Self {
        Self {
            self_attn: MultiHeadAttention::new(p / "self_attn", d, heads, dropout),
            ffn: FeedForward::new(p, d, ffn, dropout),
            norm1: layer_norm(p / "norm1", d),
            norm2: layer_norm(p / "norm2", d),
            dropout,
        }
    }

    /// src, pos `[B, S, d]`; queries and keys carry the position, values do not.
    fn forward(&self, src: &Tensor, pos: &Tensor, train: bool) -> Tensor {
        let qk = src + pos;
        let a = self.self_attn.forward(&qk, &qk, src, train);
        let src = (src + a.dropout(self.dropout, train)).apply(&self.norm1);
        let f = self.ffn.forward(&src, train);
        (&src + f.dropout(self.dropout, train)).apply(&self.norm2)
    }
}

/// DETR `TransformerDecoderLayer`, post-norm.
#[derive(Debug)]
struct DecoderLayer {
    self_attn: MultiHeadAttention,
    cross_attn: MultiHeadAttention,
    ffn: FeedForward,
    norm1: nn::LayerNorm,
    norm2: nn::LayerNorm,
    norm3: nn::LayerNorm,
    dropout: f64,
}

impl DecoderLayer {
    fn new(p: &nn::Path, d: i64, heads: i64, ffn: i64, dropout: f64) -> Self {
        Self {
            self_attn: MultiHeadAttention::new(p / "self_attn", d, heads, dropout),
            cross_attn: MultiHeadAttention::new(p / "multihead_attn", d, heads, dropout),
            ffn: FeedForward::new(p, d, ffn, dropout),
            norm1: layer_norm(p / "norm1", d),
            norm2: layer_norm(p / "norm2", d),
            norm3: layer_norm(p / "norm3", d),
            dropout,
        }
    }

    /// tgt, query_pos `[B, Q, d]`; memory, pos `[B, S, d]`.
    fn forward(
        &self,
        tgt: &Tensor,
        query_pos: &Tensor,
        memory: &Tensor,
        pos: &Tensor,
        train: bool,
    ) -> Tensor {
        let qk = tgt + query_pos;
        let a = self.self_attn.forward(&qk, &qk, tgt, train);
        let tgt = (tgt + a.dropout(self.dropout, train)).apply(&self.norm1);
        let c = self
            .cross_attn
            .forward(&(&tgt + query_pos), &(memory + pos), memory, train);
        let tgt = (&tgt + c.dropout(self.dropout, train)).apply(&self.norm2);
        let f = self.ffn.forward(&tgt, train);
        (&tgt + f.dropout(self.dropout, train)).apply(&self.norm3)
    }
}

/// DETR `PositionEmbeddingSine(d/2, normalize=True)` for an unpadded h×w map: `[h·w, d]`,
/// the first d/2 channels encode the row, the rest the column; channel j is sin of the
/// scaled coordinate for even j, cos for odd j.
pub fn sine_position_encoding(d: i64, h: i64, w: i64) -> Tensor {
    let npf = d / 2;
    let embed = |i: i64, n: i64| (i + 1) as f64 / (n as f64 + 1e-6) * POS_SCALE;
    let enc = |coord: f64, j: i64| {
        let t = POS_TEMPERATURE.powf((2 * (j / 2)) as f64 / npf as f64);
        let v = coord / t;
        if j % 2 == 0 {
            v.sin()
        } else {
            v.cos()
        }
    };
    let mut out = Vec::with_capacity((h * w * d) as usize);
    for y in 0..h {
        for x in 0..w {
            out.extend((0..npf).map(|j| enc(embed(y, h), j) as f32));
            out.extend((0..npf).map(|j| enc(embed(x, w), j) as f32));
        }
    }
    Tensor::from_slice(&out).view([h * w, d])
}

/// DETR `MHAttentionMap`: per query and head, a softmax over (head, position) jointly of
/// the scaled query·key products (no values).
#[derive(Debug)]
struct AttentionMap {
    q_linear: nn::Linear,
    k_linear: nn::Linear,
    heads: i64,
}

impl AttentionMap {
    fn new(p: &nn::Path, d: i64, heads: i64) -> Self {
        Self {
            q_linear: linear(p / "q_linear", d, d, true),
            k_linear: linear(p / "k_linear", d, d, true),
            heads,
        }
    }

    /// hs `[B, Q, d]`, memory `[B, h·w, d]` → `[B, Q, heads, h·w]`.
    fn forward(&self, hs: &Tensor, memory: &Tensor) -> Tensor {
        let (b, q, d) = hs.size3().expect("[B, Q, d]");
        let s = memory.size()[1];
        let dh = d / self.heads;
        let qh = hs.apply(&self.q_linear).view([b, q, self.heads, dh]) * (dh as f64).powf(-0.5);
        let kh = memory.apply(&self.k_linear).view([b, s, self.heads, dh]);
        let w = Tensor::einsum("bqnc,bsnc->bqns", &[qh, kh], None::<&[i64]>);
        w.reshape([b, q, self.heads * s])
            .softmax(-1, Kind::Float)
            .view([b, q, self.heads, s])
    }
}

/// One low-rank Gaussian per query over the flattened N = H·W logits.
#[derive(Debug)]
pub struct LowRankGaussians {
    /// `[B, Q, N]`.
    pub mu: Tensor,
    /// `[B, Q, N, rank]`.
    pub factor: Tensor,
    /// `[B, Q, N]`, > 0.
    pub diag: Tensor,
}

/// x = μ + W ε₁ + √d ⊙ ε₂ with ε₁ `[.., rank]`, ε₂ `[.., N]` standard normal (torch's global
/// generator), so Cov(x) = W Wᵀ + diag(d); differentiable in μ, W, d (reparameterised).
/// mu, diag `[.., N]`, factor `[.., N, rank]` → `[.., N]`.
pub fn low_rank_sample(mu: &Tensor, factor: &Tensor, diag: &Tensor) -> Tensor {
    let mut e1_shape = factor.size();
    e1_shape.remove(e1_shape.len() - 2); // [.., rank]
    let opts = (mu.kind(), mu.device());
    let e1 = Tensor::randn(e1_shape.as_slice(), opts).unsqueeze(-1); // [.., rank, 1]
    let e2 = Tensor::randn(mu.size().as_slice(), opts);
    mu + factor.matmul(&e1).squeeze_dim(-1) + diag.sqrt() * e2
}

/// TAB on the shared backbone. Variables: `backbone.*` (decoder reads `heads` extra
/// bottleneck channels), `input_proj.*`, `transformer.{encoder,decoder}.*`,
/// `transformer.decoder_norm.*`, `query_embed` `[Q, d]`, `bbox_attention.*`,
/// `{mu,diagonal,factor}_head.*`.
#[derive(Debug)]
pub struct Tab {
    backbone: Backbone,
    input_proj: nn::Conv2D,
    encoder: EncoderLayer,
    decoder: DecoderLayer,
    decoder_norm: nn::LayerNorm,
    query_embed: Tensor,
    bbox_attention: AttentionMap,
    mu_head: nn::Conv2D,
    diagonal_head: nn::Conv2D,
    factor_head: nn::Conv2D,
    raters: i64,
    d_model: i64,
    opts: TabOptions,
}

impl Tab {
    /// Panics if `cfg` or `opts` do not validate.
    pub fn new(p: &nn::Path, cfg: &ModelConfig, opts: TabOptions) -> Self {
        if let Err(e) = cfg.validate() {
            panic!("{e}");
        }
        if let Err(e) = opts.validate(cfg) {
            panic!("{e}");
        }
        let d = opts.d_model_for(cfg);
        let ffn = opts.ffn.unwrap_or(2 * d);
        let queries = cfg.raters + 1;
        let head = |name: &str, out: i64| {
            conv2d(
                p / name,
                cfg.feature_channels,
                out,
                ConvShape::new(1, 1, 0),
                WeightInit::KaimingUniformFanIn,
                BiasInit::Zero,
            )
        };
        let tp = p / "transformer";
        Self {
            backbone: Backbone::with_bottleneck_extra(&(p / "backbone"), cfg, opts.heads),
            input_proj: conv2d(
                p / "input_proj",
                Backbone::bottleneck_channels(cfg),
                d,
                ConvShape::new(1, 1, 0),
                WeightInit::KaimingUniformFanIn,
                BiasInit::Zero,
            ),
            encoder: EncoderLayer::new(&(&tp / "encoder"), d, opts.heads, ffn, opts.dropout),
            decoder: DecoderLayer::new(&(&tp / "decoder"), d, opts.heads, ffn, opts.dropout),
            decoder_norm: layer_norm(&tp / "decoder_norm", d),
            // nn.Embedding's N(0, 1).
            query_embed: p.var(
                "query_embed",
                &[queries, d],
                Init::Randn {
                    mean: 0.0,
                    stdev: 1.0,
                },
            ),
            bbox_attention: AttentionMap::new(&(p / "bbox_attention"), d, opts.heads),
            mu_head: head("mu_head", 1),
            diagonal_head: head("diagonal_head", 1),
            factor_head: head("factor_head", opts.rank),
            raters: cfg.raters,
            d_model: d,
            opts,
        }
    }

    pub fn options(&self) -> &TabOptions {
        &self.opts
    }

    /// The Q = R + 1 Gaussians of images `[B, C_in, H, W]` (query 0 global, r + 1 rater r).
    pub fn forward(&self, x: &Tensor, train: bool) -> LowRankGaussians {
        let mut levels = self.backbone.encode(x, train);
        let bottom = levels.pop().expect("the encoder has levels");
        let (b, _, h, w) = bottom.size4().expect("[B, C, h, w]");
        let q = self.raters + 1;
        let d = self.d_model;
        let seq = |t: &Tensor| t.flatten(2, 3).transpose(1, 2); // [B, C, h, w] → [B, hw, C]
        let src = seq(&bottom.apply(&self.input_proj));
        let pos = sine_position_encoding(d, h, w)
            .to_device(x.device())
            .unsqueeze(0);
        let memory = self.encoder.forward(&src, &pos, train);
        let query_pos = self.query_embed.unsqueeze(0).expand([b, q, d], true);
        let tgt = Tensor::zeros([b, q, d], (Kind::Float, x.device()));
        let hs = self
            .decoder
            .forward(&tgt, &query_pos, &memory, &pos, train)
            .apply(&self.decoder_norm);
        let att = self
            .bbox_attention
            .forward(&hs, &memory)
            .view([b * q, self.opts.heads, h, w]);
        // Each query runs the shared decoder on its own copy of the skips: batch B·Q,
        // image-major (row b·Q + q).
        let expand = |t: &Tensor| t.repeat_interleave_self_int(q, Some(0), None);
        let mut per_query: Vec<Tensor> = levels.iter().map(expand).collect();
        per_query.push(Tensor::cat(&[expand(&bottom), att], 1));
        let feats = self.backbone.decode(&per_query, train); // [B·Q, F, H, W]
        let (hh, ww) = (feats.size()[2], feats.size()[3]);
        let n = hh * ww;
        let mu = feats.apply(&self.mu_head).view([b, q, n]);
        let diag = feats.apply(&self.diagonal_head).abs().view([b, q, n]) + DIAG_FLOOR;
        let factor = feats
            .apply(&self.factor_head)
            .view([b, q, self.opts.rank, n])
            .transpose(2, 3);
        LowRankGaussians { mu, factor, diag }
    }

    /// For every rater r present in a row: BCE-with-logits of one reparameterised sample of
    /// the global Gaussian vs Y_r ("global") plus λ × the same for one sample of rater r's
    /// Gaussian ("rater"); each is a pixel mean averaged over the rows where r is present,
    /// summed over raters (the official loop `Σ_r loss(global_sample_r, Y_r) + λ Σ_r
    /// loss(rater_sample_r, Y_r)` with missing raters left out).
    pub fn loss(&self, batch: &BaselineBatch, train: bool) -> LossTerms {
        let g = self.forward(batch.x, train);
        let (b, q, n) = g.mu.size3().expect("[B, Q, N]");
        let r = q - 1;
        let global = |t: &Tensor| {
            let mut shape = t.size();
            shape[1] = r;
            t.narrow(1, 0, 1).expand(shape.as_slice(), false)
        };
        let raters = |t: &Tensor| t.narrow(1, 1, r);
        // [B, 2R, N]: R independent global draws, then one draw per rater.
        let mu = Tensor::cat(&[global(&g.mu), raters(&g.mu)], 1);
        let factor = Tensor::cat(&[global(&g.factor), raters(&g.factor)], 1);
        let diag = Tensor::cat(&[global(&g.diag), raters(&g.diag)], 1);
        let samples = low_rank_sample(&mu, &factor, &diag);
        let y = batch.y.reshape([b, r, n]).to_kind(Kind::Float);
        let target = Tensor::cat(&[&y, &y], 1);
        let bce = samples
            .binary_cross_entropy_with_logits::<Tensor>(&target, None, None, Reduction::None)
            .mean_dim([2i64].as_slice(), false, None); // [B, 2R]
        let present = present_f(batch.present, batch.x); // [B, R]
        let count = present
            .sum_dim_intlist([0i64].as_slice(), false, None)
            .clamp_min(1.0);
        let per_rater = |part: Tensor| {
            ((part * &present).sum_dim_intlist([0i64].as_slice(), false, None) / &count).sum(None)
        };
        let global_loss = per_rater(bce.narrow(1, 0, r));
        let rater_loss = per_rater(bce.narrow(1, r, r));
        let total = &global_loss + &rater_loss * self.opts.rater_weight;
        LossTerms {
            total,
            terms: vec![("global", global_loss), ("rater", rater_loss)],
        }
    }

    /// consensus = sigmoid(global μ); per-rater r = sigmoid(μ of query r + 1); the set is the
    /// per-rater maps (S = R) or, with `eval_samples` N > 0, N official-style global samples.
    pub fn infer(&self, x: &Tensor) -> BaselineOutputs {
        tch::no_grad(|| {
            let g = self.forward(x, false);
            let (b, q, _) = g.mu.size3().expect("[B, Q, N]");
            let s = x.size();
            let (h, w) = (s[2], s[3]);
            let maps = g.mu.sigmoid().view([b, q, h, w]);
            let per_rater = maps.narrow(1, 1, q - 1);
            let set = if self.opts.eval_samples > 0 {
                let mu0 = g.mu.narrow(1, 0, 1);
                let var = g.diag.narrow(1, 0, 1)
                    + g.factor.narrow(1, 0, 1).square().sum_dim_intlist(
                        [-1i64].as_slice(),
                        false,
                        None,
                    );
                let scale = if self.opts.variance_as_std {
                    var
                } else {
                    var.sqrt()
                };
                let n = self.opts.eval_samples;
                let eps = Tensor::randn([b, n, h * w], (mu0.kind(), mu0.device()));
                (mu0 + scale * eps).sigmoid().view([b, n, h, w])
            } else {
                per_rater.shallow_clone()
            };
            BaselineOutputs {
                consensus: maps.narrow(1, 0, 1),
                per_rater: Some(per_rater),
                set,
            }
        })
    }
}
