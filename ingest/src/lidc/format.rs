//! [`LidcFormat`]: LIDC-IDRI CT series + XML reads as a [`SourceFormat`].
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use dicom_dictionary_std::tags;
use dicom_object::OpenFileOptions;
use rayon::prelude::*;
use schemas::manifest::{RaterOrder, SourceKind};
use schemas::slice::SliceRecord;
use serde::{Deserialize, Serialize};

use super::cluster;
use super::contour::{self, BoxMask, BoxedReadMask, SliceGeometry};
use super::dicom_series::{read_series, CtSeries, SliceSamples};
use super::xml::{self, LidcXml, XmlKind};
use crate::study::{DatasetFacts, ImageValues, SourceFormat, StudyError, StudyInput, StudyOutput};

/// LIDC-IDRI has four readers; series with fewer sessions leave the other slots missing.
pub const N_READERS: usize = 4;

/// Everything that changes LIDC slice rows (all of it goes into the fingerprint).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LidcParams {
    /// Side of the square crop around each nodule, in pixels.
    pub crop_size: u32,
    /// HU mapped to 0 (lower end of the window; lower values clip).
    pub window_lo: f32,
    /// HU mapped to 1 (upper end of the window; higher values clip).
    pub window_hi: f32,
    /// Keep the contour pixels that pylidc removes by default
    /// (pylidc's `include_contour_points=True`).
    pub include_contour: bool,
}

impl Default for LidcParams {
    /// 128 x 128 crops and the lung window [-1350, 150] HU (level -600, width 1500).
    fn default() -> Self {
        LidcParams {
            crop_size: 128,
            window_lo: -1350.0,
            window_hi: 150.0,
            include_contour: false,
        }
    }
}

/// The LIDC-IDRI source format.
#[derive(Debug, Clone, Default)]
pub struct LidcFormat {
    pub params: LidcParams,
}

impl LidcFormat {
    pub fn new(params: LidcParams) -> Self {
        LidcFormat { params }
    }
}

fn is_ext(p: &Path, ext: &str) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case(ext))
}

/// Every folder under `dir` (itself included), with its files, sorted by path.
fn walk(dir: &Path, out: &mut Vec<(PathBuf, Vec<PathBuf>)>) -> Result<(), StudyError> {
    let rd = std::fs::read_dir(dir)
        .map_err(|e| StudyError::new(dir, format!("cannot list folder: {e}")))?;
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    let files: Vec<PathBuf> = entries.iter().filter(|p| p.is_file()).cloned().collect();
    out.push((dir.to_path_buf(), files));
    for p in entries.iter().filter(|p| p.is_dir()) {
        walk(p, out)?;
    }
    Ok(())
}

/// Series UID, patient id and modality of a DICOM file, reading its header only.
fn header_ids(path: &Path) -> Result<(String, String, String), StudyError> {
    super::claimed_lengths::check_file(path)?;
    let obj = OpenFileOptions::new()
        .read_until(tags::PIXEL_DATA)
        .open_file(path)
        .map_err(|e| StudyError::new(path, format!("not a readable DICOM file: {e}")))?;
    let get = |t| {
        obj.element_opt(t)
            .ok()
            .flatten()
            .and_then(|e| {
                e.to_str().ok().map(|s| {
                    s.trim_matches(|c: char| c == '\0' || c.is_whitespace())
                        .to_string()
                })
            })
            .unwrap_or_default()
    };
    Ok((
        get(tags::SERIES_INSTANCE_UID),
        get(tags::PATIENT_ID),
        get(tags::MODALITY),
    ))
}

