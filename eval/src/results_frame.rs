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
    #[error(
        "{other}: was written with conventions {theirs}, {first} with {ours}; frames are \
         read together only when their metrics were computed the same way"
    )]
    ConventionsDiffer {
        first: PathBuf,
        other: PathBuf,
        ours: String,
        theirs: String,
    },
    #[error(
        "{other}: holds the evaluation run `{run}`, method `{method}`, stage {stage}, N {n}, \
         M {m}, fold {fold} that {first} holds too; read together, its units would count twice \
         (evaluate each run into one frame, or give the runs different names)"
    )]
    DuplicateEvaluation {
        first: PathBuf,
        other: PathBuf,
        run: String,
        method: String,
        stage: u8,
        n: u32,
        m: u32,
        fold: u32,
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

/// Reads several results files as one frame (the seeds of a comparison evaluated on
/// different machines or into different folders): their conventions must agree, and no
/// evaluation (run, method, stage, N, M, fold) may sit in two of them.
pub fn read_results_many(
    paths: &[PathBuf],
) -> Result<(Vec<MetricRecord>, Conventions), FrameError> {
    let mut all: Vec<MetricRecord> = Vec::new();
    let mut first: Option<Conventions> = None;
    let mut seen: BTreeMap<EvalKey, usize> = BTreeMap::new();
    for (i, path) in paths.iter().enumerate() {
        let (rows, conv) = read_results(path)?;
        match &first {
            None => first = Some(conv),
            Some(c) if *c != conv => {
                return Err(FrameError::ConventionsDiffer {
                    first: paths[0].clone(),
                    other: path.clone(),
                    ours: c.to_json(),
                    theirs: conv.to_json(),
                })
            }
            Some(_) => {}
        }
        for key in rows.iter().map(eval_key).collect::<BTreeSet<_>>() {
            if let Some(&j) = seen.get(&key) {
                let (run, method, stage, n, m, fold) = key;
                return Err(FrameError::DuplicateEvaluation {
                    first: paths[j].clone(),
                    other: path.clone(),
                    run,
                    method,
                    stage,
                    n,
                    m,
                    fold,
                });
            }
            seen.insert(key, i);
        }
        all.extend(rows);
    }
    let conv = first.expect("read_results_many needs at least one path");
    Ok((all, conv))
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

/// Where a unit sits, for pairing the rows of two methods: the shard's slice index where
/// the frame has it (slice units of version-2 frames), else the unit's index in the split.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum UnitPosition {
    Slice(i32),
    Index(u32),
}

/// One unit of an evaluated split: the same key in two methods' rows is the same image.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnitKey {
    pub fold: u32,
    pub study_id: String,
    pub target_id: String,
    pub position: UnitPosition,
}

impl UnitKey {
    pub fn of(r: &MetricRecord) -> Self {
        UnitKey {
            fold: r.fold,
            study_id: r.study_id.clone(),
            target_id: r.target_id.clone(),
            position: match r.slice_index {
                Some(s) => UnitPosition::Slice(s),
                None => UnitPosition::Index(r.unit_index),
            },
        }
    }
}

/// The summary's group: (run, method, stage, n_samples, bank, n_outputs, metric).
type Group = (String, String, u8, u32, u32, u32, String);

/// One fold's rows of a group: (seed, unit, value).
type FoldRows = Vec<(u64, UnitKey, f64)>;

