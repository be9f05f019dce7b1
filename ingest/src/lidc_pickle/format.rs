//! [`LidcPickleFormat`]: a preprocessed LIDC pickle (MedicalMatting's
//! `lidc_attributes.pkl`, the Prob. U-Net port's `data_lidc.pickle`) as a [`SourceFormat`].
//!
//! The input is ONE file. Each dict item is one study with one target (`crop`) and one
//! slice row (`slice_index` 0, image 1 x S x S). Images stored as uint8 are divided by 255
//! in float32 (the authors' `/255`); float images must already lie in [0, 1] and are kept.
//! The four masks are kept in pickle order as `reader_1..reader_4`; the loader ranks them
//! by area at serve time (`rater_order = area_rank`, as the authors do after augmentation).
//! Folds and splits are the authors' ([`super::folds`]): fold 0 is `test`, the others
//! `train`, so a run without `--fold` trains and tests like the authors' fold 0.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use schemas::manifest::{RaterOrder, SourceKind};
use schemas::slice::SliceRecord;

use super::folds::{authors_folds, SplitUnit};
use super::items::{read_items, Item, ItemArrays, N_MASKS};
use crate::pickle::numpy::Kind;
use crate::study::{
    DatasetFacts, ImageValues, PresetSplit, SourceFormat, StudyError, StudyInput, StudyOutput,
};

/// Target id of an item's single crop.
pub const TARGET_ID: &str = "crop";
/// The authors' fold count and seed (`KFOLD = 4`, `RANDOM_SEED = 1337`).
pub const K_FOLDS: u32 = 4;
pub const SEED: u32 = 1337;

/// Everything that changes the rows or their folds (all of it in the fingerprint).
#[derive(Debug, Clone, PartialEq)]
pub struct LidcPickleParams {
    /// Image-level (the paper's) or patient-level folds.
    pub split: SplitUnit,
    /// A crop size the caller insists on; the pickle's own size must match it.
    pub crop_size: Option<u32>,
}

impl Default for LidcPickleParams {
    fn default() -> Self {
        LidcPickleParams {
            split: SplitUnit::Image,
            crop_size: None,
        }
    }
}

/// The pickle, read once: its bytes (memory-mapped) and the items that point into them.
struct Parsed {
    path: PathBuf,
    map: memmap2::Mmap,
    sha256: String,
    /// Keys left out and a too-small file, named as warnings (`--strict` stops).
    notices: Vec<StudyError>,
    items: Vec<Item>,
    index: BTreeMap<String, usize>,
    size: usize,
    /// Items whose image is uint8 (quantised values) vs float.
    uint8_images: usize,
    float_images: usize,
}

/// The preprocessed-LIDC-pickle source format.
pub struct LidcPickleFormat {
    params: LidcPickleParams,
    parsed: RwLock<Option<Arc<Parsed>>>,
}

impl LidcPickleFormat {
    pub fn new(params: LidcPickleParams) -> Self {
        LidcPickleFormat {
            params,
            parsed: RwLock::new(None),
        }
    }

    fn parsed(&self) -> Option<Arc<Parsed>> {
        self.parsed.read().ok()?.clone()
    }

    fn protocol(&self) -> String {
        format!(
            "lidc-{}-kfold{K_FOLDS}-seed{SEED}",
            self.params.split.name()
        )
    }
}

/// Maps `path` read-only. The map is only sound while no one truncates the file; an
/// ingest reads a finished pickle, and the SHA-256 recorded is of the mapped bytes.
fn map_file(path: &Path) -> Result<memmap2::Mmap, StudyError> {
    let file = std::fs::File::open(path)
        .map_err(|e| StudyError::new(path, format!("cannot open the pickle: {e}")))?;
    // SAFETY: the map is read-only and private to this process; another process changing
    // the file while it is mapped would change the bytes read (not memory safety in
    // practice for a read-only map of a regular file, and documented above).
    unsafe { memmap2::Mmap::map(&file) }
        .map_err(|e| StudyError::new(path, format!("cannot map the pickle: {e}")))
}

