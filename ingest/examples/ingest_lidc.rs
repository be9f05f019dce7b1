//! `dpersona ingest lidc RAW --out OUT` without the dpersona binary (which links libtorch):
//! a libtorch-free process for profiling ingest's own work (`perf record`, `/usr/bin/time`).
//!
//! Usage: `cargo run --release -p ingest --example ingest_lidc -- RAW OUT [THREADS]`
use std::path::PathBuf;

use ingest::lidc::LidcFormat;
use ingest::pipeline::{run_ingest, IngestOptions};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: ingest_lidc RAW OUT [THREADS]";
    let raw = PathBuf::from(args.next().ok_or_else(|| anyhow::anyhow!(usage))?);
    let out = PathBuf::from(args.next().ok_or_else(|| anyhow::anyhow!(usage))?);
    let threads = args.next().map(|t| t.parse()).transpose()?;
    let options = IngestOptions {
        overwrite: true,
        threads,
        progress: false,
        ..IngestOptions::default()
    };
    let summary = run_ingest(&LidcFormat::default(), &raw, &out, &options)?;
    println!("{summary}");
    Ok(())
}
