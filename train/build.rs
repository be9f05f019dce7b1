//! Link fix-ups for libtorch taken from the PyPI `torch` wheel.
//!
//! torch-sys emits no rpath, so without one the binary cannot find `libtorch*.so` at run
//! time, and the linker's `--as-needed` drops `libtorch_cuda.so` because no symbol of it is
//! referenced directly: CUDA would then never be seen. torch-sys publishes the library folder
//! as `DEP_TCH_LIBTORCH_LIB` to packages that depend on it directly, which is why the root
//! package lists `torch-sys` among its dependencies.
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        println!("cargo:warning=DEP_TCH_LIBTORCH_LIB not set: no rpath to libtorch emitted");
        return;
    };
    for flag in rpath_flags(Path::new(&lib)) {
        println!("cargo:rustc-link-arg={flag}");
    }
}

/// The linker arguments for one libtorch folder: an rpath, and libtorch_cuda kept linked
/// when the folder has it (CPU-only wheels do not).
fn rpath_flags(lib: &Path) -> Vec<String> {
    let mut flags = vec![format!("-Wl,-rpath,{}", lib.display())];
    if lib.join("libtorch_cuda.so").exists() {
        flags.push("-Wl,--no-as-needed".into());
        flags.push("-ltorch_cuda".into());
        flags.push("-Wl,--as-needed".into());
    }
    flags
}
