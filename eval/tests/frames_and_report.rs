//! results.parquet accumulation (replace by evaluation key, conventions check), the summary
//! checked by polars, and the report table built from the frame.

use std::collections::HashMap;

use eval::metric_rows::{EvalContext, UnitId, UnitKind};
use eval::report_table::{build_table, format_cell, render_markdown, render_text};
use eval::results_frame::{
    read_results, read_results_many, summary_path, write_results, Conventions, FrameError,
};
use eval::unit_metrics::{score_unit, MetricOptions};
use schemas::metrics::MetricRecord;

/// Rows of one evaluation on `units` small synthetic units; `n` predictions per unit.
fn evaluation(
    method: &str,
    stage: u8,
    n: usize,
    fold: u32,
    units: usize,
    shift: usize,
) -> Vec<MetricRecord> {
    let side = 12usize;
    let ctx = EvalContext {
        run: "runs/a".into(),
        method: method.into(),
        stage,
        n_samples: if n == 4 { 0 } else { n as u32 },
        bank: if n == 4 { 50 } else { 0 },
        fold,
        seed: 1337,
        checkpoint_sha256: "abc".into(),
    };
    let mut rows = Vec::new();
    for u in 0..units {
        let square = |x0: usize, w: usize| -> Vec<u8> {
            (0..side * side)
                .map(|i| {
                    ((i % side) >= x0 && (i % side) < x0 + w && (i / side) >= 2 && (i / side) < 8)
                        as u8
                })
                .collect()
        };
        let raters: Vec<Vec<u8>> = (0..4)
            .map(|k| square(1 + k, 3 + (u + fold as usize) % 3))
            .collect();
        let probs: Vec<Vec<f32>> = (0..n)
            .map(|j| {
                square(1 + (j + shift + u) % 6, 4)
                    .iter()
                    .map(|&v| if v == 1 { 0.8 } else { 0.1 * (j % 3) as f32 })
                    .collect()
            })
            .collect();
        let r: Vec<Option<&[u8]>> = raters.iter().map(|m| Some(m.as_slice())).collect();
        let p: Vec<&[f32]> = probs.iter().map(Vec::as_slice).collect();
        let s = score_unit(&r, &p, &MetricOptions::default()).unwrap();
        let id = UnitId {
            study_id: format!("S{u}"),
            target_id: "1".into(),
            kind: UnitKind::Slice,
            unit_index: u as u32,
            slice_index: Some(u as i32),
            z_mm: Some(2.5 * u as f64),
        };
        rows.extend(s.to_records(&ctx, &id));
    }
    rows
}

