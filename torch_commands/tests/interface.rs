//! The library's C interface as the `dpersona` binary uses it: loaded with dlopen, it
//! reports its interface version and dpersona version, and runs a command line.
use std::ffi::{c_char, c_int, CStr, CString};
use std::path::PathBuf;

/// cargo builds this crate's cdylib (with the rlib this test links) into the folder that
/// holds this test executable, target/<profile>/deps/.
fn library() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().unwrap().join("libdpersona_torch.so");
    assert!(path.is_file(), "{} was not built", path.display());
    path
}

#[test]
fn reports_its_versions_and_runs_a_command_line() {
    let lib = unsafe { libloading::Library::new(library()) }.expect("dlopen");
    unsafe {
        let abi: libloading::Symbol<extern "C" fn() -> u32> =
            lib.get(b"dpersona_torch_abi\0").unwrap();
        assert_eq!(abi(), torch_commands_abi());
        let version: libloading::Symbol<extern "C" fn() -> *const c_char> =
            lib.get(b"dpersona_torch_version\0").unwrap();
        assert_eq!(
            CStr::from_ptr(version()).to_str().unwrap(),
            env!("CARGO_PKG_VERSION")
        );
        let main: libloading::Symbol<unsafe extern "C" fn(c_int, *const *const c_char) -> c_int> =
            lib.get(b"dpersona_torch_main\0").unwrap();
        let run = |args: &[&str]| {
            let owned: Vec<CString> = args.iter().map(|a| CString::new(*a).unwrap()).collect();
            let ptrs: Vec<*const c_char> = owned.iter().map(|s| s.as_ptr()).collect();
            main(ptrs.len() as c_int, ptrs.as_ptr())
        };
        assert_eq!(run(&["dpersona", "train", "--help"]), 0, "help exits 0");
        assert_eq!(
            run(&["dpersona", "eval", "--no-such-flag"]),
            2,
            "usage error is 2"
        );
        assert_eq!(
            run(&[
                "dpersona",
                "train",
                "--manifest",
                "/nonexistent/manifest.parquet"
            ]),
            1,
            "a failing command is 1"
        );
    }
}

/// The interface version the binary expects (src/torch_commands.rs `ABI`).
fn torch_commands_abi() -> u32 {
    let src = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../src/torch_commands.rs"
    ))
    .unwrap();
    let line = src
        .lines()
        .find(|l| l.starts_with("const ABI: u32 = "))
        .expect("the binary declares its ABI");
    line.trim_start_matches("const ABI: u32 = ")
        .trim_end_matches(';')
        .parse()
        .unwrap()
}
