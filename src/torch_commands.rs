//! Runs `train` and `eval` in `libdpersona_torch.so` (crate `torch_commands`), loaded only
//! for them so that `synth`, `ingest` and `report` start without libtorch (about half a
//! second and ~450 MB less per process). See that crate's doc for the interface.
use std::ffi::{c_char, c_int, CStr, CString, OsString};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

/// The interface version this binary speaks (must equal the library's).
const ABI: u32 = 1;
/// File name cargo gives the `torch_commands` cdylib on Linux.
const LIB_FILE: &str = "libdpersona_torch.so";
/// Overrides where the library is looked for (a full path to the .so).
const LIB_ENV: &str = "DPERSONA_TORCH_LIB";

/// Runs `dpersona <command> <args>` in the torch library and returns its exit code.
pub fn run(command: &str, args: &[OsString]) -> anyhow::Result<i32> {
    let path = locate()?;
    // SAFETY: loading runs libtorch's static initialisers, which is what every torch
    // program does at start-up; the library is never unloaded (std::process::exit follows).
    let lib = unsafe { libloading::Library::new(&path) }.with_context(|| {
        format!(
            "loading {} (the libtorch half of dpersona) failed; the message names the missing \
             or broken library (a moved .venv? run `make` again)",
            path.display()
        )
    })?;
    check_interface(&lib, &path)?;
    let mut argv: Vec<CString> = vec![c"dpersona".to_owned(), CString::new(command)?];
    for a in args {
        argv.push(
            CString::new(a.as_bytes()).with_context(|| {
                format!("argument {:?} contains a NUL byte", a.to_string_lossy())
            })?,
        );
    }
    let ptrs: Vec<*const c_char> = argv.iter().map(|s| s.as_ptr()).collect();
    // Anything this binary buffered must come out before the library prints.
    std::io::stdout().flush().ok();
    // SAFETY: the symbol has this signature in interface version ABI (checked above); ptrs
    // holds argv.len() valid C strings that outlive the call.
    let code = unsafe {
        let main: libloading::Symbol<unsafe extern "C" fn(c_int, *const *const c_char) -> c_int> =
            lib.get(b"dpersona_torch_main\0")?;
        main(ptrs.len() as c_int, ptrs.as_ptr())
    };
    // Keep libtorch loaded until the process exits: unloading it is not supported.
    std::mem::forget(lib);
    Ok(code)
}

/// `$DPERSONA_TORCH_LIB`, else the library next to this executable (where `cargo build`
/// puts it) or in `deps/` beside it (where `cargo test` leaves it: it builds the library
/// for torch_commands' own tests without copying it up), the newer of the two when both
/// exist (the other is then left from an earlier build), else `../lib/` (an installed
/// layout).
fn locate() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os(LIB_ENV) {
        let p = PathBuf::from(p);
        if !p.is_file() {
            bail!("{LIB_ENV}={} is not a file", p.display());
        }
        return Ok(p);
    }
    let exe = std::env::current_exe().context("finding the dpersona executable")?;
    let dir = exe.parent().unwrap_or(Path::new("."));
    let built = [dir.join(LIB_FILE), dir.join("deps").join(LIB_FILE)];
    let newest = built
        .iter()
        .filter_map(|p| Some((p.metadata().ok()?.modified().ok()?, p)))
        .max_by_key(|(modified, _)| *modified);
    if let Some((_, p)) = newest {
        return Ok(p.clone());
    }
    let installed = dir.join("../lib").join(LIB_FILE);
    if installed.is_file() {
        return Ok(installed);
    }
    bail!(
        "`dpersona train` and `dpersona eval` need {LIB_FILE} (libtorch lives there); looked \
         in {}, {} and {}. Build it with `make demo` or `cargo build --release -p \
         torch_commands`, or point {LIB_ENV} at it",
        built[0].display(),
        built[1].display(),
        installed.display()
    )
}

/// Refuses a library from another interface version or another dpersona version.
fn check_interface(lib: &libloading::Library, path: &Path) -> anyhow::Result<()> {
    // SAFETY: both symbols are plain functions without arguments in every interface version.
    let (abi, version) = unsafe {
        let abi: libloading::Symbol<extern "C" fn() -> u32> = lib
            .get(b"dpersona_torch_abi\0")
            .with_context(|| format!("{} is not a dpersona torch library", path.display()))?;
        let version: libloading::Symbol<extern "C" fn() -> *const c_char> =
            lib.get(b"dpersona_torch_version\0")?;
        (
            abi(),
            CStr::from_ptr(version()).to_string_lossy().into_owned(),
        )
    };
    let ours = env!("CARGO_PKG_VERSION");
    if abi != ABI || version != ours {
        bail!(
            "{} is from dpersona {version} (interface {abi}) but this binary is dpersona {ours} \
             (interface {ABI}); rebuild both with `make demo`",
            path.display()
        );
    }
    Ok(())
}
