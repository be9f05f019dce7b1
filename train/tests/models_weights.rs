//! ImageNet-weight loading (torchvision names) and the ResNet-34 U-Net forward, both checked
//! against an independent PyTorch model (tests/py/models_resnet34_reference.py).
use std::path::{Path, PathBuf};
use std::process::Command;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};
use train::models::{load_backbone_weights, DPersona, ModelConfig, WeightsError};

use testkit::python;

fn run_py(args: &[&std::ffi::OsStr]) {
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/py/models_resnet34_reference.py");
    let out = Command::new(python())
        .arg(script)
        .args(args)
        .output()
        .expect("run python");
    println!("{}", String::from_utf8_lossy(&out.stdout));
    assert!(
        out.status.success(),
        "python failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn write_torchvision_weights(dir: &Path) -> PathBuf {
    let file = dir.join("resnet34.safetensors");
    run_py(&["write-weights".as_ref(), file.as_os_str()]);
    file
}

fn model(in_channels: i64) -> (VarStore, DPersona) {
    let vs = VarStore::new(Device::Cpu);
    let m = DPersona::new(&vs.root(), &ModelConfig::paper(in_channels));
    (vs, m)
}

#[test]
fn loads_torchvision_weights_and_checks_forward() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_torchvision_weights(dir.path());
    let stored: std::collections::HashMap<String, Tensor> = Tensor::read_safetensors(&file)
        .unwrap()
        .into_iter()
        .collect();

    // Three channels: every encoder tensor copied as is.
    let (mut vs3, _m3) = model(3);
    load_backbone_weights(&mut vs3, &file, 3).unwrap();
    let v3 = vs3.variables();
    for name in [
        "conv1.weight",
        "bn1.running_var",
        "layer3.5.conv2.weight",
        "layer4.0.downsample.1.bias",
    ] {
        assert!(
            v3[&format!("backbone.encoder.{name}")].equal(&stored[name]),
            "{name} not copied"
        );
    }

    // One channel: conv1 summed over RGB (computed here from the stored tensor).
    let (mut vs1, m1) = model(1);
    let before = vs1.variables()["backbone.decoder.blocks.0.conv1.0.weight"].copy();
    load_backbone_weights(&mut vs1, &file, 1).unwrap();
    let v1 = vs1.variables();
    let c = &stored["conv1.weight"];
    let summed = c.narrow(1, 0, 1) + c.narrow(1, 1, 1) + c.narrow(1, 2, 1);
    let diff = (&v1["backbone.encoder.conv1.weight"] - summed)
        .abs()
        .max()
        .double_value(&[]);
    assert!(diff < 1e-6, "conv1 sum diff {diff}");
    assert!(v1["backbone.encoder.layer1.0.bn1.running_mean"]
        .equal(&stored["layer1.0.bn1.running_mean"]));
    assert!(
        before.equal(&v1["backbone.decoder.blocks.0.conv1.0.weight"]),
        "decoder untouched"
    );

    // Forward (eval mode) vs the PyTorch model loaded from our exported VarStore.
    tch::manual_seed(4);
    let x = Tensor::rand([1, 1, 64, 64], (Kind::Float, Device::Cpu));
    let y = tch::no_grad(|| m1.features(&x, false));
    let vars_file = dir.path().join("ours.safetensors");
    let in_file = dir.path().join("in.safetensors");
    let out_file = dir.path().join("out.safetensors");
    let named: Vec<(String, Tensor)> = v1
        .into_iter()
        .filter(|(k, _)| k.starts_with("backbone."))
        .collect();
    Tensor::write_safetensors(&named, &vars_file).unwrap();
    Tensor::write_safetensors(&[("x", &x)], &in_file).unwrap();
    Tensor::write_safetensors(&[("y", &y)], &out_file).unwrap();
    run_py(&[
        "check-forward".as_ref(),
        vars_file.as_os_str(),
        in_file.as_os_str(),
        out_file.as_os_str(),
        "1".as_ref(),
    ]);
}

#[test]
fn missing_and_mismatched_tensors_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("partial.safetensors");
    let t = Tensor::zeros([64, 3, 7, 7], (Kind::Float, Device::Cpu));
    let bad = Tensor::zeros([63], (Kind::Float, Device::Cpu));
    Tensor::write_safetensors(&[("conv1.weight", &t), ("bn1.weight", &bad)], &file).unwrap();
    let (mut vs, _m) = model(1);
    let err = load_backbone_weights(&mut vs, &file, 1).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, WeightsError::Mismatch { .. }), "{msg}");
    assert!(msg.contains("partial.safetensors"), "{msg}");
    assert!(msg.contains("missing `layer1.0.conv1.weight`"), "{msg}");
    assert!(msg.contains("`bn1.weight` has shape [63]"), "{msg}");
    assert!(!msg.contains("missing `conv1.weight`"), "{msg}");

    let err = load_backbone_weights(&mut vs, &dir.path().join("nope.safetensors"), 1).unwrap_err();
    assert!(matches!(err, WeightsError::Read { .. }), "{err}");
}
