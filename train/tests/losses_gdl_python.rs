//! Cross-check of `generalized_dice_loss` against an independent PyTorch/float64
//! re-implementation of method.md §3.1 (tests/py/models_gdl_reference.py).
use std::path::PathBuf;
use std::process::Command;
use tch::{Device, Kind, Tensor};
use train::losses::generalized_dice_loss;

use testkit::python;

#[test]
fn gdl_matches_python_reference() {
    tch::manual_seed(21);
    let cpu = (Kind::Float, Device::Cpu);
    let mut named: Vec<(String, Tensor)> = Vec::new();
    // (B, C, H, W, fraction of foreground, empty channel?)
    let cases: [(i64, i64, i64, i64, f64, bool); 5] = [
        (2, 1, 16, 16, 0.3, false),
        (3, 2, 8, 12, 0.5, false),
        (2, 4, 16, 16, 0.2, false),
        (2, 4, 8, 8, 0.4, true),
        (1, 1, 8, 8, 0.0, false),
    ];
    for (i, &(b, c, h, w, frac, empty)) in cases.iter().enumerate() {
        let logits = Tensor::randn([b, c, h, w], cpu) * 3.0;
        let target = Tensor::rand([b, c, h, w], cpu)
            .lt(frac)
            .to_kind(Kind::Float);
        if empty {
            let _ = target.narrow(1, 1, 1).zero_();
        }
        let loss = generalized_dice_loss(&logits, &target).view([1]);
        named.push((format!("logits_{i}"), logits));
        named.push((format!("target_{i}"), target));
        named.push((format!("rust_{i}"), loss));
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gdl_cases.safetensors");
    Tensor::write_safetensors(&named, &file).unwrap();
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/py/models_gdl_reference.py");
    let out = Command::new(python())
        .arg(&script)
        .arg(&file)
        .output()
        .expect("run python");
    println!("{}", String::from_utf8_lossy(&out.stdout));
    assert!(
        out.status.success(),
        "python check failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
