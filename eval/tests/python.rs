//! Finding the project's Python (shared by the integration tests).
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("eval/ has a parent")
        .to_path_buf()
}

/// `$DPERSONA_PYTHON`, else `<root>/.venv/bin/python`; panics if neither exists.
pub fn python() -> PathBuf {
    if let Ok(p) = std::env::var("DPERSONA_PYTHON") {
        if Path::new(&p).exists() {
            return PathBuf::from(p);
        }
    }
    let venv = workspace_root().join(".venv/bin/python");
    assert!(
        venv.exists(),
        "no Python for the cross-checks: set DPERSONA_PYTHON or run `make setup` to create {}",
        venv.display()
    );
    venv
}

/// Runs `python tests/py/<script> args...`, panicking with its output on failure; returns stdout.
pub fn run_py(script: &str, args: &[&str]) -> String {
    let out = Command::new(python())
        .arg(workspace_root().join("tests/py").join(script))
        .args(args)
        .output()
        .expect("python starts");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{script} {args:?} failed:\n{stdout}\n{stderr}"
    );
    print!("{stdout}");
    stdout
}
