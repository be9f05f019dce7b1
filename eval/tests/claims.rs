//! `report --claims` on frames built by hand where the answer is known: written with eval's
//! own writer, read back, tested. A clearly better row -> holds, clearly worse -> does not
//! hold, differences of both signs that cancel -> undecided, rows missing -> not testable.
use eval::claims::{check_claims, render_claims, ClaimLine, Outcome};
use eval::metric_rows::UnitKind;
use eval::results_frame::{read_results, write_results, Conventions};
use eval::stats::Verdict;
use eval::unit_metrics::MetricOptions;
use schemas::metrics::MetricRecord;

const UNITS: u32 = 40;
const RATERS: usize = 4;

/// A deterministic per-unit wobble in [-0.01, 0.01].
fn wobble(u: u32, salt: u32) -> f64 {
    (((u * 37 + salt * 11) % 21) as f64 - 10.0) / 1000.0
}

/// A metric name and its value on unit u.
type Metric<'a> = (String, Box<dyn Fn(u32) -> f64 + 'a>);

struct Row<'a> {
    run: &'a str,
    method: &'a str,
    stage: u8,
    n_samples: u32,
    bank: u32,
    seed: u64,
    /// Units scored: 0..units (fold = unit / 20).
    units: u32,
}

fn records(row: &Row, metrics: &[Metric<'_>]) -> Vec<MetricRecord> {
    let mut out = Vec::new();
    for u in 0..row.units {
        for (metric, value) in metrics {
            out.push(MetricRecord {
                run: row.run.into(),
                method: row.method.into(),
                stage: row.stage,
                n_samples: row.n_samples,
                bank: row.bank,
                n_outputs: if row.n_samples > 0 { row.n_samples } else { 4 },
                fold: u / 20,
                study_id: format!("S{}", u % 7),
                target_id: "1".into(),
                unit: "slice".into(),
                unit_index: u,
                slice_index: Some(u as i32),
                z_mm: None,
                metric: metric.clone(),
                value: value(u),
                seed: row.seed,
                checkpoint_sha256: String::new(),
            });
        }
    }
    out
}

/// Rater k's base Dice on unit u for Stage II.
fn base(k: usize, u: u32) -> f64 {
    0.6 + 0.05 * k as f64 + wobble(u, k as u32)
}

/// Per-rater metrics (identity or matched) of `f(k, u)`, with the mean where identity.
fn per_rater<'a>(kind: &'a str, f: impl Fn(usize, u32) -> f64 + Copy + 'a) -> Vec<Metric<'a>> {
    let mut m: Vec<Metric<'a>> = (1..=RATERS)
        .map(|k| {
            let g: Box<dyn Fn(u32) -> f64 + 'a> = Box::new(move |u| f(k, u));
            (format!("dice_rater_{k}_{kind}"), g)
        })
        .collect();
    m.push((
        format!("dice_mean_{kind}"),
        Box::new(move |u| (1..=RATERS).map(|k| f(k, u)).sum::<f64>() / RATERS as f64),
    ));
    m
}

fn write_and_read(rows: &[MetricRecord]) -> Vec<MetricRecord> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("results.parquet");
    let conv = Conventions::new(&MetricOptions::default(), UnitKind::Slice, 1);
    write_results(&path, rows, &conv).unwrap();
    read_results(&path).unwrap().0
}

fn find<'a>(lines: &'a [ClaimLine], claim: &str, metric: &str, a: &str, b: &str) -> &'a Outcome {
    &lines
        .iter()
        .find(|l| {
            l.claim == claim
                && l.metric == metric
                && l.rows
                    .as_ref()
                    .is_some_and(|(x, y)| x.label() == a && y.label() == b)
        })
        .unwrap_or_else(|| panic!("no line [{claim}] {metric} {a} vs {b}: {lines:#?}"))
        .outcome
}

fn verdict(o: &Outcome) -> (Verdict, f64, usize, Option<f64>) {
    match o {
        Outcome::Tested {
            diff,
            n,
            p,
            verdict,
        } => (*verdict, diff.mean, *n, *p),
        other => panic!("not tested: {other:?}"),
    }
}

