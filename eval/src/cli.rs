//! `dpersona report` arguments and entry point.
//! (Placeholder signature: the evaluator work fills it in.)
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Metric frame written by `dpersona eval`.
    pub results: PathBuf,
}

pub fn run_report(_args: ReportArgs) -> anyhow::Result<()> {
    anyhow::bail!("`dpersona report` is not implemented yet")
}
