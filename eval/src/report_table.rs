//! The paper's Table 1/2 layout from a metric frame: one row per evaluation (method, stage,
//! samples #N or bank M), columns GED, Dice_soft, Dice_max, Dice_match, Dice_A1..A_R,
//! Dice_mean; each cell `mean [lo, hi]`: the mean over fold means (several folds) or over
//! units (one fold) and its 95% percentile bootstrap interval over units
//! ([`crate::stats`]); `±s` after it where the row pools several seeds (the population std
//! of the seed means). GED is shown as a fraction, Dice values in percent, as in the paper.
//!
//! Rows are keyed by run by default (as before intervals existed). [`Grouping::ByMethod`]
//! pools the runs of one (method, stage, #N, M, outputs), each (run, seed) one replicate:
//! the layout for one run folder per seed.
//!
//! Per-rater columns: rows whose predictions correspond to raters one-to-one (N = R, the
//! personalised heads of Stage II and one-stage personalised methods) show the IDENTITY
//! Dice (prediction k vs rater k; the paper's Dice_mean differs from Dice_match there, so
//! it cannot be the matched value); sample-based rows show the authors' Hungarian-MATCHED
//! per-rater Dice, marked with `*`. Under each identity row a `matched` line shows the same
//! predictions' Hungarian-matched per-rater Dice (`*`), so Stage II's personalised heads can
//! be read against Stage I's matched numbers and the paper's tables (whose per-rater Dice is
//! the matched one, baselines.md §0.5).
use std::collections::{BTreeMap, BTreeSet};

use schemas::metrics::MetricRecord;

use crate::metric_rows::names;
use crate::results_frame::summarise;

/// How rows are keyed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Grouping {
    /// One row per (run, method, stage, #N, M, outputs); several `seed` values within a
    /// run are replicates of that row.
    #[default]
    ByRun,
    /// One row per (method, stage, #N, M, outputs) over all runs; every (run, seed) is a
    /// replicate ("seed") of the row.
    ByMethod,
}

/// Label of the pooled run in [`Grouping::ByMethod`] rows.
pub const ALL_RUNS: &str = "(all runs)";

/// One cell: the summary row's numbers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cell {
    pub mean: f64,
    /// Population std over fold means (several folds) or over values (one fold).
    pub std: f64,
    /// 95% bootstrap interval over units.
    pub ci: Option<(f64, f64)>,
    pub n_units: u32,
    pub seeds: u32,
    /// Population std of the per-seed means (several seeds).
    pub seed_std: Option<f64>,
}

impl Cell {
    fn of(s: &schemas::metrics::SummaryRecord) -> Self {
        Cell {
            mean: s.mean,
            std: s.std,
            ci: s.ci_lo.zip(s.ci_hi),
            n_units: s.n_units.unwrap_or(0),
            seeds: s.seeds.unwrap_or(1),
            seed_std: s.seed_std,
        }
    }
}

/// The records with runs pooled as [`Grouping::ByMethod`] wants them: `run` set to
/// [`ALL_RUNS`] and `seed` replaced by the index of the record's (run, seed) pair, so that
/// the summary treats every run of a method as one more seed.
pub fn pool_runs(records: &[MetricRecord]) -> Vec<MetricRecord> {
    let pairs: BTreeSet<(&str, u64)> = records.iter().map(|r| (r.run.as_str(), r.seed)).collect();
    let index: BTreeMap<(&str, u64), u64> = pairs
        .into_iter()
        .enumerate()
        .map(|(i, p)| (p, i as u64))
        .collect();
    records
        .iter()
        .map(|r| MetricRecord {
            run: ALL_RUNS.to_string(),
            seed: index[&(r.run.as_str(), r.seed)],
            ..r.clone()
        })
        .collect()
}

/// Which per-rater Dice a row shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PerRater {
    Identity,
    Matched,
}

/// One table row.
#[derive(Debug, Clone, PartialEq)]
pub struct TableRow {
    pub label: String,
    pub run: String,
    pub method: String,
    pub stage: u8,
    pub n_samples: u32,
    pub bank: u32,
    pub n_outputs: u32,
    /// Folds averaged (1 = the spread is over units).
    pub folds: u32,
    pub per_rater: PerRater,
    /// `[4 + R + 1]` cells in column order; None where the frame has no value.
    pub cells: Vec<Option<Cell>>,
    /// Identity rows only: the Hungarian-matched per-rater Dice of the same predictions,
    /// `[R + 1]` cells (Dice_A1..A_R, Dice_mean), shown on a `matched` line under the row.
    pub matched: Option<Vec<Option<Cell>>>,
}

/// Label of the line under an identity row that shows its matched per-rater Dice.
pub const MATCHED_LINE: &str = "  matched (Hungarian)";

