//! `dpersona diagnose`: what a trained D-Persona's latent space carries, per slice.
//!
//! Why: when Stage II does not beat a simpler method, the metric frames say that it does
//! not, not why. D-Persona's Stage II can only personalise what Stage I's prior offers: if
//! the posterior collapsed onto the prior (KL ≈ 0), or the prior's draws all decode to the
//! same mask, the heads have nothing to choose from and every head returns the consensus.
//! This command measures each link of that chain on a split (issue #12):
//! - Stage I: KL(q‖p) per latent dimension and the prior's σ (collapse), the Dice between
//!   the decodes of the posterior's and the prior's means (does the code move the mask?),
//!   and over a bank of M prior draws: distinct masks, mean pairwise 1 − IoU, and per rater
//!   the best and the mean Dice of a draw (the best is the ceiling of a head that picks).
//! - Stage II: per head its Dice against its rater, the entropy of its attention over the
//!   bank (1 = a plain average), the largest weight, the query's norm and its channels stuck
//!   at 0 by the head's final ReLU, and the heads' pairwise Dice next to the raters'.
//!
//! Rows go to a tidy frame (schemas::diagnostics), means to stdout.
pub mod measures;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use schemas::diagnostics::DiagnosticRecord;
use tch::{Device, Kind, Tensor};

use crate::evaluate::{
    folder_name, load_checked, read_best, scoring_manifest, trained_stages, EvalError,
};
use crate::loader::{Dataset, FoldRole, Loader, LoaderConfig, Selection};
use crate::methods::build_model;
use crate::models::proj_head::attention_weights;
use crate::models::DPersona;
use crate::run_dir::RunDir;
use crate::seeding::{reseed, Stream};
use measures::{
    binarise, dice_matrix, distinct_masks, mean_pairwise_dice, mean_pairwise_distance,
    normalised_entropy,
};

/// Everything one diagnosis needs.
#[derive(Debug, Clone)]
pub struct DiagnoseOptions {
    pub run: PathBuf,
    /// Default: the manifest recorded in the run.
    pub manifest: Option<PathBuf>,
    pub out: PathBuf,
    /// Split to diagnose when the run has no fold.
    pub split: String,
    /// Default: the run's fold (its test images).
    pub fold: Option<u32>,
    /// Prior draws per slice in the bank.
    pub bank: u32,
    pub seed: u64,
    pub device: Device,
    pub batch_size: usize,
}

/// Means over slices, per stage, quantity and index (what the command prints).
#[derive(Debug, Clone)]
pub struct DiagnoseSummary {
    pub out: PathBuf,
    pub rows: usize,
    pub slices: usize,
    pub split: String,
    pub bank: u32,
    pub latent_dim: usize,
    pub raters: usize,
    /// (stage, quantity, index) → (sum, count).
    pub means: BTreeMap<(u8, String, Option<u32>), (f64, usize)>,
}

impl DiagnoseSummary {
    /// Mean of a quantity over the slices that have it.
    pub fn mean(&self, stage: u8, quantity: &str, index: Option<u32>) -> Option<f64> {
        self.means
            .get(&(stage, quantity.to_string(), index))
            .map(|&(s, n)| s / n as f64)
    }
}

/// One value of one slice before it becomes a row: (slice in batch, quantity, index, value).
type Value = (usize, &'static str, Option<u32>, f64);

/// Diagnoses every trained stage of a D-Persona run and writes the rows to `opts.out`.
pub fn diagnose(opts: &DiagnoseOptions) -> Result<DiagnoseSummary, EvalError> {
    let run = RunDir::new(&opts.run);
    let mut cfg = run.read_config()?;
    if let Some(spec) = &cfg.baseline {
        return Err(EvalError::Setup(format!(
            "{}: a {} run; diagnose reads D-Persona runs (their prior, posterior and heads)",
            opts.run.display(),
            spec.name()
        )));
    }
    let (manifest, fold) = scoring_manifest(
        &opts.run,
        &run,
        &mut cfg,
        opts.manifest.as_deref(),
        opts.fold,
    )?;
    let (selection, split) = match fold {
        Some(k) => (Selection::fold(k, FoldRole::Test), format!("fold{k}")),
        None => (Selection::split(&opts.split), opts.split.clone()),
    };
    let dataset = Dataset::from_manifest(manifest, &selection)?;
    let slices = dataset.len();
    let loader = Loader::new(
        dataset,
        LoaderConfig {
            threads: cfg.loader.threads,
            ..LoaderConfig::eval(opts.batch_size.max(1))
        },
    )?;
    let stages = trained_stages(&opts.run, &run, &[])?;
    let run_name = folder_name(&opts.run);
    let mut rows = Vec::new();
    for stage in stages {
        let dir = run.stage_dir(stage);
        let (mut vs, model) = build_model(&cfg, opts.device)?;
        let sha = load_checked(&dir, &read_best(&dir)?, &mut vs)?;
        // The same draws for both stages' banks: their bank numbers differ only by the
        // weights (Stage II's backbone BN statistics drift in training mode).
        reseed(opts.seed, Stream::Inference, 0, 0, opts.bank as u64);
        for batch in loader.epoch(0) {
            let batch = batch?;
            let t = batch.tensors(opts.device, false);
            let values = tch::no_grad(|| {
                measure(
                    &model,
                    stage,
                    &t.images,
                    &t.masks,
                    &t.present,
                    opts.bank as i64,
                )
            });
            for (b, quantity, index, value) in values {
                let id = &batch.rows[b];
                rows.push(DiagnosticRecord {
                    run: run_name.clone(),
                    stage,
                    split: split.clone(),
                    study_id: id.study_id.clone(),
                    target_id: id.target_id.clone(),
                    slice_index: id.slice_index,
                    quantity: quantity.to_string(),
                    index,
                    value,
                    bank: opts.bank,
                    seed: opts.seed,
                    checkpoint_sha256: sha.clone(),
                });
            }
        }
    }
    if let Some(parent) = opts.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| EvalError::Setup(format!("cannot create {}: {e}", parent.display())))?;
    }
    schemas::write_table(&opts.out, &rows, &[])?;
    let mut means: BTreeMap<(u8, String, Option<u32>), (f64, usize)> = BTreeMap::new();
    for r in &rows {
        let e = means
            .entry((r.stage, r.quantity.clone(), r.index))
            .or_insert((0.0, 0));
        e.0 += r.value;
        e.1 += 1;
    }
    Ok(DiagnoseSummary {
        out: opts.out.clone(),
        rows: rows.len(),
        slices,
        split,
        bank: opts.bank,
        latent_dim: cfg.model.latent_dim as usize,
        raters: cfg.model.raters as usize,
        means,
    })
}

