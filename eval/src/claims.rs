//! `dpersona report --claims`: the paper's claims tested on a metric frame.
//!
//! Each claim compares two table rows on one metric over the SAME units: the paired
//! difference (claimant − other) per unit present in both rows, its mean with a 95%
//! percentile bootstrap interval ([`crate::stats`], B = 2000, fixed seed) and the two-sided
//! Wilcoxon signed-rank p-value. Verdict: `holds` when the interval lies entirely on the
//! claimed side of 0, `does not hold` when entirely on the other side, `undecided` when it
//! touches or covers 0. Why paired: both methods score the same images, and most of the
//! spread of a Dice is the image, not the method; unpaired intervals would overlap where the
//! paired difference is clear.
//!
//! Rows are (method, stage, #N, M), pooled over runs and seeds: a unit's value is its mean
//! over every (run, seed) replicate of the row, so three seeds count as one unit, not three.
//!
//! The claims (D-Persona, CVPR 2024):
//! 1. Stage I has a lower GED and a higher Dice_soft than the Prob. U-Net (same #N).
//! 2. Stage II's personalised masks have the best per-rater Dice among the methods (Tables
//!    1-2): Stage II's identity Dice for rater k against every other row's Dice for rater k
//!    (identity where that row outputs one map per rater, else Hungarian-matched).
//!
//! and the concession: Stage II does not reach a U-Net trained on rater k alone
//! (`unet-rater`, reported on NPC's volumes): claimed Stage II < unet-rater.
use std::collections::{BTreeMap, BTreeSet};

use schemas::metrics::MetricRecord;

use crate::metric_rows::names;
use crate::results_frame::UnitKey;
use crate::stats::{bootstrap_mean, wilcoxon_p, Interval, Verdict, DEFAULT_RESAMPLES};

/// A table row as a claim names it (runs and seeds pooled).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RowId {
    pub method: String,
    pub stage: u8,
    pub n_samples: u32,
    pub bank: u32,
}

impl RowId {
    /// `dpersona stage 1 #10`, `dpersona stage 2 M=100`, `prob-unet #10`, `mv`.
    pub fn label(&self) -> String {
        let mut s = self.method.clone();
        if self.method == DPERSONA {
            s += &format!(" stage {}", self.stage);
        }
        if self.n_samples > 0 {
            s += &format!(" #{}", self.n_samples);
        }
        if self.bank > 0 {
            s += &format!(" M={}", self.bank);
        }
        s
    }
}

const DPERSONA: &str = "dpersona";
const PROB_UNET: &str = "prob-unet";
const UNET_RATER: &str = "unet-rater";

/// The result of one comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Tested {
        /// Mean paired difference (claimant − other) and its 95% bootstrap interval.
        diff: Interval,
        /// Units present in both rows.
        n: usize,
        /// Two-sided Wilcoxon signed-rank p (None when every difference is 0).
        p: Option<f64>,
        verdict: Verdict,
    },
    /// Why the comparison cannot be made (`no prob-unet rows`, ...).
    NotTestable(String),
}

/// One line of the claims block.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimLine {
    /// `1`, `2`, `2 (concession)`.
    pub claim: &'static str,
    /// The claimant's metric (`ged`, `dice_soft`, `dice_rater_2_identity`).
    pub metric: String,
    /// The claimant row and the row it is compared with, where both exist.
    pub rows: Option<(RowId, RowId)>,
    /// The other row's metric (differs for matched per-rater Dice).
    pub other_metric: String,
    /// The claim says claimant > other (else claimant < other).
    pub claimed_higher: bool,
    pub outcome: Outcome,
}

/// Per (row, metric): each unit's value averaged over the row's replicates.
struct Frame {
    values: BTreeMap<(RowId, String), BTreeMap<UnitKey, f64>>,
    rows: BTreeSet<RowId>,
    raters: usize,
}

