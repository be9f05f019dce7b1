//! `results.parquet` (tidy [`MetricRecord`] rows) and its summary beside it
//! (`results.summary.parquet`, [`SummaryRecord`] rows), written so that evaluations
//! accumulate: a write REPLACES the rows of the same evaluation key (run, method, stage,
//! n_samples, bank, fold) and keeps every other row, then rewrites both files atomically.
//!
//! The conventions every value depends on (threshold, epsilons, GED empty-pair distance,
//! Dice_soft thresholds, matching, unit, seed) are JSON under
//! [`schemas::metrics::KEY_CONVENTIONS`]; mixing conventions in one file is an error, since
//! the summary would average incomparable numbers.
//!
//! Concurrent writers to the same file are not coordinated: run evaluations that share a
//! results file one after the other.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use schemas::metrics::{MetricRecord, SummaryRecord, KEY_CONVENTIONS};
use schemas::{read_table, write_table, SchemaError};

use crate::metric_rows::UnitKind;
use crate::unit_metrics::MetricOptions;

/// How the matching metrics assign raters to predictions (the only mode implemented).
pub const MATCHING_SCIPY_LSAP: &str = "lsap_max_total_dice_scipy_port";

/// Everything a metric value depends on besides the predictions and labels.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Conventions {
    /// The metric options the values were computed with.
    #[serde(flatten)]
    pub options: MetricOptions,
    /// Rater <-> prediction assignment of Dice_match and the matched per-rater Dice.
    pub matching: String,
    /// `slice` (LIDC, one 2D crop per unit) or `volume` (NPC, one 3D volume per unit).
    pub unit: UnitKind,
    /// Seed the sampling RNG was reset to before each fold's evaluation.
    pub seed: u64,
}

impl Conventions {
    pub fn new(options: &MetricOptions, unit: UnitKind, seed: u64) -> Self {
        Conventions {
            options: options.clone(),
            matching: MATCHING_SCIPY_LSAP.to_string(),
            unit,
            seed,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("conventions serialise")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error("{path}: metadata key `{KEY_CONVENTIONS}` is missing; not a dpersona results file")]
    MissingConventions { path: PathBuf },
    #[error("{path}: conventions JSON does not parse: {reason}")]
    BadConventions { path: PathBuf, reason: String },
    #[error(
        "{path}: was written with conventions {existing} but the new rows use {new}; \
         write them to another results file"
    )]
    ConventionsMismatch {
        path: PathBuf,
        existing: String,
        new: String,
    },
}

/// The summary file beside a results file: `X.parquet` -> `X.summary.parquet`.
pub fn summary_path(results: &Path) -> PathBuf {
    let stem = results
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    results.with_file_name(format!("{stem}.summary.parquet"))
}

/// Reads a results file and its conventions.
pub fn read_results(path: &Path) -> Result<(Vec<MetricRecord>, Conventions), FrameError> {
    let (rows, meta) = read_table::<MetricRecord>(path)?;
    let raw = meta
        .get(KEY_CONVENTIONS)
        .ok_or_else(|| FrameError::MissingConventions {
            path: path.to_path_buf(),
        })?;
    let conv = serde_json::from_str(raw).map_err(|e| FrameError::BadConventions {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok((rows, conv))
}

/// Reads a summary file.
pub fn read_summary(path: &Path) -> Result<Vec<SummaryRecord>, FrameError> {
    Ok(read_table::<SummaryRecord>(path)?.0)
}

type EvalKey = (String, String, u8, u32, u32, u32);

fn eval_key(r: &MetricRecord) -> EvalKey {
    (
        r.run.clone(),
        r.method.clone(),
        r.stage,
        r.n_samples,
        r.bank,
        r.fold,
    )
}

/// What [`write_results`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultsWritten {
    pub results: PathBuf,
    pub summary: PathBuf,
    /// Rows of earlier evaluations with the same key that were replaced.
    pub replaced_rows: usize,
    /// Rows in the file now.
    pub total_rows: usize,
    pub summary_rows: usize,
}

/// Merges `rows` into `path` (replacing rows with the same evaluation key), then writes the
/// results and the summary atomically.
pub fn write_results(
    path: &Path,
    rows: &[MetricRecord],
    conv: &Conventions,
) -> Result<ResultsWritten, FrameError> {
    let new_keys: BTreeSet<EvalKey> = rows.iter().map(eval_key).collect();
    let mut all = Vec::new();
    let mut replaced_rows = 0;
    if path.exists() {
        let (old, old_conv) = read_results(path)?;
        if &old_conv != conv {
            return Err(FrameError::ConventionsMismatch {
                path: path.to_path_buf(),
                existing: old_conv.to_json(),
                new: conv.to_json(),
            });
        }
        for r in old {
            if new_keys.contains(&eval_key(&r)) {
                replaced_rows += 1;
            } else {
                all.push(r);
            }
        }
    }
    all.extend_from_slice(rows);
    let json = conv.to_json();
    write_table(path, &all, &[(KEY_CONVENTIONS, json.clone())])?;
    let summary = summarise(&all);
    let spath = summary_path(path);
    write_table(&spath, &summary, &[(KEY_CONVENTIONS, json)])?;
    Ok(ResultsWritten {
        results: path.to_path_buf(),
        summary: spath,
        replaced_rows,
        total_rows: all.len(),
        summary_rows: summary.len(),
    })
}

/// Mean and population standard deviation (ddof = 0).
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    (mean, var.sqrt())
}

/// Per (evaluation, fold, metric): mean and population std over units (`fold` = Some);
/// then per (evaluation, metric): mean and population std over the fold means (`fold` =
/// None, `count` = folds), the paper's "mean ± std over folds".
pub fn summarise(rows: &[MetricRecord]) -> Vec<SummaryRecord> {
    type Group = (String, String, u8, u32, u32, u32, String);
    let mut per_fold: BTreeMap<(Group, u32), Vec<f64>> = BTreeMap::new();
    for r in rows {
        let g = (
            r.run.clone(),
            r.method.clone(),
            r.stage,
            r.n_samples,
            r.bank,
            r.n_outputs,
            r.metric.clone(),
        );
        per_fold.entry((g, r.fold)).or_default().push(r.value);
    }
    let mut out = Vec::new();
    let mut across: BTreeMap<Group, Vec<f64>> = BTreeMap::new();
    for ((g, fold), values) in &per_fold {
        let (mean, std) = mean_std(values);
        across.entry(g.clone()).or_default().push(mean);
        out.push(summary_row(g, Some(*fold), mean, std, values.len()));
    }
    for (g, means) in &across {
        let (mean, std) = mean_std(means);
        out.push(summary_row(g, None, mean, std, means.len()));
    }
    out
}

fn summary_row(
    g: &(String, String, u8, u32, u32, u32, String),
    fold: Option<u32>,
    mean: f64,
    std: f64,
    count: usize,
) -> SummaryRecord {
    SummaryRecord {
        run: g.0.clone(),
        method: g.1.clone(),
        stage: g.2,
        n_samples: g.3,
        bank: g.4,
        n_outputs: g.5,
        fold,
        metric: g.6.clone(),
        mean,
        std,
        count: count as u32,
    }
}
