//! Mixed precision on CPU (issue #11's proof without a GPU): autocast really switches the
//! convolutions to bf16 and restores fp32 after; the paper model's features, latents and
//! every Stage-I loss term under bf16 stay within bf16's error of the fp32 values, with the
//! loss terms themselves computed in fp32; the fp16 loss scaler skips an overflowing step,
//! halves its scale and steps again once the gradients are finite; a bf16 run trains.
//!
//! Tolerances: bf16 keeps 8 significant bits (relative rounding 2^-9 = 0.2%). A small U-Net
//! of ~10 conv layers accumulates a few of those per layer, so 3% relative error on the
//! features and the latents, and on each loss term 3% of its size (0.03 absolute for the
//! Dice terms in [0, 1]; the KL at initialisation is tens of nats) is bf16's error, not a
//! loose bound: an accumulation done in bf16 over 10^4 pixels is far outside it.
mod trainer_fixture;

use tch::nn::{ConvConfig, OptimizerConfig, VarStore};
use tch::{Device, Kind, Tensor};
use train::losses::stage1_losses;
use train::methods::build_model;
use train::precision::{autocast, LossScaler, Precision};
use train::seeding::{reseed, Stream};
use trainer_fixture::{disc_batch, options, rel_err, small_config, write_dataset};

#[test]
fn autocast_switches_convolutions_to_bf16_and_restores_fp32() {
    let _g = testkit::torch_rng_lock();
    let vs = VarStore::new(Device::Cpu);
    let conv = tch::nn::conv2d(vs.root(), 3, 4, 3, ConvConfig::default());
    let x = Tensor::randn([2, 3, 8, 8], (Kind::Float, Device::Cpu));
    assert_eq!(x.apply(&conv).kind(), Kind::Float);
    let (inner, nested) = autocast(Precision::Bf16, Device::Cpu, || {
        let nested = autocast(Precision::Bf16, Device::Cpu, || x.apply(&conv).kind());
        (x.apply(&conv).kind(), nested)
    });
    assert_eq!(inner, Kind::BFloat16);
    assert_eq!(nested, Kind::BFloat16);
    assert_eq!(x.apply(&conv).kind(), Kind::Float, "autocast left on");
    assert_eq!(
        autocast(Precision::Fp32, Device::Cpu, || x.apply(&conv).kind()),
        Kind::Float
    );
    assert_eq!(Precision::Auto.resolve(Device::Cpu), Precision::Fp32);
}

#[test]
fn bf16_features_latents_and_stage1_losses_match_fp32() {
    let _g = testkit::torch_rng_lock();
    let cfg = small_config("");
    let (_vs, model) = build_model(&cfg, Device::Cpu).unwrap();
    reseed(3, Stream::Train, 1, 0, 0);
    // A batch of discs: images in [0, 1], four raters' masks.
    let (x, y, union, inter) = disc_batch(4);
    let rater = Tensor::from_slice(&[1i64, 1, 1, 1]);
    let opts = cfg.losses.stage1_options();

    let run = |p: Precision| {
        autocast(p, Device::Cpu, || {
            tch::no_grad(|| {
                let feats = model.features(&x, false);
                let prior = model.prior(&x);
                reseed(3, Stream::Train, 1, 0, 1);
                let l = stage1_losses(&model, &x, &y, &union, &inter, &rater, &opts, false);
                (feats, prior.mu, prior.log_sigma, l)
            })
        })
    };
    let (f32_feats, f32_mu, f32_ls, f32_l) = run(Precision::Fp32);
    let (bf_feats, bf_mu, bf_ls, bf_l) = run(Precision::Bf16);
    assert_eq!(bf_feats.kind(), Kind::BFloat16, "the backbone ran in bf16");
    assert_eq!(bf_mu.kind(), Kind::Float, "latents are fp32");
    let fe = rel_err(&bf_feats, &f32_feats);
    let me = rel_err(&bf_mu, &f32_mu);
    let se = rel_err(&bf_ls, &f32_ls);
    println!("relative error: features {fe:.4}, mu {me:.4}, log sigma {se:.4}");
    assert!(
        fe > 0.0,
        "bf16 features equal fp32 bit for bit: autocast did nothing"
    );
    assert!(fe < 0.03 && me < 0.03 && se < 0.03);
    for (name, a, b) in [
        ("rec", &bf_l.rec, &f32_l.rec),
        ("kl", &bf_l.kl, &f32_l.kl),
        ("bound", &bf_l.bound, &f32_l.bound),
        ("total", &bf_l.total, &f32_l.total),
    ] {
        assert_eq!(a.kind(), Kind::Float, "{name} is reduced in fp32");
        let (a, b) = (a.double_value(&[]), b.double_value(&[]));
        println!("{name}: fp32 {b:.5} bf16 {a:.5}");
        assert!(
            (a - b).abs() < 0.03 * b.abs().max(1.0),
            "{name}: bf16 {a} vs fp32 {b}"
        );
    }
}

#[test]
fn fp16_loss_scaler_skips_an_overflowing_step_then_recovers() {
    let _g = testkit::torch_rng_lock();
    let vs = VarStore::new(Device::Cpu);
    let p = vs.root().var("p", &[1], tch::nn::Init::Const(1.0));
    let mut opt = tch::nn::Sgd::default().build(&vs, 0.1).unwrap();
    let mut scaler = LossScaler {
        growth_interval: 2,
        ..LossScaler::default()
    };
    // 1e35 x 65536 overflows fp32: the gradient is inf, the step must not happen.
    opt.zero_grad();
    scaler.scale_loss(&(&p * 1e35).sum(Kind::Float)).backward();
    assert!(!scaler.unscale_and_update(&vs));
    assert_eq!(scaler.scale, 32768.0);
    assert_eq!(
        p.double_value(&[0]),
        1.0,
        "an overflowing step changed the weights"
    );
    // A finite step: the optimiser sees the true gradient (2), exactly (powers of two).
    opt.zero_grad();
    scaler.scale_loss(&(&p * 2.0).sum(Kind::Float)).backward();
    assert!(scaler.unscale_and_update(&vs));
    assert_eq!(p.grad().double_value(&[0]), 2.0);
    opt.step();
    assert!((p.double_value(&[0]) - 0.8).abs() < 1e-6);
    // Two good steps in a row (growth_interval 2) double the scale again.
    opt.zero_grad();
    scaler.scale_loss(&(&p * 2.0).sum(Kind::Float)).backward();
    assert!(scaler.unscale_and_update(&vs));
    assert_eq!(scaler.scale, 65536.0);
    assert_eq!(scaler.good_steps, 0);
}

#[test]
fn a_bf16_run_trains_and_records_its_precision() {
    let _g = testkit::torch_rng_lock();
    let tmp = tempfile::tempdir().unwrap();
    let manifest = write_dataset(&tmp.path().join("data"), &["train", "train", "val"], 4, 2);
    let run = tmp.path().join("run");
    let cfg = small_config("[optim]\nepochs_stage1 = 1\nepochs_stage2 = 1\nprecision = \"bf16\"\n");
    let summary =
        train::trainer::train(&options(&manifest, &run, cfg, train::trainer::Stages::Both))
            .unwrap();
    assert!(summary.completed);
    for (stage, best) in &summary.best {
        assert!(
            best.metric.is_finite() && best.metric > 0.0,
            "stage {stage}: {best:?}"
        );
    }
    let written = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(written.contains("precision = \"bf16\""), "{written}");
}