#[test]
fn results_accumulate_and_summary_matches_polars_and_report() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("results.parquet");
    let conv = Conventions::new(&MetricOptions::default(), UnitKind::Slice, 1337);

    // Fold 0 of two methods, then fold 1; then fold 0 of the sampler again (replaces).
    let first = write_results(&path, &evaluation("dpersona", 1, 10, 0, 5, 0), &conv).unwrap();
    assert_eq!(first.replaced_rows, 0);
    write_results(&path, &evaluation("dpersona", 2, 4, 0, 5, 1), &conv).unwrap();
    write_results(&path, &evaluation("dpersona", 1, 10, 1, 6, 2), &conv).unwrap();
    write_results(&path, &evaluation("dpersona", 2, 4, 1, 6, 3), &conv).unwrap();
    let again = evaluation("dpersona", 1, 10, 0, 5, 4);
    let w = write_results(&path, &again, &conv).unwrap();
    assert_eq!(
        w.replaced_rows,
        again.len(),
        "same key: every old row replaced"
    );
    let (rows, got_conv) = read_results(&path).unwrap();
    assert_eq!(got_conv, conv);
    assert_eq!(rows.len(), w.total_rows);
    let s1f0: Vec<&MetricRecord> = rows
        .iter()
        .filter(|r| r.stage == 1 && r.fold == 0)
        .collect();
    assert_eq!(s1f0.len(), again.len());
    assert!(
        s1f0.iter().zip(&again).all(|(a, b)| *a == b),
        "the new rows replaced the old ones"
    );

    // Mixed conventions are refused and the file is untouched.
    let other = Conventions::new(
        &MetricOptions {
            ged_empty_pair: 0.0,
            ..Default::default()
        },
        UnitKind::Slice,
        1337,
    );
    let err = write_results(&path, &evaluation("x", 1, 3, 0, 1, 0), &other).unwrap_err();
    assert!(
        matches!(err, FrameError::ConventionsMismatch { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("results.parquet"), "{err}");
    assert_eq!(read_results(&path).unwrap().0.len(), rows.len());

    // polars recomputes the summary.
    let out = testkit::run_py(
        "results_polars_check.py",
        &[
            path.to_str().unwrap(),
            summary_path(&path).to_str().unwrap(),
        ],
    );
    let across: HashMap<String, (f64, f64, u32)> =
        serde_json::from_str::<HashMap<String, (f64, f64, u32)>>(
            out.lines()
                .find_map(|l| l.strip_prefix("ACROSS "))
                .expect("polars prints the across-fold means"),
        )
        .unwrap();

    // The report's cells are the polars across-fold means ± stds of the frame.
    let table = build_table(&rows);
    let text = render_text(&table);
    let md = render_markdown(&table);
    println!("{text}\n{md}");
    assert_eq!(table.rows.len(), 2);
    assert_eq!(
        table.columns,
        [
            "GED",
            "Dice_soft",
            "Dice_max",
            "Dice_match",
            "Dice_A1",
            "Dice_A2",
            "Dice_A3",
            "Dice_A4",
            "Dice_mean"
        ]
    );
    let stage1 = table.rows.iter().find(|r| r.stage == 1).unwrap();
    assert_eq!(stage1.label, "dpersona (Stage 1, #10)");
    let stage2 = table.rows.iter().find(|r| r.stage == 2).unwrap();
    assert_eq!(stage2.label, "dpersona (Stage 2, M=50)");
    // Every cell of every row is the polars across-fold mean ± std of that evaluation.
    for row in &table.rows {
        let per_rater = if row.stage == 2 {
            "identity"
        } else {
            "matched"
        };
        let mut metrics: Vec<String> = ["ged", "dice_soft", "dice_max", "dice_match"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        metrics.extend((1..=4).map(|k| format!("dice_rater_{k}_{per_rater}")));
        metrics.push(format!("dice_mean_{per_rater}"));
        for (col, metric) in metrics.iter().enumerate() {
            let key = format!(
                "dpersona|{}|{}|{}|{metric}",
                row.stage, row.n_samples, row.bank
            );
            let (mean, std, folds) = across[&key];
            assert_eq!(folds, 2, "{key}");
            let c = row.cells[col].unwrap_or_else(|| panic!("{key}: empty cell"));
            let (m, sd) = (c.mean, c.std);
            assert!(
                (m - mean).abs() < 1e-12 && (sd - std).abs() < 1e-12,
                "{key}: table {m} ± {sd}, polars {mean} ± {std}"
            );
            let cell = format_cell(col, Some(&c), per_rater == "matched" && col >= 4);
            assert!(
                text.contains(&cell) && md.contains(&cell),
                "report lacks {key} cell `{cell}`\n{text}"
            );
        }
    }
    // Stage II's line below: its matched per-rater Dice, the polars means of the
    // `dice_rater_k_matched` / `dice_mean_matched` rows of the same evaluation.
    let matched = stage2
        .matched
        .as_ref()
        .expect("identity row has a matched line");
    let metrics: Vec<String> = (1..=4)
        .map(|k| format!("dice_rater_{k}_matched"))
        .chain(std::iter::once("dice_mean_matched".to_string()))
        .collect();
    for (i, metric) in metrics.iter().enumerate() {
        let key = format!("dpersona|2|0|{}|{metric}", stage2.bank);
        let (mean, std, _) = across[&key];
        let c = matched[i].unwrap_or_else(|| panic!("{key}: empty matched cell"));
        assert!(
            (c.mean - mean).abs() < 1e-12 && (c.std - std).abs() < 1e-12,
            "{key}: table {} ± {}, polars {mean} ± {std}",
            c.mean,
            c.std
        );
        let cell = format_cell(4 + i, Some(&c), true);
        let line = text
            .lines()
            .find(|l| l.starts_with(eval::report_table::MATCHED_LINE))
            .expect("a matched line");
        assert!(line.contains(&cell), "{key}: `{cell}` not in `{line}`");
        assert!(md.contains(&cell), "{key}: `{cell}` not in the markdown");
    }
    assert!(
        stage1.matched.is_none(),
        "Stage I shows matched Dice already"
    );
    assert!(
        text.contains("Hungarian-matched"),
        "footnote says which per-rater Dice is shown"
    );
}

/// polars' across-fold numbers of one group: mean, std, folds, seeds, seed std, units.
type AcrossRun = (f64, f64, u32, u32, Option<f64>, u32);

/// Several seeds: within one run (the `seed` column) and one run folder per seed. polars
/// recomputes the mean of the seed means, the seed-to-seed std, the unit counts; the
/// `--by-method` table pools the runs of a method into one row whose cells are the polars
/// numbers of the pooled frame.
#[test]
fn seeds_pool_into_seed_means_and_by_method_rows() {
    use eval::report_table::{build_table_grouped, pool_runs, Grouping, ALL_RUNS};
    let dir = tempfile::tempdir().unwrap();
    let conv = Conventions::new(&MetricOptions::default(), UnitKind::Slice, 1337);
    let with = |run: &str, seed: u64, shift: usize, fold: u32| -> Vec<MetricRecord> {
        evaluation("mv", 1, 3, fold, 6, shift)
            .into_iter()
            .map(|r| MetricRecord {
                run: run.into(),
                seed,
                ..r
            })
            .collect()
    };
    let mut rows = Vec::new();
    for fold in 0..2 {
        rows.extend(with("runs/mv-s1", 1, 0, fold));
        rows.extend(with("runs/mv-s2", 2, 1, fold));
        // One run holding two seeds (the same key: written together).
        let mut both = with("runs/mv-both", 1, 2, fold);
        both.extend(with("runs/mv-both", 2, 3, fold));
        rows.extend(both);
    }
    let path = dir.path().join("results.parquet");
    write_results(&path, &rows, &conv).unwrap();
    let out = testkit::run_py(
        "results_polars_check.py",
        &[
            path.to_str().unwrap(),
            summary_path(&path).to_str().unwrap(),
        ],
    );
    let runs: HashMap<String, AcrossRun> = serde_json::from_str(
        out.lines()
            .find_map(|l| l.strip_prefix("ACROSS_RUNS "))
            .unwrap(),
    )
    .unwrap();
    let both = runs["runs/mv-both|mv|1|3|0|dice_soft"];
    assert_eq!(
        (both.2, both.3, both.5),
        (2, 2, 12),
        "2 folds, 2 seeds, 12 units"
    );
    assert!(both.4.unwrap() > 0.0, "two different seeds: a spread");
    assert_eq!(runs["runs/mv-s1|mv|1|3|0|dice_soft"].4, None);

    // By method: the four (run, seed) replicates are the seeds of one row.
    let pooled_path = dir.path().join("pooled.parquet");
    write_results(&pooled_path, &pool_runs(&rows), &conv).unwrap();
    let out = testkit::run_py(
        "results_polars_check.py",
        &[
            pooled_path.to_str().unwrap(),
            summary_path(&pooled_path).to_str().unwrap(),
        ],
    );
    let pooled: HashMap<String, AcrossRun> = serde_json::from_str(
        out.lines()
            .find_map(|l| l.strip_prefix("ACROSS_RUNS "))
            .unwrap(),
    )
    .unwrap();
    let table = build_table_grouped(&rows, Grouping::ByMethod);
    let text = render_text(&table);
    println!("{text}");
    assert_eq!(table.rows.len(), 1, "{text}");
    let row = &table.rows[0];
    assert_eq!(row.label, "mv (#3)");
    for (col, metric) in [(0, "ged"), (1, "dice_soft"), (3, "dice_match")] {
        let want = pooled[&format!("{ALL_RUNS}|mv|1|3|0|{metric}")];
        let c = row.cells[col].unwrap();
        assert!(
            (c.mean - want.0).abs() < 1e-12,
            "{metric}: {c:?} vs {want:?}"
        );
        assert_eq!((c.seeds, c.n_units), (4, 12), "{metric}");
        assert!(
            (c.seed_std.unwrap() - want.4.unwrap()).abs() < 1e-12,
            "{metric}"
        );
        let (lo, hi) = c.ci.unwrap();
        assert!(lo < c.mean && c.mean < hi, "{metric}: {c:?}");
        assert!(text.contains(&format_cell(col, Some(&c), false)), "{text}");
        assert!(
            format_cell(col, Some(&c), false).contains(" ±"),
            "seed std shown"
        );
    }
    assert!(
        text.contains("population std of the per-seed means"),
        "{text}"
    );
    // By run (the default) keeps one row per run folder.
    assert_eq!(build_table(&rows).rows.len(), 3);
}

/// A version-1 summary (pyarrow, no interval columns) still reads, the new columns null.
#[test]
fn version_1_summary_reads_with_null_intervals() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.summary.parquet");
    testkit::run_py("summary_v1_frame.py", &[path.to_str().unwrap()]);
    let rows = eval::results_frame::read_summary(&path).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (rows[0].fold, rows[0].mean, rows[0].count),
        (Some(0), 0.25, 10)
    );
    assert_eq!(rows[1].fold, None);
    for r in &rows {
        assert_eq!(
            (r.ci_lo, r.ci_hi, r.n_units, r.seeds, r.seed_std),
            (None, None, None, None, None)
        );
    }
}

