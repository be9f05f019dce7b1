//! The `dpersona` command: a thin clap front over the stage crates.
//!
//! `train` and `eval` need libtorch; they run in `libdpersona_torch.so`, loaded only for
//! them (see [`torch_commands`]), so the other commands start without it.
mod torch_commands;

use std::ffi::OsString;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "dpersona",
    version,
    about = "Multi-rater medical image segmentation: D-Persona and baselines, from DICOM/NIfTI to paper tables",
    long_about = "Multi-rater medical image segmentation: D-Persona (Wu et al., CVPR 2024) and its baselines.\n\n\
Typical session:\n  \
dpersona synth lidc ./raw               # synthetic multi-rater studies in real formats\n  \
dpersona ingest lidc ./raw --out data   # DICOM/NIfTI studies -> Parquet slice shards + manifest\n  \
dpersona train --manifest data/manifest.parquet --out runs/a\n  \
dpersona eval --run runs/a --out results.parquet\n  \
dpersona report results.parquet         # paper-style tables and figures"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write synthetic multi-rater studies in real formats (DICOM + LIDC XML, or NIfTI).
    Synth(ingest::cli::SynthArgs),
    /// Convert DICOM/NIfTI multi-rater studies into Parquet slice shards and a manifest.
    Ingest(ingest::cli::IngestArgs),
    /// Train D-Persona (Stage I and II) or a baseline on an ingested manifest.
    ///
    /// Options: `dpersona train --help`.
    #[command(disable_help_flag = true, disable_version_flag = true)]
    Train(TorchArgs),
    /// Score a trained run (or predictions made by any tool) into a Parquet metric frame.
    ///
    /// Options: `dpersona eval --help`.
    #[command(disable_help_flag = true, disable_version_flag = true)]
    Eval(TorchArgs),
    /// Apply a trained run to unlabelled scans (NIfTI, or DICOM with --roi): each rater's
    /// mask, samples, mean and uncertainty on the input's grid, and a DICOM SEG for DICOM.
    ///
    /// Options: `dpersona predict --help`.
    #[command(disable_help_flag = true, disable_version_flag = true)]
    Predict(TorchArgs),
    /// What a trained D-Persona's latent space carries, per slice: KL per latent dimension
    /// (posterior collapse), how many distinct masks the prior's draws decode to, the best
    /// draw's Dice per rater, and Stage II's attention over the bank.
    ///
    /// Options: `dpersona diagnose --help`.
    #[command(disable_help_flag = true, disable_version_flag = true)]
    Diagnose(TorchArgs),
    /// Print paper-style tables from a metric frame and write figures.
    Report(eval::cli::ReportArgs),
}

/// The arguments of a command that runs in the torch library, passed on unparsed: the
/// library parses them (and answers `--help`) with the command's own clap definitions.
#[derive(Args)]
struct TorchArgs {
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        num_args = 0..,
        value_name = "OPTIONS"
    )]
    args: Vec<OsString>,
}

fn main() {
    quiet_library_backtraces();
    // `dpersona help train` shows the command's real options, which live in the library.
    let argv: Vec<OsString> = std::env::args_os().collect();
    if let [_, help, command] = argv.as_slice() {
        if help == "help"
            && matches!(
                command.to_str(),
                Some("train" | "eval" | "predict" | "diagnose")
            )
        {
            let command = command.to_string_lossy();
            if let Err(err) = exit_with(torch_commands::run(&command, &["--help".into()])) {
                fail(err);
            }
        }
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Synth(args) => ingest::cli::run_synth(args),
        Command::Ingest(args) => ingest::cli::run_ingest(args),
        Command::Train(args) => exit_with(torch_commands::run("train", &args.args)),
        Command::Eval(args) => exit_with(torch_commands::run("eval", &args.args)),
        Command::Predict(args) => exit_with(torch_commands::run("predict", &args.args)),
        Command::Diagnose(args) => exit_with(torch_commands::run("diagnose", &args.args)),
        Command::Report(args) => eval::cli::run_report(args),
    };
    if let Err(err) = result {
        fail(err);
    }
}

/// Turns off backtrace capture in library errors unless the user asked for it with
/// `RUST_LIB_BACKTRACE`. dpersona prints every error as one line of causes
/// ([`fail`]) and never shows an error's backtrace, yet with `RUST_BACKTRACE=1` set (for
/// panics, where it still applies) libraries capture one for every error they create:
/// dicom-pixeldata creates and drops three while probing optional attributes of each
/// slice it decodes, which was 3% of ingest's CPU time. Runs first in `main`, before any
/// thread exists, as setting the environment requires.
fn quiet_library_backtraces() {
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
}

/// Prints the error with its causes on one line and exits with status 1.
fn fail(err: anyhow::Error) -> ! {
    eprintln!("error: {}", schemas::error::one_line(err.as_ref()));
    std::process::exit(1)
}

/// Exits with the torch library's exit code (it printed its own errors).
fn exit_with(code: anyhow::Result<i32>) -> anyhow::Result<()> {
    std::process::exit(code?)
}
