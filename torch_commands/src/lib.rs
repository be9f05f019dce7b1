//! The commands that need libtorch (`train`, `eval`, `predict`), built as `libdpersona_torch.so`.
//!
//! Why a separate shared library: loading libtorch costs about half a second and ~450 MB of
//! resident memory at process start (its static initialisers register thousands of
//! operators), whether or not a command uses it. `synth`, `ingest` and `report` never do,
//! so the `dpersona` binary does not link libtorch; it loads this library with `dlopen` only
//! when the user runs `train` or `eval`, and hands it the command line. The library parses
//! it with the same clap definitions as before (`train::cli`), so help and errors read as
//! they did when everything lived in one binary.
//!
//! The interface is three C functions; [`DPERSONA_TORCH_ABI`] changes whenever they do, and
//! the binary refuses a library built for another interface or another dpersona version.
use std::ffi::{c_char, c_int, CStr, OsString};
use std::os::unix::ffi::OsStringExt;
use std::panic::{catch_unwind, AssertUnwindSafe};

use clap::{Parser, Subcommand};

/// Version of the C interface below (the binary checks it before calling anything else).
pub const DPERSONA_TORCH_ABI: u32 = 1;

#[derive(Parser)]
#[command(name = "dpersona", version)]
struct TorchCli {
    #[command(subcommand)]
    command: TorchCommand,
}

#[derive(Subcommand)]
enum TorchCommand {
    /// Train D-Persona (Stage I and II) or a baseline on an ingested manifest.
    Train(train::cli::TrainArgs),
    /// Score a trained run (or predictions made by any tool) into a Parquet metric frame.
    Eval(train::cli::EvalArgs),
    /// Apply a trained run to unlabelled scans: rater masks, samples, mean, uncertainty.
    Predict(train::predict::args::PredictArgs),
    /// What a trained D-Persona's latent space carries: KL per dimension, bank diversity,
    /// best-of-bank Dice per rater, Stage-II attention.
    Diagnose(train::cli::DiagnoseArgs),
}

/// The interface version this library implements.
#[no_mangle]
pub extern "C" fn dpersona_torch_abi() -> u32 {
    DPERSONA_TORCH_ABI
}

/// The dpersona version this library was built from, NUL-terminated, static.
#[no_mangle]
pub extern "C" fn dpersona_torch_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// Runs `dpersona train ...` or `dpersona eval ...`: `argv[0]` is the program name,
/// `argv[1]` the command. Returns the process exit code: 0 on success, 1 when the command
/// failed (the error is printed to stderr), clap's code for usage errors (2) and for
/// `--help` (0), 101 when it panicked.
///
/// # Safety
/// `argv` must point to `argc` valid NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn dpersona_torch_main(argc: c_int, argv: *const *const c_char) -> c_int {
    let args: Vec<OsString> = (0..argc.max(0) as usize)
        .map(|i| {
            // SAFETY: the caller guarantees argc valid C strings.
            let s = unsafe { CStr::from_ptr(*argv.add(i)) };
            OsString::from_vec(s.to_bytes().to_vec())
        })
        .collect();
    match catch_unwind(AssertUnwindSafe(|| run(args))) {
        Ok(code) => code,
        Err(_) => {
            eprintln!("error: dpersona panicked (a bug: please report it with the message above)");
            101
        }
    }
}

fn run(args: Vec<OsString>) -> c_int {
    let cli = match TorchCli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            // Prints help/version to stdout and usage errors to stderr, as clap's exit would.
            let _ = e.print();
            return e.exit_code();
        }
    };
    let result = match cli.command {
        TorchCommand::Train(args) => train::cli::run_train(args),
        TorchCommand::Eval(args) => train::cli::run_eval(args),
        TorchCommand::Predict(args) => train::predict::args::run_predict(args),
        TorchCommand::Diagnose(args) => train::cli::run_diagnose(args),
    };
    match result {
        Ok(()) => 0,
        Err(err) => {
            eprintln!("error: {}", schemas::error::one_line(err.as_ref()));
            1
        }
    }
}
