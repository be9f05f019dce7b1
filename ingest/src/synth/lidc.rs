//! Synthetic LIDC-IDRI: phantom volumes written as CT DICOM series plus LIDC XML reads, in
//! the TCIA download layout `LIDC-IDRI/LIDC-IDRI-dddd/<study>/<series>/1-001.dcm… + 069.xml`.
//!
//! Each rater's mask on each slice becomes contours whose points are the pixels just outside
//! the mask (the background pixels met while tracing each 8-connected component's outer
//! boundary), so pylidc's rule (interior at pixel centres, contour pixels removed) gives the
//! mask back exactly; holes become exclusion contours through the hole's own pixels. The
//! writer re-rasterises every contour and counts slices that would not come back exactly
//! ([`SynthSummary::inexact_slices`]).
//!
//! Rater r of the phantom is `readingSession` r in order; a missing rater writes no session
//! (so later raters move up a slot, as in LIDC where slots follow session order), and a
//! rater with an empty mask for a target writes no `unblindedReadNodule` for it.
use std::path::{Path, PathBuf};

use dicom_core::{dicom_value, DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::phantom::{self, PhantomParams, PhantomVolume};
use crate::lidc::contour::{rasterise, SliceGeometry};
use crate::lidc::xml::{self, LidcXml, Read, ReadingSession, Roi};

/// Rescale Intercept of the written CT (HU = stored + intercept, slope 1), as on most CT.
pub const RESCALE_INTERCEPT: f64 = -1024.0;
/// Probability that a phantom rater did not read a synthetic study.
pub const P_MISSING_RATER: f64 = 0.2;

/// What `write_dataset` wrote.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SynthSummary {
    pub studies: usize,
    pub dicom_files: usize,
    pub xml_files: usize,
    pub targets: usize,
    /// (study, rater, target, slice) masks whose contours do not rasterise back exactly
    /// (0 for the phantom's masks; non-zero would mean a shape the tracer cannot encode).
    pub inexact_slices: usize,
}

/// Seed of study `i` of a dataset (a test regenerates the phantom with it).
pub fn study_seed(seed: u64, i: usize) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(i as u64 + 1)
}

/// Phantom parameters of study `i` (1 to 3 nodules, some missing raters).
pub fn study_params(i: usize) -> PhantomParams {
    PhantomParams {
        n_targets: 1 + i % 3,
        n_raters: 4,
        p_missing_rater: P_MISSING_RATER,
        ..PhantomParams::default()
    }
}

/// Patient folder name of study `i`: `LIDC-IDRI-0001`, ...
pub fn patient_id(i: usize) -> String {
    format!("LIDC-IDRI-{:04}", i + 1)
}

/// A valid `2.25.<decimal>` UID (a random 122-bit integer, as DICOM PS3.5 B.2 allows).
fn uid(rng: &mut ChaCha8Rng) -> String {
    let v: u128 = rng.random::<u128>() >> 6;
    format!("2.25.{}", v.max(1))
}

/// A traced outline: the boundary pixels and the background pixels just outside them.
type Outline = (Vec<(i32, i32)>, Vec<(i32, i32)>);

/// Moore-neighbour tracing of one 8-connected region from its first pixel in raster order.
/// Returns (the region's boundary pixels in order, the background pixels met on the way).
/// The background walk is 4-connected (consecutive 8-neighbours in clockwise order are
/// 4-adjacent) and closes around the region, entering and leaving one-pixel notches, so every
/// region pixel is strictly inside it and every other pixel inside is a walk pixel.
fn moore_trace(inside: &dyn Fn(i32, i32) -> bool, start: (i32, i32)) -> Outline {
    // 8 neighbours (row, col) clockwise on screen (rows grow downwards), starting west.
    const N8: [(i32, i32); 8] = [
        (0, -1),
        (-1, -1),
        (-1, 0),
        (-1, 1),
        (0, 1),
        (1, 1),
        (1, 0),
        (1, -1),
    ];
    let dir_of = |d: (i32, i32)| N8.iter().position(|&n| n == d).expect("8-neighbour");
    let mut boundary = vec![start];
    let mut walk: Vec<(i32, i32)> = Vec::new();
    let mut p = start;
    // start is first in raster order, so its west neighbour is outside.
    let mut back = 0usize;
    // Stop when a (pixel, backtrack) state repeats: the trace has closed (a plain
    // "back at start with the start's backtrack" test can miss, looping for ever).
    let mut seen = std::collections::HashSet::new();
    seen.insert((p, back));
    loop {
        let mut next = None;
        let mut last_out = (p.0 + N8[back].0, p.1 + N8[back].1);
        for t in 0..8 {
            let d = (back + t) % 8;
            let q = (p.0 + N8[d].0, p.1 + N8[d].1);
            if inside(q.0, q.1) {
                next = Some(q);
                break;
            }
            last_out = q;
            if walk.last() != Some(&q) {
                walk.push(q);
            }
        }
        let Some(q) = next else { break }; // a single pixel: walked all round it
        back = dir_of((last_out.0 - q.0, last_out.1 - q.1));
        p = q;
        if !seen.insert((p, back)) {
            break;
        }
        if p != start {
            boundary.push(p);
        }
    }
    if walk.len() > 1 && walk.first() == walk.last() {
        walk.pop();
    }
    (boundary, walk)
}

