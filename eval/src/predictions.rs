//! The predictions folder (`--save-predictions DIR` of `dpersona eval`, read back by
//! `dpersona eval --predictions DIR` and `dpersona report --predictions DIR`), so that
//! predictions made by ANY tool are scored into the same metric frame.
//!
//! Layout (PNG, one folder per 2D slice; a 3D unit is all slice folders of one target):
//!
//! ```text
//! DIR/predictions.json                      PredictionsHeader (JSON, required)
//! DIR/<study_id>/<target_id>/slice_<s>/     s = the shard's slice_index, zero-padded to 4
//!     pred_01.png .. pred_NN.png            predicted probabilities, 8-bit (or 16-bit)
//!                                           greyscale, p = v / 255 (v / 65535); N >= 1,
//!                                           numbered 1..N without gaps
//!     rater_1.png .. rater_R.png            rater masks 0/255 in the scored slot order
//!                                           (present raters only; figures only)
//!     image.png                             image channel 0, min-max scaled (figures only)
//! ```
//!
//! Scoring reads only `predictions.json` and the `pred_*.png` files; labels always come
//! from the manifest's shards (rater masks, presence), area-ranked per unit when the
//! manifest's rater order is `area_rank`. The writer quantises probabilities with a
//! threshold-preserving rounding (`p > 0.5` <=> `v > 127`), so binarised metrics computed
//! from the folder equal the in-memory ones; Dice_soft can differ by quantisation.
//!
//! Volume units can instead be saved as NIfTI volumes, one file per prediction and target
//! (`"files": "nifti"` in the header; layout and value conventions in
//! [`crate::prediction_volumes`]). Headers without `files` (layout version 1) are PNG.
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use schemas::manifest::{Manifest, RaterOrder};
use schemas::metrics::MetricRecord;
use schemas::parquet_io::open_checked;
use schemas::slice::{SliceColumns, SCHEMA as SLICE_SCHEMA};

use crate::metric_rows::{EvalContext, UnitId, UnitKind};
pub(crate) use crate::prediction_error::invalid;
pub use crate::prediction_error::PredictionsError;
use crate::prediction_volumes::{
    read_probability_volume, write_volume_file, VolumeToSave, VolumeValues, VOLUME_ENDING,
};
use crate::raster::{encode_grey8, read_grey_png};
use crate::results_frame::Conventions;
use crate::unit_metrics::{score_unit, MetricOptions};

/// Value of [`PredictionsHeader::format`].
pub const FORMAT: &str = "dpersona-predictions";
/// Layout version this build writes and reads (2 added `files`; version 1 is PNG only).
pub const VERSION: u32 = 2;
/// Name of the header file inside the folder.
pub const HEADER_FILE: &str = "predictions.json";

/// `predictions.json`: what the predictions are and how to label the metric rows.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PredictionsHeader {
    /// Always [`FORMAT`].
    pub format: String,
    /// Layout version ([`VERSION`]).
    pub version: u32,
    /// Run label for the `run` column (a run folder name, or a tool's name).
    pub run: String,
    pub method: String,
    pub stage: u8,
    /// Prior samples per unit (0 if not sample-based).
    #[serde(default)]
    pub n_samples: u32,
    /// Stage-II bank size (0 otherwise).
    #[serde(default)]
    pub bank: u32,
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub checkpoint_sha256: String,
    /// `slice` (score each slice) or `volume` (score each target's slices stacked).
    pub unit: UnitKind,
    /// Fold for the `fold` column; when absent each study's manifest fold is used.
    #[serde(default)]
    pub fold: Option<u32>,
    /// How the maps are stored: `png` (slice folders) or `nifti` (one volume per target;
    /// `unit` must then be `volume`). Absent in version-1 headers, which are PNG.
    #[serde(default)]
    pub files: PredictionFiles,
}

/// File format of a predictions folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PredictionFiles {
    /// 8-bit PNG per slice and prediction (2D units; volumes as their slices).
    #[default]
    Png,
    /// float32 NIfTI-1 per target and prediction (volume units only).
    Nifti,
}

impl PredictionFiles {
    /// NIfTI for volume units, PNG for slices: what `dpersona eval --save-predictions`
    /// writes.
    pub fn for_unit(unit: UnitKind) -> Self {
        match unit {
            UnitKind::Slice => PredictionFiles::Png,
            UnitKind::Volume => PredictionFiles::Nifti,
        }
    }
}

