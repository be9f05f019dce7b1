//! Where the integration tests find the workspace and the Python that holds the
//! independent references (pydicom, nibabel, pylidc, scipy, polars).
#![allow(dead_code)]
use std::path::{Path, PathBuf};

/// The workspace root (tests/py scripts live under it).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `$DPERSONA_PYTHON` (set by the Makefile and scripts/env.sh), else the workspace's
/// `.venv/bin/python`; `make test` always creates the latter.
pub fn python() -> PathBuf {
    if let Ok(p) = std::env::var("DPERSONA_PYTHON") {
        if Path::new(&p).exists() {
            return PathBuf::from(p);
        }
    }
    let p = workspace_root().join(".venv/bin/python");
    assert!(
        p.exists(),
        "no Python: set DPERSONA_PYTHON or run `make setup` to create {}",
        p.display()
    );
    p
}

/// Runs `tests/py/<script>` with `args` under [`python`]; prints and returns whether it
/// exited 0 and its stdout + stderr, for the caller's assertions.
pub fn run_script(script: &str, args: &[&std::ffi::OsStr]) -> (bool, String) {
    let out = std::process::Command::new(python())
        .arg(workspace_root().join("tests/py").join(script))
        .args(args)
        .output()
        .expect("run python");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    (out.status.success(), text)
}
