//! D-Persona's expert projection head (`Conv_block(16, [32,16,6], 3)`, method.md §2.6) and
//! its attention over the prior bank (§2.7).
//!
//! Per level: [avg-pool 2×2 (not the first)] → 3×3 conv → ReLU → Dropout2d → 3×3 conv → ReLU,
//! every conv with padding `head_padding` (3 in the released code: each conv grows the map by
//! 4 px, 128 → 46 after three levels). Variables mirror the reference `Sequential` indices:
//! `layers.{0,3,6,9,12,15}.{weight,bias}`.
use super::gauss_encoder::SMALL_BIAS_STD;
use super::init::{conv2d, BiasInit, ConvShape, WeightInit};
use super::relu_owned;
use tch::nn;
use tch::Tensor;

#[derive(Debug)]
struct Level {
    pool: bool,
    conv1: nn::Conv2D,
    conv2: nn::Conv2D,
}

#[derive(Debug)]
pub struct ProjHead {
    levels: Vec<Level>,
    dropout: f64,
    /// ReLU after the last conv (the released code); see `ModelConfig::head_query_relu`.
    query_relu: bool,
}

impl ProjHead {
    /// `widths` = output width of each level; the last is the latent dim D (query size).
    pub fn new(p: &nn::Path, in_channels: i64, widths: &[i64], padding: i64, dropout: f64) -> Self {
        let lp = p / "layers";
        let conv = |index: i64, i, o| {
            conv2d(
                &lp / index,
                i,
                o,
                ConvShape::new(3, 1, padding),
                WeightInit::KaimingNormalFanIn,
                BiasInit::TruncatedNormal {
                    std: SMALL_BIAS_STD,
                },
            )
        };
        let mut index = 0i64; // position in the reference nn.Sequential
        let mut in_ch = in_channels;
        let mut levels = Vec::new();
        for (li, &out) in widths.iter().enumerate() {
            let pool = li > 0;
            if pool {
                index += 1;
            }
            let conv1 = conv(index, in_ch, out); // conv, ReLU, Dropout2d
            let conv2 = conv(index + 3, out, out); // conv, ReLU
            index += 5;
            levels.push(Level { pool, conv1, conv2 });
            in_ch = out;
        }
        Self {
            levels,
            dropout,
            query_relu: true,
        }
    }

    /// Without the ReLU after the last conv when `query_relu` is false (an ablation: queries
    /// of either sign).
    pub fn with_query_relu(mut self, query_relu: bool) -> Self {
        self.query_relu = query_relu;
        self
    }

    /// feats `[B, F, H, W]` → map (non-negative unless the query ReLU is off) `[B, D, H', W']` (`[B,6,46,46]` for the paper
    /// at 128² with padding 3). Dropout2d is active iff `train`.
    pub fn map(&self, feats: &Tensor, train: bool) -> Tensor {
        let mut h = feats.shallow_clone();
        let last = self.levels.len().saturating_sub(1);
        for (i, level) in self.levels.iter().enumerate() {
            if level.pool {
                h = h.avg_pool2d([2, 2], [2, 2], [0, 0], false, true, None::<i64>);
            }
            h = relu_owned(h.apply(&level.conv1)).feature_dropout(self.dropout, train);
            h = h.apply(&level.conv2);
            if i < last || self.query_relu {
                h = relu_owned(h);
            }
        }
        h
    }

    /// The query: global average of [`Self::map`] → `[B, D]`.
    pub fn query(&self, feats: &Tensor, train: bool) -> Tensor {
        self.map(feats, train)
            .mean_dim([2i64, 3].as_slice(), false, None)
    }
}

/// Cross-attention of queries over the bank: q `[B, R, D]`, bank `[B, M, D]` → codes
/// `[B, R, D]`, ẑ_k = Σ_m softmax_m(q_k·z_m) z_m. Plain dot product: no 1/√D scaling, no
/// temperature, no learned projections (as released).
pub fn attend(queries: &Tensor, bank: &Tensor) -> Tensor {
    attention_weights(queries, bank).matmul(bank)
}

/// The weights [`attend`] mixes the bank with: softmax_m(q_k·z_m), `[B, R, M]`.
pub fn attention_weights(queries: &Tensor, bank: &Tensor) -> Tensor {
    let scores = queries.matmul(&bank.transpose(1, 2)); // [B, R, M]
    scores.softmax(2, scores.kind())
}
