//! What every crate's integration tests need to reach the independent references: the
//! workspace root (where `tests/py/` lives) and the Python in `.venv` that holds numpy,
//! scipy, pydicom, nibabel, pylidc, polars and SimpleITK.
//!
//! A dev-dependency only: no library code depends on it, and it depends on nothing, so it
//! costs nothing to build. One copy here replaces the locator each test crate once carried.
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root: this crate sits one level below it.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit/ has a parent")
        .to_path_buf()
}

/// `$DPERSONA_PYTHON` (set by the Makefile and `scripts/env.sh`), else the workspace's
/// `.venv/bin/python`, which `make test` always creates; panics with what to do if neither
/// exists, because a cross-check that silently skips would prove nothing.
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

/// Runs `tests/py/<script> ARGS` under [`python`]; prints and returns whether it exited 0
/// and its stdout followed by its stderr, for the caller's own assertions.
pub fn run_script<S: AsRef<OsStr>>(script: &str, args: &[S]) -> (bool, String) {
    let out = Command::new(python())
        .arg(workspace_root().join("tests/py").join(script))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot start {} for {script}: {e}", python().display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    (out.status.success(), text)
}

/// Runs `tests/py/<script> ARGS` and panics with its output unless it exits 0; returns
/// its stdout (the scripts print the values they compared).
pub fn run_py<S: AsRef<OsStr>>(script: &str, args: &[S]) -> String {
    let out = Command::new(python())
        .arg(workspace_root().join("tests/py").join(script))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot start {} for {script}: {e}", python().display()));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{script} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    print!("{stdout}");
    stdout
}

/// Every file under `dir` (recursively) whose extension is `ext`, sorted: the DICOM files a
/// synthetic LIDC dataset spreads over patient/study/series folders, for example.
pub fn files_with_extension(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == ext) {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

/// Serialises the tests of one test binary that draw from libtorch's random generator.
///
/// libtorch has one global generator per process (the trainer reseeds it at every step),
/// and the test harness runs a binary's tests on several threads: a test that seeds and
/// then expects its own sequence (the same initial weights from the same seed, a resumed
/// run equal to an uninterrupted one) fails whenever another test draws in between.
/// Every test of a binary that draws holds this guard for its whole run. A failed test
/// poisons the lock; the next still gets it.
pub fn torch_rng_lock() -> std::sync::MutexGuard<'static, ()> {
    static TORCH_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `program ARGS` in `cwd` and returns its output, whatever its exit status.
pub fn run_in(program: &Path, cwd: &Path, args: &[&str]) -> std::process::Output {
    Command::new(program)
        .current_dir(cwd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", program.display()))
}

/// [`run_in`], failing the test with both streams when the program exits non-zero (the
/// root package's tests pass `env!("CARGO_BIN_EXE_dpersona")`).
pub fn run_ok(program: &Path, cwd: &Path, args: &[&str]) -> std::process::Output {
    let out = run_in(program, cwd, args);
    assert!(
        out.status.success(),
        "{} {} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        program.file_name().unwrap_or_default().to_string_lossy(),
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