impl SourceFormat for LidcFormat {
    /// Finds CT series (folders of `*.dcm`) under `raw`, in the TCIA download layout
    /// `LIDC-IDRI/LIDC-IDRI-dddd/<study>/<series>/*.dcm + NNN.xml` or the classic
    /// `LIDC-IDRI-dddd/<StudyUID>/<SeriesUID>/`, and pairs each with the CT read XML whose
    /// `SeriesInstanceUid` names it, wherever that XML lies. Series that are not CT
    /// (chest X-rays) are skipped; a CT series without XML is still listed, so that its
    /// load fails and the pipeline records why.
    fn discover(&self, raw: &Path) -> Result<Vec<StudyInput>, StudyError> {
        let mut folders = Vec::new();
        walk(raw, &mut folders)?;
        let mut xml_by_series: HashMap<String, Vec<PathBuf>> = HashMap::new();
        // XML files that do not parse cannot name their series: they go with the series in
        // their own folder, whose load then reports the parse error (one study rejected,
        // not the whole input).
        let mut broken_by_folder: HashMap<PathBuf, Vec<PathBuf>> = HashMap::new();
        // Reading every XML is most of discover's time and discover runs before any
        // study loads: parse them in parallel (on the caller's rayon pool), then file them
        // in folder order as before.
        let xml_files: Vec<(&PathBuf, &PathBuf)> = folders
            .iter()
            .flat_map(|(dir, files)| {
                files
                    .iter()
                    .filter(|f| is_ext(f, "xml"))
                    .map(move |f| (dir, f))
            })
            .collect();
        // Only the series UID is read (from the header), so memory stays flat.
        let series_of: Vec<Result<Option<String>, StudyError>> = xml_files
            .par_iter()
            .map(|(_, f)| xml::series_of_file(f))
            .collect();
        for ((dir, f), series) in xml_files.into_iter().zip(series_of) {
            match series {
                Ok(Some(uid)) => xml_by_series.entry(uid).or_default().push(f.clone()),
                Ok(None) => {}
                Err(_) => broken_by_folder
                    .entry(dir.clone())
                    .or_default()
                    .push(f.clone()),
            }
        }
        let mut studies = Vec::new();
        for (dir, files) in &folders {
            let dcm: Vec<PathBuf> = files.iter().filter(|f| is_ext(f, "dcm")).cloned().collect();
            let Some(first) = dcm.first() else { continue };
            let (series_uid, patient_id, modality) = header_ids(first)?;
            if !modality.is_empty() && modality != "CT" {
                continue;
            }
            let mut all = dcm;
            all.extend(xml_by_series.get(&series_uid).cloned().unwrap_or_default());
            all.extend(broken_by_folder.get(dir).cloned().unwrap_or_default());
            let rel = dir.strip_prefix(raw).unwrap_or(dir);
            studies.push(StudyInput {
                study_id: series_uid,
                patient_id,
                source_path: rel.to_string_lossy().into_owned(),
                files: all,
            });
        }
        if studies.is_empty() {
            return Err(StudyError::new(
                raw,
                "no CT series (folders of .dcm files) found",
            ));
        }
        studies.sort_by(|a, b| a.source_path.cmp(&b.source_path));
        Ok(studies)
    }

    fn load(&self, study: &StudyInput) -> Result<StudyOutput, StudyError> {
        let dcm: Vec<PathBuf> = study
            .files
            .iter()
            .filter(|f| !is_ext(f, "xml"))
            .cloned()
            .collect();
        let xmls: Vec<&PathBuf> = study.files.iter().filter(|f| is_ext(f, "xml")).collect();
        let first = dcm
            .first()
            .cloned()
            .unwrap_or_else(|| PathBuf::from(&study.source_path));
        let series = read_series(&dcm)?;
        let xml_path = match xmls.as_slice() {
            [one] => *one,
            [] => {
                return Err(StudyError::new(
                    first.parent().unwrap_or(&first),
                    format!(
                        "no LIDC XML with SeriesInstanceUid {} found",
                        series.series_instance_uid
                    ),
                ))
            }
            many => {
                let names: Vec<String> = many.iter().map(|p| p.display().to_string()).collect();
                return Err(StudyError::new(
                    many[0],
                    format!(
                        "{} LIDC XML files claim series {}: {}",
                        many.len(),
                        series.series_instance_uid,
                        names.join(", ")
                    ),
                ));
            }
        };
        let reads = match xml::parse_file(xml_path)? {
            XmlKind::Ct(x) => x,
            XmlKind::Other(root) => {
                return Err(StudyError::new(
                    xml_path,
                    format!("root <{root}> is not a CT LidcReadMessage"),
                ))
            }
        };
        if reads.series_instance_uid != series.series_instance_uid {
            return Err(StudyError::new(
                xml_path,
                format!(
                    "SeriesInstanceUid {} does not match the series {}",
                    reads.series_instance_uid, series.series_instance_uid
                ),
            ));
        }
        build_slices(&series, &reads, xml_path, &self.params)
    }

