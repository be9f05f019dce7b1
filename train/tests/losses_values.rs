//! Loss values on hand-made tensors (method.md §3) and where Stage-II gradients go.
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};
use train::losses::{
    bound_loss, generalized_dice_loss, stage1_losses, stage2_loss, BankDraw, ReconFrom,
    Stage1Options,
};
use train::models::{DPersona, Gaussian, ModelConfig};

const CPU: (Kind, Device) = (Kind::Float, Device::Cpu);

fn t(v: &[f64], shape: &[i64]) -> Tensor {
    Tensor::from_slice(v).view(shape).to_kind(Kind::Float)
}

#[test]
fn kl_of_equal_gaussians_is_zero() {
    let mu = t(&[0.3, -1.2, 2.0, 0.0], &[2, 2]);
    let ls = t(&[0.1, -0.5, 1.5, -2.0], &[2, 2]);
    let g = Gaussian {
        mu: mu.shallow_clone(),
        log_sigma: ls.shallow_clone(),
    };
    let kl = g.kl(&Gaussian { mu, log_sigma: ls });
    assert_eq!(kl.size(), [2]);
    assert!(kl.abs().max().double_value(&[]) < 1e-6);
}

#[test]
fn kl_matches_the_closed_form() {
    // KL(N(μq,σq²) ‖ N(μp,σp²)) per dim = ln(σp/σq) + (σq² + (μq−μp)²)/(2σp²) − ½, summed.
    let (mq, sq, mp, sp): ([f64; 3], [f64; 3], [f64; 3], [f64; 3]) = (
        [0.5, -1.0, 2.0],
        [0.7, 1.3, 0.2],
        [0.0, 0.4, 1.0],
        [1.0, 0.5, 2.5],
    );
    let expected: f64 = (0..3)
        .map(|d| {
            (sp[d] / sq[d]).ln() + (sq[d] * sq[d] + (mq[d] - mp[d]).powi(2)) / (2.0 * sp[d] * sp[d])
                - 0.5
        })
        .sum();
    let ln = |v: [f64; 3]| v.map(f64::ln);
    let q = Gaussian {
        mu: t(&mq, &[1, 3]),
        log_sigma: t(&ln(sq), &[1, 3]),
    };
    let p = Gaussian {
        mu: t(&mp, &[1, 3]),
        log_sigma: t(&ln(sp), &[1, 3]),
    };
    let kl = q.kl(&p).double_value(&[0]);
    assert!((kl - expected).abs() < 1e-5, "{kl} vs {expected}");
    assert!(
        p.kl(&q).double_value(&[0]) != kl,
        "KL is not symmetric: direction matters"
    );
}

#[test]
fn rsample_has_the_right_moments_and_gradient() {
    tch::manual_seed(5);
    let mu = t(&[1.0, -2.0], &[1, 2]).set_requires_grad(true);
    let ls = t(&[0.0, (0.5f64).ln()], &[1, 2]).set_requires_grad(true);
    let g = Gaussian {
        mu: mu.shallow_clone(),
        log_sigma: ls.shallow_clone(),
    };
    let s = g.rsample_n(20_000);
    let mean = s.mean_dim(1, false, None);
    let std = s.std_dim(1, true, false);
    assert!(
        (mean.double_value(&[0, 0]) - 1.0).abs() < 0.03
            && (mean.double_value(&[0, 1]) + 2.0).abs() < 0.03
    );
    assert!(
        (std.double_value(&[0, 0]) - 1.0).abs() < 0.03
            && (std.double_value(&[0, 1]) - 0.5).abs() < 0.03
    );
    s.sum(None).backward();
    assert_eq!(mu.grad().double_value(&[0, 0]), 20_000.0);
    assert!(
        !g.sample_n(3).requires_grad(),
        "sample_n carries no gradient"
    );
}

