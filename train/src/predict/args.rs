//! `dpersona predict` arguments and entry point.
use std::path::PathBuf;

use crate::cli::{DeviceArg, StageArg};

use super::{predict_cases, PredictOptions, UNCERTAINTY_MEASURE};

#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct PredictArgs {
    /// Trained run folder (`dpersona train --out`). The channels, their order and the
    /// preprocessing come from the manifest the run was trained on.
    #[arg(long)]
    pub run: PathBuf,
    /// Images to predict: NIfTI files (one per channel, `CASE_0000.nii.gz`, `CASE_0001...`,
    /// numbered in the run's channel order), folders of them, or an nnU-Net dataset
    /// folder holding `imagesTs/`; for runs trained on CT crops (LIDC-style), DICOM series
    /// folders (the case is named after the folder).
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,
    /// Output folder: one sub-folder per case and `predict.json`. Cases already there are
    /// skipped (a rerun fills in the rest).
    #[arg(long)]
    pub out: PathBuf,
    /// Stage I samples per case (sample_01 .. sample_N, their mean and uncertainty).
    #[arg(long, default_value_t = 10)]
    pub samples: u32,
    /// Stage II bank size M (prior draws the rater heads attend over; eval's default).
    #[arg(long, default_value_t = 500)]
    pub bank: u32,
    /// Stage(s) to run. Default: every stage with a best checkpoint.
    #[arg(long, value_enum)]
    pub stage: Option<StageArg>,
    /// Seed reset per case and stage (eval's default, so predictions match eval's).
    #[arg(long, default_value_t = 1337)]
    pub seed: u64,
    /// Where to run: auto (CUDA if available, else CPU), cpu or cuda.
    #[arg(long, value_enum, default_value = "auto")]
    pub device: DeviceArg,
    /// Slices per forward pass (eval's default; the draws depend on it, see predict.json).
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// libtorch intra-op threads (default: libtorch's choice).
    #[arg(long)]
    pub threads: Option<i32>,
    /// Also write every map on the model's grid in CASE/model_grid/ (float32, planes in
    /// slice_index order), to compare with `dpersona eval --save-predictions`.
    #[arg(long)]
    pub save_model_grid: bool,
    /// Crop centres for runs trained on crops around a target (LIDC-style; required
    /// there): CSV with a header `case,x,y,z[,unit]` or JSON `[{"case", "x", "y", "z",
    /// "unit"}]`; unit `voxel` (default: x = column, y = row, z = slice index, slices
    /// ordered by z) or `mm` (patient coordinates as ImagePositionPatient). One row = one
    /// crop on one slice.
    #[arg(long, value_name = "FILE")]
    pub roi: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

const AFTER_HELP: &str = "Outputs, on each input's grid (same shape and affine):
  OUT/CASE/rater_K.nii.gz      Stage II: rater K's personalised mask (uint8 0/1)
  OUT/CASE/sample_01.nii.gz .. Stage I: sample probabilities (float32)
  OUT/CASE/mean.nii.gz         Stage I: mean probability
  OUT/CASE/uncertainty.nii.gz  Stage I: per-voxel variance of the sample probabilities
  OUT/CASE/seg.dcm             DICOM input: the Stage II masks as a DICOM SEG (a segment per rater)
  OUT/predict.json             run, checkpoint SHA-256s, seed, conventions, case list

Runs trained on crops around a target (LIDC-style) take DICOM series folders and --roi.";

pub fn run_predict(args: PredictArgs) -> anyhow::Result<()> {
    schemas::host_memory::keep_freed_memory();
    if let Some(n) = args.threads {
        tch::set_num_threads(n);
    }
    let stages = match args.stage {
        None => Vec::new(),
        Some(StageArg::One) => vec![1],
        Some(StageArg::Two) => vec![2],
        Some(StageArg::Both) => vec![1, 2],
    };
    let summary = predict_cases(&PredictOptions {
        run: args.run.clone(),
        inputs: args.inputs.clone(),
        out: args.out.clone(),
        samples: args.samples,
        bank: args.bank,
        stages,
        seed: args.seed,
        device: args.device.device()?,
        batch_size: args.batch_size,
        save_model_grid: args.save_model_grid,
        progress: !args.quiet,
        roi: args.roi.clone(),
    })?;
    println!(
        "predicted {} case{}, skipped {} already in {}, {} failed (uncertainty = {})",
        summary.predicted.len(),
        if summary.predicted.len() == 1 {
            ""
        } else {
            "s"
        },
        summary.skipped.len(),
        args.out.display(),
        summary.failed.len(),
        UNCERTAINTY_MEASURE.split(':').next().unwrap_or("variance")
    );
    if !summary.failed.is_empty() {
        anyhow::bail!(
            "{} case{} could not be predicted: {}",
            summary.failed.len(),
            if summary.failed.len() == 1 { "" } else { "s" },
            summary
                .failed
                .iter()
                .map(|e| e.case.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}
