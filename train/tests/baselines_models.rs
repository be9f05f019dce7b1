//! Baseline models on the small U-Net: every loss is finite and goes down on a tiny
//! learnable problem, output counts S are as documented, the paper's one-channel CM
//! collapses to the identity, Pionono's KL at initialisation equals the closed form, and
//! TAB's low-rank samples have the covariance W Wᵀ + diag(d).
use tch::nn::{self, OptimizerConfig};
use tch::{Device, Kind, Tensor};
use train::baselines::cm::{CmForm, CmKind, CmModel, CmOptions};
use train::baselines::tab::low_rank_sample;
use train::baselines::{
    BaselineBatch, BaselineModel, BaselineSpec, Pionono, PiononoOptions, ProbUnetOptions,
    TabOptions,
};
use train::models::ModelConfig;

const H: i64 = 32;
const B: i64 = 2;
const R: i64 = 4;

/// Images with a bright disk; rater r marks a disk of radius 5 + r around it (so raters
/// disagree systematically, like LIDC's area-ranked raters).
fn data() -> (Tensor, Tensor, Tensor, Tensor) {
    let coords = Tensor::arange(H, (Kind::Float, Device::Cpu));
    let yy = coords.view([1, H, 1]);
    let xx = coords.view([1, 1, H]);
    let centres = Tensor::from_slice(&[12.0f32, 19.0, 18.0, 13.0]).view([B, 2, 1, 1]);
    let dy = yy.unsqueeze(0) - centres.narrow(1, 0, 1);
    let dx = xx.unsqueeze(0) - centres.narrow(1, 1, 1);
    let dist = (dy.square() + dx.square()).sqrt(); // [B, 1, H, H]
    let x =
        dist.lt(6.0).to_kind(Kind::Float) + Tensor::randn([B, 1, H, H], tch::kind::FLOAT_CPU) * 0.1;
    let radii = Tensor::from_slice(&[5.0f32, 6.0, 7.0, 8.0]).view([1, R, 1, 1]);
    let y = dist.le_tensor(&radii).to_kind(Kind::Float); // [B, R, H, H]
    let present = Tensor::ones([B, R], (Kind::Bool, Device::Cpu));
    let rater = Tensor::from_slice(&[1i64, 3]);
    (x, y, present, rater)
}

/// Loss before and after `steps` Adam steps on one fixed batch, each evaluated with the same
/// torch seed so stochastic losses (sampling) are compared on the same noise.
fn trains(spec: &BaselineSpec, steps: usize, lr: f64) -> (f64, f64, BaselineModel) {
    tch::manual_seed(11);
    let vs = nn::VarStore::new(Device::Cpu);
    let model = BaselineModel::new(&vs.root(), &ModelConfig::small(1), spec);
    let (x, y, present, rater) = data();
    let target = y.narrow(1, 1, 1); // a stand-in fused label (rater 1's mask)
    let batch = BaselineBatch {
        x: &x,
        y: &y,
        present: &present,
        rater: &rater,
        target: Some(&target),
    };
    let eval = |m: &BaselineModel| {
        tch::manual_seed(5);
        let terms = m.loss(&batch, true).expect("batch has targets");
        for (name, v) in terms.values() {
            assert!(v.is_finite(), "{}: term {name} = {v}", spec.name());
        }
        terms.total.double_value(&[])
    };
    let before = eval(&model);
    let mut opt = nn::Adam::default().build(&vs, lr).unwrap();
    for step in 0..steps {
        tch::manual_seed(100 + step as i64);
        let terms = model.loss(&batch, true).unwrap();
        opt.backward_step(&terms.total);
    }
    let after = eval(&model);
    (before, after, model)
}

fn assert_decreases(spec: BaselineSpec, steps: usize, lr: f64) -> BaselineModel {
    let (before, after, model) = trains(&spec, steps, lr);
    println!("{}: loss {before:.5} -> {after:.5}", spec.name());
    assert!(
        after < before,
        "{}: loss did not decrease ({before} -> {after})",
        spec.name()
    );
    model
}

fn check_outputs(model: &BaselineModel, s: i64, per_rater: bool) {
    let (x, ..) = data();
    let out = model.infer(&x);
    assert_eq!(out.count(), s);
    assert_eq!(out.set.size(), vec![B, s, H, H]);
    assert_eq!(out.consensus.size(), vec![B, 1, H, H]);
    assert_eq!(out.per_rater.is_some(), per_rater);
    let (lo, hi) = (
        out.set.min().double_value(&[]),
        out.set.max().double_value(&[]),
    );
    assert!(
        (0.0..=1.0).contains(&lo) && (0.0..=1.0).contains(&hi),
        "probabilities, got [{lo}, {hi}]"
    );
}

