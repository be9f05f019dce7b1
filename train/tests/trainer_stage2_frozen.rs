//! Stage II trains ONLY the expert heads: every other tensor of the model is bit-identical
//! before and after (with the backbone's BatchNorm in eval mode). With the authors' train
//! mode, BN running statistics drift (method.md §6.1 item 9) while every PARAMETER outside
//! the heads still stays identical.
mod trainer_fixture;

use std::collections::HashMap;
use std::path::Path;

use tch::Tensor;
use train::checkpoint::{read_info, Slot};
use train::trainer::{train, Stages};
use trainer_fixture::{options, small_config, write_dataset};

fn load(dir: &Path, slot: Slot) -> HashMap<String, Tensor> {
    let info = read_info(dir, slot).unwrap().unwrap();
    Tensor::read_safetensors(dir.join(info.weights))
        .unwrap()
        .into_iter()
        .collect()
}

fn is_head(name: &str) -> bool {
    name.starts_with("heads.")
}

fn is_bn_buffer(name: &str) -> bool {
    name.ends_with("running_mean") || name.ends_with("running_var")
}

fn run(bn: &str) -> (HashMap<String, Tensor>, HashMap<String, Tensor>) {
    let tmp = tempfile::tempdir().unwrap();
    let manifest = write_dataset(&tmp.path().join("data"), &["train", "train", "val"], 4, 3);
    let cfg = small_config(&format!(
        "[optim]\nepochs_stage1 = 1\nepochs_stage2 = 2\n[stage2]\nbackbone_bn = \"{bn}\"\n"
    ));
    let run = tmp.path().join("run");
    train(&options(&manifest, &run, cfg, Stages::Both)).unwrap();
    (
        load(&run.join("stage1"), Slot::Best),
        load(&run.join("stage2"), Slot::Last),
    )
}

#[test]
fn stage2_changes_only_the_heads_with_eval_mode_bn() {
    let _rng = trainer_fixture::torch_rng_lock();
    let (before, after) = run("eval");
    assert_eq!(before.len(), after.len());
    let mut heads_changed = 0;
    let mut others = 0;
    for (name, t) in &before {
        if is_head(name) {
            heads_changed += usize::from(!t.equal(&after[name]));
        } else {
            others += 1;
            assert!(
                t.equal(&after[name]),
                "non-head tensor `{name}` changed in stage 2"
            );
        }
    }
    assert!(others > 50, "only {others} non-head tensors compared");
    assert!(heads_changed > 0, "stage 2 did not train the heads");
}

#[test]
fn stage2_with_train_mode_bn_keeps_parameters_but_drifts_bn_statistics() {
    let _rng = trainer_fixture::torch_rng_lock();
    let (before, after) = run("train");
    let mut drifted = 0;
    for (name, t) in &before {
        if is_head(name) {
            continue;
        }
        if is_bn_buffer(name) {
            drifted += usize::from(!t.equal(&after[name]));
        } else {
            assert!(
                t.equal(&after[name]),
                "non-head parameter `{name}` changed in stage 2"
            );
        }
    }
    assert!(
        drifted > 0,
        "train-mode BN should update running statistics (the authors' quirk)"
    );
}
