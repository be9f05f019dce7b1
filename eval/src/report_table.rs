//! The paper's Table 1/2 layout from a metric frame: one row per evaluation (method, stage,
//! samples #N or bank M), columns GED, Dice_soft, Dice_max, Dice_match, Dice_A1..A_R,
//! Dice_mean; each cell mean ± population std over fold means (several folds) or over units
//! (one fold). GED is shown as a fraction, Dice values in percent, as in the paper.
//!
//! Per-rater columns: rows whose predictions correspond to raters one-to-one (N = R, the
//! personalised heads of Stage II and one-stage personalised methods) show the IDENTITY
//! Dice (prediction k vs rater k; the paper's Dice_mean differs from Dice_match there, so
//! it cannot be the matched value); sample-based rows show the authors' Hungarian-MATCHED
//! per-rater Dice, marked with `*`.
use std::collections::{BTreeMap, BTreeSet};

use schemas::metrics::MetricRecord;

use crate::metric_rows::names;
use crate::results_frame::summarise;

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
    /// `[4 + R + 1]` cells (mean, std) in column order; None where the frame has no value.
    pub cells: Vec<Option<(f64, f64)>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReportTable {
    /// Column headers after "Method".
    pub columns: Vec<String>,
    pub rows: Vec<TableRow>,
    pub raters: usize,
}

/// Builds the table from the rows of a results file.
pub fn build_table(records: &[MetricRecord]) -> ReportTable {
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
    let mut per_fold: BTreeMap<(Key, String), (f64, f64)> = BTreeMap::new();
    let mut across: BTreeMap<(Key, String), (f64, f64)> = BTreeMap::new();
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
                per_fold.insert((key, s.metric.clone()), (s.mean, s.std));
            }
            None => {
                across.insert((key, s.metric.clone()), (s.mean, s.std));
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
        let cell = |metric: &str| -> Option<(f64, f64)> {
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
        });
    }
    ReportTable {
        columns,
        rows,
        raters,
    }
}

/// Formats one cell: GED as a fraction (4 decimals), Dice in percent (2 decimals).
pub fn format_cell(column: usize, cell: Option<(f64, f64)>, matched: bool) -> String {
    match cell {
        None => "N/A".into(),
        Some((m, s)) if column == 0 => format!("{m:.4} ± {s:.4}"),
        Some((m, s)) => format!(
            "{:.2} ± {:.2}{}",
            m * 100.0,
            s * 100.0,
            if matched { "*" } else { "" }
        ),
    }
}

fn cells_of(table: &ReportTable, row: &TableRow) -> Vec<String> {
    let first_rater = 4;
    row.cells
        .iter()
        .enumerate()
        .map(|(c, cell)| {
            format_cell(
                c,
                *cell,
                c >= first_rater && row.per_rater == PerRater::Matched && c < table.columns.len(),
            )
        })
        .collect()
}

fn footnotes(table: &ReportTable) -> Vec<String> {
    let spread = if table.rows.iter().any(|r| r.folds > 1) {
        "mean ± population std over fold means (rows with one fold: over units)"
    } else {
        "mean ± population std over units (one fold)"
    };
    vec![
        format!("Cells: {spread}. GED as a fraction (lower is better); Dice in % (higher is better)."),
        "Dice_max: mean over raters of each rater's best prediction (paper Fig. 3). Dice_match: one-to-one Hungarian assignment.".into(),
        "Dice_A1..A4, Dice_mean: identity (prediction k vs rater k) where the method outputs one map per rater; \
         values marked * are the Hungarian-matched per-rater Dice (sample-based rows), as the authors' code computes."
            .into(),
    ]
}

/// Plain-text table with aligned columns.
pub fn render_text(table: &ReportTable) -> String {
    let mut header = vec!["Method".to_string()];
    header.extend(table.columns.iter().cloned());
    let body: Vec<Vec<String>> = table
        .rows
        .iter()
        .map(|r| {
            let mut v = vec![r.label.clone()];
            v.extend(cells_of(table, r));
            v
        })
        .collect();
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