impl Frame {
    fn new(records: &[MetricRecord]) -> Self {
        let mut sums: BTreeMap<(RowId, String), BTreeMap<UnitKey, (f64, u32)>> = BTreeMap::new();
        let mut raters = 0;
        for r in records {
            let id = RowId {
                method: r.method.clone(),
                stage: r.stage,
                n_samples: r.n_samples,
                bank: r.bank,
            };
            if let Some(k) = r
                .metric
                .strip_prefix("dice_rater_")
                .and_then(|s| s.split('_').next())
                .and_then(|k| k.parse::<usize>().ok())
            {
                raters = raters.max(k);
            }
            let e = sums
                .entry((id, r.metric.clone()))
                .or_default()
                .entry(UnitKey::of(r))
                .or_insert((0.0, 0));
            e.0 += r.value;
            e.1 += 1;
        }
        let values: BTreeMap<_, _> = sums
            .into_iter()
            .map(|(k, units)| {
                let means = units
                    .into_iter()
                    .map(|(u, (s, n))| (u, s / n as f64))
                    .collect();
                (k, means)
            })
            .collect();
        let rows = values.keys().map(|(r, _)| r.clone()).collect();
        Frame {
            values,
            rows,
            raters,
        }
    }

    fn rows_where(&self, f: impl Fn(&RowId) -> bool) -> Vec<&RowId> {
        self.rows.iter().filter(|r| f(r)).collect()
    }

    fn has(&self, row: &RowId, metric: &str) -> bool {
        self.values.contains_key(&(row.clone(), metric.to_string()))
    }

    /// Paired differences a − b over the units both have.
    fn paired(&self, a: &RowId, ma: &str, b: &RowId, mb: &str) -> Vec<f64> {
        let (Some(va), Some(vb)) = (
            self.values.get(&(a.clone(), ma.to_string())),
            self.values.get(&(b.clone(), mb.to_string())),
        ) else {
            return Vec::new();
        };
        va.iter()
            .filter_map(|(u, x)| vb.get(u).map(|y| x - y))
            .collect()
    }

    fn line(
        &self,
        claim: &'static str,
        (a, ma): (&RowId, &str),
        (b, mb): (&RowId, &str),
        claimed_higher: bool,
    ) -> ClaimLine {
        let d = self.paired(a, ma, b, mb);
        let outcome = match bootstrap_mean(&d) {
            None => Outcome::NotTestable(format!(
                "no unit has {ma} of {} and {mb} of {}",
                a.label(),
                b.label()
            )),
            Some(diff) => Outcome::Tested {
                diff,
                n: d.len(),
                p: wilcoxon_p(&d),
                verdict: Verdict::of(&diff, claimed_higher),
            },
        };
        ClaimLine {
            claim,
            metric: ma.to_string(),
            rows: Some((a.clone(), b.clone())),
            other_metric: mb.to_string(),
            claimed_higher,
            outcome,
        }
    }
}

fn not_testable(claim: &'static str, metric: &str, claimed_higher: bool, why: String) -> ClaimLine {
    ClaimLine {
        claim,
        metric: metric.to_string(),
        rows: None,
        other_metric: metric.to_string(),
        claimed_higher,
        outcome: Outcome::NotTestable(why),
    }
}

