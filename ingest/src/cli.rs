//! `dpersona synth` and `dpersona ingest` arguments and entry points.
//! (Placeholder signatures: the ingest work fills them in.)
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct SynthArgs {
    /// Output folder.
    pub out: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct IngestArgs {
    /// Raw input folder.
    pub raw: PathBuf,
}

pub fn run_synth(_args: SynthArgs) -> anyhow::Result<()> {
    anyhow::bail!("`dpersona synth` is not implemented yet")
}

pub fn run_ingest(_args: IngestArgs) -> anyhow::Result<()> {
    anyhow::bail!("`dpersona ingest` is not implemented yet")
}
