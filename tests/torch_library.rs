//! libtorch is loaded by the commands that need it and only by them.
//!
//! glibc's dynamic loader lists every library it loads under `LD_DEBUG=libs`; that list is
//! the ground truth of what a process pulled in, independent of our code.
use std::process::Command;

/// The libraries `dpersona ARGS` loaded, from the loader's own log, and its stdout.
fn loaded_by(args: &[&str]) -> (String, String) {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dpersona"))
        .current_dir(tmp.path())
        .args(args)
        .env("LD_DEBUG", "libs")
        .output()
        .expect("spawn dpersona");
    assert!(
        out.status.success(),
        "dpersona {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let loads: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("calling init:"))
        .collect();
    assert!(
        !loads.is_empty(),
        "LD_DEBUG=libs printed no loads:\n{stderr}"
    );
    (
        loads.join("\n"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn torch_free_commands_do_not_load_libtorch() {
    for args in [
        &["--help"][..],
        &["synth", "lidc", "raw", "--studies", "1"][..],
        &["report", "--help"][..],
    ] {
        let (loads, _) = loaded_by(args);
        assert!(
            !loads.contains("libtorch") && !loads.contains("libc10"),
            "dpersona {} loaded libtorch:\n{loads}",
            args.join(" ")
        );
    }
}

#[test]
fn train_and_eval_load_libtorch_with_its_cuda_library() {
    let (loads, stdout) = loaded_by(&["train", "--help"]);
    assert!(stdout.contains("--manifest"), "train --help:\n{stdout}");
    assert!(loads.contains("libtorch_cpu.so"), "{loads}");
    assert!(loads.contains("libdpersona_torch.so"), "{loads}");
    // The wheel's CUDA build ships libtorch_cuda.so: it must be loaded too, or CUDA would
    // never be seen (the build script keeps it linked against --as-needed).
    let wheel_has_cuda = loads
        .lines()
        .find(|l| l.contains("libtorch_cpu.so"))
        .and_then(|l| l.split("calling init:").nth(1))
        .map(|p| {
            std::path::Path::new(p.trim())
                .with_file_name("libtorch_cuda.so")
                .exists()
        })
        .unwrap();
    if wheel_has_cuda {
        assert!(loads.contains("libtorch_cuda.so"), "{loads}");
    }
    let (_, help) = loaded_by(&["help", "eval"]);
    assert!(help.contains("--predictions"), "help eval:\n{help}");
}
