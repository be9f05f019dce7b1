//! `dpersona synth` and `dpersona ingest`: arguments and entry points.
//!
//! `synth` writes synthetic multi-rater studies in the real on-disk formats; `ingest`
//! turns a raw folder of studies into Parquet slice shards and a manifest through
//! [`crate::pipeline::run_ingest`], which is format-agnostic: this module only builds the
//! format from its flags.
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::lidc::{LidcFormat, LidcParams};
use crate::lidc_pickle::{LidcPickleFormat, LidcPickleParams, SplitUnit};
use crate::nifti::{CropMode, NiftiFormat, NiftiParams};
use crate::pipeline::{self, IngestOptions, DEFAULT_SHARD_ROWS};
use crate::study::SourceFormat;

/// Which kind of synthetic studies to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SynthKind {
    /// CT DICOM series with LIDC-IDRI XML reads of four raters (under OUT/LIDC-IDRI/).
    Lidc,
    /// NIfTI volumes (t1, t1c, t2) with one label file per rater (nnU-Net-like layout).
    Nifti,
}

#[derive(Debug, clap::Args)]
pub struct SynthArgs {
    /// Format of the studies to write.
    #[arg(value_enum)]
    pub format: SynthKind,
    /// Output folder (created if missing); give it to `dpersona ingest` next.
    #[arg(default_value = "raw")]
    pub out: PathBuf,
    /// Number of studies (one patient each) to write.
    #[arg(long, default_value_t = 12)]
    pub studies: usize,
    /// Seed of the synthetic anatomy and raters: the same seed writes the same studies.
    #[arg(long, default_value_t = 1337)]
    pub seed: u64,
}

#[derive(Debug, clap::Args)]
pub struct IngestArgs {
    #[command(subcommand)]
    pub format: IngestFormat,
}

/// The source format of the raw folder.
#[derive(Debug, clap::Subcommand)]
pub enum IngestFormat {
    /// LIDC-IDRI: CT DICOM series plus LIDC XML reads (up to 4 raters per nodule).
    Lidc {
        #[command(flatten)]
        common: IngestCommon,
        /// Lower end of the CT window in HU: mapped to 0, lower values clip.
        #[arg(long, default_value_t = LidcParams::default().window_lo, allow_negative_numbers = true)]
        window_lo: f32,
        /// Upper end of the CT window in HU: mapped to 1, higher values clip.
        #[arg(long, default_value_t = LidcParams::default().window_hi, allow_negative_numbers = true)]
        window_hi: f32,
        /// Keep the contour pixels themselves in the masks (pylidc's
        /// include_contour_points=True); by default they are left out, as pylidc does.
        #[arg(long)]
        include_contour: bool,
    },
    /// NIfTI volumes with one label file per rater (nnU-Net-like layout with dataset.json).
    Nifti {
        #[command(flatten)]
        common: IngestCommon,
        /// Crop each slice at native resolution instead of resampling it (nearest
        /// neighbour, scipy `zoom(order=0)`) to --crop-size, as the paper's NPC loader does.
        #[arg(long)]
        no_resample: bool,
        /// Where the crop window sits when cropping (--no-resample): `centre` of the slice
        /// grid, or `union-box`, centred on every rater's marks over the whole volume.
        #[arg(long, value_enum, default_value_t = CropArg::Centre)]
        crop_mode: CropArg,
        /// Share (0 to 1) of the slices that no rater marks kept as negative examples.
        #[arg(long, default_value_t = NiftiParams::default().empty_slice_share)]
        empty_slice_share: f64,
        /// Seed of the choice of kept unmarked slices.
        #[arg(long, default_value_t = NiftiParams::default().empty_slice_seed)]
        empty_slice_seed: u64,
    },
    /// A preprocessed LIDC pickle FILE of 2D crops (MedicalMatting's lidc_attributes.pkl
    /// or the Prob. U-Net port's data_lidc.pickle), read without executing it.
    ///
    /// Folds are the authors' exactly (numpy's seed 1337 shuffle, sklearn KFold(4)), not
    /// the patient-level draw: --folds, --split-seed, --val-fraction and --test-fraction do
    /// not apply and are refused when set to anything but their defaults. Fold 0 is the
    /// `test` split, folds 1-3 `train` (no `val`: the authors validate on the test fold),
    /// so a run without --fold uses the authors' fold 0.
    LidcPickle {
        #[command(flatten)]
        common: IngestCommon,
        /// Shuffle items (`image`, the paper's numbers) or patients (`patient`) into folds.
        #[arg(long, value_enum, default_value_t = SplitProtocolArg::Image)]
        split_protocol: SplitProtocolArg,
    },
}