#[derive(Debug, Clone, PartialEq)]
pub struct ReportTable {
    /// Column headers after "Method".
    pub columns: Vec<String>,
    pub rows: Vec<TableRow>,
    pub raters: usize,
}

/// Builds the table from the rows of a results file, one row per run (and evaluation).
pub fn build_table(records: &[MetricRecord]) -> ReportTable {
    build_table_grouped(records, Grouping::ByRun)
}

/// Builds the table with the rows keyed as `grouping` says.
pub fn build_table_grouped(records: &[MetricRecord], grouping: Grouping) -> ReportTable {
    let pooled;
    let records = match grouping {
        Grouping::ByRun => records,
        Grouping::ByMethod => {
            pooled = pool_runs(records);
            &pooled
        }
    };
    let raters = records
        .iter()
        .filter_map(|r| {
            r.metric
                .strip_prefix("dice_rater_")
                .and_then(|s| s.split('_').next())
                .and_then(|k| k.parse::<usize>().ok())
        })
        .max()
        .unwrap_or(0);
    let summary = summarise(records);
    type Key = (String, String, u8, u32, u32, u32);
    // per key: fold-level (mean,std,count) by metric, and across-fold by metric
    let mut folds: BTreeMap<Key, BTreeSet<u32>> = BTreeMap::new();
    let mut per_fold: BTreeMap<(Key, String), Cell> = BTreeMap::new();
    let mut across: BTreeMap<(Key, String), Cell> = BTreeMap::new();
    for s in &summary {
        let key = (
            s.run.clone(),
            s.method.clone(),
            s.stage,
            s.n_samples,
            s.bank,
            s.n_outputs,
        );
        match s.fold {
            Some(f) => {
                folds.entry(key.clone()).or_default().insert(f);
                per_fold.insert((key, s.metric.clone()), Cell::of(s));
            }
            None => {
                across.insert((key, s.metric.clone()), Cell::of(s));
            }
        }
    }
    let mut runs_of_method: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for r in records {
        runs_of_method
            .entry(r.method.as_str())
            .or_default()
            .insert(r.run.as_str());
    }
    let mut columns: Vec<String> = ["GED", "Dice_soft", "Dice_max", "Dice_match"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    columns.extend((1..=raters).map(|k| format!("Dice_A{k}")));
    columns.push("Dice_mean".into());
    let mut rows = Vec::new();
    for (key, fs) in &folds {
        let nfolds = fs.len() as u32;
        let cell = |metric: &str| -> Option<Cell> {
            let k = (key.clone(), metric.to_string());
            if nfolds > 1 {
                across.get(&k).copied()
            } else {
                per_fold.get(&k).copied()
            }
        };
        let per_rater = if cell(names::DICE_MEAN_IDENTITY).is_some() {
            PerRater::Identity
        } else {
            PerRater::Matched
        };
        let mut cells = vec![
            cell(names::GED),
            cell(names::DICE_SOFT),
            cell(names::DICE_MAX),
            cell(names::DICE_MATCH),
        ];
        for k in 1..=raters {
            cells.push(match per_rater {
                PerRater::Identity => cell(&names::dice_rater_identity(k)),
                PerRater::Matched => cell(&names::dice_rater_matched(k)),
            });
        }
        cells.push(match per_rater {
            PerRater::Identity => cell(names::DICE_MEAN_IDENTITY),
            PerRater::Matched => cell(names::DICE_MEAN_MATCHED),
        });
        let matched = (per_rater == PerRater::Identity).then(|| {
            let mut m: Vec<Option<Cell>> = (1..=raters)
                .map(|k| cell(&names::dice_rater_matched(k)))
                .collect();
            m.push(cell(names::DICE_MEAN_MATCHED));
            m
        });
        let (run, method, stage, n_samples, bank, n_outputs) = key.clone();
        // Only D-Persona has stages; the baselines train one (stored as stage 1).
        let mut parts = Vec::new();
        if method == "dpersona" {
            parts.push(format!("Stage {stage}"));
        }
        if n_samples > 0 {
            parts.push(format!("#{n_samples}"));
        }
        if bank > 0 {
            parts.push(format!("M={bank}"));
        }
        let mut label = method.clone();
        if !parts.is_empty() {
            label += &format!(" ({})", parts.join(", "));
        }
        // The run tells rows apart only when one method was evaluated from several runs.
        if runs_of_method
            .get(method.as_str())
            .is_some_and(|r| r.len() > 1)
        {
            label += &format!(" [{run}]");
        }
        rows.push(TableRow {
            label,
            run,
            method,
            stage,
            n_samples,
            bank,
            n_outputs,
            folds: nfolds,
            per_rater,
            cells,
            matched,
        });
    }
    ReportTable {
        columns,
        rows,
        raters,
    }
}

/// Formats one cell: GED as a fraction (4 decimals), Dice in percent (2 decimals):
/// `mean [lo, hi]`, then ` ±s` (the seed-to-seed std) where the row pools several seeds, and
/// `*` for matched per-rater Dice. A cell without an interval (no units) shows `mean ± std`.
pub fn format_cell(column: usize, cell: Option<&Cell>, matched: bool) -> String {
    let Some(c) = cell else {
        return "N/A".into();
    };
    let (scale, digits) = if column == 0 { (1.0, 4) } else { (100.0, 2) };
    let f = |v: f64| format!("{:.digits$}", v * scale);
    let mut out = match c.ci {
        Some((lo, hi)) => format!("{} [{}, {}]", f(c.mean), f(lo), f(hi)),
        None => format!("{} ± {}", f(c.mean), f(c.std)),
    };
    if let Some(s) = c.seed_std {
        out += &format!(" ±{}", f(s));
    }
    if matched && column > 0 {
        out += "*";
    }
    out
}

fn cells_of(table: &ReportTable, row: &TableRow) -> Vec<String> {
    let first_rater = 4;
    row.cells
        .iter()
        .enumerate()
        .map(|(c, cell)| {
            format_cell(
                c,
                cell.as_ref(),
                c >= first_rater && row.per_rater == PerRater::Matched && c < table.columns.len(),
            )
        })
        .collect()
}

/// The `matched` line under an identity row: empty GED/Dice_soft/Dice_max/Dice_match cells,
/// then the matched per-rater cells (marked `*`). None for other rows.
fn matched_line(table: &ReportTable, row: &TableRow) -> Option<Vec<String>> {
    let matched = row.matched.as_ref()?;
    let first_rater = 4;
    let mut out = vec![String::new(); first_rater];
    out.extend(
        matched
            .iter()
            .enumerate()
            .map(|(i, c)| format_cell(first_rater + i, c.as_ref(), true)),
    );
    out.truncate(table.columns.len());
    Some(out)
}

fn footnotes(table: &ReportTable) -> Vec<String> {
    let spread = if table.rows.iter().any(|r| r.folds > 1) {
        "mean over fold means (rows with one fold: over units) [95% percentile bootstrap interval: \
         units resampled within each fold, B = 2000]"
    } else {
        "mean over units [95% percentile bootstrap interval over units, B = 2000]"
    };
    let mut notes = vec![
        format!("Cells: {spread}. GED as a fraction (lower is better); Dice in % (higher is better)."),
        "Dice_max: mean over raters of each rater's best prediction (paper Fig. 3). Dice_match: one-to-one Hungarian assignment.".into(),
        "Dice_A1..A4, Dice_mean: identity (prediction k vs rater k) where the method outputs one map per rater; \
         values marked * are the Hungarian-matched per-rater Dice (sample-based rows), as the authors' code computes."
            .into(),
    ];
    if table.rows.iter().any(|r| r.matched.is_some()) {
        notes.push(format!(
            "`{}` under a personalised row: the same predictions' Hungarian-matched per-rater Dice (*), \
             comparable with the sample-based rows and the paper's per-rater columns.",
            MATCHED_LINE.trim()
        ));
    }
    if table
        .rows
        .iter()
        .any(|r| r.cells.iter().flatten().any(|c| c.seed_std.is_some()))
    {
        notes.push(
            "±s after an interval: population std of the per-seed means (the row pools several seeds; \
             its mean is the mean of the seed means, its interval resamples units averaged over seeds)."
                .into(),
        );
    }
    notes
}

/// Plain-text table with aligned columns.
pub fn render_text(table: &ReportTable) -> String {
    let mut header = vec!["Method".to_string()];
    header.extend(table.columns.iter().cloned());
    let mut body: Vec<Vec<String>> = Vec::new();
    for r in &table.rows {
        let mut v = vec![r.label.clone()];
        v.extend(cells_of(table, r));
        body.push(v);
        if let Some(m) = matched_line(table, r) {
            let mut v = vec![MATCHED_LINE.to_string()];
            v.extend(m);
            body.push(v);
        }
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| {
            std::iter::once(&header)
                .chain(&body)
                .map(|r| r[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |r: &Vec<String>| {
        r.iter()
            .enumerate()
            .map(|(c, s)| format!("{s:<w$}", w = widths[c]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = line(&header) + "\n";
    out += &widths
        .iter()
        .map(|w| "-".repeat(*w))
        .collect::<Vec<_>>()
        .join("  ");
    out += "\n";
    for r in &body {
        out += &(line(r) + "\n");
    }
    for f in footnotes(table) {
        out += &format!("\n{f}");
    }
    out + "\n"
}

/// Markdown table.
pub fn render_markdown(table: &ReportTable) -> String {
    let mut out = format!("| Method | {} |\n", table.columns.join(" | "));
    out += &format!("|---|{}\n", "---|".repeat(table.columns.len()));
    for r in &table.rows {
        out += &format!("| {} | {} |\n", r.label, cells_of(table, r).join(" | "));
        if let Some(m) = matched_line(table, r) {
            out += &format!("| ↳ {} | {} |\n", MATCHED_LINE.trim(), m.join(" | "));
        }
    }
    out += "\n";
    for f in footnotes(table) {
        out += &format!("{f}\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(run: &str, method: &str, stage: u8, n_samples: u32, bank: u32) -> MetricRecord {
        MetricRecord {
            run: run.into(),
            method: method.into(),
            stage,
            n_samples,
            bank,
            n_outputs: 4,
            fold: 0,
            study_id: "S0".into(),
            target_id: "T0".into(),
            unit: "slice".into(),
            unit_index: 0,
            slice_index: Some(0),
            z_mm: None,
            metric: names::GED.into(),
            value: 0.5,
            seed: 1,
            checkpoint_sha256: String::new(),
        }
    }

    fn metric(mut r: MetricRecord, metric: &str, value: f64) -> MetricRecord {
        r.metric = metric.into();
        r.value = value;
        r
    }

    /// An identity row (Stage II) gets a `matched` line with its matched per-rater Dice;
    /// a sample-based row (Stage I) shows matched values already and gets none.
    #[test]
    fn identity_rows_show_their_matched_dice_on_a_line_below() {
        let s2 = row("dp", "dpersona", 2, 0, 100);
        let s1 = row("dp", "dpersona", 1, 10, 0);
        let mut records = Vec::new();
        for (k, (id, m)) in [(0.9, 0.6), (0.8, 0.7)].iter().enumerate() {
            records.push(metric(s2.clone(), &names::dice_rater_identity(k + 1), *id));
            records.push(metric(s2.clone(), &names::dice_rater_matched(k + 1), *m));
        }
        records.push(metric(s2.clone(), names::DICE_MEAN_IDENTITY, 0.85));
        records.push(metric(s2.clone(), names::DICE_MEAN_MATCHED, 0.65));
        records.push(metric(s1.clone(), &names::dice_rater_matched(1), 0.5));
        records.push(metric(s1.clone(), &names::dice_rater_matched(2), 0.4));
        records.push(metric(s1, names::DICE_MEAN_MATCHED, 0.45));
        let table = build_table(&records);
        let stage2 = table.rows.iter().find(|r| r.stage == 2).unwrap();
        assert_eq!(stage2.per_rater, PerRater::Identity);
        let m: Vec<f64> = stage2
            .matched
            .as_ref()
            .unwrap()
            .iter()
            .map(|c| c.unwrap().mean)
            .collect();
        assert_eq!(m, [0.6, 0.7, 0.65]);
        assert_eq!(stage2.cells[4].unwrap().mean, 0.9);
        assert!(table
            .rows
            .iter()
            .find(|r| r.stage == 1)
            .unwrap()
            .matched
            .is_none());
        let text = render_text(&table);
        let lines: Vec<&str> = text.lines().collect();
        let at = lines
            .iter()
            .position(|l| l.starts_with("dpersona (Stage 2"))
            .unwrap();
        let below = lines[at + 1];
        assert!(below.starts_with(MATCHED_LINE), "{text}");
        for v in ["60.00", "70.00", "65.00"] {
            assert!(below.contains(&format!("{v} [{v}, {v}]*")), "{v}: {below}");
        }
        assert!(!below.contains("90.00"), "{below}");
        assert_eq!(
            lines.iter().filter(|l| l.starts_with(MATCHED_LINE)).count(),
            1,
            "{text}"
        );
        let md = render_markdown(&table);
        assert!(
            md.contains(
                "| ↳ matched (Hungarian) |  |  |  |  | 60.00 [60.00, 60.00]* | 70.00 [70.00, 70.00]* | 65.00 [65.00, 65.00]* |"
            ),
            "{md}"
        );
    }

    /// One row per method: stages only for D-Persona, #N and M where they apply, and the
    /// run only where one method comes from several runs.
    #[test]
    fn labels_name_stage_samples_and_run_only_where_they_apply() {
        let records = vec![
            row("dp", "dpersona", 1, 10, 0),
            row("dp", "dpersona", 2, 0, 100),
            row("prob", "prob-unet", 1, 10, 0),
            row("tab", "tab", 1, 0, 0),
            row("mv-a", "mv", 1, 0, 0),
            row("mv-b", "mv", 1, 0, 0),
        ];
        let labels: Vec<String> = build_table(&records)
            .rows
            .into_iter()
            .map(|r| r.label)
            .collect();
        assert_eq!(
            labels,
            [
                "dpersona (Stage 1, #10)",
                "dpersona (Stage 2, M=100)",
                "mv [mv-a]",
                "mv [mv-b]",
                "prob-unet (#10)",
                "tab"
            ]
        );
    }
}