/// Labels 8-connected components of `value` pixels; returns (labels, count).
fn components(mask: &[u8], h: usize, w: usize, value: u8, eight: bool) -> (Vec<usize>, usize) {
    let mut label = vec![usize::MAX; h * w];
    let mut n = 0;
    for s in 0..h * w {
        if mask[s] != value || label[s] != usize::MAX {
            continue;
        }
        let mut stack = vec![s];
        label[s] = n;
        while let Some(p) = stack.pop() {
            let (r, c) = ((p / w) as i32, (p % w) as i32);
            for dr in -1..=1 {
                for dc in -1..=1 {
                    if (dr == 0 && dc == 0) || (!eight && dr != 0 && dc != 0) {
                        continue;
                    }
                    let (rr, cc) = (r + dr, c + dc);
                    if rr < 0 || cc < 0 || rr >= h as i32 || cc >= w as i32 {
                        continue;
                    }
                    let q = rr as usize * w + cc as usize;
                    if mask[q] == value && label[q] == usize::MAX {
                        label[q] = n;
                        stack.push(q);
                    }
                }
            }
        }
        n += 1;
    }
    (label, n)
}

/// Contours `(inclusion, points)` of one slice mask `[h * w]`.
pub fn mask_contours(mask: &[u8], h: usize, w: usize) -> Vec<(bool, Vec<(i32, i32)>)> {
    let mut out = Vec::new();
    let (lab, n) = components(mask, h, w, 1, true);
    for k in 0..n {
        let start = (0..h * w).find(|&p| lab[p] == k).unwrap();
        let inside = |r: i32, c: i32| {
            r >= 0
                && c >= 0
                && r < h as i32
                && c < w as i32
                && lab[r as usize * w + c as usize] == k
        };
        out.push((
            true,
            moore_trace(&inside, ((start / w) as i32, (start % w) as i32)).1,
        ));
    }
    // Holes: 4-connected background components that do not touch the border.
    let (blab, bn) = components(mask, h, w, 0, false);
    for k in 0..bn {
        let pix: Vec<usize> = (0..h * w).filter(|&p| blab[p] == k).collect();
        if pix
            .iter()
            .any(|&p| p / w == 0 || p % w == 0 || p / w == h - 1 || p % w == w - 1)
        {
            continue;
        }
        // Exclusion contour through the hole's own boundary pixels (cleared with it).
        let inside = |r: i32, c: i32| {
            r >= 0
                && c >= 0
                && r < h as i32
                && c < w as i32
                && blab[r as usize * w + c as usize] == k
        };
        let start = pix[0];
        let (mut edge, _) = moore_trace(&inside, ((start / w) as i32, (start % w) as i32));
        if edge.len() == 1 {
            // Readers (ours and pylidc) drop one-point rois; a repeated point is kept.
            edge.push(edge[0]);
        }
        out.push((false, edge));
    }
    out
}

