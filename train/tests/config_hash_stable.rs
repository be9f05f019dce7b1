//! A `config.toml` written by dpersona before `optim.schedule`,
//! `stage2.mask_absent_raters` and `model.head_query_relu` existed (`make demo`'s run on main,
//! demo_out/runs/demo/config.toml; its checkpoints record config_hash 538600d8...) must parse and re-serialise
//! byte for byte, so that its hash, and the resume check that compares it, are unchanged.
use train::config::TrainConfig;

#[test]
fn old_config_toml_keeps_its_hash() {
    let old = include_str!("data/config_small_before_schedule.toml");
    let cfg = TrainConfig::from_toml_str(old, "config_small_before_schedule.toml").unwrap();
    assert_eq!(cfg.to_toml(), old);
    assert_eq!(
        cfg.hash(),
        "538600d89dc3e4ba05d782b494cb8ae3b39c90967272056606a5234c1a70f247"
    );
    assert!(!cfg.stage2.mask_absent_raters);
    assert!(cfg.model.head_query_relu);
    assert!(cfg.optim.schedule.is_default());
}
