//! Layer constructors with the reference initialisations (method.md §2, §8).
//!
//! tch's defaults differ from PyTorch's (e.g. BatchNorm weights start U(0,1) in tch, 1 in
//! PyTorch), so every layer of the model is built through these helpers, never with a bare
//! `nn::conv2d(.., Default::default())`.
use tch::nn::{self, init::FanInOut, init::NonLinearity, init::NormalOrUniform, Init};
use tch::Tensor;

/// How a conv's weight is initialised.
#[derive(Debug, Clone, Copy)]
pub enum WeightInit {
    /// N(0, 2/fan_in): Prob. U-Net encoders, heads, μ/logσ conv.
    KaimingNormalFanIn,
    /// N(0, 2/fan_out): torchvision ResNet.
    KaimingNormalFanOut,
    /// U(±√(6/fan_in)): smp decoder (`initialize_decoder`).
    KaimingUniformFanIn,
    /// Orthogonal with gain 1: Fcomb.
    Orthogonal,
}

/// How a conv's bias is initialised (or whether it has one).
#[derive(Debug, Clone, Copy)]
pub enum BiasInit {
    None,
    Zero,
    /// Prob. U-Net `truncated_normal_(mean 0, std)`: see [`truncated_normal`].
    TruncatedNormal {
        std: f64,
    },
    /// Plain N(0, std²) (`nn.init.normal_` on the μ/logσ conv, std 1).
    Normal {
        std: f64,
    },
}

/// Shape of a 2-D conv: kernel `k`×`k`, `stride`, symmetric zero `padding`.
#[derive(Debug, Clone, Copy)]
pub struct ConvShape {
    pub k: i64,
    pub stride: i64,
    pub padding: i64,
}

impl ConvShape {
    pub fn new(k: i64, stride: i64, padding: i64) -> Self {
        Self { k, stride, padding }
    }
}

fn weight_init(w: WeightInit) -> Init {
    let kaiming = |dist, fan| Init::Kaiming {
        dist,
        fan,
        non_linearity: NonLinearity::ReLU,
    };
    match w {
        WeightInit::KaimingNormalFanIn => kaiming(NormalOrUniform::Normal, FanInOut::FanIn),
        WeightInit::KaimingNormalFanOut => kaiming(NormalOrUniform::Normal, FanInOut::FanOut),
        WeightInit::KaimingUniformFanIn => kaiming(NormalOrUniform::Uniform, FanInOut::FanIn),
        WeightInit::Orthogonal => Init::Orthogonal { gain: 1.0 },
    }
}

/// A 2-D conv `in_ch -> out_ch` at `p` (variables `p.weight` `[out,in,k,k]`, `p.bias` `[out]`).
pub fn conv2d(
    p: nn::Path,
    in_ch: i64,
    out_ch: i64,
    shape: ConvShape,
    w: WeightInit,
    b: BiasInit,
) -> nn::Conv2D {
    let cfg = nn::ConvConfig {
        stride: shape.stride,
        padding: shape.padding,
        bias: !matches!(b, BiasInit::None),
        // tch's `Init::Orthogonal` returns the flattened [out, in·k·k] matrix without
        // reshaping it to the conv's 4-D shape, so orthogonal weights are set below.
        ws_init: if matches!(w, WeightInit::Orthogonal) {
            Init::Const(0.0)
        } else {
            weight_init(w)
        },
        bs_init: Init::Const(0.0),
        ..Default::default()
    };
    let conv = nn::conv2d(&p, in_ch, out_ch, shape.k, cfg);
    if matches!(w, WeightInit::Orthogonal) {
        let dims = [out_ch, in_ch, shape.k, shape.k];
        let flat = tch::nn::init::init(
            weight_init(w),
            &[out_ch, in_ch * shape.k * shape.k],
            tch::Device::Cpu,
        );
        let mut ws = conv.ws.shallow_clone();
        tch::no_grad(|| ws.copy_(&flat.view(dims)));
    }
    if let Some(bias) = &conv.bs {
        let init = match b {
            BiasInit::TruncatedNormal { std } => Some(truncated_normal(&[out_ch], std)),
            BiasInit::Normal { std } => Some(Tensor::randn([out_ch], tch::kind::FLOAT_CPU) * std),
            BiasInit::None | BiasInit::Zero => None,
        };
        if let Some(init) = init {
            let mut bias = bias.shallow_clone();
            tch::no_grad(|| bias.copy_(&init));
        }
    }
    conv
}

/// BatchNorm2d with PyTorch's defaults: weight 1, bias 0, eps 1e-5, momentum 0.1
/// (variables `weight`, `bias`, `running_mean`, `running_var`).
pub fn batch_norm2d(p: nn::Path, channels: i64) -> nn::BatchNorm {
    let cfg = nn::BatchNormConfig {
        ws_init: Init::Const(1.0),
        bs_init: Init::Const(0.0),
        ..Default::default()
    };
    nn::batch_norm2d(&p, channels, cfg)
}

/// The Prob. U-Net `truncated_normal_` helper, literally: draw 4 standard normals per
/// element, keep the first one inside (−2, 2) (the first draw if none is), scale by `std`.
/// Result on the CPU; callers copy it into the variable's device.
pub fn truncated_normal(dims: &[i64], std: f64) -> Tensor {
    let mut ext = dims.to_vec();
    ext.push(4);
    let draws = Tensor::randn(ext.as_slice(), tch::kind::FLOAT_CPU);
    let valid = draws.lt(2.0).logical_and(&draws.gt(-2.0));
    let first = valid.to_kind(tch::Kind::Int64).argmax(-1, true);
    draws.gather(-1, &first, false).squeeze_dim(-1) * std
}