#[test]
fn dice_loss_of_a_perfect_prediction_is_near_zero() {
    let target = Tensor::zeros([2, 1, 8, 8], CPU);
    let _ = target.narrow(2, 2, 4).narrow(3, 2, 4).fill_(1.0);
    let logits = (&target * 2.0 - 1.0) * 30.0; // sigmoid ≈ 0 or 1
    let loss = generalized_dice_loss(&logits, &target).double_value(&[]);
    assert!(loss.abs() < 1e-6, "{loss}");
    // Completely wrong: fg and bg Dice both 0 → loss 1.
    let loss = generalized_dice_loss(&(-logits), &target).double_value(&[]);
    assert!((loss - 1.0).abs() < 1e-6, "{loss}");
}

#[test]
fn dice_loss_one_channel_is_mean_of_fg_and_bg_soft_dice() {
    // p = sigmoid(logits) by hand; soft Dice per channel over the whole batch.
    let logits = [0.0f64, 2.0, -1.0, 0.5];
    let target = [1.0f64, 1.0, 0.0, 0.0];
    let p: Vec<f64> = logits.iter().map(|l| 1.0 / (1.0 + (-l).exp())).collect();
    let dice = |p: &[f64], t: &[f64]| {
        2.0 * p.iter().zip(t).map(|(a, b)| a * b).sum::<f64>()
            / p.iter().zip(t).map(|(a, b)| a + b).sum::<f64>()
    };
    let pb: Vec<f64> = p.iter().map(|v| 1.0 - v).collect();
    let tb: Vec<f64> = target.iter().map(|v| 1.0 - v).collect();
    let expected = 1.0 - 0.5 * (dice(&p, &target) + dice(&pb, &tb));
    let got = generalized_dice_loss(&t(&logits, &[2, 1, 1, 2]), &t(&target, &[2, 1, 1, 2]))
        .double_value(&[]);
    assert!((got - expected).abs() < 1e-6, "{got} vs {expected}");
}

#[test]
fn bound_loss_sends_gradient_only_to_the_extreme_samples() {
    // 3 samples, 1 pixel row of 2 pixels: pixel 0 max = sample 2, min = sample 0;
    // pixel 1 max = sample 0, min = sample 1.
    let logits = t(&[-1.0, 3.0, 0.5, -2.0, 2.0, 1.0], &[1, 3, 1, 2]).set_requires_grad(true);
    let union = t(&[1.0, 1.0], &[1, 1, 2]);
    let inter = t(&[1.0, 0.0], &[1, 1, 2]);
    bound_loss(&logits, &union, &inter).backward();
    let g = logits.grad();
    let nz = |s: i64, px: i64| g.double_value(&[0, s, 0, px]) != 0.0;
    assert!(
        nz(2, 0) && nz(0, 0),
        "pixel 0: argmax 2 and argmin 0 get gradient"
    );
    assert!(!nz(1, 0), "pixel 0: sample 1 is neither max nor min");
    assert!(
        nz(0, 1) && nz(1, 1),
        "pixel 1: argmax 0 and argmin 1 get gradient"
    );
    assert!(!nz(2, 1), "pixel 1: sample 2 is neither max nor min");
    // Value: GDL of [max, min] against [union, intersection] (2 channels, no background).
    let upper = t(&[2.0, 3.0], &[1, 1, 1, 2]);
    let lower = t(&[-1.0, -2.0], &[1, 1, 1, 2]);
    let expected = generalized_dice_loss(
        &Tensor::cat(&[upper, lower], 1),
        &Tensor::cat(&[union.view([1, 1, 1, 2]), inter.view([1, 1, 1, 2])], 1),
    );
    let got = bound_loss(&logits.detach(), &union, &inter);
    assert!((got - expected).abs().double_value(&[]) < 1e-7);
}

fn small_model() -> (VarStore, DPersona) {
    let vs = VarStore::new(Device::Cpu);
    let m = DPersona::new(&vs.root(), &ModelConfig::small(1));
    (vs, m)
}

