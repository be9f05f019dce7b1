//! `dpersona report`: the paper's Table 1/2 from a metric frame, and figures.
use std::path::PathBuf;

use anyhow::Context;

use crate::claims::{check_claims, render_claims};
use crate::curves::training_curves;
use crate::figures::{one_prediction_per_rater, personalised_figure, samples_figure};
use crate::report_table::{build_table_grouped, render_markdown, render_text, Grouping};
use crate::results_frame::read_results_many;

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Metric frame written by `dpersona eval` (results.parquet). Rows: one per evaluation
    /// (run, method, stage, #N samples or bank M); cells: `mean [lo, hi]`, the mean over
    /// fold means (or over units with one fold) and its 95% bootstrap interval over units.
    /// Several frames are read as one (seeds evaluated into different folders or on other
    /// machines): their conventions must agree and no evaluation may be in two of them.
    /// Optional with --predict-case.
    #[arg(required_unless_present = "predict_cases", value_name = "RESULTS")]
    pub results: Vec<PathBuf>,
    /// One row per (method, stage, #N, M) over all runs: each run (and each seed within a
    /// run) is one seed of the row, whose cell shows the seed-to-seed std as `±s`. For one
    /// run folder per seed.
    #[arg(long)]
    pub by_method: bool,
    /// Test the paper's claims on the frame: for each, the two rows, the paired difference
    /// over the same units with its 95% bootstrap interval, the Wilcoxon p, and `holds`,
    /// `does not hold` or `undecided` (runs and seeds of a row pooled per unit).
    #[arg(long)]
    pub claims: bool,
    /// Print a Markdown table instead of aligned plain text.
    #[arg(long)]
    pub markdown: bool,
    /// Folder for PNG figures: samples_<folder>.png (and personalised_<folder>.png when the
    /// folder holds one prediction per rater) for each --predictions folder, curves_<run>.png
    /// for each --run.
    #[arg(long, value_name = "DIR")]
    pub figures: Option<PathBuf>,
    /// Run folder(s) whose train_log.parquet is plotted as training curves (needs --figures).
    #[arg(long = "run", value_name = "RUN_DIR")]
    pub runs: Vec<PathBuf>,
    /// Predictions folder(s) saved by `dpersona eval --save-predictions` (or any tool using
    /// that layout) to draw sample overlays (paper Fig. 4) and, when there is one
    /// prediction per rater, personalised masks against each rater (Fig. 5). Needs --figures.
    /// PNG slice folders and NIfTI volume folders are both drawn; a volume is shown by its
    /// axial plane where the raters drew the most (row title `<study>/<target> z<plane>`).
    #[arg(long = "predictions", value_name = "DIR")]
    pub predictions: Vec<PathBuf>,
    /// `dpersona predict` case folder(s) (OUT/CASE) to draw as predict_<CASE>.png: the scan,
    /// each rater's mask and the uncertainty map on the plane where the masks cover the most.
    /// Needs --figures.
    #[arg(long = "predict-case", value_name = "DIR")]
    pub predict_cases: Vec<PathBuf>,
    /// Slices (or volumes, one plane each) shown per figure: those where raters drew the
    /// most.
    #[arg(long, default_value_t = 4)]
    pub figure_slices: usize,
}

pub fn run_report(args: ReportArgs) -> anyhow::Result<()> {
    if !args.results.is_empty() {
        print_tables(&args.results, &args)?;
    }
    let drawn =
        !(args.runs.is_empty() && args.predictions.is_empty() && args.predict_cases.is_empty());
    if drawn && args.figures.is_none() {
        anyhow::bail!(
            "--run, --predictions and --predict-case draw figures: give --figures DIR as well"
        );
    }
    let Some(fig_dir) = &args.figures else {
        return Ok(());
    };
    std::fs::create_dir_all(fig_dir).with_context(|| format!("creating {}", fig_dir.display()))?;
    for case in &args.predict_cases {
        let name = case
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "case".into());
        let out = fig_dir.join(format!("predict_{name}.png"));
        let (w, h) = crate::predict_figure::predict_case_figure(case, &out)
            .with_context(|| format!("drawing {}", case.display()))?;
        eprintln!("wrote {} ({w}x{h})", out.display());
    }
    draw_eval_figures(&args, fig_dir)
}

/// The paper-style table of a metric frame, printed.
fn print_tables(results: &[PathBuf], args: &ReportArgs) -> anyhow::Result<()> {
    let names = || {
        results
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (rows, conv) =
        read_results_many(results).with_context(|| format!("reading {}", names()))?;
    if rows.is_empty() {
        anyhow::bail!("{}: holds no metric rows", names());
    }
    let grouping = if args.by_method {
        Grouping::ByMethod
    } else {
        Grouping::ByRun
    };
    let table = build_table_grouped(&rows, grouping);
    if args.markdown {
        print!("{}", render_markdown(&table));
    } else {
        print!("{}", render_text(&table));
    }
    println!(
        "Conventions: threshold > {}, Dice eps {:e}, GED empty-pair distance {}, unit {}, seed {}.",
        conv.options.threshold,
        conv.options.dice_eps,
        conv.options.ged_empty_pair,
        conv.unit.as_str(),
        conv.seed
    );
    if conv.unit == crate::metric_rows::UnitKind::Volume {
        // The paper's NPC numbers are 3D Dice on its 128 x 128 resampled slices, not at
        // native resolution (method.md 1.4): say on which grid these volumes were scored.
        println!(
            "Volume units are scored on the ingest grid (MMIS and resampled NIfTI ingests: every \
             slice resampled to the crop size, 128 x 128 by default, by nearest neighbour, as the \
             paper's NPC metrics are)."
        );
    }
    if args.claims {
        println!();
        print!("{}", render_claims(&check_claims(&rows)));
    }
    Ok(())
}

/// Figures from eval's predictions folders and runs' training logs.
fn draw_eval_figures(args: &ReportArgs, fig_dir: &std::path::Path) -> anyhow::Result<()> {
    for (i, dir) in args.predictions.iter().enumerate() {
        // Named after the folder (`samples_stage1_n10.png`), as curves are after the run, so
        // that several folders drawn at once say which is which.
        let name = dir
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| format!("predictions{}", i + 1));
        let suffix = format!("_{name}");
        let out = fig_dir.join(format!("samples{suffix}.png"));
        let (w, h) = samples_figure(dir, &out, args.figure_slices)
            .with_context(|| format!("drawing {}", dir.display()))?;
        eprintln!("wrote {} ({w}x{h})", out.display());
        if one_prediction_per_rater(dir)? {
            let out = fig_dir.join(format!("personalised{suffix}.png"));
            let (w, h) = personalised_figure(dir, &out, args.figure_slices)?;
            eprintln!("wrote {} ({w}x{h})", out.display());
        }
    }
    for run in &args.runs {
        let name = run
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "run".into());
        let out = fig_dir.join(format!("curves_{name}.png"));
        let (w, h) =
            training_curves(run, &out).with_context(|| format!("plotting {}", run.display()))?;
        eprintln!("wrote {} ({w}x{h})", out.display());
    }
    Ok(())
}