/// `--split-protocol` values of `ingest lidc-pickle`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SplitProtocolArg {
    /// Shuffle the items (images) and cut them into 4 folds: what the paper's numbers used.
    Image,
    /// Shuffle the patients (series_uid before the first `_`): the authors' later fix.
    Patient,
}

/// `--crop-mode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CropArg {
    Centre,
    UnionBox,
}

/// Flags every format shares.
#[derive(Debug, clap::Args)]
pub struct IngestCommon {
    /// Raw input folder (for example written by `dpersona synth`).
    pub raw: PathBuf,
    /// Output folder: shards in OUT/shards/, OUT/manifest.parquet, OUT/rejects.parquet.
    /// Rerunning into the same folder resumes: studies already in finished shards are
    /// skipped.
    #[arg(long, default_value = "data")]
    pub out: PathBuf,
    /// Stop at the first study that cannot be read, with its error, instead of listing it
    /// in rejects.parquet and going on.
    #[arg(long)]
    pub strict: bool,
    /// Delete the shards, manifest and rejects of an earlier ingest in --out first (needed
    /// when it was made with other parameters; nothing else in the folder is touched).
    #[arg(long)]
    pub overwrite: bool,
    /// Studies read in parallel (default: one per CPU core). Memory grows with it: about
    /// 3 decoded studies per thread are alive at once.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Cross-validation folds, assigned per patient (every study of a patient in one fold).
    #[arg(long, default_value_t = 4)]
    pub folds: u32,
    /// Seed of the patient-level fold and train/val/test assignment.
    #[arg(long, default_value_t = 1337)]
    pub split_seed: u64,
    /// Share of patients in the `val` split (rounded to whole patients).
    #[arg(long, default_value_t = 0.1)]
    pub val_fraction: f64,
    /// Share of patients in the `test` split (rounded to whole patients).
    #[arg(long, default_value_t = 0.2)]
    pub test_fraction: f64,
    /// Close a shard once it holds at least this many slice rows (shards hold whole
    /// studies, so one may run over by part of a study).
    #[arg(long, default_value_t = DEFAULT_SHARD_ROWS)]
    pub shard_rows: usize,
    /// Side of the square crop around each target, in pixels (default: the format's, 128).
    #[arg(long)]
    pub crop_size: Option<u32>,
}

impl IngestCommon {
    fn options(&self) -> IngestOptions {
        IngestOptions {
            strict: self.strict,
            overwrite: self.overwrite,
            threads: self.threads,
            folds: self.folds,
            split_seed: self.split_seed,
            val_fraction: self.val_fraction,
            test_fraction: self.test_fraction,
            shard_rows: self.shard_rows,
            ..IngestOptions::default()
        }
    }
}

pub fn run_synth(args: SynthArgs) -> anyhow::Result<()> {
    match args.format {
        SynthKind::Lidc => {
            let s = crate::synth::lidc::write_dataset(&args.out, args.studies, args.seed)
                .with_context(|| {
                    format!("writing synthetic LIDC studies to {}", args.out.display())
                })?;
            println!(
                "wrote {} synthetic LIDC studies ({} DICOM files, {} XML reads, {} nodules, seed {}) to {}",
                s.studies,
                s.dicom_files,
                s.xml_files,
                s.targets,
                args.seed,
                args.out.display()
            );
        }
        SynthKind::Nifti => {
            let s = crate::synth::nifti::write_dataset(&args.out, args.studies, args.seed)
                .with_context(|| {
                    format!("writing synthetic NIfTI studies to {}", args.out.display())
                })?;
            println!(
                "wrote {} synthetic NIfTI studies ({} image files, {} label files of which {} empty, seed {}) to {}",
                s.studies,
                s.image_files,
                s.label_files,
                s.empty_labels,
                args.seed,
                args.out.display()
            );
        }
    }
    println!(
        "next: dpersona ingest {} {}",
        kind_name(args.format),
        args.out.display()
    );
    Ok(())
}