fn toy_batch() -> (Tensor, Tensor, Tensor, Tensor) {
    let x = Tensor::rand([2, 1, 32, 32], CPU);
    let y = Tensor::rand([2, 4, 32, 32], CPU)
        .gt(0.6)
        .to_kind(Kind::Float);
    let union = y.amax(1, false);
    let inter = y.amin(1, false);
    (x, y, union, inter)
}

#[test]
fn stage1_terms_add_up_and_reach_their_nets() {
    tch::manual_seed(11);
    let (vs, m) = small_model();
    let (x, y, union, inter) = toy_batch();
    let rater = Tensor::from_slice(&[2i64, 2]);
    for recon_from in [ReconFrom::Prior, ReconFrom::Posterior] {
        vs.variables().values().for_each(|v| {
            let mut g = v.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        });
        let opts = Stage1Options {
            recon_from,
            ..Default::default()
        };
        let terms = stage1_losses(&m, &x, &y, &union, &inter, &rater, &opts, true);
        let sum = &terms.rec + &terms.kl + &terms.bound * 0.5 + &terms.l2;
        assert!((&terms.total - sum).abs().double_value(&[]) < 1e-6);
        assert!(terms.kl.double_value(&[]) >= 0.0);
        let l2 = (m.l2_penalty() * 1e-5).double_value(&[]);
        assert!((terms.l2.double_value(&[]) - l2).abs() < 1e-9 && l2 > 0.0);
        terms.total.backward();
        let v = vs.variables();
        for name in [
            "backbone.down.0.conv1.weight",
            "prior.conv_layer.weight",
            "posterior.conv_layer.weight",
            "fcomb.last_layer.weight",
        ] {
            assert!(
                v[name].grad().abs().sum(None).double_value(&[]) > 0.0,
                "{recon_from:?}: no gradient at {name}"
            );
        }
        let head_grad = v["heads.0.layers.0.weight"].grad();
        assert!(
            !head_grad.defined() || head_grad.abs().sum(None).double_value(&[]) == 0.0,
            "heads are not in Stage I"
        );
    }
}

#[test]
fn stage2_gradients_reach_heads_not_prior_or_backbone() {
    tch::manual_seed(12);
    let (vs, m) = small_model();
    let (x, y, _, _) = toy_batch();
    let loss = stage2_loss(&m, &x, &y, BankDraw::Fresh(16), true, true, None);
    assert!(loss.double_value(&[]).is_finite());
    loss.backward();
    let v = vs.variables();
    let grad_sum = |name: &str| {
        let g = v[name].grad();
        if g.defined() {
            g.abs().sum(None).double_value(&[])
        } else {
            0.0
        }
    };
    for k in 0..4 {
        assert!(
            grad_sum(&format!("heads.{k}.layers.0.weight")) > 0.0,
            "head {k} got no gradient"
        );
    }
    for name in [
        "prior.conv_layer.weight",
        "prior.encoder.layers.0.weight",
        "backbone.down.0.conv1.weight",
    ] {
        assert_eq!(grad_sum(name), 0.0, "{name} must get no Stage-II gradient");
    }
}

#[test]
fn stage2_train_mode_updates_bn_running_stats() {
    tch::manual_seed(13);
    let (vs, m) = small_model();
    let (x, y, _, _) = toy_batch();
    let rm = vs.variables()["backbone.down.0.bn1.running_mean"].copy();
    let _ = stage2_loss(&m, &x, &y, BankDraw::Fresh(8), false, false, None);
    assert!(
        rm.equal(&vs.variables()["backbone.down.0.bn1.running_mean"]),
        "eval mode keeps BN stats"
    );
    let _ = stage2_loss(&m, &x, &y, BankDraw::Fresh(8), true, false, None);
    assert!(
        !rm.equal(&vs.variables()["backbone.down.0.bn1.running_mean"]),
        "train mode updates BN stats"
    );
}