#[test]
fn several_frames_read_as_one_and_refuse_double_counts_and_other_conventions() {
    let dir = tempfile::tempdir().unwrap();
    let conv = Conventions::new(&MetricOptions::default(), UnitKind::Slice, 1337);
    let (a, b, merged) = (
        dir.path().join("a.parquet"),
        dir.path().join("b.parquet"),
        dir.path().join("merged.parquet"),
    );
    // Two evaluations in two frames (as seeds run in two folders), and both in one frame.
    let stage1 = evaluation("dpersona", 1, 10, 0, 5, 0);
    let stage2 = evaluation("dpersona", 2, 4, 0, 5, 1);
    write_results(&a, &stage1, &conv).unwrap();
    write_results(&b, &stage2, &conv).unwrap();
    write_results(&merged, &stage1, &conv).unwrap();
    write_results(&merged, &stage2, &conv).unwrap();
    let (together, c) = read_results_many(&[a.clone(), b.clone()]).unwrap();
    let (one, c1) = read_results(&merged).unwrap();
    assert_eq!(c, c1);
    assert_eq!(
        together, one,
        "the rows of the merged frame, in the same order"
    );
    let render = |rows: &[MetricRecord]| render_text(&build_table(rows));
    assert_eq!(render(&together), render(&one));

    // The same evaluation in two frames would count its units twice.
    let err = read_results_many(&[a.clone(), merged.clone()]).unwrap_err();
    assert!(
        matches!(err, FrameError::DuplicateEvaluation { .. }),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("merged.parquet") && msg.contains("a.parquet") && msg.contains("stage 1"),
        "{msg}"
    );

    // Frames scored with other conventions are not read together.
    let other = dir.path().join("other.parquet");
    let conv2 = Conventions::new(&MetricOptions::default(), UnitKind::Volume, 1337);
    write_results(&other, &evaluation("prob-unet", 1, 10, 0, 5, 2), &conv2).unwrap();
    let err = read_results_many(&[a, other]).unwrap_err();
    assert!(matches!(err, FrameError::ConventionsDiffer { .. }), "{err}");
    assert!(err.to_string().contains("other.parquet"), "{err}");
}
