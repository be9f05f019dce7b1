//! A small, real [`SourceFormat`] for pipeline tests: the pipeline is format-agnostic, so
//! its tests need studies that are cheap to make, not DICOM.
//!
//! A study is a text file `RAW/<study_id>.study` with `key=value` lines:
//! `patient=P1`, `targets=2`, `slices=3` (per target), optionally `bad=why`. Slices are
//! 12 x 12, one channel, three raters; rater 2 is missing on every third study. Masks are
//! discs whose radius differs per rater, so intersection and union are both non-trivial.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use ingest::study::{DatasetFacts, ImageValues, SourceFormat, StudyError, StudyInput, StudyOutput};
use schemas::manifest::{RaterOrder, SourceKind};
use schemas::slice::SliceRecord;

pub const SIDE: u32 = 12;
pub const RATERS: usize = 3;

pub struct TextFormat {
    /// Changes the fingerprint (like a window or crop parameter would).
    pub level: f64,
    /// Panics in `load` once this many studies were loaded (a simulated crash).
    pub panic_after: Option<usize>,
    loaded: AtomicUsize,
}

impl TextFormat {
    pub fn new() -> Self {
        TextFormat {
            level: 1.0,
            panic_after: None,
            loaded: AtomicUsize::new(0),
        }
    }

    pub fn with_level(level: f64) -> Self {
        TextFormat {
            level,
            ..Self::new()
        }
    }

    pub fn panicking_after(n: usize) -> Self {
        TextFormat {
            panic_after: Some(n),
            ..Self::new()
        }
    }

    pub fn loads(&self) -> usize {
        self.loaded.load(Ordering::SeqCst)
    }
}

/// Writes one study file.
pub fn write_study(
    raw: &Path,
    study_id: &str,
    patient: &str,
    targets: u32,
    slices: u32,
    bad: Option<&str>,
) {
    std::fs::create_dir_all(raw).unwrap();
    let mut text = format!("patient={patient}\ntargets={targets}\nslices={slices}\n");
    if let Some(b) = bad {
        text.push_str(&format!("bad={b}\n"));
    }
    std::fs::write(raw.join(format!("{study_id}.study")), text).unwrap();
}

/// `n` studies over `n_patients` patients (study i belongs to patient i % n_patients),
/// with 1-2 targets of 2-4 slices each.
pub fn write_dataset(raw: &Path, n: usize, n_patients: usize) {
    for i in 0..n {
        write_study(
            raw,
            &format!("S{i:03}"),
            &format!("P{:02}", i % n_patients),
            1 + (i % 2) as u32,
            2 + (i % 3) as u32,
            None,
        );
    }
}

fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
}

