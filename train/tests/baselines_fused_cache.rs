//! The fused-label cache (`baselines::fusion::cache`) on a real manifest with real shards:
//! a second request with the same fusion parameters reuses the file (not rewritten: same
//! bytes and modification time, `reused` set), a change of any parameter (MV tie rule,
//! a STAPLE parameter) is computed into a file of another key, and two `mv` trainings on
//! the same data share one cache file that the second one does not rewrite.
mod trainer_fixture;

use std::path::Path;
use std::time::SystemTime;

use schemas::manifest::Manifest;
use train::baselines::fusion::{fused_labels, FusedLabels, Fusion, MvRule, StapleParams};
use train::baselines::BaselineSpec;
use train::trainer::{train, Stages};
use trainer_fixture::{options, small_config, write_dataset};

fn stamp(path: &Path) -> (Vec<u8>, SystemTime) {
    (
        std::fs::read(path).unwrap(),
        std::fs::metadata(path).unwrap().modified().unwrap(),
    )
}

fn foreground(l: &FusedLabels) -> f64 {
    l.rows
        .iter()
        .flat_map(|r| r.label.iter())
        .map(|&v| v as f64)
        .sum()
}

#[test]
fn same_parameters_reuse_the_cache_and_other_parameters_get_their_own() {
    let tmp = tempfile::tempdir().unwrap();
    let manifest = Manifest::read(&write_dataset(
        &tmp.path().join("data"),
        &["train", "train", "val"],
        3,
        7,
    ))
    .unwrap();
    let studies: Vec<String> = manifest
        .studies
        .iter()
        .map(|s| s.study_id.clone())
        .collect();
    let strict = Fusion::Mv {
        rule: MvRule::Strict,
    };

    let first = fused_labels(&manifest, &studies, &strict).unwrap();
    assert!(!first.reused, "nothing was cached yet");
    assert!(first.path.starts_with(manifest.dir().join("fused")));
    let before = stamp(&first.path);
    // Coarse file-system clocks: make a rewrite visible in the modification time.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let again = fused_labels(&manifest, &studies, &strict).unwrap();
    assert!(again.reused, "same parameters must reuse the cache");
    assert_eq!(again.path, first.path);
    assert_eq!(again.fingerprint, first.fingerprint);
    assert_eq!(again.rows, first.rows);
    assert_eq!(stamp(&first.path), before, "the cache file was rewritten");

    // The fixture's raters draw radii r, r, r+1, r+1: the ring between is a 2-2 tie, which
    // strict MV leaves out and inclusive MV takes in.
    let inclusive = fused_labels(
        &manifest,
        &studies,
        &Fusion::Mv {
            rule: MvRule::Inclusive,
        },
    )
    .unwrap();
    assert!(!inclusive.reused);
    assert_ne!(inclusive.path, first.path);
    assert_ne!(inclusive.fingerprint, first.fingerprint);
    assert!(
        foreground(&inclusive) > foreground(&first),
        "inclusive {} vs strict {} foreground pixels",
        foreground(&inclusive),
        foreground(&first)
    );
    assert_eq!(
        stamp(&first.path),
        before,
        "another key touched the strict file"
    );

    let staple = fused_labels(
        &manifest,
        &studies,
        &Fusion::Staple(StapleParams::default()),
    )
    .unwrap();
    assert!(!staple.reused);
    let weighted = Fusion::Staple(StapleParams {
        confidence_weight: 0.5,
        ..StapleParams::default()
    });
    let other = fused_labels(&manifest, &studies, &weighted).unwrap();
    assert!(!other.reused, "a changed STAPLE parameter must recompute");
    assert_ne!(other.path, staple.path);
    assert!(
        fused_labels(
            &manifest,
            &studies,
            &Fusion::Staple(StapleParams::default())
        )
        .unwrap()
        .reused
    );
    // A subset of studies is another selection, hence another key.
    let subset = fused_labels(&manifest, &studies[..1], &strict).unwrap();
    assert!(!subset.reused);
    assert_ne!(subset.path, first.path);
}

#[test]
fn a_second_mv_training_reuses_the_first_ones_labels() {
    let _rng = trainer_fixture::torch_rng_lock();
    tch::set_num_threads(1);
    let tmp = tempfile::tempdir().unwrap();
    let manifest = write_dataset(&tmp.path().join("data"), &["train", "val", "test"], 2, 3);
    let fused_dir = manifest.parent().unwrap().join("fused");
    let mut cfg = small_config("[optim]\nepochs_stage1 = 1\n");
    cfg.baseline = Some(BaselineSpec::Mv {
        rule: MvRule::Strict,
    });
    let files = || -> Vec<std::path::PathBuf> {
        let mut v: Vec<_> = std::fs::read_dir(&fused_dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        v.sort();
        v
    };
    train(&options(
        &manifest,
        &tmp.path().join("a"),
        cfg.clone(),
        Stages::Both,
    ))
    .unwrap();
    let after_first = files();
    assert_eq!(after_first.len(), 1, "{after_first:?}");
    let before = stamp(&after_first[0]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    train(&options(
        &manifest,
        &tmp.path().join("b"),
        cfg,
        Stages::Both,
    ))
    .unwrap();
    assert_eq!(
        files(),
        after_first,
        "the second run wrote another cache file"
    );
    assert_eq!(
        stamp(&after_first[0]),
        before,
        "the second run recomputed the cache"
    );
}