    fn facts(&self) -> DatasetFacts {
        let p = &self.params;
        DatasetFacts {
            dataset: "lidc".into(),
            source_kind: SourceKind::Lidc,
            raters: (1..=N_READERS).map(|k| format!("reader_{k}")).collect(),
            rater_order: RaterOrder::AreaRank,
            channels: vec!["ct".into()],
            crop_size: p.crop_size,
            normalisation: format!(
                "HU clipped to [{}, {}] and scaled to [0, 1]",
                p.window_lo, p.window_hi
            ),
            params: serde_json::to_value(p).expect("LidcParams serialise"),
            image_values: ImageValues::Quantised,
        }
    }
}

/// One read with its reader slot and rasterised mask.
struct RasterRead {
    session: usize,
    mask: BoxedReadMask,
}

/// One slice of a nodule: per reader slot, the union of that reader's reads over the
/// bounding box of every read of the nodule on the slice.
struct NoduleSlice {
    slots: Vec<Option<BoxMask>>,
}

impl NoduleSlice {
    fn any_marked(&self) -> bool {
        self.slots.iter().flatten().any(|m| m.data.contains(&1))
    }
}

/// One nodule: per slice index, its reader masks.
struct Nodule {
    slices: BTreeMap<usize, NoduleSlice>,
    centre: (f64, f64),
}

/// The smallest box holding every non-empty box of `boxes` (`None` when all are empty).
fn union_box<'a>(boxes: impl Iterator<Item = &'a BoxMask>) -> Option<(usize, usize, usize, usize)> {
    boxes
        .filter(|b| b.height > 0 && b.width > 0)
        .map(|b| (b.row0, b.col0, b.row0 + b.height, b.col0 + b.width))
        .reduce(|a, b| (a.0.min(b.0), a.1.min(b.1), a.2.max(b.2), a.3.max(b.3)))
}

/// Groups the reads of one nodule by slice and reader (a reader with two reads in one
/// nodule, which pylidc's distance rule allows, gets their union).
fn nodule_slices(group: &[usize], raster: &[RasterRead]) -> BTreeMap<usize, NoduleSlice> {
    let mut parts: BTreeMap<usize, Vec<(usize, &BoxMask)>> = BTreeMap::new();
    for &i in group {
        let r = &raster[i];
        for (&k, m) in &r.mask {
            parts.entry(k).or_default().push((r.session, m));
        }
    }
    parts
        .into_iter()
        .map(|(k, parts)| {
            let (r0, c0, r1, c1) = union_box(parts.iter().map(|(_, m)| *m)).unwrap_or_default();
            let mut slots: Vec<Option<BoxMask>> = vec![None; N_READERS];
            for (session, m) in parts {
                let slot =
                    slots[session].get_or_insert_with(|| BoxMask::zeros(r0, c0, r1 - r0, c1 - c0));
                if m.height > 0 && m.width > 0 {
                    slot.or_from(m);
                }
            }
            (k, NoduleSlice { slots })
        })
        .collect()
}

/// Mean (row, col) of the pixels any reader marks on any slice; `None` when none is.
fn centre(slices: &BTreeMap<usize, NoduleSlice>) -> Option<(f64, f64)> {
    let (mut n, mut sr, mut sc) = (0f64, 0f64, 0f64);
    for s in slices.values() {
        let Some(b) = s.slots.iter().flatten().next() else {
            continue;
        };
        // Every slot of a slice shares its box.
        for y in 0..b.height {
            for x in 0..b.width {
                let p = y * b.width + x;
                if s.slots.iter().flatten().any(|m| m.data[p] == 1) {
                    n += 1.0;
                    sr += (b.row0 + y) as f64;
                    sc += (b.col0 + x) as f64;
                }
            }
        }
    }
    (n > 0.0).then(|| (sr / n, sc / n))
}

