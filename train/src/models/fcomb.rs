//! Prob. U-Net `Fcomb`: 1×1 convs over [features ⊕ tile(z)] → one logit map per code
//! (method.md §2.4). Variables `layers.{0,2,4}.*` (hidden convs) and `last_layer.*`.
use super::gauss_encoder::{push_conv_norms, SMALL_BIAS_STD};
use super::init::{conv2d, BiasInit, ConvShape, WeightInit};
use tch::nn;
use tch::Tensor;

#[derive(Debug)]
pub struct Fcomb {
    /// Hidden 1×1 convs (input of the first: F features then D latent channels).
    layers: Vec<nn::Conv2D>,
    last_layer: nn::Conv2D,
    feature_channels: i64,
}

impl Fcomb {
    /// `hidden` = width of the hidden convs (`num_filters[0]`), `n_convs` counts the last one.
    pub fn new(
        p: &nn::Path,
        feature_channels: i64,
        latent_dim: i64,
        hidden: i64,
        n_convs: i64,
    ) -> Self {
        let conv = |path: nn::Path, i| {
            conv2d(
                path,
                i,
                hidden,
                ConvShape::new(1, 1, 0),
                WeightInit::Orthogonal,
                BiasInit::TruncatedNormal {
                    std: SMALL_BIAS_STD,
                },
            )
        };
        let lp = p / "layers";
        let mut layers = vec![conv(&lp / 0, feature_channels + latent_dim)];
        for j in 1..n_convs - 1 {
            layers.push(conv(&lp / (2 * j), hidden));
        }
        let last_layer = conv2d(
            p / "last_layer",
            hidden,
            1,
            ConvShape::new(1, 1, 0),
            WeightInit::Orthogonal,
            BiasInit::TruncatedNormal {
                std: SMALL_BIAS_STD,
            },
        );
        Self {
            layers,
            last_layer,
            feature_channels,
        }
    }

    /// feats `[B, F, H, W]`, z `[B, N, D]` → logits `[B, N, H, W]`.
    ///
    /// Same function as the reference (conv over `cat(feats, tile(z))` for each n), computed
    /// without materialising the tiled input: a 1×1 conv is linear in its input channels, so
    /// the first conv splits into W_F·feats (once per image) + W_z·z (once per code). This
    /// saves one [B·N, F+D, H, W] tensor and N−1 feature convs per call.
    pub fn forward(&self, feats: &Tensor, z: &Tensor) -> Tensor {
        let (b, f, h, w) = feats.size4().expect("feats must be [B, F, H, W]");
        let n = z.size()[1];
        let first = &self.layers[0];
        let w_feat = first.ws.narrow(1, 0, self.feature_channels);
        let w_z = first
            .ws
            .narrow(1, self.feature_channels, z.size()[2])
            .flatten(1, -1); // [hid, D]
        let from_feats = feats.conv2d(&w_feat, first.bs.as_ref(), [1, 1], [0, 0], [1, 1], 1); // [B, hid, H, W]
        let from_z = z.matmul(&w_z.tr()); // [B, N, hid]
        let hid = from_z.size()[2];
        debug_assert_eq!(f, self.feature_channels);
        let mut x = (from_feats.unsqueeze(1) + from_z.view([b, n, hid, 1, 1]))
            .relu()
            .view([b * n, hid, h, w]);
        for conv in &self.layers[1..] {
            x = x.apply(conv).relu();
        }
        x.apply(&self.last_layer).view([b, n, h, w])
    }

    /// The reference computation, literally: tile z `[B, D]` to `[B, D, H, W]`, concatenate
    /// it AFTER the features, run every conv → `[B, 1, H, W]`. Slower than [`Self::forward`];
    /// kept to check it.
    pub fn forward_tiled(&self, feats: &Tensor, z: &Tensor) -> Tensor {
        let (b, _, h, w) = feats.size4().expect("feats must be [B, F, H, W]");
        let d = z.size()[1];
        let tiled = z.view([b, d, 1, 1]).expand([b, d, h, w], false);
        let mut x = Tensor::cat(&[feats, &tiled], 1);
        for conv in &self.layers {
            x = x.apply(conv).relu();
        }
        x.apply(&self.last_layer)
    }

    /// Σ ‖W‖₂ over the hidden convs' weights and biases (the last conv is not regularised).
    pub fn l2_norms(&self) -> Tensor {
        let mut norms = Vec::new();
        for c in &self.layers {
            push_conv_norms(c, &mut norms);
        }
        Tensor::stack(&norms, 0).sum(None)
    }
}
