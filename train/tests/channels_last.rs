//! Channels-last (`optim.channels_last`, a lever of issue #11), proven on a CPU: the NHWC
//! copy keeps every value and takes `torch.channels_last`'s strides; moving a model's kernels
//! reaches the optimiser's shallow clones; a Stage-I step of the small model in NHWC gives
//! the NCHW losses and gradients to fp32 rounding (only the convolutions' summation order
//! differs); a channels-last run trains, and its checkpoint loads into an NCHW model.
//!
//! Tolerances: fp32 keeps 24 bits (relative rounding 6e-8). A different summation order
//! over the few thousand products of a 3x3 convolution's reduction, through ~10 layers,
//! moves losses by ~1e-6 relative and gradients by ~1e-5; 1e-5 and 1e-4 are those with a
//! margin, while a scrambled layout (a wrong stride) is wrong by O(1).
mod trainer_fixture;

use tch::{Device, Kind, Tensor};
use train::checkpoint::{load_weights, read_info, Slot};
use train::losses::stage1_losses;
use train::methods::build_model;
use train::models::memory_format::{is_channels_last, to_channels_last, vars_to_channels_last};
use train::seeding::{reseed, Stream};
use trainer_fixture::{disc_batch, options, rel_err, small_config, write_dataset};

#[test]
fn a_channels_last_copy_keeps_the_values_and_takes_nhwc_strides() {
    let t = Tensor::rand([2, 3, 4, 5], (Kind::Float, Device::Cpu));
    let c = to_channels_last(&t);
    // [N, C, H, W] = [2, 3, 4, 5]: strides [H*W*C, 1, W*C, C].
    assert_eq!(c.stride(), vec![60, 1, 15, 3]);
    assert!(is_channels_last(&c) && !is_channels_last(&t));
    assert!(c.equal(&t), "same values");
    // In memory it is the NHWC array: permuted to [N, H, W, C] it is contiguous.
    assert!(c.permute([0, 2, 3, 1]).is_contiguous());
    // Not 4-D: returned as it is.
    let m = Tensor::rand([3, 4], (Kind::Float, Device::Cpu));
    assert_eq!(to_channels_last(&m).stride(), m.stride());
}