/// Rasterises, clusters and crops: the part of `load` after reading the files.
///
/// A reader with two reads in one nodule (it happens when pylidc's distance rule joins
/// them) gets their union.
pub fn build_slices(
    series: &CtSeries,
    reads: &LidcXml,
    xml_path: &Path,
    params: &LidcParams,
) -> Result<StudyOutput, StudyError> {
    if reads.sessions.len() > N_READERS {
        return Err(StudyError::new(
            xml_path,
            format!(
                "{} readingSessions, LIDC has at most {N_READERS}",
                reads.sessions.len()
            ),
        ));
    }
    if params.crop_size == 0 || params.window_hi <= params.window_lo {
        return Err(StudyError::new(
            xml_path,
            format!("invalid LIDC parameters {params:?}"),
        ));
    }
    let (rows, cols) = (series.rows as usize, series.columns as usize);
    let geometry = SliceGeometry {
        rows,
        columns: cols,
        z_mm: series.z_values(),
        sop_uids: series
            .slices
            .iter()
            .map(|s| s.sop_instance_uid.clone())
            .collect(),
    };
    let mut raster = Vec::new();
    let mut points = Vec::new();
    for (s, session) in reads.sessions.iter().enumerate() {
        for read in &session.reads {
            let mask = contour::rasterise_boxed(read, &geometry, params.include_contour)
                .map_err(|roi| {
                    StudyError::new(
                        xml_path,
                        format!(
                            "reading session {} nodule `{}`: roi at z {} mm points at SOP Instance UID {} which is not in \
                             series {}, and no slice lies at that z",
                            s + 1,
                            read.nodule_id,
                            roi.z_mm,
                            roi.sop_uid,
                            series.series_instance_uid
                        ),
                    )
                })?;
            points.push(contour::contour_points(read, &geometry));
            raster.push(RasterRead { session: s, mask });
        }
    }
    let groups = cluster::cluster(&points, series.slice_thickness);
    let mut nodules = Vec::new();
    for group in groups {
        let mut slices = nodule_slices(&group, &raster);
        slices.retain(|_, s| s.any_marked());
        if let Some(centre) = centre(&slices) {
            nodules.push(Nodule { slices, centre });
        }
    }
    // Nodules by their first slice, then in-plane position.
    nodules.sort_by(|a, b| {
        let ka = *a.slices.keys().next().unwrap();
        let kb = *b.slices.keys().next().unwrap();
        ka.cmp(&kb)
            .then(a.centre.0.total_cmp(&b.centre.0))
            .then(a.centre.1.total_cmp(&b.centre.1))
    });

    let xml_sha = schemas::hashing::sha256_file(xml_path)
        .map_err(|e| StudyError::new(xml_path, e.to_string()))?;
    let n_sessions = reads.sessions.len();
    let crop = params.crop_size as usize;
    let mut samples_cache: HashMap<usize, (SliceSamples, String)> = HashMap::new();
    let mut out = Vec::new();
    for (t, nod) in nodules.iter().enumerate() {
        let (row0, col0) = crop_origin(nod.centre, crop);
        for (&k, slice) in &nod.slices {
            if let std::collections::hash_map::Entry::Vacant(slot) = samples_cache.entry(k) {
                slot.insert(series.slice_samples(k)?);
            }
            let (samples, sha) = &samples_cache[&k];
            let mut rec = SliceRecord {
                study_id: series.series_instance_uid.clone(),
                patient_id: series.patient_id.clone(),
                target_id: format!("nodule-{}", t + 1),
                slice_index: k as i32,
                z_mm: series.slices[k].z_mm,
                height: crop as u32,
                width: crop as u32,
                channels: 1,
                spacing_row_mm: series.pixel_spacing[0],
                spacing_col_mm: series.pixel_spacing[1],
                image: crop_image(samples, (rows, cols), (row0, col0), crop, params),
                masks: crop_masks(&slice.slots, (row0, col0), crop),
                raters_present: (0..N_READERS).map(|s| s < n_sessions).collect(),
                rater_area: vec![],
                intersection: vec![],
                union: vec![],
                crop_row0: row0,
                crop_col0: col0,
                source_height: rows as u32,
                source_width: cols as u32,
                source_files: vec![
                    series.slices[k].path.display().to_string(),
                    xml_path.display().to_string(),
                ],
                source_sha256: vec![sha.clone(), xml_sha.clone()],
            };
            rec.derive_consensus();
            out.push(rec);
        }
    }
    Ok(StudyOutput {
        slices: out,
        n_targets: nodules.len() as u32,
        volume_shape: [series.slices.len() as u32, rows as u32, cols as u32],
    })
}