/// One batch's values: images x `[B, C, H, W]`, rater masks y `[B, R, H, W]`, present
/// `[B, R]` (bool).
fn measure(
    model: &DPersona,
    stage: u8,
    x: &Tensor,
    y: &Tensor,
    present: &Tensor,
    bank_size: i64,
) -> Vec<Value> {
    let mut out = Vec::new();
    let (b, r) = (y.size()[0], y.size()[1]);
    let raters = y.gt(0.5).to_kind(Kind::Double).view([b, r, -1]);
    let present = present.to_device(x.device()).to_kind(Kind::Bool);
    let feats = model.features(x, false);
    let prior = model.prior(x);
    let bank = prior.sample_n(bank_size);
    let bank_masks = binarise(&model.decode_many(&feats, &bank));
    if stage == 1 {
        let posterior = model.posterior(x, y);
        per_index(&mut out, "kl", &posterior.kl_per_dim(&prior), None);
        per_index(&mut out, "prior_sigma", &prior.sigma(), None);
        let shift = dice_matrix(
            &binarise(&model.decode(&feats, &posterior.mu)),
            &binarise(&model.decode(&feats, &prior.mu)),
        );
        per_slice(&mut out, "posterior_vs_prior_dice", &shift.view([b]), None);
    }
    let counts: Vec<f64> = distinct_masks(&bank_masks)
        .into_iter()
        .map(|n| n as f64)
        .collect();
    per_slice(
        &mut out,
        "bank_distinct",
        &Tensor::from_slice(&counts),
        None,
    );
    per_slice(
        &mut out,
        "bank_diversity",
        &mean_pairwise_distance(&bank_masks),
        None,
    );
    let vs_raters = dice_matrix(&bank_masks, &raters); // [B, M, R]
    per_index(
        &mut out,
        "bank_best_dice",
        &vs_raters.amax([1i64].as_slice(), false),
        Some(&present),
    );
    per_index(
        &mut out,
        "bank_mean_dice",
        &vs_raters.mean_dim([1i64].as_slice(), false, None),
        Some(&present),
    );
    let (agreement, pairs) = mean_pairwise_dice(&raters, &present);
    per_slice(
        &mut out,
        "rater_agreement",
        &agreement,
        Some(&pairs.gt(0.0)),
    );
    if stage == 2 {
        let queries = model.queries(&feats, false); // [B, R, D]
        let weights = attention_weights(&queries, &bank); // [B, R, M]
        let heads = binarise(&model.decode_many(&feats, &weights.matmul(&bank)));
        let own = dice_matrix(&heads, &raters).diagonal(0, 1, 2); // [B, R]
        per_index(&mut out, "head_dice", &own, Some(&present));
        per_index(
            &mut out,
            "attention_entropy",
            &normalised_entropy(&weights),
            None,
        );
        per_index(
            &mut out,
            "attention_max",
            &weights.amax([2i64].as_slice(), false),
            None,
        );
        per_index(
            &mut out,
            "query_norm",
            &queries
                .to_kind(Kind::Double)
                .square()
                .sum_dim_intlist(-1, false, None)
                .sqrt(),
            None,
        );
        per_index(
            &mut out,
            "query_zero_channels",
            &queries.eq(0.0).sum_dim_intlist(-1, false, Kind::Double),
            None,
        );
        let all = present.ones_like();
        let (agreement, _) = mean_pairwise_dice(&heads, &all);
        per_slice(&mut out, "head_agreement", &agreement, None);
    }
    out
}