impl PredictionsHeader {
    pub fn new(ctx: &EvalContext, unit: UnitKind, fold: Option<u32>) -> Self {
        PredictionsHeader {
            format: FORMAT.into(),
            version: VERSION,
            run: ctx.run.clone(),
            method: ctx.method.clone(),
            stage: ctx.stage,
            n_samples: ctx.n_samples,
            bank: ctx.bank,
            seed: ctx.seed,
            checkpoint_sha256: ctx.checkpoint_sha256.clone(),
            unit,
            fold,
            files: PredictionFiles::for_unit(unit),
        }
    }

    /// The same header storing slices as PNG whatever the unit (volumes slice by slice).
    pub fn with_files(mut self, files: PredictionFiles) -> Self {
        self.files = files;
        self
    }
}

/// A path component must not be able to escape the folder or hide files.
pub(crate) fn check_component(path: &Path, what: &str, s: &str) -> Result<(), PredictionsError> {
    if s.is_empty() || s.starts_with('.') || s.contains(['/', '\\']) {
        return Err(invalid(
            path,
            format!("{what} `{s}` cannot be used as a folder name"),
        ));
    }
    Ok(())
}

/// The folder of one slice.
pub fn slice_dir(dir: &Path, study_id: &str, target_id: &str, slice_index: i32) -> PathBuf {
    dir.join(study_id)
        .join(target_id)
        .join(format!("slice_{slice_index:04}"))
}

/// Probability -> 8-bit grey, rounding to nearest but never across the 0.5 threshold
/// (`p > 0.5` <=> `v > 127`), so binarised metrics survive the round trip.
pub fn quantise_probability(p: f32) -> u8 {
    let v = (p.clamp(0.0, 1.0) * 255.0).round() as u8;
    if p > 0.5 {
        v.max(128)
    } else {
        v.min(127)
    }
}

/// One slice to save. Every map is `[height, width]` row-major.
#[derive(Debug, Clone)]
pub struct SliceToSave<'a> {
    pub study_id: &'a str,
    pub target_id: &'a str,
    pub slice_index: i32,
    pub height: u32,
    pub width: u32,
    /// Image channel 0 (any range; min-max scaled for display).
    pub image: &'a [f32],
    /// `[R]` rater masks in the slot order the metrics used (None = missing).
    pub raters: &'a [Option<&'a [u8]>],
    /// `[N]` predicted probabilities.
    pub probs: &'a [&'a [f32]],
}

/// Writes a predictions folder. `&self` methods only, so it can be shared across threads.
#[derive(Debug, Clone)]
pub struct PredictionWriter {
    dir: PathBuf,
}