#[test]
fn plain_unets_learn_their_targets() {
    let _rng = testkit::torch_rng_lock(); // seeded draws must not interleave
    for spec in [
        BaselineSpec::UnetRater { rater: 2 },
        BaselineSpec::Rs,
        BaselineSpec::Mv {
            rule: train::baselines::fusion::MvRule::Strict,
        },
    ] {
        let m = assert_decreases(spec, 8, 1e-2);
        check_outputs(&m, 1, false);
    }
}

#[test]
fn unet_rater_skips_batches_without_its_rater() {
    let _rng = testkit::torch_rng_lock(); // seeded draws must not interleave
    tch::manual_seed(1);
    let vs = nn::VarStore::new(Device::Cpu);
    let model = BaselineModel::new(
        &vs.root(),
        &ModelConfig::small(1),
        &BaselineSpec::UnetRater { rater: 0 },
    );
    let (x, y, _, rater) = data();
    let present =
        Tensor::from_slice(&[false, true, true, true, false, true, true, true]).view([B, R]);
    let batch = BaselineBatch {
        x: &x,
        y: &y,
        present: &present,
        rater: &rater,
        target: None,
    };
    assert!(model.loss(&batch, true).is_none());
}

#[test]
fn prob_unet_learns_and_samples_ten() {
    let _rng = testkit::torch_rng_lock(); // seeded draws must not interleave
    let m = assert_decreases(BaselineSpec::ProbUnet(ProbUnetOptions::default()), 8, 1e-2);
    check_outputs(&m, 10, false);
}

#[test]
fn cm_models_learn_faithful_form() {
    let _rng = testkit::torch_rng_lock(); // seeded draws must not interleave
    let m = assert_decreases(BaselineSpec::CmGlobal(CmOptions::faithful()), 8, 1e-2);
    check_outputs(&m, R, true);
    let m = assert_decreases(BaselineSpec::CmPixel(CmOptions::faithful()), 8, 1e-2);
    check_outputs(&m, R, true);
    assert_decreases(BaselineSpec::CmGlobal(CmOptions::paper()), 8, 1e-2);
}

#[test]
fn paper_cm_collapses_to_identity() {
    let _rng = testkit::torch_rng_lock(); // seeded draws must not interleave
    for kind in [CmKind::Global, CmKind::Pixel] {
        tch::manual_seed(3);
        let vs = nn::VarStore::new(Device::Cpu);
        let opts = CmOptions::paper();
        assert_eq!(opts.form, CmForm::Paper);
        let model = CmModel::new(&vs.root(), &ModelConfig::small(1), kind, opts);
        // Perturb the matrix parameters: the collapse must not depend on their values.
        tch::no_grad(|| {
            for (name, mut t) in vs.variables() {
                if name.starts_with("cm.") {
                    let noise = t.randn_like() * 3.0;
                    let _ = t.g_add_(&noise);
                }
            }
        });
        let (x, ..) = data();
        let feats = Tensor::randn([B, 8, H, H], tch::kind::FLOAT_CPU);
        let a = model.matrices(&feats);
        assert_eq!(a.size()[2..4], [1, 1]);
        let ones = a.ones_like();
        assert!(
            a.equal(&ones.expand(a.size(), false)),
            "{kind:?}: normalised 1x1 CM is not exactly 1"
        );
        let out = model.infer(&x);
        let per = out.per_rater.unwrap();
        for r in 0..R {
            assert!(
                per.narrow(1, r, 1).equal(&out.consensus),
                "{kind:?}: rater {r} output differs from the clean one"
            );
        }
    }
}