fn write_dicom_slice(
    path: &Path,
    vol: &PhantomVolume,
    k: usize,
    instance: usize,
    z_mm: f64,
    ids: &StudyIds,
    sop_uid: &str,
) -> anyhow::Result<()> {
    let (h, w) = (vol.height, vol.width);
    let mut bytes = Vec::with_capacity(h * w * 2);
    for &v in &vol.hu[k * h * w..(k + 1) * h * w] {
        let stored = (v as f64 - RESCALE_INTERCEPT)
            .round()
            .clamp(i16::MIN as f64, i16::MAX as f64) as i16;
        bytes.extend_from_slice(&stored.to_le_bytes());
    }
    let ds = |v: f64| format!("{v}");
    let e = |tag, vr, v: PrimitiveValue| DataElement::new(tag, vr, v);
    let s = |v: &str| PrimitiveValue::from(v);
    let obj = InMemDicomObject::from_element_iter([
        e(tags::SPECIFIC_CHARACTER_SET, VR::CS, s("ISO_IR 100")),
        e(
            tags::IMAGE_TYPE,
            VR::CS,
            dicom_value!(Strs, ["ORIGINAL", "PRIMARY", "AXIAL"]),
        ),
        e(tags::SOP_CLASS_UID, VR::UI, s(uids::CT_IMAGE_STORAGE)),
        e(tags::SOP_INSTANCE_UID, VR::UI, s(sop_uid)),
        e(tags::STUDY_DATE, VR::DA, s("20000101")),
        e(tags::STUDY_TIME, VR::TM, s("120000")),
        e(tags::ACCESSION_NUMBER, VR::SH, s("")),
        e(tags::MODALITY, VR::CS, s("CT")),
        e(tags::MANUFACTURER, VR::LO, s("dpersona synthetic")),
        e(tags::REFERRING_PHYSICIAN_NAME, VR::PN, s("")),
        e(tags::PATIENT_NAME, VR::PN, s(&ids.patient_id)),
        e(tags::PATIENT_ID, VR::LO, s(&ids.patient_id)),
        e(tags::PATIENT_BIRTH_DATE, VR::DA, s("")),
        e(tags::PATIENT_SEX, VR::CS, s("")),
        e(tags::SLICE_THICKNESS, VR::DS, s(&ds(vol.spacing_mm[0]))),
        e(tags::KVP, VR::DS, s("")),
        e(tags::PATIENT_POSITION, VR::CS, s("FFS")),
        e(tags::STUDY_INSTANCE_UID, VR::UI, s(&ids.study_uid)),
        e(tags::SERIES_INSTANCE_UID, VR::UI, s(&ids.series_uid)),
        e(tags::STUDY_ID, VR::SH, s("1")),
        e(tags::SERIES_NUMBER, VR::IS, s("3000")),
        e(tags::ACQUISITION_NUMBER, VR::IS, s("")),
        e(tags::INSTANCE_NUMBER, VR::IS, s(&instance.to_string())),
        e(
            tags::IMAGE_POSITION_PATIENT,
            VR::DS,
            dicom_value!(Strs, ["-150", "-150", z_mm.to_string()]),
        ),
        e(
            tags::IMAGE_ORIENTATION_PATIENT,
            VR::DS,
            dicom_value!(Strs, ["1", "0", "0", "0", "1", "0"]),
        ),
        e(tags::FRAME_OF_REFERENCE_UID, VR::UI, s(&ids.frame_uid)),
        e(tags::POSITION_REFERENCE_INDICATOR, VR::LO, s("")),
        e(tags::SAMPLES_PER_PIXEL, VR::US, dicom_value!(U16, [1])),
        e(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, s("MONOCHROME2")),
        e(tags::ROWS, VR::US, dicom_value!(U16, [h as u16])),
        e(tags::COLUMNS, VR::US, dicom_value!(U16, [w as u16])),
        e(
            tags::PIXEL_SPACING,
            VR::DS,
            dicom_value!(Strs, [ds(vol.spacing_mm[1]), ds(vol.spacing_mm[2])]),
        ),
        e(tags::BITS_ALLOCATED, VR::US, dicom_value!(U16, [16])),
        e(tags::BITS_STORED, VR::US, dicom_value!(U16, [16])),
        e(tags::HIGH_BIT, VR::US, dicom_value!(U16, [15])),
        e(tags::PIXEL_REPRESENTATION, VR::US, dicom_value!(U16, [1])),
        e(tags::WINDOW_CENTER, VR::DS, s("-600")),
        e(tags::WINDOW_WIDTH, VR::DS, s("1500")),
        e(tags::RESCALE_INTERCEPT, VR::DS, s(&ds(RESCALE_INTERCEPT))),
        e(tags::RESCALE_SLOPE, VR::DS, s("1")),
        e(tags::RESCALE_TYPE, VR::LO, s("HU")),
        e(tags::PIXEL_DATA, VR::OW, PrimitiveValue::from(bytes)),
    ]);
    let file = obj.with_meta(
        FileMetaTableBuilder::new()
            .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
            .media_storage_sop_class_uid(uids::CT_IMAGE_STORAGE)
            .media_storage_sop_instance_uid(sop_uid),
    )?;
    let tmp = schemas::atomic::temp_path_for(path);
    file.write_to_file(&tmp)?;
    schemas::atomic::commit_temp(&tmp, path)?;
    Ok(())
}