#[test]
fn known_answers_hold_fail_undecided_and_not_testable() {
    let mut rows = Vec::new();
    let row = |run, method, stage, n_samples, bank, seed, units| Row {
        run,
        method,
        stage,
        n_samples,
        bank,
        seed,
        units,
    };
    // (1) Stage I #10: GED 0.10 lower and Dice_soft 0.10 higher than prob-unet #10.
    let s1 = row("dp", "dpersona", 1, 10, 0, 1, UNITS);
    rows.extend(records(
        &s1,
        &[
            ("ged".into(), Box::new(|u| 0.2 + wobble(u, 1))),
            ("dice_soft".into(), Box::new(|u| 0.8 + wobble(u, 2))),
        ],
    ));
    rows.extend(records(&s1, &per_rater("matched", |k, u| base(k, u) - 0.1)));
    // Stage I #100 has no prob-unet #100 to compare with.
    rows.extend(records(
        &row("dp", "dpersona", 1, 100, 0, 1, UNITS),
        &[("ged".into(), Box::new(|u| 0.2 + wobble(u, 1)))],
    ));
    let prob = row("prob", "prob-unet", 1, 10, 0, 1, UNITS);
    rows.extend(records(
        &prob,
        &[
            ("ged".into(), Box::new(|u| 0.3 + wobble(u, 3))),
            ("dice_soft".into(), Box::new(|u| 0.7 + wobble(u, 4))),
        ],
    ));
    rows.extend(records(
        &prob,
        &per_rater("matched", |k, u| base(k, u) - 0.1),
    ));
    // (2) Stage II from three run folders, one per seed (pooled per unit).
    for (run, seed) in [("dp-s1", 1), ("dp-s2", 2), ("dp-s3", 3)] {
        let r = row(run, "dpersona", 2, 0, 50, seed, UNITS);
        let off = seed as f64 * 0.001;
        rows.extend(records(
            &r,
            &per_rater("identity", move |k, u| base(k, u) + off),
        ));
    }
    // mv (matched, only fold 0 scored): 0.2 below -> holds on the 20 shared units.
    rows.extend(records(
        &row("mv", "mv", 1, 0, 0, 1, 20),
        &per_rater("matched", |k, u| base(k, u) - 0.2 + wobble(u, 9)),
    ));
    // tab (identity): 0.1 above -> does not hold.
    rows.extend(records(
        &row("tab", "tab", 1, 0, 0, 1, UNITS),
        &per_rater("identity", |k, u| base(k, u) + 0.1),
    ));
    // staple (matched): +-0.05 alternating around Stage II -> undecided.
    rows.extend(records(
        &row("staple", "staple", 1, 0, 0, 1, UNITS),
        &per_rater("matched", |k, u| {
            base(k, u) + 0.002 + if u % 2 == 0 { 0.05 } else { -0.05 }
        }),
    ));
    let rows = write_and_read(&rows);
    let lines = check_claims(&rows);
    let text = render_claims(&lines);
    println!("{text}");

    let s1 = "dpersona stage 1 #10";
    let (v, mean, n, p) = verdict(find(&lines, "1", "ged", s1, "prob-unet #10"));
    assert_eq!((v, n), (Verdict::Holds, 40));
    let want: f64 = (0..UNITS)
        .map(|u| -0.1 + wobble(u, 1) - wobble(u, 3))
        .sum::<f64>()
        / 40.0;
    assert!((mean - want).abs() < 1e-12, "{mean} vs {want}");
    assert!(p.unwrap() < 1e-6, "{p:?}");
    let (v, _, _, _) = verdict(find(&lines, "1", "dice_soft", s1, "prob-unet #10"));
    assert_eq!(v, Verdict::Holds);
    assert!(
        text.contains("not testable: no prob-unet #100 rows"),
        "{text}"
    );

    let s2 = "dpersona stage 2 M=50";
    for k in 1..=RATERS {
        let m = format!("dice_rater_{k}_identity");
        let (v, mean, n, _) = verdict(find(&lines, "2", &m, s2, "mv"));
        // Stage II pooled over its seeds: base + 0.002; mv: base - 0.2 + wobble.
        let want: f64 = (0..20).map(|u| 0.202 - wobble(u, 9)).sum::<f64>() / 20.0;
        assert_eq!((v, n), (Verdict::Holds, 20), "{m} vs mv");
        assert!((mean - want).abs() < 1e-12, "{m}: {mean} vs {want}");
        let (v, mean, _, _) = verdict(find(&lines, "2", &m, s2, "tab"));
        assert_eq!(v, Verdict::DoesNotHold, "{m} vs tab");
        assert!((mean + 0.098).abs() < 1e-12, "{mean}");
        let (v, mean, n, p) = verdict(find(&lines, "2", &m, s2, "staple"));
        assert_eq!((v, n), (Verdict::Undecided, 40), "{m} vs staple");
        assert!(mean.abs() < 1e-12, "{mean}");
        assert!(p.unwrap() > 0.05, "{p:?}");
        let (v, _, _, _) = verdict(find(&lines, "2", &m, s2, s1));
        assert_eq!(v, Verdict::Holds, "{m} vs Stage I");
    }
    // The other row's matched per-rater Dice is what Stage II's identity Dice meets.
    assert!(
        text.contains("dice_rater_1_identity vs dice_rater_1_matched: dpersona stage 2 M=50 > mv:"),
        "{text}"
    );
    assert!(
        text.contains(
            "[2 (concession)] dice_rater_1_identity: (<): not testable: no unet-rater rows"
        ),
        "{text}"
    );
    assert!(
        !text.contains("stage 1 #100: not testable"),
        "a row without per-rater Dice is no rival: {text}"
    );
    for phrase in ["holds", "does not hold", "undecided"] {
        assert!(text.contains(&format!(": {phrase}\n")), "{phrase}: {text}");
    }
}