#[test]
fn pionono_kl_at_init_is_the_closed_form() {
    let _rng = testkit::torch_rng_lock(); // seeded draws must not interleave
    tch::manual_seed(9);
    let vs = nn::VarStore::new(Device::Cpu);
    let opts = PiononoOptions::default();
    let model = Pionono::new(&vs.root(), &ModelConfig::small(1), opts.clone());
    let k = opts.latent_dim as usize;
    let mu: Vec<f32> = Vec::try_from(model.mu().flatten(0, -1)).unwrap();
    let kl: Vec<f32> = Vec::try_from(model.kl_per_rater()).unwrap();
    // KL(N(μ, s²I) ‖ N(0, σ²I)) = ½[k s²/σ² + ‖μ‖²/σ² − k + k ln σ² − k ln s²], s = 2, σ = 2.
    let (s2, p2) = (
        opts.z_posterior_init_scale.powi(2),
        opts.z_prior_sigma.powi(2),
    );
    let mut norms = Vec::new();
    for r in 0..R as usize {
        let m2: f64 = mu[r * k..(r + 1) * k]
            .iter()
            .map(|&v| (v as f64).powi(2))
            .sum();
        norms.push(m2.sqrt());
        let expect = 0.5
            * (k as f64 * s2 / p2 + m2 / p2 - k as f64 + k as f64 * p2.ln() - k as f64 * s2.ln());
        assert!(
            (kl[r] as f64 - expect).abs() <= 1e-4 * expect.abs().max(1.0),
            "rater {r}: KL {} vs closed form {expect}",
            kl[r]
        );
    }
    // μ ~ 8·N(0, I_8): ‖μ‖ is about 8·√8 ≈ 22.6; a missing ×8 would give ≈ 2.8.
    let mean_norm = norms.iter().sum::<f64>() / norms.len() as f64;
    assert!(mean_norm > 10.0 && mean_norm < 40.0, "‖μ‖ mean {mean_norm}");
    let l = model.scale_tril();
    let eye = Tensor::eye(k as i64, tch::kind::FLOAT_CPU) * 2.0;
    assert!(l.equal(&eye.unsqueeze(0).expand([R, k as i64, k as i64], false)));
}

#[test]
fn pionono_learns_and_outputs_one_map_per_rater() {
    let _rng = testkit::torch_rng_lock(); // seeded draws must not interleave
    let m = assert_decreases(BaselineSpec::Pionono(PiononoOptions::default()), 8, 1e-2);
    check_outputs(&m, R, true);
    assert_eq!(m.lr_groups()[0].prefix, "latents");
}

#[test]
fn tab_learns_and_outputs_one_map_per_rater_or_samples() {
    let _rng = testkit::torch_rng_lock(); // seeded draws must not interleave
    let m = assert_decreases(BaselineSpec::Tab(TabOptions::default()), 8, 1e-2);
    check_outputs(&m, R, true);
    let (x, ..) = data();
    let out = m.infer(&x);
    let per = out.per_rater.as_ref().unwrap();
    assert_eq!(per.size(), vec![B, R, H, H]);
    assert!(per.equal(&out.set), "S = R set is the personalised maps");
    tab_maps_follow_their_queries(&x);

    // GED sampling of the global query: S = eval_samples maps, all different.
    tch::manual_seed(2);
    let vs = nn::VarStore::new(Device::Cpu);
    let opts = TabOptions {
        eval_samples: 6,
        ..TabOptions::default()
    };
    let model = BaselineModel::new(&vs.root(), &ModelConfig::small(1), &BaselineSpec::Tab(opts));
    check_outputs(&model, 6, true);
    let set = model.infer(&x).set;
    let spread = (set.narrow(1, 0, 1) - set.narrow(1, 1, 1))
        .abs()
        .max()
        .double_value(&[]);
    assert!(spread > 1e-6, "samples identical");
}

/// Empirical covariance of x = μ + W ε₁ + √d ε₂ over many draws (f64, event size 3, rank 2)
/// equals W Wᵀ + diag(d) within 5 standard errors of each entry's estimator; the mean is μ.
#[test]
fn tab_low_rank_samples_have_the_covariance() {
    let _rng = testkit::torch_rng_lock(); // seeded draws must not interleave
    tch::manual_seed(21);
    let mu = Tensor::from_slice(&[0.5f64, -1.0, 2.0]).to_kind(Kind::Double);
    let w = Tensor::from_slice(&[1.0f64, 0.5, -0.7, 0.2, 0.3, -1.2]).view([3, 2]);
    let d = Tensor::from_slice(&[0.4f64, 0.1, 0.9]);
    let n = 200_000i64;
    let x = low_rank_sample(
        &mu.expand([n, 3], false),
        &w.expand([n, 3, 2], false),
        &d.expand([n, 3], false),
    ); // [n, 3]
    let expect = w.matmul(&w.tr()) + d.diag(0);
    let mean = x.mean_dim([0i64].as_slice(), false, Kind::Double);
    let c = &x - &mean;
    let cov = c.tr().matmul(&c) / (n - 1) as f64;
    let e: Vec<f64> = Vec::try_from(expect.flatten(0, -1)).unwrap();
    let got: Vec<f64> = Vec::try_from(cov.flatten(0, -1)).unwrap();
    let m: Vec<f64> = Vec::try_from(mean).unwrap();
    let mu_v: Vec<f64> = Vec::try_from(mu).unwrap();
    for i in 0..3 {
        let se = (e[i * 3 + i] / n as f64).sqrt();
        assert!(
            (m[i] - mu_v[i]).abs() < 5.0 * se,
            "mean {i}: {} vs {}",
            m[i],
            mu_v[i]
        );
        for j in 0..3 {
            // Var of the sample covariance of Gaussians: (Σ_ii Σ_jj + Σ_ij²) / n.
            let se = ((e[i * 3 + i] * e[j * 3 + j] + e[i * 3 + j].powi(2)) / n as f64).sqrt();
            assert!(
                (got[i * 3 + j] - e[i * 3 + j]).abs() < 5.0 * se,
                "cov[{i}][{j}] = {} vs W Wᵀ + diag(d) = {} (se {se})",
                got[i * 3 + j],
                e[i * 3 + j]
            );
        }
    }
}