impl PredictionWriter {
    /// Creates `dir` and writes `predictions.json` (atomically; an existing header is
    /// replaced, existing slice folders are overwritten slice by slice).
    pub fn create(dir: &Path, header: &PredictionsHeader) -> Result<Self, PredictionsError> {
        let json = serde_json::to_string_pretty(header).expect("header serialises");
        schemas::atomic::write_file_atomic(&dir.join(HEADER_FILE), json.as_bytes())?;
        Ok(PredictionWriter {
            dir: dir.to_path_buf(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes one slice's PNGs into its folder.
    pub fn write_slice(&self, s: &SliceToSave<'_>) -> Result<PathBuf, PredictionsError> {
        check_component(&self.dir, "study id", s.study_id)?;
        check_component(&self.dir, "target id", s.target_id)?;
        let hw = (s.height * s.width) as usize;
        let folder = slice_dir(&self.dir, s.study_id, s.target_id, s.slice_index);
        let put = |name: String, grey: &[u8]| -> Result<(), PredictionsError> {
            if grey.len() != hw {
                return Err(invalid(
                    &folder.join(&name),
                    format!("has {} pixels, expected {hw}", grey.len()),
                ));
            }
            schemas::atomic::write_file_atomic(
                &folder.join(name),
                &encode_grey8(s.width, s.height, grey),
            )?;
            Ok(())
        };
        let (lo, hi) = s
            .image
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        let span = if hi > lo { hi - lo } else { 1.0 };
        put(
            "image.png".into(),
            &s.image
                .iter()
                .map(|&v| (((v - lo) / span) * 255.0).round() as u8)
                .collect::<Vec<_>>(),
        )?;
        for (k, m) in s.raters.iter().enumerate() {
            if let Some(m) = m {
                put(
                    format!("rater_{}.png", k + 1),
                    &m.iter()
                        .map(|&v| if v != 0 { 255 } else { 0 })
                        .collect::<Vec<_>>(),
                )?;
            }
        }
        for (j, p) in s.probs.iter().enumerate() {
            put(
                format!("pred_{:02}.png", j + 1),
                &p.iter()
                    .map(|&v| quantise_probability(v))
                    .collect::<Vec<_>>(),
            )?;
        }
        Ok(folder)
    }
}

/// Reads `predictions.json`.
pub fn read_header(dir: &Path) -> Result<PredictionsHeader, PredictionsError> {
    let path = dir.join(HEADER_FILE);
    let text = std::fs::read_to_string(&path).map_err(|source| PredictionsError::Io {
        path: path.clone(),
        source,
    })?;
    let h: PredictionsHeader =
        serde_json::from_str(&text).map_err(|e| invalid(&path, format!("does not parse: {e}")))?;
    if h.format != FORMAT {
        return Err(invalid(
            &path,
            format!("format is `{}`, expected `{FORMAT}`", h.format),
        ));
    }
    if h.version > VERSION {
        return Err(invalid(
            &path,
            format!(
                "layout version {} is newer than this dpersona reads ({VERSION})",
                h.version
            ),
        ));
    }
    Ok(h)
}

/// How a folder's maps are stored, from its `predictions.json`. A folder without one is
/// read as PNG slice folders (the figures draw what a PNG-only tool left); a header that is
/// there but cannot be read or parsed is an error naming it, never taken for PNG.
pub fn stored_files(dir: &Path) -> Result<PredictionFiles, PredictionsError> {
    if !dir.join(HEADER_FILE).exists() {
        return Ok(PredictionFiles::Png);
    }
    Ok(read_header(dir)?.files)
}

pub(crate) fn list_dir(path: &Path) -> Result<Vec<(String, PathBuf)>, PredictionsError> {
    let io = |source| PredictionsError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut out = Vec::new();
    for e in std::fs::read_dir(path).map_err(io)? {
        let e = e.map_err(io)?;
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') {
            out.push((name, e.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Highest rater number a file may carry (`rater_<k>.png`, `rater_<k>.nii.gz`): the
/// listing holds one slot per number up to the highest (a missing rater has no file), so
/// the number in a name must not size it unchecked (`rater_99999999999999999.png` aborted
/// on a 2.4e18-byte allocation). Far above any multi-rater dataset's rater count.
pub const MAX_RATER_NUMBER: usize = 1024;

/// Refuses a rater number above [`MAX_RATER_NUMBER`], naming the file.
pub(crate) fn check_rater_number(path: &Path, k: usize) -> Result<(), PredictionsError> {
    if k > MAX_RATER_NUMBER {
        return Err(invalid(
            path,
            format!("rater number {k} is above the {MAX_RATER_NUMBER} this reader accepts"),
        ));
    }
    Ok(())
}

/// One slice folder found on disk.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedSlice {
    pub study_id: String,
    pub target_id: String,
    pub slice_index: i32,
    pub dir: PathBuf,
    /// `pred_01.png ..` in order.
    pub preds: Vec<PathBuf>,
    /// `[R]` `rater_k.png` where present.
    pub raters: Vec<Option<PathBuf>>,
    pub image: Option<PathBuf>,
}

/// Walks the folder: every `study/target/slice_s` with at least one prediction, sorted by
/// (study, target, slice index).
pub fn list_slices(dir: &Path) -> Result<Vec<SavedSlice>, PredictionsError> {
    let mut out = Vec::new();
    for (study, sp) in list_dir(dir)? {
        if !sp.is_dir() {
            continue;
        }
        for (target, tp) in list_dir(&sp)? {
            if !tp.is_dir() {
                continue;
            }
            for (name, p) in list_dir(&tp)? {
                let Some(idx) = name.strip_prefix("slice_") else {
                    continue;
                };
                let slice_index: i32 = idx
                    .parse()
                    .map_err(|_| invalid(&p, "folder name is not slice_<integer>"))?;
                let files = list_dir(&p)?;
                let numbered = |prefix: &str| -> Result<Vec<(usize, PathBuf)>, PredictionsError> {
                    let mut v = Vec::new();
                    for (f, fp) in &files {
                        if let Some(k) = f.strip_prefix(prefix).and_then(|r| r.strip_suffix(".png"))
                        {
                            let k: usize = k.parse().map_err(|_| {
                                invalid(fp, format!("expected {prefix}<number>.png"))
                            })?;
                            v.push((k, fp.clone()));
                        }
                    }
                    v.sort();
                    Ok(v)
                };
                let preds = numbered("pred_")?;
                if preds.is_empty() {
                    continue;
                }
                if preds.iter().enumerate().any(|(i, (k, _))| *k != i + 1) {
                    return Err(invalid(
                        &p,
                        "prediction files must be numbered pred_01.png .. pred_NN.png without gaps",
                    ));
                }
                let rater_files = numbered("rater_")?;
                for (k, fp) in &rater_files {
                    check_rater_number(fp, *k)?;
                }
                let r = rater_files.iter().map(|(k, _)| *k).max().unwrap_or(0);
                let mut raters = vec![None; r];
                for (k, fp) in rater_files {
                    if k >= 1 {
                        raters[k - 1] = Some(fp);
                    }
                }
                let image = files
                    .iter()
                    .find(|(f, _)| f == "image.png")
                    .map(|(_, fp)| fp.clone());
                out.push(SavedSlice {
                    study_id: study.clone(),
                    target_id: target.clone(),
                    slice_index,
                    dir: p.clone(),
                    preds: preds.into_iter().map(|(_, fp)| fp).collect(),
                    raters,
                    image,
                });
            }
        }
    }
    out.sort_by(|a, b| {
        (&a.study_id, &a.target_id, a.slice_index).cmp(&(&b.study_id, &b.target_id, b.slice_index))
    });
    Ok(out)
}

/// Labels of one slice from the shards.
#[derive(Debug, Clone)]
struct SliceLabels {
    height: u32,
    width: u32,
    z_mm: f64,
    /// `[R, H, W]`.
    masks: Vec<u8>,
    present: Vec<bool>,
}

/// Reorders rater slots by ascending foreground area (the paper's LIDC ranking, method.md
/// §1.2), ties kept in manifest order; missing raters go last.
pub fn rank_by_area(raters: Vec<Option<Vec<u8>>>) -> Vec<Option<Vec<u8>>> {
    let mut idx: Vec<usize> = (0..raters.len()).collect();
    let area = |k: usize| {
        raters[k]
            .as_ref()
            .map(|m| m.iter().filter(|&&v| v != 0).count())
    };
    idx.sort_by_key(|&k| match area(k) {
        Some(a) => (0, a),
        None => (1, 0),
    });
    let mut raters: Vec<Option<Option<Vec<u8>>>> = raters.into_iter().map(Some).collect();
    idx.into_iter()
        .map(|k| raters[k].take().expect("each index once"))
        .collect()
}

/// One unit's rows, or why it was skipped.
type UnitOutcome = (Vec<MetricRecord>, Option<(UnitId, String)>);

/// Result of scoring a predictions folder.
#[derive(Debug, Clone)]
pub struct ScoredPredictions {
    pub header: PredictionsHeader,
    pub conventions: Conventions,
    pub rows: Vec<MetricRecord>,
    pub units_scored: usize,
    /// Units that could not be scored (for example no rater present), with the reason.
    pub skipped: Vec<(UnitId, String)>,
}

/// Scores every unit of a predictions folder against the manifest's labels.
/// PNG: slices must exist in the manifest's shards with the same size; a volume unit must
/// have every slice the shards hold for its target, and the same N in every slice.
/// NIfTI: each `study/target` volume must have shape (W, H, D) with D the number of slices
/// the shards hold for the target (see [`crate::prediction_volumes`]).
pub fn score_predictions_dir(
    dir: &Path,
    manifest: &Manifest,
    opts: &MetricOptions,
) -> Result<ScoredPredictions, PredictionsError> {
    let header = read_header(dir)?;
    let studies: HashMap<&str, &schemas::manifest::StudyRecord> = manifest
        .studies
        .iter()
        .map(|s| (s.study_id.as_str(), s))
        .collect();
    let scorer = UnitScorer {
        header: &header,
        studies: &studies,
        rank: manifest.header.rater_order == RaterOrder::AreaRank,
        opts,
    };
    let results: Vec<Result<UnitOutcome, PredictionsError>> = match header.files {
        PredictionFiles::Png => {
            let slices = list_slices(dir)?;
            if slices.is_empty() {
                return Err(invalid(
                    dir,
                    "holds no study/target/slice_<s>/pred_01.png files",
                ));
            }
            let labels = load_labels(
                manifest,
                &studies,
                slices
                    .iter()
                    .map(|s| (s.study_id.as_str(), s.dir.as_path())),
            )?;
            png_units(dir, &header, &slices, &labels)?
                .par_iter()
                .enumerate()
                .map(|(unit_index, group)| scorer.png_unit(unit_index, group, &labels))
                .collect()
        }
        PredictionFiles::Nifti => {
            if header.unit != UnitKind::Volume {
                return Err(invalid(
                    &dir.join(HEADER_FILE),
                    "NIfTI predictions (`files`: `nifti`) are volume units: `unit` must be `volume`",
                ));
            }
            let volumes = list_volumes(dir)?;
            if volumes.is_empty() {
                return Err(invalid(
                    dir,
                    "holds no study/target/pred_01.nii.gz (or .nii) files",
                ));
            }
            let labels = load_labels(
                manifest,
                &studies,
                volumes
                    .iter()
                    .map(|v| (v.study_id.as_str(), v.dir.as_path())),
            )?;
            volumes
                .par_iter()
                .enumerate()
                .map(|(unit_index, v)| scorer.nifti_unit(unit_index, v, &labels))
                .collect()
        }
    };
    let mut rows = Vec::new();
    let mut skipped = Vec::new();
    let mut units_scored = 0;
    for r in results {
        let (mut rs, skip) = r?;
        if let Some(s) = skip {
            skipped.push(s);
        } else {
            units_scored += 1;
        }
        rows.append(&mut rs);
    }
    let conventions = Conventions::new(opts, header.unit, header.seed);
    Ok(ScoredPredictions {
        header,
        conventions,
        rows,
        units_scored,
        skipped,
    })
}

/// (study, target) -> slice_index -> that slice's labels.
type LabelIndex = HashMap<(String, String), BTreeMap<i32, SliceLabels>>;

/// Reads the labels of the studies named by `wanted` (study id, the folder that named it,
/// for errors) from the manifest's shards.
fn load_labels<'a>(
    manifest: &Manifest,
    studies: &HashMap<&str, &schemas::manifest::StudyRecord>,
    wanted: impl Iterator<Item = (&'a str, &'a Path)>,
) -> Result<LabelIndex, PredictionsError> {
    let mut shards: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (study, folder) in wanted {
        let st = studies.get(study).ok_or_else(|| {
            invalid(
                folder,
                format!(
                    "study `{study}` is not in manifest {}",
                    manifest.path.display()
                ),
            )
        })?;
        shards
            .entry(st.shard.clone())
            .or_default()
            .push(study.to_string());
    }
    let mut labels: LabelIndex = HashMap::new();
    for (shard, ids) in &shards {
        let path = manifest.resolve(shard);
        let batches = open_checked(&path, &SLICE_SCHEMA)?.read_all()?;
        for batch in batches {
            let cols = SliceColumns::new(batch).map_err(|e| invalid(&path, e))?;
            for row in 0..cols.len() {
                let rec = cols.record(row);
                if !ids.contains(&rec.study_id) {
                    continue;
                }
                labels
                    .entry((rec.study_id.clone(), rec.target_id.clone()))
                    .or_default()
                    .insert(
                        rec.slice_index,
                        SliceLabels {
                            height: rec.height,
                            width: rec.width,
                            z_mm: rec.z_mm,
                            masks: rec.masks,
                            present: rec.raters_present,
                        },
                    );
            }
        }
    }
    Ok(labels)
}

/// Groups PNG slice folders into units (one per slice, or one per target for volumes,
/// which must then cover every slice the shards hold).
fn png_units<'s>(
    dir: &Path,
    header: &PredictionsHeader,
    slices: &'s [SavedSlice],
    labels: &LabelIndex,
) -> Result<Vec<Vec<&'s SavedSlice>>, PredictionsError> {
    let mut units: Vec<Vec<&SavedSlice>> = Vec::new();
    match header.unit {
        UnitKind::Slice => units.extend(slices.iter().map(|s| vec![s])),
        UnitKind::Volume => {
            let mut groups: BTreeMap<(String, String), Vec<&SavedSlice>> = BTreeMap::new();
            for s in slices {
                groups
                    .entry((s.study_id.clone(), s.target_id.clone()))
                    .or_default()
                    .push(s);
            }
            for ((study, target), group) in groups {
                let have: Vec<i32> = group.iter().map(|s| s.slice_index).collect();
                if let Some(all) = labels.get(&(study.clone(), target.clone())) {
                    let missing: Vec<i32> =
                        all.keys().filter(|k| !have.contains(k)).cloned().collect();
                    if !missing.is_empty() {
                        return Err(invalid(
                            &dir.join(&study).join(&target),
                            format!("volume unit lacks predictions for slices {missing:?} that the shards hold"),
                        ));
                    }
                }
                units.push(group);
            }
        }
    }
    Ok(units)
}

/// Stacks label slices in the given order into R rater masks `[D·H·W]`; a rater missing
/// in any slice of a volume is missing for the volume.
fn stack_labels<'l>(slices: impl Iterator<Item = &'l SliceLabels>) -> Vec<Option<Vec<u8>>> {
    let mut raters: Vec<Option<Vec<u8>>> = Vec::new();
    for lab in slices {
        let hw = (lab.height * lab.width) as usize;
        if raters.is_empty() {
            raters = vec![Some(Vec::new()); lab.present.len()];
        }
        for (k, slot) in raters.iter_mut().enumerate() {
            match (slot.as_mut(), lab.present.get(k).copied().unwrap_or(false)) {
                (Some(v), true) => v.extend_from_slice(&lab.masks[k * hw..(k + 1) * hw]),
                _ => *slot = None,
            }
        }
    }
    raters
}

/// What every unit of one folder shares.
struct UnitScorer<'a> {
    header: &'a PredictionsHeader,
    studies: &'a HashMap<&'a str, &'a schemas::manifest::StudyRecord>,
    /// Rank rater slots by area per unit (`area_rank` manifests).
    rank: bool,
    opts: &'a MetricOptions,
}

impl UnitScorer<'_> {
    /// Scores one unit's stacked maps into rows (or the reason it was skipped).
    fn score(
        &self,
        unit_id: UnitId,
        raters: Vec<Option<Vec<u8>>>,
        probs: &[Vec<f32>],
    ) -> UnitOutcome {
        let raters = if self.rank {
            rank_by_area(raters)
        } else {
            raters
        };
        let rater_refs: Vec<Option<&[u8]>> = raters.iter().map(|m| m.as_deref()).collect();
        let prob_refs: Vec<&[f32]> = probs.iter().map(Vec::as_slice).collect();
        let h = self.header;
        let fold = h
            .fold
            .unwrap_or_else(|| self.studies[unit_id.study_id.as_str()].fold);
        let ctx = EvalContext {
            run: h.run.clone(),
            method: h.method.clone(),
            stage: h.stage,
            n_samples: h.n_samples,
            bank: h.bank,
            fold,
            seed: h.seed,
            checkpoint_sha256: h.checkpoint_sha256.clone(),
        };
        match score_unit(&rater_refs, &prob_refs, self.opts) {
            Ok(scores) => (scores.to_records(&ctx, &unit_id), None),
            Err(e) => (Vec::new(), Some((unit_id, e.to_string()))),
        }
    }

    fn png_unit(
        &self,
        unit_index: usize,
        group: &[&SavedSlice],
        labels: &LabelIndex,
    ) -> Result<UnitOutcome, PredictionsError> {
        let first = group[0];
        let key = (first.study_id.clone(), first.target_id.clone());
        let n = first.preds.len();
        let mut probs: Vec<Vec<f32>> = vec![Vec::new(); n];
        let mut slice_labels = Vec::with_capacity(group.len());
        for s in group {
            let lab = labels
                .get(&key)
                .and_then(|m| m.get(&s.slice_index))
                .ok_or_else(|| {
                    invalid(
                        &s.dir,
                        format!(
                            "slice {} of {}/{} is not in the manifest's shards",
                            s.slice_index, key.0, key.1
                        ),
                    )
                })?;
            if s.preds.len() != n {
                return Err(invalid(
                    &s.dir,
                    format!(
                        "has {} predictions, other slices of the unit have {n}",
                        s.preds.len()
                    ),
                ));
            }
            for (j, p) in s.preds.iter().enumerate() {
                let img = read_grey_png(p)?;
                if (img.height, img.width) != (lab.height, lab.width) {
                    return Err(invalid(
                        p,
                        format!(
                            "is {}x{}, the shard slice is {}x{}",
                            img.height, img.width, lab.height, lab.width
                        ),
                    ));
                }
                probs[j].extend_from_slice(&img.values);
            }
            slice_labels.push(lab);
        }
        // A slice unit names its slice, so its rows join back to the shards.
        let slice = match self.header.unit {
            UnitKind::Slice => Some((first.slice_index, slice_labels[0].z_mm)),
            UnitKind::Volume => None,
        };
        let unit_id = UnitId {
            study_id: key.0,
            target_id: key.1,
            kind: self.header.unit,
            unit_index: unit_index as u32,
            slice_index: slice.map(|s| s.0),
            z_mm: slice.map(|s| s.1),
        };
        Ok(self.score(unit_id, stack_labels(slice_labels.into_iter()), &probs))
    }

    fn nifti_unit(
        &self,
        unit_index: usize,
        v: &SavedVolume,
        labels: &LabelIndex,
    ) -> Result<UnitOutcome, PredictionsError> {
        let key = (v.study_id.clone(), v.target_id.clone());
        let planes = labels.get(&key).ok_or_else(|| {
            invalid(
                &v.dir,
                format!(
                    "target `{}` of study `{}` has no slice in the manifest's shards",
                    key.1, key.0
                ),
            )
        })?;
        let first = planes.values().next().expect("a target has >= 1 slice");
        let (h, w) = (first.height as usize, first.width as usize);
        let probs = v
            .preds
            .iter()
            .map(|p| read_probability_volume(p, planes.len(), h, w))
            .collect::<Result<Vec<_>, _>>()?;
        let unit_id = UnitId {
            study_id: key.0,
            target_id: key.1,
            kind: UnitKind::Volume,
            unit_index: unit_index as u32,
            slice_index: None,
            z_mm: None,
        };
        Ok(self.score(unit_id, stack_labels(planes.values()), &probs))
    }
}

/// The folder of one volume unit.
pub fn volume_dir(dir: &Path, study_id: &str, target_id: &str) -> PathBuf {
    dir.join(study_id).join(target_id)
}

impl PredictionWriter {
    /// Writes one volume unit's NIfTI files (format: [`crate::prediction_volumes`]) into
    /// `DIR/<study>/<target>/` (each file atomically, through a hidden `.partial-<pid>`
    /// folder beside it).
    pub fn write_volume(&self, v: &VolumeToSave<'_>) -> Result<PathBuf, PredictionsError> {
        check_component(self.dir(), "study id", v.study_id)?;
        check_component(self.dir(), "target id", v.target_id)?;
        let dhw = (v.depth as usize, v.height as usize, v.width as usize);
        let folder = volume_dir(self.dir(), v.study_id, v.target_id);
        let tmp_dir = folder.join(format!(".partial-{}", std::process::id()));
        std::fs::create_dir_all(&tmp_dir).map_err(|source| PredictionsError::Io {
            path: tmp_dir.clone(),
            source,
        })?;
        let put = |name: String, values: VolumeValues| -> Result<(), PredictionsError> {
            let (d, h, w) = dhw;
            if values.len() != d * h * w {
                return Err(invalid(
                    &folder.join(&name),
                    format!(
                        "has {} voxels, expected {d}x{h}x{w} = {}",
                        values.len(),
                        d * h * w
                    ),
                ));
            }
            let tmp = tmp_dir.join(&name);
            write_volume_file(&tmp, values, dhw, &v.geometry)?;
            schemas::atomic::commit_temp(&tmp, &folder.join(&name))?;
            Ok(())
        };
        put(
            format!("image{VOLUME_ENDING}"),
            VolumeValues::F32(v.image.to_vec()),
        )?;
        for (k, m) in v.raters.iter().enumerate() {
            if let Some(m) = m {
                put(
                    format!("rater_{}{VOLUME_ENDING}", k + 1),
                    VolumeValues::U8(m.iter().map(|&x| (x != 0) as u8).collect()),
                )?;
            }
        }
        for (j, p) in v.probs.iter().enumerate() {
            put(
                format!("pred_{:02}{VOLUME_ENDING}", j + 1),
                VolumeValues::F32(p.to_vec()),
            )?;
        }
        let _ = std::fs::remove_dir(&tmp_dir);
        Ok(folder)
    }
}

/// One volume folder found on disk.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedVolume {
    pub study_id: String,
    pub target_id: String,
    pub dir: PathBuf,
    /// `pred_01.nii[.gz] ..` in order.
    pub preds: Vec<PathBuf>,
    /// `[R]` `rater_k.nii[.gz]` where present, R being the highest k found (a missing
    /// rater has no file).
    pub raters: Vec<Option<PathBuf>>,
    /// `image.nii[.gz]`, when saved.
    pub image: Option<PathBuf>,
}