struct StudyIds {
    patient_id: String,
    study_uid: String,
    series_uid: String,
    frame_uid: String,
}

/// Writes `studies` synthetic LIDC studies under `out/LIDC-IDRI/`. Deterministic per seed.
pub fn write_dataset(out: &Path, studies: usize, seed: u64) -> anyhow::Result<SynthSummary> {
    let mut summary = SynthSummary::default();
    for i in 0..studies {
        let s = study_seed(seed, i);
        let vol = phantom::generate(&study_params(i), s);
        let mut rng = ChaCha8Rng::seed_from_u64(s ^ 0x5EED_D1C0);
        let ids = StudyIds {
            patient_id: patient_id(i),
            study_uid: uid(&mut rng),
            series_uid: uid(&mut rng),
            frame_uid: uid(&mut rng),
        };
        let dir: PathBuf = out
            .join("LIDC-IDRI")
            .join(&ids.patient_id)
            .join(format!("01-01-2000-NA-NA-{:05}", 10000 + i))
            .join(format!("{}.000000-NA-{:05}", 3000 + i, 20000 + i));
        std::fs::create_dir_all(&dir)?;
        let d = vol.depth;
        let dz = vol.spacing_mm[0];
        let z_of = |k: usize| -(d as f64) * dz + k as f64 * dz;
        let sops: Vec<String> = (0..d).map(|_| uid(&mut rng)).collect();
        // Files are numbered from the top (highest z) down, as in LIDC downloads, so the
        // reader has to sort by ImagePositionPatient.
        for n in 0..d {
            let k = d - 1 - n;
            let p = dir.join(format!("1-{:03}.dcm", n + 1));
            write_dicom_slice(&p, &vol, k, n + 1, z_of(k), &ids, &sops[k])?;
            summary.dicom_files += 1;
        }
        let geometry = SliceGeometry {
            rows: vol.height,
            columns: vol.width,
            z_mm: (0..d).map(z_of).collect(),
            sop_uids: sops.clone(),
        };
        let hw = vol.height * vol.width;
        let n_raters = vol.targets.first().map_or(0, |t| t.rater_masks.len());
        let mut sessions = Vec::new();
        for r in 0..n_raters {
            if vol.targets.iter().any(|t| t.rater_masks[r].is_none()) {
                continue; // missing rater: no readingSession
            }
            let mut reads = Vec::new();
            for t in &vol.targets {
                let m = t.rater_masks[r].as_ref().unwrap();
                let mut rois = Vec::new();
                for k in 0..d {
                    let sl = &m[k * hw..(k + 1) * hw];
                    if !sl.contains(&1) {
                        continue;
                    }
                    let mut slice_rois = Vec::new();
                    for (inclusion, points) in mask_contours(sl, vol.height, vol.width) {
                        slice_rois.push(Roi {
                            z_mm: z_of(k),
                            sop_uid: sops[k].clone(),
                            inclusion,
                            points,
                        });
                    }
                    let check = Read {
                        nodule_id: String::new(),
                        rois: slice_rois.clone(),
                    };
                    let back = rasterise(&check, &geometry, false)
                        .ok()
                        .and_then(|mut m| m.remove(&k));
                    if back.as_deref() != Some(sl) {
                        summary.inexact_slices += 1;
                    }
                    rois.extend(slice_rois);
                }
                if !rois.is_empty() {
                    reads.push(Read {
                        nodule_id: format!("{}-r{}", t.id, r + 1),
                        rois,
                    });
                }
            }
            sessions.push(ReadingSession { reads });
        }
        let doc = xml::write_string(&LidcXml {
            series_instance_uid: ids.series_uid.clone(),
            study_instance_uid: ids.study_uid.clone(),
            sessions,
        });
        schemas::atomic::write_file_atomic(&dir.join("069.xml"), doc.as_bytes())?;
        summary.xml_files += 1;
        summary.targets += vol.targets.len();
        summary.studies += 1;
    }
    Ok(summary)
}
