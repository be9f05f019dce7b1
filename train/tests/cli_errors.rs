//! Bad input to `dpersona train`: unknown config keys, unknown presets, a file that is not
//! a manifest, an empty split — each a clear error naming what is wrong.
mod trainer_fixture;

use clap::Parser;
use train::cli::{run_train, TrainArgs};

#[derive(Parser)]
struct Cmd {
    #[command(flatten)]
    args: TrainArgs,
}

fn train_cmd(args: &[&str]) -> String {
    let cmd = Cmd::try_parse_from(std::iter::once("train").chain(args.iter().copied())).unwrap();
    format!("{:#}", run_train(cmd.args).unwrap_err())
}

#[test]
fn config_and_input_errors_name_the_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let manifest =
        trainer_fixture::write_dataset(&tmp.path().join("data"), &["train", "val"], 2, 1);
    let m = manifest.to_str().unwrap();
    let out = tmp.path().join("run");
    let o = out.to_str().unwrap();

    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "[optim]\nepochs = 3\n").unwrap();
    let err = train_cmd(&[
        "--manifest",
        m,
        "--out",
        o,
        "--preset",
        "small",
        "--config",
        bad.to_str().unwrap(),
    ]);
    assert!(err.contains("epochs") && err.contains("bad.toml"), "{err}");

    let err = train_cmd(&["--manifest", m, "--out", o, "--preset", "tiny"]);
    assert!(
        err.contains("unknown preset `tiny`") && err.contains("small"),
        "{err}"
    );

    // A Parquet file of another schema given as the manifest.
    let shard = tmp.path().join("data/shard_0000.parquet");
    let err = train_cmd(&[
        "--manifest",
        shard.to_str().unwrap(),
        "--out",
        o,
        "--preset",
        "small",
    ]);
    assert!(
        err.contains("shard_0000.parquet") && err.contains("manifest"),
        "{err}"
    );

    // No study in the `test` split, selected by --select-on test.
    let err = train_cmd(&[
        "--manifest",
        m,
        "--out",
        o,
        "--preset",
        "small",
        "--select-on",
        "test",
        "--quiet",
    ]);
    assert!(
        err.contains("split=test") && err.contains("matches no study"),
        "{err}"
    );

    // Resume of a folder that holds no run.
    let err = train_cmd(&[
        "--manifest",
        m,
        "--out",
        tmp.path().join("none").to_str().unwrap(),
        "--resume",
    ]);
    assert!(err.contains("no run to resume"), "{err}");
}