/// The Prob. U-Net is built from D-Persona's parts in D-Persona's order: with one seed, its
/// backbone and prior start with D-Persona's weights (the posterior differs: it reads one
/// mask channel instead of R), and the backbone draws come first in both.
#[test]
fn prob_unet_shares_dpersona_parts_and_init_order() {
    let _rng = testkit::torch_rng_lock(); // seeded draws must not interleave
    let cfg = ModelConfig::small(1);
    let build = |f: &dyn Fn(&nn::Path)| {
        tch::manual_seed(5);
        let vs = nn::VarStore::new(Device::Cpu);
        f(&vs.root());
        vs
    };
    let dp = build(&|p| {
        train::models::DPersona::new(p, &cfg);
    });
    let pu = build(&|p| {
        BaselineModel::new(p, &cfg, &BaselineSpec::ProbUnet(ProbUnetOptions::default()));
    });
    let bb = build(&|p| {
        train::models::backbone::Backbone::new(&(p / "backbone"), &cfg);
    });
    let (dp, pu, bb) = (dp.variables(), pu.variables(), bb.variables());
    let mut compared = 0;
    for (name, t) in &pu {
        let shared = name.starts_with("backbone.") || name.starts_with("prior.");
        if shared {
            assert!(t.equal(&dp[name]), "{name}: differs from D-Persona's");
            compared += 1;
        }
        if name.starts_with("backbone.") {
            assert!(t.equal(&bb[name]), "{name}: not the first draws");
        }
        if name.starts_with("posterior.") && name.ends_with("layers.0.weight") {
            assert_eq!(t.size()[1], cfg.in_channels + 1, "{name}");
            assert_eq!(dp[name].size()[1], cfg.in_channels + cfg.raters, "{name}");
        }
    }
    assert!(compared > 10, "compared {compared} variables");
}

/// Rater r's map is decoded from query r + 1 alone: distinct query embeddings give distinct
/// logit maps, and making query 4 a copy of query 1 makes rater 3's map rater 0's. Checked
/// at initialisation, where DETR-style attention maps are nearly uniform (softmax over
/// heads × positions) and the maps differ by ~5e-4 in logit (5x the bound used here) while equal queries agree to thread-order noise (~1e-7); after
/// a few steps on the toy batch the difference can shrink to float noise, so it is not
/// checked there.
fn tab_maps_follow_their_queries(x: &Tensor) {
    tch::manual_seed(2);
    let vs = nn::VarStore::new(Device::Cpu);
    let spec = BaselineSpec::Tab(TabOptions::default());
    let model = BaselineModel::new(&vs.root(), &ModelConfig::small(1), &spec);
    let BaselineModel::Tab(tab) = &model else {
        unreachable!("spec is TAB")
    };
    let logit_gap = || {
        let mu = tch::no_grad(|| tab.forward(x, false).mu); // [B, Q, N]
        (mu.narrow(1, 1, 1) - mu.narrow(1, 4, 1))
            .abs()
            .max()
            .double_value(&[])
    };
    let distinct = logit_gap();
    assert!(
        distinct > 1e-4,
        "rater 0's and rater 3's logits differ by only {distinct}"
    );
    tch::no_grad(|| {
        let q = vs.variables()["query_embed"].shallow_clone();
        let first = q.get(1);
        q.get(4).copy_(&first);
    });
    let same = logit_gap();
    println!("tab query logit gap: distinct {distinct}, equal queries {same}");
    assert!(
        same < 1e-5,
        "equal queries 1 and 4 still give maps {same} apart"
    );
}
