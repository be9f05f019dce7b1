//! Prob. U-Net `Fcomb`: 1×1 convs over [features ⊕ tile(z)] → one logit map per code
//! (method.md §2.4). Variables `layers.{0,2,4}.*` (hidden convs) and `last_layer.*`.
use super::gauss_encoder::{push_conv_norms, SMALL_BIAS_STD};
use super::init::{conv2d, BiasInit, ConvShape, WeightInit};
use tch::nn;
use tch::Tensor;

/// Upper bound on the bytes of one hidden map `[B·n, hid, H, W]` in [`Fcomb::forward`]: half
/// of glibc's largest mmap threshold (32 MiB), so that freed maps are reused from the heap
/// instead of being unmapped and page-faulted in again at every call.
pub const CHUNK_BYTES: i64 = 16 << 20;

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
    /// saves N−1 feature convs per call.
    ///
    /// The hidden maps are `[B·n, hid, H, W]` for a chunk of n codes at a time, sized so that
    /// one map stays under [`CHUNK_BYTES`]: the K=10 bound loss at batch 12, 128² would
    /// otherwise make 125 MB maps, which glibc serves by a fresh `mmap` on every allocation
    /// (its mmap threshold tops out at 32 MiB), page-faulting ~1M pages per training step
    /// (measured: 3.5 s of system time per step on 2 cores).
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
        let map_bytes = b * hid * h * w * from_feats.kind().elt_size_in_bytes() as i64;
        let chunk = (CHUNK_BYTES / map_bytes.max(1)).clamp(1, n.max(1));
        // At least one (possibly empty) chunk, so that N = 0 gives `[B, 0, H, W]`.
        let outs: Vec<Tensor> = (0..n.max(1))
            .step_by(chunk as usize)
            .map(|start| {
                let len = chunk.min(n - start).max(0);
                let zc = from_z.narrow(1, start, len).view([b, len, hid, 1, 1]);
                let mut x = (from_feats.unsqueeze(1) + zc)
                    .relu()
                    .view([b * len, hid, h, w]);
                for conv in &self.layers[1..] {
                    x = x.apply(conv).relu();
                }
                x.apply(&self.last_layer).view([b, len, h, w])
            })
            .collect();
        if outs.len() == 1 {
            outs.into_iter().next().expect("one chunk")
        } else {
            Tensor::cat(&outs, 1)
        }
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