/// Host copy of a `[B]` or `[B, K]` tensor as f64, row-major.
fn host(t: &Tensor) -> Vec<f64> {
    Vec::try_from(
        t.to_kind(Kind::Double)
            .to_device(Device::Cpu)
            .contiguous()
            .view([-1]),
    )
    .expect("values convert to f64")
}

/// One value per slice from `[B]`, where `keep` `[B]` (bool) is true (all if None).
fn per_slice(out: &mut Vec<Value>, q: &'static str, t: &Tensor, keep: Option<&Tensor>) {
    let values = host(t);
    let keep = keep.map(host);
    for (b, v) in values.into_iter().enumerate() {
        if keep.as_ref().is_none_or(|k| k[b] > 0.5) {
            out.push((b, q, None, v));
        }
    }
}

/// One value per slice and index from `[B, K]`, where `keep` `[B, K]` (bool) is true.
fn per_index(out: &mut Vec<Value>, q: &'static str, t: &Tensor, keep: Option<&Tensor>) {
    let k = t.size()[1] as usize;
    let values = host(t);
    let keep = keep.map(host);
    for (i, v) in values.into_iter().enumerate() {
        if keep.as_ref().is_none_or(|m| m[i] > 0.5) {
            out.push((i / k, q, Some((i % k) as u32), v));
        }
    }
}

/// The printed report: one block per stage, one line per quantity, one column per index.
pub fn render(summary: &DiagnoseSummary) -> String {
    let (bank, latent_dim, raters) = (summary.bank, summary.latent_dim, summary.raters);
    let mut s = format!(
        "{} slices of {}; bank of {bank} prior draws per slice; means over slices\n",
        summary.slices, summary.split
    );
    let line = |stage: u8, q: &str, label: &str, n: usize| -> Option<String> {
        let cells: Vec<String> = (0..n as u32)
            .map(|i| {
                summary
                    .mean(stage, q, Some(i))
                    .map_or("     -".to_string(), |v| format!("{v:>6.3}"))
            })
            .collect();
        cells
            .iter()
            .any(|c| c.trim() != "-")
            .then(|| format!("  {label:<34} {}\n", cells.join(" ")))
    };
    let scalar = |stage: u8, q: &str, label: &str| -> Option<String> {
        summary
            .mean(stage, q, None)
            .map(|v| format!("  {label:<34} {v:.3}\n"))
    };
    let stages: std::collections::BTreeSet<u8> = summary.means.keys().map(|k| k.0).collect();
    for stage in stages {
        s.push_str(&format!("stage {stage}\n"));
        if stage == 1 {
            let kl: Vec<f64> = (0..latent_dim as u32)
                .filter_map(|d| summary.mean(1, "kl", Some(d)))
                .collect();
            let active = kl.iter().filter(|&&v| v > 0.01).count();
            s.push_str(&format!(
                "  {:<34} {}   (sum {:.4}; {active} of {} dims above 0.01 nats)\n",
                "KL(q||p) per latent dim, nats",
                kl.iter()
                    .map(|v| format!("{v:>6.4}"))
                    .collect::<Vec<_>>()
                    .join(" "),
                kl.iter().sum::<f64>(),
                kl.len()
            ));
            s.extend(line(
                1,
                "prior_sigma",
                "prior sigma per latent dim",
                latent_dim,
            ));
            s.extend(scalar(
                1,
                "posterior_vs_prior_dice",
                "Dice decode(mu_q) vs decode(mu_p)",
            ));
        }
        s.extend(scalar(stage, "bank_distinct", "distinct masks in the bank"));
        s.extend(scalar(
            stage,
            "bank_diversity",
            "bank: mean pairwise 1 - IoU",
        ));
        s.push_str(&format!(
            "  {:<34} {}\n",
            "rater / head",
            (1..=raters)
                .map(|k| format!("{k:>6}"))
                .collect::<Vec<_>>()
                .join(" ")
        ));
        if stage == 2 {
            s.extend(line(2, "head_dice", "head k Dice vs rater k", raters));
        }
        s.extend(line(
            stage,
            "bank_best_dice",
            "best draw's Dice vs rater",
            raters,
        ));
        s.extend(line(
            stage,
            "bank_mean_dice",
            "mean draw's Dice vs rater",
            raters,
        ));
        if stage == 2 {
            s.extend(line(
                2,
                "attention_entropy",
                "attention entropy / ln M",
                raters,
            ));
            s.extend(line(2, "attention_max", "largest attention weight", raters));
            s.extend(line(2, "query_norm", "query norm", raters));
            s.extend(line(
                2,
                "query_zero_channels",
                &format!("query channels at 0 (of {latent_dim})"),
                raters,
            ));
            s.extend(scalar(2, "head_agreement", "heads' pairwise Dice"));
        }
        s.extend(scalar(stage, "rater_agreement", "raters' pairwise Dice"));
    }
    s
}

/// `RUN/diagnostics.parquet`: where the rows go unless `--out` says otherwise.
pub fn default_out(run: &Path) -> PathBuf {
    run.join("diagnostics.parquet")
}
