//! The `dpersona` command: a thin clap front over the stage crates.
use clap::{Parser, Subcommand};

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
    Train(train::cli::TrainArgs),
    /// Score a trained run (or predictions made by any tool) into a Parquet metric frame.
    Eval(train::cli::EvalArgs),
    /// Print paper-style tables from a metric frame and write figures.
    Report(eval::cli::ReportArgs),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Synth(args) => ingest::cli::run_synth(args),
        Command::Ingest(args) => ingest::cli::run_ingest(args),
        Command::Train(args) => train::cli::run_train(args),
        Command::Eval(args) => train::cli::run_eval(args),
        Command::Report(args) => eval::cli::run_report(args),
    };
    if let Err(err) = result {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}