#[test]
fn a_stage1_step_in_channels_last_gives_the_nchw_losses_and_gradients() {
    let _g = testkit::torch_rng_lock();
    let cfg = small_config("");
    let (vs, model) = build_model(&cfg, Device::Cpu).unwrap();
    reseed(5, Stream::Train, 1, 0, 0);
    let (x, y, union, inter) = disc_batch(4);
    let rater = Tensor::from_slice(&[0i64, 1, 2, 3]);
    let opts = cfg.losses.stage1_options();
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));

    let step = |x: &Tensor| {
        for (_, v) in &vars {
            let mut g = v.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
        reseed(5, Stream::Train, 1, 0, 1);
        let l = stage1_losses(&model, x, &y, &union, &inter, &rater, &opts, true);
        l.total.backward();
        let terms: Vec<f64> = [&l.rec, &l.kl, &l.bound, &l.total]
            .iter()
            .map(|t| t.double_value(&[]))
            .collect();
        let grads: Vec<Option<Tensor>> = vars
            .iter()
            .map(|(_, v)| Some(v.grad()).filter(Tensor::defined).map(|g| g.copy()))
            .collect();
        (terms, grads)
    };
    let (nchw_terms, nchw_grads) = step(&x);

    let held = vars[0].1.shallow_clone();
    let kernels = vars.iter().filter(|(_, v)| v.dim() == 4).count();
    // 1x1 kernels [O, I, 1, 1] are already both layouts (their NCHW strides are NHWC's).
    let to_move = vars
        .iter()
        .filter(|(_, v)| v.dim() == 4 && !is_channels_last(v))
        .count();
    assert!(
        to_move >= 10,
        "the small model has {to_move} kernels to move"
    );
    assert_eq!(vars_to_channels_last(&vs), to_move, "every kernel moved");
    for (name, v) in &vars {
        assert!(v.dim() != 4 || is_channels_last(v), "{name} stays NCHW");
    }
    if held.dim() == 4 {
        assert!(
            is_channels_last(&held),
            "a clone held before the move sees it"
        );
    }
    let x_cl = to_channels_last(&x);
    assert!(
        is_channels_last(&tch::no_grad(|| model.features(&x_cl, false))),
        "convolutions keep the layout for their outputs"
    );
    let (nhwc_terms, nhwc_grads) = step(&x_cl);

    for (i, name) in ["rec", "kl", "bound", "total"].iter().enumerate() {
        let (a, b) = (nhwc_terms[i], nchw_terms[i]);
        println!("{name}: NCHW {b:.7} NHWC {a:.7}");
        assert!(
            (a - b).abs() <= 1e-5 * b.abs().max(1.0),
            "{name}: {a} vs {b}"
        );
    }
    // Per variable, the error is measured against the whole gradient's norm as well as the
    // variable's own: a BatchNorm bias followed by another BatchNorm has a gradient that is
    // a near-cancelling sum (its own norm ~1e-4 of the others'), whose relative error says
    // nothing about the layout.
    let all = |gs: &[Option<Tensor>]| {
        Tensor::cat(
            &gs.iter()
                .flatten()
                .map(|g| g.flatten(0, -1))
                .collect::<Vec<_>>(),
            0,
        )
    };
    let whole = rel_err(&all(&nhwc_grads), &all(&nchw_grads));
    println!("whole gradient: relative error {whole:.2e}");
    assert!(whole < 1e-5, "whole gradient: relative error {whole}");
    let scale = all(&nchw_grads).norm().double_value(&[]);
    let mut compared = 0;
    for ((name, _), (a, b)) in vars.iter().zip(nhwc_grads.iter().zip(&nchw_grads)) {
        match (a, b) {
            (Some(a), Some(b)) => {
                let err = (a - b).norm().double_value(&[]);
                let own = b.norm().double_value(&[]);
                assert!(
                    err <= 1e-4 * own + 1e-6 * scale,
                    "gradient of {name}: error {err:.3e}, its norm {own:.3e}, all {scale:.3e}"
                );
                compared += 1;
            }
            (None, None) => {}
            _ => panic!("{name}: a gradient in one layout only"),
        }
    }
    assert!(compared > kernels, "{compared} gradients compared");
}

#[test]
fn a_channels_last_run_trains_and_its_checkpoint_loads_into_an_nchw_model() {
    let _g = testkit::torch_rng_lock();
    let tmp = tempfile::tempdir().unwrap();
    let manifest = write_dataset(&tmp.path().join("data"), &["train", "train", "val"], 4, 2);
    let run = tmp.path().join("run");
    let cfg = small_config(
        "[optim]\nepochs_stage1 = 1\nepochs_stage2 = 1\nchannels_last = true\ncudnn_benchmark = true\n",
    );
    let summary = train::trainer::train(&options(
        &manifest,
        &run,
        cfg.clone(),
        train::trainer::Stages::Both,
    ))
    .unwrap();
    assert!(summary.completed);
    let written = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(
        written.contains("channels_last = true") && written.contains("cudnn_benchmark = true"),
        "{written}"
    );
    // The saved kernels are plain arrays: an NCHW model loads them and holds the same values.
    let dir = run.join("stage1");
    let best = read_info(&dir, Slot::Best).unwrap().unwrap();
    let (mut vs, _) = build_model(&cfg, Device::Cpu).unwrap();
    load_weights(&dir, &best, &mut vs).unwrap();
    let stored = Tensor::read_safetensors(dir.join(&best.weights)).unwrap();
    let loaded = vs.variables();
    let mut checked = 0;
    for (name, t) in &stored {
        if let Some(v) = loaded.get(name) {
            assert!(v.equal(t), "{name}");
            checked += 1;
        }
    }
    assert!(checked > 10, "{checked} tensors compared");
}