/// Every comparison of the paper's claims that `records` allows, and a `not testable` line
/// for each one it does not.
pub fn check_claims(records: &[MetricRecord]) -> Vec<ClaimLine> {
    let f = Frame::new(records);
    let mut out = Vec::new();

    // (1) Stage I vs Prob. U-Net at the same #N: GED lower, Dice_soft higher.
    let stage1 = f.rows_where(|r| r.method == DPERSONA && r.stage == 1);
    let prob = f.rows_where(|r| r.method == PROB_UNET);
    for (metric, higher) in [(names::GED, false), (names::DICE_SOFT, true)] {
        if stage1.is_empty() {
            out.push(not_testable(
                "1",
                metric,
                higher,
                "no dpersona stage 1 rows".into(),
            ));
            continue;
        }
        if prob.is_empty() {
            out.push(not_testable(
                "1",
                metric,
                higher,
                format!("no {PROB_UNET} rows"),
            ));
            continue;
        }
        for s in &stage1 {
            match prob.iter().find(|p| p.n_samples == s.n_samples) {
                Some(p) => out.push(f.line("1", (s, metric), (p, metric), higher)),
                None => out.push(not_testable(
                    "1",
                    metric,
                    higher,
                    format!("no {PROB_UNET} #{} rows", s.n_samples),
                )),
            }
        }
    }

    // (2) Stage II's identity per-rater Dice against every other row's, rater by rater;
    // and the concession against unet-rater.
    let stage2 = f.rows_where(|r| r.method == DPERSONA && r.stage == 2);
    // Rivals: rows that report a per-rater Dice at all (a Stage I evaluation that only
    // scored GED is no rival here).
    let others = f.rows_where(|r| {
        !(r.method == DPERSONA && r.stage == 2)
            && r.method != UNET_RATER
            && (1..=f.raters).any(|k| {
                f.has(r, &names::dice_rater_identity(k)) || f.has(r, &names::dice_rater_matched(k))
            })
    });
    let unet = f.rows_where(|r| r.method == UNET_RATER);
    let per_rater_of = |row: &RowId, k: usize| {
        if f.has(row, names::DICE_MEAN_IDENTITY) {
            names::dice_rater_identity(k)
        } else {
            names::dice_rater_matched(k)
        }
    };
    let first = names::dice_rater_identity(1);
    for (claim, rivals, higher, missing) in [
        (
            "2",
            &others,
            true,
            "no rows of other methods with per-rater Dice".to_string(),
        ),
        (
            "2 (concession)",
            &unet,
            false,
            format!("no {UNET_RATER} rows"),
        ),
    ] {
        if stage2.is_empty() {
            out.push(not_testable(
                claim,
                &first,
                higher,
                "no dpersona stage 2 rows".into(),
            ));
            continue;
        }
        if rivals.is_empty() {
            out.push(not_testable(claim, &first, higher, missing));
            continue;
        }
        for s in &stage2 {
            for o in rivals.iter() {
                for k in 1..=f.raters {
                    let ma = names::dice_rater_identity(k);
                    let mb = per_rater_of(o, k);
                    out.push(f.line(claim, (s, &ma), (o, &mb), higher));
                }
            }
        }
    }
    out
}

/// The claims block `report --claims` prints.
pub fn render_claims(lines: &[ClaimLine]) -> String {
    let mut out = format!(
        "Claims: paired difference (first row − second) over the units both rows scored, mean \
         [95% percentile bootstrap interval, B = {DEFAULT_RESAMPLES}], two-sided Wilcoxon \
         signed-rank p; holds = interval entirely on the claimed side of 0, does not hold = \
         entirely on the other side, undecided = it covers 0. GED as a fraction, Dice in \
         percentage points. Runs and seeds of a row are pooled per unit.\n\
         (1) Stage I: lower GED and higher Dice_soft than the Prob. U-Net.\n\
         (2) Stage II: the best per-rater Dice among the methods; concession: below a U-Net \
         trained on rater k alone (unet-rater).\n"
    );
    for l in lines {
        let side = if l.claimed_higher { ">" } else { "<" };
        let metric = if l.other_metric == l.metric {
            l.metric.clone()
        } else {
            format!("{} vs {}", l.metric, l.other_metric)
        };
        let scale = if l.metric == names::GED { 1.0 } else { 100.0 };
        let digits = if l.metric == names::GED { 4 } else { 2 };
        let v = |x: f64| format!("{:+.digits$}", x * scale);
        let what = match &l.rows {
            Some((a, b)) => format!("{} {side} {}", a.label(), b.label()),
            None => format!("({side})"),
        };
        let result = match &l.outcome {
            Outcome::NotTestable(why) => format!("not testable: {why}"),
            Outcome::Tested {
                diff,
                n,
                p,
                verdict,
            } => format!(
                "diff {} [{}, {}], n={n}, Wilcoxon p={}: {}",
                v(diff.mean),
                v(diff.lo),
                v(diff.hi),
                p.map_or("n/a".to_string(), |p| format!("{p:.3e}")),
                verdict.as_str()
            ),
        };
        out += &format!("[{}] {metric}: {what}: {result}\n", l.claim);
    }
    out
}