impl SourceFormat for LidcPickleFormat {
    fn discover(&self, raw: &Path) -> Result<Vec<StudyInput>, StudyError> {
        if !raw.is_file() {
            return Err(StudyError::new(
                raw,
                "expected the pickle FILE (lidc_attributes.pkl or data_lidc.pickle), not a folder",
            ));
        }
        let map = map_file(raw)?;
        // The file's SHA-256 (a tenth of the ingest's CPU for a 400 MB pickle) needs no
        // parsed structure, so it runs beside the parse on the pool's other thread; an
        // unreadable pickle wastes the hash, a rare case.
        let (sha256, found) = rayon::join(
            || schemas::hashing::sha256_bytes(&map),
            || -> Result<_, StudyError> {
                let doc = crate::pickle::parse(&map).map_err(|e| {
                    StudyError::new(raw, format!("not a readable LIDC pickle: {e}"))
                })?;
                read_items(&doc, &map).map_err(|e| StudyError::new(raw, e))
            },
        );
        let found = found?;
        let (items, size) = (found.items, found.size);
        let Some(size) = size else {
            return Err(StudyError::new(
                raw,
                format!(
                    "none of the {} items has a square 2D image with {N_MASKS} masks",
                    items.len()
                ),
            ));
        };
        if let Some(c) = self.params.crop_size {
            if c as usize != size {
                return Err(StudyError::new(
                    raw,
                    format!("--crop-size {c} differs from the pickle's {size}x{size} crops (it cannot be changed)"),
                ));
            }
        }
        let (mut uint8_images, mut float_images) = (0, 0);
        for it in &items {
            if let Ok(a) = &it.arrays {
                match a.image.dtype.kind {
                    Kind::U8 => uint8_images += 1,
                    Kind::F32 | Kind::F64 => float_images += 1,
                    _ => {}
                }
            }
        }
        let source = raw.file_name().map_or_else(
            || raw.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let studies = items
            .iter()
            .map(|it| StudyInput {
                study_id: it.study_id.clone(),
                patient_id: it.patient_id.clone(),
                source_path: format!("{source}[{}]", it.study_id),
                files: vec![raw.to_path_buf()],
            })
            .collect();
        let index = items
            .iter()
            .enumerate()
            .map(|(i, it)| (it.study_id.clone(), i))
            .collect();
        let mut notices: Vec<StudyError> = found
            .other_keys
            .iter()
            .map(|(k, n)| {
                StudyError::new(
                    raw,
                    format!("key `{k}` of {n} item(s) is not ingested (only image, masks and series_uid are read)"),
                )
            })
            .collect();
        if items.len() < K_FOLDS as usize {
            notices.push(StudyError::new(
                raw,
                format!(
                    "only {} item(s): sklearn's KFold({K_FOLDS}) would refuse them; here folds \
                     0..{} hold one item each",
                    items.len(),
                    items.len().saturating_sub(1)
                ),
            ));
        }
        let parsed = Parsed {
            path: raw.to_path_buf(),
            notices,
            map,
            sha256,
            items,
            index,
            size,
            uint8_images,
            float_images,
        };
        if let Ok(mut g) = self.parsed.write() {
            *g = Some(Arc::new(parsed));
        }
        Ok(studies)
    }

    fn load(&self, study: &StudyInput) -> Result<StudyOutput, StudyError> {
        let p = self.parsed().ok_or_else(|| {
            StudyError::new(
                &study.source_path,
                "LidcPickleFormat::load called before discover",
            )
        })?;
        let item = p
            .index
            .get(&study.study_id)
            .and_then(|&i| p.items.get(i))
            .ok_or_else(|| {
                StudyError::new(
                    &p.path,
                    format!("no item `{}` in the pickle", study.study_id),
                )
            })?;
        let bad =
            |why: String| StudyError::new(&p.path, format!("item `{}`: {why}", item.study_id));
        let arrays = item.arrays.as_ref().map_err(|e| bad(e.clone()))?;
        let rec = build_row(&p, item, arrays).map_err(bad)?;
        Ok(StudyOutput {
            slices: vec![rec],
            n_targets: 1,
            volume_shape: [1, p.size as u32, p.size as u32],
        })
    }

    fn facts(&self) -> DatasetFacts {
        let p = self.parsed();
        let size = p.as_ref().map_or(128, |p| p.size) as u32;
        let (u8s, floats) = p
            .as_ref()
            .map_or((0, 0), |p| (p.uint8_images, p.float_images));
        let images = match (u8s, floats) {
            (_, 0) => "uint8",
            (0, _) => "float",
            _ => "mixed",
        };
        DatasetFacts {
            dataset: "lidc".into(),
            source_kind: SourceKind::LidcPickle,
            raters: (1..=N_MASKS).map(|r| format!("reader_{r}")).collect(),
            rater_order: RaterOrder::AreaRank,
            channels: vec!["ct".into()],
            crop_size: size,
            normalisation: "the pickle's preprocessed crops: uint8 images divided by 255 in \
                            float32 (the authors' /255), float images (already in [0, 1]) kept"
                .into(),
            params: serde_json::json!({
                "format": "lidc-pickle",
                "file_sha256": p.as_ref().map(|p| p.sha256.clone()),
                "crop_size": size,
                "images": images,
                "masks": "pickle order, area-ranked at serve time",
                "split_protocol": self.protocol(),
            }),
            image_values: if floats > u8s {
                ImageValues::Continuous
            } else {
                ImageValues::Quantised
            },
        }
    }

    fn notices(&self) -> Vec<StudyError> {
        self.parsed().map_or_else(Vec::new, |p| p.notices.clone())
    }

    fn preset_split(&self) -> Option<PresetSplit> {
        let p = self.parsed()?;
        let patients: Vec<String> = p.items.iter().map(|it| it.patient_id.clone()).collect();
        let folds = authors_folds(&patients, self.params.split, K_FOLDS as usize, SEED);
        let by_study = p
            .items
            .iter()
            .zip(folds)
            .map(|(it, f)| {
                let split = if f == 0 { "test" } else { "train" };
                (it.study_id.clone(), (f, split.to_string()))
            })
            .collect();
        Some(PresetSplit {
            protocol: self.protocol(),
            k_folds: K_FOLDS,
            by_study,
        })
    }
}

/// The slice row of one item; checks the values (images in range, masks 0/1).
fn build_row(p: &Parsed, item: &Item, a: &ItemArrays) -> Result<SliceRecord, String> {
    let data: &[u8] = &p.map;
    let s = p.size;
    // uint8 images and uint8/bool masks in C order (what numpy pickles) are read from their
    // bytes directly; every other dtype and order goes through the element-wise decode.
    fn direct<'d>(arr: &'d crate::pickle::numpy::Array, data: &'d [u8]) -> Option<&'d [u8]> {
        matches!(arr.dtype.kind, Kind::U8 | Kind::Bool)
            .then(|| arr.c_order_bytes(data))
            .flatten()
    }
    let image: Vec<f32> =
        if let (Kind::U8, Some(bytes)) = (a.image.dtype.kind, direct(&a.image, data)) {
            bytes.iter().map(|&v| v as f32 / 255.0f32).collect()
        } else {
            decoded_image(a, data, s)?
        };
    let mut masks = Vec::with_capacity(N_MASKS * s * s);
    for (r, m) in a.masks.iter().enumerate() {
        if let Some(bytes) = direct(m, data) {
            // bool arrays hold 0/1 bytes too; anything else is reported like a value of 2.
            if let Some(i) = bytes.iter().position(|&x| x > 1) {
                return Err(format!(
                    "mask {r} holds {} at pixel ({}, {}); masks must be 0/1",
                    bytes[i],
                    i / s,
                    i % s
                ));
            }
            masks.extend_from_slice(bytes);
            continue;
        }
        let v = m
            .to_f64_c_order(data)
            .ok_or_else(|| format!("mask {r} could not be decoded"))?;
        for (i, &x) in v.iter().enumerate() {
            if x == 0.0 {
                masks.push(0);
            } else if x == 1.0 {
                masks.push(1);
            } else {
                return Err(format!(
                    "mask {r} holds {x} at pixel ({}, {}); masks must be 0/1",
                    i / s,
                    i % s
                ));
            }
        }
    }
    build_record(p, item, image, masks)
}

/// The image of an item whose dtype or memory order has no direct path, element by element.
fn decoded_image(a: &ItemArrays, data: &[u8], s: usize) -> Result<Vec<f32>, String> {
    let raw = a
        .image
        .to_f64_c_order(data)
        .ok_or("image data could not be decoded")?;
    Ok(match a.image.dtype.kind {
        Kind::U8 => raw.iter().map(|&v| v as f32 / 255.0f32).collect(),
        Kind::F32 | Kind::F64 => {
            if let Some(i) = raw.iter().position(|v| !(0.0..=1.0).contains(v)) {
                return Err(format!(
                    "image value {} at pixel ({}, {}) is outside [0, 1] (float images must be \
                     scaled to [0, 1])",
                    raw[i],
                    i / s,
                    i % s
                ));
            }
            raw.iter().map(|&v| v as f32).collect()
        }
        _ => {
            return Err(format!(
                "image dtype {} is neither uint8 (0..255) nor float in [0, 1]",
                a.image.dtype.name()
            ))
        }
    })
}

/// The slice row of one item from its checked image and masks.
fn build_record(
    p: &Parsed,
    item: &Item,
    image: Vec<f32>,
    masks: Vec<u8>,
) -> Result<SliceRecord, String> {
    let s = p.size;
    let mut rec = SliceRecord {
        study_id: item.study_id.clone(),
        patient_id: item.patient_id.clone(),
        target_id: TARGET_ID.into(),
        slice_index: 0,
        z_mm: 0.0,
        height: s as u32,
        width: s as u32,
        channels: 1,
        // The pickle keeps no pixel spacing: 1 means "one pixel".
        spacing_row_mm: 1.0,
        spacing_col_mm: 1.0,
        image,
        masks,
        raters_present: vec![true; N_MASKS],
        rater_area: vec![],
        intersection: vec![],
        union: vec![],
        crop_row0: 0,
        crop_col0: 0,
        source_height: s as u32,
        source_width: s as u32,
        source_files: vec![p.path.display().to_string()],
        source_sha256: vec![p.sha256.clone()],
    };
    rec.derive_consensus();
    Ok(rec)
}
