//! dpersona's Adam (with the per-epoch cosine learning rate) against torch.optim.Adam in
//! Python: same start, same data, same learning rates → same parameters to 1e-6.
use std::path::PathBuf;
use std::process::Command;

use tch::{Kind, Tensor};
use train::optim::{Adam, AdamParams};
use train::schedule::cosine_lr;

use testkit::python;

fn values(n: usize, a: f64, b: f64) -> Vec<f32> {
    (0..n)
        .map(|i| ((i as f64 * a + b).sin() * 1.5) as f32)
        .collect()
}

#[test]
fn adam_matches_torch_optim_adam() {
    let (w0, x, y) = (
        values(12, 0.7, 0.3),
        values(15, 1.3, 0.1),
        values(20, 0.37, 2.0),
    );
    let steps = 30u32;
    let lrs: Vec<f64> = (0..steps).map(|s| cosine_lr(0.05, s, steps)).collect();
    let w = Tensor::from_slice(&w0)
        .reshape([3, 4])
        .set_requires_grad(true);
    let xt = Tensor::from_slice(&x).reshape([5, 3]);
    let yt = Tensor::from_slice(&y).reshape([5, 4]);
    let params = AdamParams::default();
    let mut adam = Adam::new(vec![("w".into(), w.shallow_clone())], params, lrs[0]);
    for &lr in &lrs {
        adam.set_lr(lr);
        adam.zero_grad();
        let loss = (xt.matmul(&w) - &yt).square().sum(Kind::Float)
            + w.pow_tensor_scalar(3).sum(Kind::Float) * 0.01;
        loss.backward();
        adam.step();
    }
    let w_final: Vec<f32> = Vec::try_from(w.detach().flatten(0, -1)).unwrap();
    let case = serde_json::json!({
        "w0": w0, "x": x, "y": y, "lrs": lrs,
        "betas": [params.beta1, params.beta2], "eps": params.eps, "w_final": w_final,
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("case.json");
    std::fs::write(&file, case.to_string()).unwrap();
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/py/check_adam_against_torch.py");
    let out = Command::new(python())
        .arg(&script)
        .arg(&file)
        .output()
        .expect("python runs");
    println!("{}", String::from_utf8_lossy(&out.stdout));
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn adam_state_survives_save_and_load() {
    let make = || Tensor::from_slice(&[0.5f32, -1.0, 2.0]).set_requires_grad(true);
    let run = |p: &Tensor, adam: &mut Adam, n: usize| {
        for _ in 0..n {
            adam.zero_grad();
            (p * p * p).sum(Kind::Float).backward();
            adam.step();
        }
    };
    // Uninterrupted: 6 steps.
    let a = make();
    let mut adam_a = Adam::new(
        vec![("p".into(), a.shallow_clone())],
        AdamParams::default(),
        0.1,
    );
    run(&a, &mut adam_a, 6);
    // Interrupted after 3 steps: save, rebuild from scratch, load, 3 more.
    let b = make();
    let mut adam_b = Adam::new(
        vec![("p".into(), b.shallow_clone())],
        AdamParams::default(),
        0.1,
    );
    run(&b, &mut adam_b, 3);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("adam.safetensors");
    adam_b.save(&file).unwrap();
    let weights = b.detach().copy();
    let c = weights.set_requires_grad(true);
    let mut adam_c = Adam::new(
        vec![("p".into(), c.shallow_clone())],
        AdamParams::default(),
        0.1,
    );
    adam_c.load(&file).unwrap();
    assert_eq!(adam_c.steps(), 3);
    run(&c, &mut adam_c, 3);
    assert!(a.detach().equal(&c.detach()), "{a} vs {c}");
    // A state file for other variables is refused.
    let other = Tensor::zeros([2], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
    let mut adam_o = Adam::new(vec![("q".into(), other)], AdamParams::default(), 0.1);
    let err = adam_o.load(&file).unwrap_err().to_string();
    assert!(err.contains("m.q"), "{err}");
}