fn kind_name(k: SynthKind) -> &'static str {
    match k {
        SynthKind::Lidc => "lidc",
        SynthKind::Nifti => "nifti",
    }
}

pub fn run_ingest(args: IngestArgs) -> anyhow::Result<()> {
    match args.format {
        IngestFormat::Lidc {
            common,
            window_lo,
            window_hi,
            include_contour,
        } => {
            anyhow::ensure!(
                window_lo < window_hi,
                "--window-lo ({window_lo}) must be below --window-hi ({window_hi})"
            );
            let params = LidcParams {
                crop_size: common.crop_size.unwrap_or(LidcParams::default().crop_size),
                window_lo,
                window_hi,
                include_contour,
            };
            ingest_with(&LidcFormat::new(params), &common)
        }
        IngestFormat::Nifti {
            common,
            no_resample,
            crop_mode,
            empty_slice_share,
            empty_slice_seed,
        } => {
            anyhow::ensure!(
                (0.0..=1.0).contains(&empty_slice_share),
                "--empty-slice-share must lie in [0, 1], got {empty_slice_share}"
            );
            let params = NiftiParams {
                crop_size: common.crop_size.unwrap_or(NiftiParams::default().crop_size),
                crop_mode: match crop_mode {
                    CropArg::Centre => CropMode::Centre,
                    CropArg::UnionBox => CropMode::UnionBox,
                },
                resample: !no_resample,
                empty_slice_share,
                empty_slice_seed,
            };
            ingest_with(&NiftiFormat::new(params), &common)
        }
        IngestFormat::LidcPickle {
            common,
            split_protocol,
        } => {
            refuse_split_flags(&common)?;
            let params = LidcPickleParams {
                split: match split_protocol {
                    SplitProtocolArg::Image => SplitUnit::Image,
                    SplitProtocolArg::Patient => SplitUnit::Patient,
                },
                crop_size: common.crop_size,
            };
            ingest_with(&LidcPickleFormat::new(params), &common)
        }
    }
}

/// The pickle's folds are the authors' protocol; the seeded patient-level flags would be
/// silently ignored, so anything but their defaults is refused.
fn refuse_split_flags(common: &IngestCommon) -> anyhow::Result<()> {
    let d = IngestOptions::default();
    let set: Vec<&str> = [
        (common.folds != d.folds, "--folds"),
        (common.split_seed != d.split_seed, "--split-seed"),
        (common.val_fraction != d.val_fraction, "--val-fraction"),
        (common.test_fraction != d.test_fraction, "--test-fraction"),
    ]
    .into_iter()
    .filter_map(|(set, name)| set.then_some(name))
    .collect();
    anyhow::ensure!(
        set.is_empty(),
        "{} do(es) not apply to lidc-pickle: its folds are the authors' (4 folds, numpy seed \
         1337, fold 0 = test); choose image or patient folds with --split-protocol",
        set.join(", ")
    );
    Ok(())
}

fn ingest_with(format: &dyn SourceFormat, common: &IngestCommon) -> anyhow::Result<()> {
    schemas::host_memory::keep_freed_memory();
    if let Some(c) = common.crop_size {
        anyhow::ensure!(c > 0, "--crop-size must be at least 1");
    }
    eprintln!(
        "ingest: reading {}, writing shards and the manifest to {}",
        common.raw.display(),
        display_dir(&common.out)
    );
    let summary = pipeline::run_ingest(format, &common.raw, &common.out, &common.options())
        .with_context(|| format!("ingest of {} failed", common.raw.display()))?;
    println!("{summary}");
    Ok(())
}

fn display_dir(p: &Path) -> String {
    std::path::absolute(p)
        .unwrap_or_else(|_| p.to_path_buf())
        .display()
        .to_string()
}