#[test]
fn concession_against_unet_rater_and_missing_rows() {
    let mut rows = Vec::new();
    let s2 = Row {
        run: "dp",
        method: "dpersona",
        stage: 2,
        n_samples: 0,
        bank: 100,
        seed: 1,
        units: UNITS,
    };
    rows.extend(records(&s2, &per_rater("identity", base)));
    let unet = Row {
        run: "unet",
        method: "unet-rater",
        units: UNITS,
        stage: 1,
        n_samples: 0,
        bank: 0,
        seed: 1,
    };
    rows.extend(records(
        &unet,
        &per_rater("identity", |k, u| base(k, u) + 0.05 + wobble(u, 5)),
    ));
    let rows = write_and_read(&rows);
    let lines = check_claims(&rows);
    let text = render_claims(&lines);
    println!("{text}");
    for k in 1..=RATERS {
        let m = format!("dice_rater_{k}_identity");
        let (v, _, n, _) = verdict(find(
            &lines,
            "2 (concession)",
            &m,
            "dpersona stage 2 M=100",
            "unet-rater",
        ));
        assert_eq!((v, n), (Verdict::Holds, 40), "{m}");
    }
    assert!(
        text.contains("[1] ged: (<): not testable: no dpersona stage 1 rows"),
        "{text}"
    );
    assert!(
        text.contains("[2] dice_rater_1_identity: (>): not testable: no rows of other methods with per-rater Dice"),
        "{text}"
    );

    // Only prob-unet missing: claim 1 says so.
    let only_s1: Vec<MetricRecord> = records(
        &Row {
            run: "dp",
            method: "dpersona",
            stage: 1,
            n_samples: 10,
            bank: 0,
            seed: 1,
            units: 5,
        },
        &[("ged".into(), Box::new(|_| 0.2))],
    );
    let text = render_claims(&check_claims(&only_s1));
    assert!(
        text.contains("[1] ged: (<): not testable: no prob-unet rows"),
        "{text}"
    );
    assert!(
        text.contains("not testable: no dpersona stage 2 rows"),
        "{text}"
    );
}
