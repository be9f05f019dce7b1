//! NaN policy (issue 3): non-finite loss terms skip the step; `nan.max_consecutive` of them
//! in a row stop training with an error that names the step and the term that broke.
mod trainer_fixture;

use train::error::TrainError;
use train::trainer::{train, Stages};
use trainer_fixture::{options, small_config, torch_rng_lock, write_dataset};

/// Adam's first step moves every weight by about lr; at lr 1e30 the next forward overflows
/// f32, so every later step has non-finite reconstruction/KL/bound terms (the L2 term, a sum
/// of weight norms near 1e31, stays finite).
#[test]
fn exploding_weights_stop_with_an_error_naming_the_step_and_the_term() {
    let _rng = torch_rng_lock();
    tch::set_num_threads(1);
    let tmp = tempfile::tempdir().unwrap();
    let manifest = write_dataset(&tmp.path().join("data"), &["train", "train", "val"], 4, 7);
    let max = 3u32;
    let cfg = small_config(&format!(
        "[optim]\nlr = 1e30\nepochs_stage1 = 4\n[nan]\nmax_consecutive = {max}\n"
    ));
    let run = tmp.path().join("run");
    let err = train(&options(&manifest, &run, cfg, Stages::One)).unwrap_err();
    let message = err.to_string();
    let TrainError::NonFinite {
        stage,
        step,
        ref term,
        value,
        count,
        max: reported_max,
        ..
    } = err
    else {
        panic!("expected a non-finite stop, got: {message}");
    };
    assert_eq!(stage, 1);
    // Step 0 is finite (weights from the initialiser); steps 1..=max are skipped.
    assert_eq!(step, u64::from(max), "{message}");
    assert_eq!((count, reported_max), (max, max), "{message}");
    assert!(!value.is_finite(), "{message}");
    assert!(
        ["rec", "kl", "bound"].contains(&term.as_str()),
        "the error must blame the broken component, not `total`: {message}"
    );
    assert!(
        message.contains(&format!("step {step}")) && message.contains(&format!("`{term}`")),
        "{message}"
    );
}
