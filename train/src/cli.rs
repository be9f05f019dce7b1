//! `dpersona train` and `dpersona eval` arguments and entry points.
//! (Placeholder signatures: the trainer work fills them in.)
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// Manifest written by `dpersona ingest`.
    #[arg(long)]
    pub manifest: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// Output metric frame.
    #[arg(long, default_value = "results.parquet")]
    pub out: PathBuf,
}

pub fn run_train(_args: TrainArgs) -> anyhow::Result<()> {
    anyhow::bail!("`dpersona train` is not implemented yet")
}

pub fn run_eval(_args: EvalArgs) -> anyhow::Result<()> {
    anyhow::bail!("`dpersona eval` is not implemented yet")
}
