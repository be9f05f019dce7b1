//! Prob. U-Net `Fcomb`: 1×1 convs over [features ⊕ tile(z)] → one logit map per code
//! (method.md §2.4). Variables `layers.{0,2,4}.*` (hidden convs) and `last_layer.*`.
use super::gauss_encoder::{push_conv_norms, SMALL_BIAS_STD};
use super::init::{conv2d, BiasInit, ConvShape, WeightInit};
use tch::nn;
use tch::{Kind, Tensor};

/// Upper bound on the bytes of one hidden map `[B·n, hid, H, W]` in [`Fcomb::forward`]: half
/// of glibc's largest mmap threshold (32 MiB), so that freed maps are reused from the heap
/// instead of being unmapped and page-faulted in again at every call.
pub const CHUNK_BYTES: i64 = 16 << 20;

/// Bytes of one hidden map block in [`Fcomb::forward_extremes`]'s search for each pixel's
/// extreme codes on the CPU: small enough for a block's maps to stay in the last-level
/// cache between layers, large enough that per-op overhead stays small.
pub const EXTREMES_BLOCK_BYTES: i64 = 1 << 20;

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
    /// Every 1×1 conv runs as a matrix product over channels-last maps `[B, n, H, W, hid]`
    /// (the same weights, viewed `[out, in]`). With 16 channels these convs do almost no
    /// arithmetic per byte, and oneDNN spent most of their time reordering NCHW maps to its
    /// blocked layout and back, forward and backward: in the PyTorch reference the Fcomb
    /// convs were 27% of a Stage-I step. As products the maps are read and written once
    /// per layer, the bias is fused (addmm), and the last layer's `[.., 1]` output already
    /// is the `[B, n, H, W]` result.
    ///
    /// The hidden maps hold a chunk of n codes at a time, sized so that one map stays under
    /// [`CHUNK_BYTES`]: the K=10 bound loss at batch 12, 128² would otherwise make 125 MB
    /// maps, which glibc serves by a fresh `mmap` on every allocation (its mmap threshold
    /// tops out at 32 MiB), page-faulting ~1M pages per training step (measured: 3.5 s of
    /// system time per step on 2 cores).
    pub fn forward(&self, feats: &Tensor, z: &Tensor) -> Tensor {
        let (b, _, h, w) = feats.size4().expect("feats must be [B, F, H, W]");
        let n = z.size()[1];
        let (from_feats, from_z) = self.first_layer_parts(feats, z);
        let hid = from_z.size()[2];
        let map_bytes = b * hid * h * w * from_feats.kind().elt_size_in_bytes() as i64;
        let chunk = (CHUNK_BYTES / map_bytes.max(1)).clamp(1, n.max(1));
        // At least one (possibly empty) chunk, so that N = 0 gives `[B, 0, H, W]`.
        let outs: Vec<Tensor> = (0..n.max(1))
            .step_by(chunk as usize)
            .map(|start| {
                let len = chunk.min(n - start).max(0);
                let zc = from_z.narrow(1, start, len).view([b, len, 1, 1, hid]);
                self.rest(&from_feats, &zc)
            })
            .collect();
        if outs.len() == 1 {
            outs.into_iter().next().expect("one chunk")
        } else {
            Tensor::cat(&outs, 1)
        }
    }

    /// The pixelwise max and min over N codes of [`Self::forward`]'s logits, each
    /// `[B, 1, H, W]`, with the gradient `max_dim`/`min_dim` would give (each pixel's to
    /// the one code that attains it), at a fraction of the memory traffic.
    ///
    /// Why: the bound loss decodes K = 10 prior samples per image and keeps only their
    /// pixelwise max and min. Through autograd every sample's hidden maps are saved and
    /// back-propagated, although the max and min route each pixel's gradient to two of
    /// the ten; with 16 channels these maps are pure memory traffic (a 16→16 layer over
    /// 132 maps of 128² moves ~1.8 GB forward and backward). So the K codes are decoded
    /// without a graph to find each pixel's argmax and argmin (first on ties, as
    /// `max_dim` picks; see [`Self::extreme_codes`]), and only those two codes are decoded
    /// again with a graph, each pixel reading its own code's first-layer term. Same values
    /// (up to float rounding of a row computed in another batch) and the same gradients,
    /// including to the codes.
    pub fn forward_extremes(&self, feats: &Tensor, z: &Tensor) -> (Tensor, Tensor) {
        let (_, upper, lower) = self.decode_selected(feats, None, z);
        (upper, lower)
    }

    /// [`Self::forward`] of one code per image `z_one` `[B, 1, D]` and
    /// [`Self::forward_extremes`] of N codes `z` `[B, N, D]` in one pass, as a Stage-I
    /// step needs (reconstruction and bound loss): the features' first-layer term is
    /// computed once and the three maps go through the hidden layers together.
    /// Returns (logits `[B, 1, H, W]`, upper, lower).
    pub fn forward_with_extremes(
        &self,
        feats: &Tensor,
        z_one: &Tensor,
        z: &Tensor,
    ) -> (Tensor, Tensor, Tensor) {
        let (one, upper, lower) = self.decode_selected(feats, Some(z_one), z);
        (one.expect("z_one was given"), upper, lower)
    }

    /// The body of both: the `z_one` codes (if any) decoded as [`Self::forward`] does,
    /// then the pixelwise extremes of `z`, all through one pass of the hidden layers.
    fn decode_selected(
        &self,
        feats: &Tensor,
        z_one: Option<&Tensor>,
        z: &Tensor,
    ) -> (Option<Tensor>, Tensor, Tensor) {
        let (b, _, h, w) = feats.size4().expect("feats must be [B, F, H, W]");
        let n = z.size()[1];
        assert!(n > 0, "the pixelwise max and min need at least one code");
        let extra = z_one.map_or(0, |t| t.size()[1]);
        let all_z = match z_one {
            Some(one) => Tensor::cat(&[one, z], 1),
            None => z.shallow_clone(),
        };
        let (from_feats, from_all) = self.first_layer_parts(feats, &all_z);
        let hid = from_all.size()[2];
        let from_z = from_all.narrow(1, extra, n);
        let (upper_at, lower_at) = tch::no_grad(|| self.extreme_codes(&from_feats, &from_z));
        // Per pixel, the first-layer term of its own code: [B, 2·H·W, hid] gathered from
        // the N code terms [B, N, hid] (upper codes' pixels first, then lower codes').
        let at = Tensor::cat(&[upper_at, lower_at], 1)
            .view([b, 2 * h * w, 1])
            .expand([b, 2 * h * w, hid], false);
        let per_pixel = from_z.gather(1, &at, false).view([b, 2, h, w, hid]);
        let codes = if extra > 0 {
            let one = from_all
                .narrow(1, 0, extra)
                .view([b, extra, 1, 1, hid])
                .expand([b, extra, h, w, hid], false);
            Tensor::cat(&[one, per_pixel], 1)
        } else {
            per_pixel
        };
        let out = self.rest(&from_feats, &codes); // [B, extra + 2, H, W]
        let one = (extra > 0).then(|| out.narrow(1, 0, extra));
        (one, out.narrow(1, extra, 1), out.narrow(1, extra + 1, 1))
    }

    /// Each pixel's argmax and argmin code `[B, 1, H, W]` (int64) over the N codes, from
    /// the first layer's terms (`[B, 1, H, W, hid]` and `[B, N, hid]`), without a graph.
    ///
    /// On the CPU the pixels go through the remaining layers in blocks of
    /// [`EXTREMES_BLOCK_BYTES`] per map with all N codes at once, so that a block's hidden
    /// maps stay in cache from one layer to the next: decoding the N codes one map at a
    /// time streams 9 full-size maps per code through memory (~1.1 GB for K = 10 at batch
    /// 12, 128²). On CUDA, where each small kernel launch costs more than the traffic, all
    /// codes are decoded as one map.
    fn extreme_codes(&self, from_feats: &Tensor, codes: &Tensor) -> (Tensor, Tensor) {
        let (b, _, h, w, hid) = from_feats
            .size5()
            .expect("feature term must be [B, 1, H, W, hid]");
        let n = codes.size()[1];
        if from_feats.device().is_cuda() {
            let logits = self.rest(from_feats, &codes.view([b, n, 1, 1, hid]));
            return (logits.argmax(1, true), logits.argmin(1, true));
        }
        let hw = h * w;
        let elt = from_feats.kind().elt_size_in_bytes() as i64;
        let block = (EXTREMES_BLOCK_BYTES / (n * hid * elt)).clamp(1, hw);
        let opts = (Kind::Int64, from_feats.device());
        let upper = Tensor::empty([b, hw], opts);
        let lower = Tensor::empty([b, hw], opts);
        let rows = from_feats.view([b, hw, 1, hid]);
        for i in 0..b {
            let code_terms = codes.get(i).view([1, n, hid]);
            let (rows_i, upper_i, lower_i) = (rows.get(i), upper.get(i), lower.get(i));
            for start in (0..hw).step_by(block as usize) {
                let len = block.min(hw - start);
                let first = (rows_i.narrow(0, start, len) + &code_terms).relu_();
                let logits = self.after_first(first.view([len * n, hid])).view([len, n]);
                upper_i
                    .narrow(0, start, len)
                    .copy_(&logits.argmax(1, false));
                lower_i
                    .narrow(0, start, len)
                    .copy_(&logits.argmin(1, false));
            }
        }
        (upper.view([b, 1, h, w]), lower.view([b, 1, h, w]))
    }

    /// The first 1×1 conv split by linearity: the features' term with the bias,
    /// `[B, 1, H, W, hid]` channels-last, and the codes' terms `[B, N, hid]`.
    fn first_layer_parts(&self, feats: &Tensor, z: &Tensor) -> (Tensor, Tensor) {
        let (b, f, h, w) = feats.size4().expect("feats must be [B, F, H, W]");
        debug_assert_eq!(f, self.feature_channels);
        let first = &self.layers[0];
        let w_first = first.ws.flatten(1, -1); // [hid, F + D]
        let hid = w_first.size()[0];
        let w_feat = w_first.narrow(1, 0, f);
        let w_z = w_first.narrow(1, f, z.size()[2]);
        let from_feats = feats
            .permute([0, 2, 3, 1])
            .reshape([b * h * w, f])
            .linear(&w_feat, first.bs.as_ref())
            .view([b, 1, h, w, hid]);
        (from_feats, z.matmul(&w_z.tr()))
    }

    /// Everything after the first conv's sum: `relu(from_feats + codes)` with codes
    /// `[B, n, H, W, hid]` or `[B, n, 1, 1, hid]` (broadcast), through the hidden and last
    /// 1×1 convs as products over channels-last rows → logits `[B, n, H, W]`.
    fn rest(&self, from_feats: &Tensor, codes: &Tensor) -> Tensor {
        let (b, _, h, w, hid) = from_feats
            .size5()
            .expect("feature term must be [B, 1, H, W, hid]");
        let n = codes.size()[1];
        // In-place ReLUs (as the reference's `ReLU(inplace=True)`): neither the sum nor a
        // product needs its own output for backward, and no map is allocated twice.
        let first = (from_feats + codes).relu_().view([b * n * h * w, hid]);
        self.after_first(first).view([b, n, h, w])
    }

    /// The hidden and last 1×1 convs over rows `[P, hid]` of first-layer activations →
    /// logits `[P, 1]`.
    fn after_first(&self, mut x: Tensor) -> Tensor {
        for conv in &self.layers[1..] {
            x = x.linear(&conv.ws.flatten(1, -1), conv.bs.as_ref()).relu_();
        }
        let last = &self.last_layer;
        x.linear(&last.ws.flatten(1, -1), last.bs.as_ref())
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
