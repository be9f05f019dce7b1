//! A run stopped after an epoch and resumed ends with the SAME weights (bit for bit, CPU,
//! one libtorch thread) as an uninterrupted run, through both stages.
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

fn assert_identical(a: &HashMap<String, Tensor>, b: &HashMap<String, Tensor>, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: tensor count");
    for (name, t) in a {
        assert!(t.equal(&b[name]), "{what}: tensor `{name}` differs");
    }
}

#[test]
fn resumed_run_equals_uninterrupted_run() {
    tch::set_num_threads(1);
    let tmp = tempfile::tempdir().unwrap();
    let manifest = write_dataset(&tmp.path().join("data"), &["train", "train", "val"], 4, 7);
    let cfg = small_config("[optim]\nepochs_stage1 = 3\nepochs_stage2 = 2\n");

    let full = tmp.path().join("full");
    let summary = train(&options(&manifest, &full, cfg.clone(), Stages::Both)).unwrap();
    assert!(summary.completed);

    // Stopped after stage 1 epoch 1, then after stage 2 epoch 0: resumed twice.
    let parts = tmp.path().join("parts");
    let mut o = options(&manifest, &parts, cfg, Stages::Both);
    o.stop_after = Some((1, 1));
    assert!(!train(&o).unwrap().completed);
    assert_eq!(
        read_info(&parts.join("stage1"), Slot::Last)
            .unwrap()
            .unwrap()
            .epoch,
        1
    );
    o.resume = true;
    o.stop_after = Some((2, 0));
    assert!(!train(&o).unwrap().completed);
    o.stop_after = None;
    assert!(train(&o).unwrap().completed);

    for (stage, slot) in [
        (1, Slot::Last),
        (1, Slot::Best),
        (2, Slot::Last),
        (2, Slot::Best),
    ] {
        let dir = format!("stage{stage}");
        assert_identical(
            &load(&full.join(&dir), slot),
            &load(&parts.join(&dir), slot),
            &format!("stage {stage} {}", slot.name()),
        );
    }
    // The logs hold each epoch once, as in the uninterrupted run.
    let (a, _) =
        schemas::read_table::<schemas::train_log::TrainLogRecord>(&full.join("train_log.parquet"))
            .unwrap();
    let (b, _) =
        schemas::read_table::<schemas::train_log::TrainLogRecord>(&parts.join("train_log.parquet"))
            .unwrap();
    let key = |r: &schemas::train_log::TrainLogRecord| {
        (
            r.stage,
            r.epoch,
            r.step,
            r.kind.clone(),
            r.name.clone(),
            r.value.to_bits(),
        )
    };
    assert_eq!(
        a.iter().map(key).collect::<Vec<_>>(),
        b.iter().map(key).collect::<Vec<_>>()
    );
    let text = std::fs::read_to_string(parts.join("train.log")).unwrap();
    assert_eq!(text.lines().count(), 5, "{text}");
}