impl SourceFormat for TextFormat {
    fn discover(&self, raw: &Path) -> Result<Vec<StudyInput>, StudyError> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(raw)
            .map_err(|e| StudyError::new(raw, e.to_string()))?
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "study"))
            .collect();
        files.sort();
        files
            .into_iter()
            .map(|f| {
                let text =
                    std::fs::read_to_string(&f).map_err(|e| StudyError::new(&f, e.to_string()))?;
                let patient = field(&text, "patient")
                    .ok_or_else(|| StudyError::new(&f, "no patient= line"))?;
                Ok(StudyInput {
                    study_id: f.file_stem().unwrap().to_string_lossy().into_owned(),
                    patient_id: patient.to_string(),
                    source_path: f.file_name().unwrap().to_string_lossy().into_owned(),
                    files: vec![f.clone()],
                })
            })
            .collect()
    }

    fn load(&self, study: &StudyInput) -> Result<StudyOutput, StudyError> {
        let n = self.loaded.fetch_add(1, Ordering::SeqCst);
        if let Some(limit) = self.panic_after {
            if n >= limit {
                panic!("simulated crash while loading {}", study.study_id);
            }
        }
        let file = &study.files[0];
        let text =
            std::fs::read_to_string(file).map_err(|e| StudyError::new(file, e.to_string()))?;
        if let Some(why) = field(&text, "bad") {
            return Err(StudyError::new(file, why));
        }
        let num = |k: &str| -> Result<u32, StudyError> {
            field(&text, k)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| StudyError::new(file, format!("`{k}=` is missing or not a number")))
        };
        let (targets, slices) = (num("targets")?, num("slices")?);
        let sha = schemas::hashing::sha256_file(file)
            .map_err(|e| StudyError::new(file, e.to_string()))?;
        let seed: u32 = study.study_id.bytes().map(u32::from).sum();
        let missing_rater = if seed.is_multiple_of(3) {
            Some(2)
        } else {
            None
        };
        let hw = (SIDE * SIDE) as usize;
        let mut rows = Vec::new();
        for t in 0..targets {
            for z in 0..slices {
                let c = 6.0 + ((seed + t + z) % 3) as f64 - 1.0;
                let mut masks = vec![0u8; RATERS * hw];
                let present: Vec<bool> = (0..RATERS).map(|r| Some(r) != missing_rater).collect();
                for r in 0..RATERS {
                    if !present[r] {
                        continue;
                    }
                    let radius = 2.0 + r as f64 + (z % 2) as f64;
                    for y in 0..SIDE as usize {
                        for x in 0..SIDE as usize {
                            let d = ((y as f64 - c).powi(2)
                                + (x as f64 - c - r as f64 * 0.5).powi(2))
                            .sqrt();
                            masks[r * hw + y * SIDE as usize + x] = u8::from(d <= radius);
                        }
                    }
                }
                let image = (0..hw)
                    .map(|p| {
                        self.level as f32 * ((seed as usize + p * 7 + z as usize) % 101) as f32
                            / 100.0
                    })
                    .collect();
                let mut rec = SliceRecord {
                    study_id: study.study_id.clone(),
                    patient_id: study.patient_id.clone(),
                    target_id: format!("T{}", t + 1),
                    slice_index: z as i32 + 10,
                    z_mm: (z as f64 + 10.0) * 2.5,
                    height: SIDE,
                    width: SIDE,
                    channels: 1,
                    spacing_row_mm: 0.7,
                    spacing_col_mm: 0.7,
                    image,
                    masks,
                    raters_present: present,
                    rater_area: vec![],
                    intersection: vec![],
                    union: vec![],
                    crop_row0: -2,
                    crop_col0: 3,
                    source_height: 64,
                    source_width: 64,
                    source_files: vec![file.display().to_string()],
                    source_sha256: vec![sha.clone()],
                };
                rec.derive_consensus();
                rows.push(rec);
            }
        }
        Ok(StudyOutput {
            slices: rows,
            n_targets: targets,
            volume_shape: [slices + 20, 64, 64],
        })
    }

    fn facts(&self) -> DatasetFacts {
        DatasetFacts {
            dataset: "text-test".into(),
            source_kind: SourceKind::Nifti,
            raters: (0..RATERS).map(|r| format!("rater{r}")).collect(),
            rater_order: RaterOrder::Identity,
            channels: vec!["intensity".into()],
            crop_size: SIDE,
            normalisation: "none (test data)".into(),
            params: serde_json::json!({ "format": "text-test", "level": self.level, "crop": SIDE }),
            image_values: ImageValues::Continuous,
        }
    }
}

// The workspace root and its Python come from the one shared test module.
pub use testkit::{python, workspace_root};

/// Runs tests/py/shards_polars_check.py (polars + pyarrow, no dpersona code) on an ingest
/// output folder expecting `studies` studies; panics with its output unless it passes, and
/// returns that output for further checks.
pub fn polars_check(out: &Path, studies: usize) -> String {
    let script = workspace_root().join("tests/py/shards_polars_check.py");
    let output = std::process::Command::new(python())
        .arg(&script)
        .arg(out)
        .arg(studies.to_string())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{text}");
    assert!(
        output.status.success(),
        "{} failed:\n{text}",
        script.display()
    );
    text
}