/// Per (evaluation, fold, metric): mean and population std over units (`fold` = Some);
/// then per (evaluation, metric): mean and population std over the fold means (`fold` =
/// None, `count` = folds), the paper's "mean ± std over folds". Each row also carries the
/// 95% bootstrap interval over units ([`crate::stats`], B = 2000, fixed seed) and, where a
/// group holds several `seed` values, the mean over seeds of the per-seed means and their
/// spread (see [`SummaryRecord`]).
pub fn summarise(rows: &[MetricRecord]) -> Vec<SummaryRecord> {
    use rayon::prelude::*;
    let mut groups: BTreeMap<Group, BTreeMap<u32, FoldRows>> = BTreeMap::new();
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
        groups
            .entry(g)
            .or_default()
            .entry(r.fold)
            .or_default()
            .push((r.seed, UnitKey::of(r), r.value));
    }
    let groups: Vec<(Group, BTreeMap<u32, FoldRows>)> = groups.into_iter().collect();
    // The bootstrap is the cost (units x 2000 per group): groups in parallel.
    let parts: Vec<(Vec<SummaryRecord>, SummaryRecord)> = groups
        .par_iter()
        .map(|(g, folds)| summarise_group(g, folds))
        .collect();
    let mut out = Vec::new();
    let mut across = Vec::new();
    for (per_fold, all) in parts {
        out.extend(per_fold);
        across.push(all);
    }
    out.extend(across);
    out
}

/// The per-fold rows and the across-fold row of one group.
fn summarise_group(
    g: &Group,
    folds: &BTreeMap<u32, FoldRows>,
) -> (Vec<SummaryRecord>, SummaryRecord) {
    use crate::stats::{bootstrap_stratified, DEFAULT_RESAMPLES, DEFAULT_SEED};
    let mut per_fold = Vec::new();
    let mut fold_means = Vec::new();
    let mut strata = Vec::new();
    let mut seed_fold_means: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
    for (fold, rows) in folds {
        let values: Vec<f64> = rows.iter().map(|r| r.2).collect();
        let (_, std) = mean_std(&values);
        let mut by_seed: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
        let mut by_unit: BTreeMap<&UnitKey, Vec<f64>> = BTreeMap::new();
        for (seed, unit, v) in rows {
            by_seed.entry(*seed).or_default().push(*v);
            by_unit.entry(unit).or_default().push(*v);
        }
        let seed_means: Vec<f64> = by_seed.values().map(|v| mean_std(v).0).collect();
        for (seed, m) in by_seed.keys().zip(&seed_means) {
            seed_fold_means.entry(*seed).or_default().push(*m);
        }
        let (mean, seed_spread) = mean_std(&seed_means);
        let unit_values: Vec<f64> = by_unit.values().map(|v| mean_std(v).0).collect();
        let ci = bootstrap_stratified(
            std::slice::from_ref(&unit_values),
            DEFAULT_RESAMPLES,
            DEFAULT_SEED,
        );
        let mut row = summary_row(g, Some(*fold), mean, std, values.len());
        row.ci_lo = ci.map(|c| c.lo);
        row.ci_hi = ci.map(|c| c.hi);
        row.n_units = Some(unit_values.len() as u32);
        row.seeds = Some(seed_means.len() as u32);
        row.seed_std = (seed_means.len() > 1).then_some(seed_spread);
        per_fold.push(row);
        fold_means.push(mean);
        strata.push(unit_values);
    }
    let (mean, std) = mean_std(&fold_means);
    let ci = bootstrap_stratified(&strata, DEFAULT_RESAMPLES, DEFAULT_SEED);
    let mut all = summary_row(g, None, mean, std, fold_means.len());
    all.ci_lo = ci.map(|c| c.lo);
    all.ci_hi = ci.map(|c| c.hi);
    all.n_units = Some(strata.iter().map(Vec::len).sum::<usize>() as u32);
    all.seeds = Some(seed_fold_means.len() as u32);
    // Each seed's across-fold mean, then their spread.
    let seed_means: Vec<f64> = seed_fold_means.values().map(|v| mean_std(v).0).collect();
    all.seed_std = (seed_means.len() > 1).then(|| mean_std(&seed_means).1);
    (per_fold, all)
}

fn summary_row(g: &Group, fold: Option<u32>, mean: f64, std: f64, count: usize) -> SummaryRecord {
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
        ci_lo: None,
        ci_hi: None,
        n_units: None,
        seeds: None,
        seed_std: None,
    }
}