/// Top-left pixel `(row0, col0)` of the `crop x crop` window centred on `(row, col)` (the
/// centre rounded to the nearest pixel). Shared with `dpersona predict`'s `--roi` crops.
pub fn crop_origin(centre: (f64, f64), crop: usize) -> (i32, i32) {
    (
        centre.0.round() as i32 - (crop / 2) as i32,
        centre.1.round() as i32 - (crop / 2) as i32,
    )
}

/// The part of `0..len` that `start..start + size` covers, as (first, end) in both the
/// source's and the crop's coordinates: `(src_first, crop_first, count)`.
fn overlap(start: i32, size: usize, len: usize) -> (usize, usize, usize) {
    let lo = start.max(0) as i64;
    let hi = (i64::from(start) + size as i64).min(len as i64);
    if hi <= lo {
        return (0, 0, 0);
    }
    (
        lo as usize,
        (lo - i64::from(start)) as usize,
        (hi - lo) as usize,
    )
}

/// `[crop, crop]` windowed image at `(row0, col0)` of a `(rows, cols)` slice; pixels past
/// the border are 0. Shared with `dpersona predict`, which crops unlabelled CT the same way.
pub fn crop_image(
    samples: &SliceSamples,
    (rows, cols): (usize, usize),
    (row0, col0): (i32, i32),
    crop: usize,
    params: &LidcParams,
) -> Vec<f32> {
    let mut image = vec![0f32; crop * crop];
    let (lo, hi) = (params.window_lo, params.window_hi);
    let scale = hi - lo;
    let (sr, cr, nr) = overlap(row0, crop, rows);
    let (sc, cc, nc) = overlap(col0, crop, cols);
    for y in 0..nr {
        let dst = &mut image[(cr + y) * crop + cc..(cr + y) * crop + cc + nc];
        for (x, v) in dst.iter_mut().enumerate() {
            *v = (samples.hu_at(sr + y, sc + x).clamp(lo, hi) - lo) / scale;
        }
    }
    image
}

/// `[N_READERS, crop, crop]` reader masks at `(row0, col0)` (0 for missing readers, for
/// readers without a mark on this slice, and outside the slice).
fn crop_masks(slots: &[Option<BoxMask>], (row0, col0): (i32, i32), crop: usize) -> Vec<u8> {
    let mut masks = vec![0u8; N_READERS * crop * crop];
    for (s, slot) in slots.iter().enumerate() {
        let Some(m) = slot else { continue };
        let plane = &mut masks[s * crop * crop..(s + 1) * crop * crop];
        // The mask's box, in crop coordinates, clipped to the crop.
        let (br, cr, nr) = overlap(row0 - m.row0 as i32, crop, m.height);
        let (bc, cc, nc) = overlap(col0 - m.col0 as i32, crop, m.width);
        for y in 0..nr {
            let src = &m.data[(br + y) * m.width + bc..(br + y) * m.width + bc + nc];
            plane[(cr + y) * crop + cc..(cr + y) * crop + cc + nc].copy_from_slice(src);
        }
    }
    masks
}