/// The number `k` of `<prefix><k>.nii` / `<prefix><k>.nii.gz`, if the name has that form.
fn numbered(name: &str, prefix: &str) -> Option<Result<usize, ()>> {
    let rest = name.strip_prefix(prefix)?;
    let k = rest
        .strip_suffix(".nii.gz")
        .or_else(|| rest.strip_suffix(".nii"))?;
    Some(k.parse().map_err(|_| ()))
}

/// Walks the folder: every `study/target/` holding `pred_*.nii[.gz]`, sorted by
/// (study, target).
pub fn list_volumes(dir: &Path) -> Result<Vec<SavedVolume>, PredictionsError> {
    let mut out = Vec::new();
    for (study, sp) in list_dir(dir)? {
        if !sp.is_dir() {
            continue;
        }
        for (target, tp) in list_dir(&sp)? {
            if !tp.is_dir() {
                continue;
            }
            let mut preds = Vec::new();
            let mut raters: Vec<Option<PathBuf>> = Vec::new();
            let mut image = None;
            for (name, p) in list_dir(&tp)? {
                match numbered(&name, "pred_") {
                    None => {}
                    Some(Ok(k)) => preds.push((k, p.clone())),
                    Some(Err(())) => {
                        return Err(invalid(&p, "expected pred_<number>.nii.gz (or .nii)"))
                    }
                }
                match numbered(&name, "rater_") {
                    None => {}
                    Some(Ok(k)) if k >= 1 => {
                        check_rater_number(&p, k)?;
                        if raters.len() < k {
                            raters.resize(k, None);
                        }
                        if raters[k - 1].is_some() {
                            return Err(invalid(
                                &p,
                                format!("rater {k} exists as both .nii and .nii.gz"),
                            ));
                        }
                        raters[k - 1] = Some(p.clone());
                    }
                    Some(_) => {
                        return Err(invalid(
                            &p,
                            "expected rater_<number from 1>.nii.gz (or .nii)",
                        ))
                    }
                }
                if name == "image.nii.gz" || name == "image.nii" {
                    if image.is_some() {
                        return Err(invalid(&p, "the image exists as both .nii and .nii.gz"));
                    }
                    image = Some(p);
                }
            }
            if preds.is_empty() {
                continue;
            }
            preds.sort();
            if let Some(w) = preds.windows(2).find(|w| w[0].0 == w[1].0) {
                return Err(invalid(
                    &w[1].1,
                    format!("prediction {} exists as both .nii and .nii.gz", w[1].0),
                ));
            }
            if preds.iter().enumerate().any(|(i, (k, _))| *k != i + 1) {
                return Err(invalid(
                    &tp,
                    "prediction files must be numbered pred_01 .. pred_NN without gaps",
                ));
            }
            out.push(SavedVolume {
                study_id: study.clone(),
                target_id: target.clone(),
                dir: tp.clone(),
                preds: preds.into_iter().map(|(_, p)| p).collect(),
                raters,
                image,
            });
        }
    }
    Ok(out)
}
