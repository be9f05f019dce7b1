//! One DICOM Segmentation object per DICOM case: how PACS and 3D Slicer receive
//! segmentations (PS3.3 A.51, Segmentation IOD).
//!
//! One segment per rater (Stage II's personalised masks), `BINARY`, one frame per segment
//! and source slice that holds an ROI crop, each frame referencing its source CT instance
//! and carrying its ImagePositionPatient; the object references the source series
//! (Referenced Series Sequence) and copies the patient, study and frame of reference of the
//! first source file, as highdicom does. UIDs are `2.25.<128 bits of SHA-256>` of the
//! source series, the checkpoints and the seed, so a rerun writes the same object.
use std::path::Path;

use dicom_core::value::DataSetSequence;
use dicom_core::{dicom_value, DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};

/// One source CT slice.
#[derive(Debug, Clone)]
pub struct SourceSlice {
    pub sop_instance_uid: String,
    pub position: [f64; 3],
}

/// The source series a segmentation refers to.
#[derive(Debug, Clone)]
pub struct SourceSeries {
    /// A file of the series: patient, study and frame of reference are copied from it.
    pub first_file: std::path::PathBuf,
    pub series_instance_uid: String,
    pub rows: usize,
    pub cols: usize,
    /// PixelSpacing: row spacing, column spacing (mm).
    pub pixel_spacing: [f64; 2],
    pub slice_thickness: f64,
    pub orientation: [f64; 6],
    /// In z order (the planes of the NIfTI outputs).
    pub slices: Vec<SourceSlice>,
}

/// One segment: its label and its mask on every plane `[nz][rows * cols]` (0/1).
pub struct Segment<'a> {
    pub label: String,
    pub planes: Vec<&'a [u8]>,
}

type Obj = InMemDicomObject;

fn el(tag: Tag, vr: VR, v: PrimitiveValue) -> DataElement<Obj> {
    DataElement::new(tag, vr, v)
}

fn s(v: &str) -> PrimitiveValue {
    PrimitiveValue::from(v)
}

fn seq(tag: Tag, items: Vec<Obj>) -> DataElement<Obj> {
    DataElement::new(tag, VR::SQ, DataSetSequence::from(items))
}

fn ds(values: &[f64]) -> PrimitiveValue {
    PrimitiveValue::Strs(values.iter().map(|v| format!("{v}")).collect())
}

/// A code sequence item (CodeValue, CodingSchemeDesignator, CodeMeaning).
fn code(value: &str, scheme: &str, meaning: &str) -> Obj {
    Obj::from_element_iter([
        el(tags::CODE_VALUE, VR::SH, s(value)),
        el(tags::CODING_SCHEME_DESIGNATOR, VR::SH, s(scheme)),
        el(tags::CODE_MEANING, VR::LO, s(meaning)),
    ])
}

/// `2.25.` and the decimal of the first 128 bits of SHA-256(`seed`): a UID no registry is
/// needed for (PS3.5 B.2).
pub fn uid_from(seed: &str) -> String {
    let hex = schemas::hashing::sha256_bytes(seed.as_bytes());
    let n = u128::from_str_radix(&hex[..32], 16).expect("SHA-256 is hex");
    format!("2.25.{}", n.max(1))
}

/// Writes the segmentation of `segments` over the `planes` (slice indices, ascending) of
/// `series` to `path`; `uid_seed` makes the UIDs (see the module doc).
pub fn write_seg(
    path: &Path,
    series: &SourceSeries,
    segments: &[Segment<'_>],
    planes: &[usize],
    uid_seed: &str,
    description: &str,
) -> Result<(), String> {
    let src = dicom_object::OpenFileOptions::new()
        .read_until(tags::PIXEL_DATA)
        .open_file(&series.first_file)
        .map_err(|e| format!("{}: cannot read it again: {e}", series.first_file.display()))?;
    let copy =
        |tag: Tag| -> Option<DataElement<Obj>> { src.element_opt(tag).ok().flatten().cloned() };
    let text = |tag: Tag| -> String {
        src.element_opt(tag)
            .ok()
            .flatten()
            .and_then(|e| e.to_str().ok().map(|v| v.trim().to_string()))
            .unwrap_or_default()
    };
    let source_class = match text(tags::SOP_CLASS_UID) {
        c if c.is_empty() => uids::CT_IMAGE_STORAGE.to_string(),
        c => c,
    };
    let frame_of_reference = match text(tags::FRAME_OF_REFERENCE_UID) {
        f if f.is_empty() => uid_from(&format!("{uid_seed}/frame-of-reference")),
        f => f,
    };
    let sop_uid = uid_from(&format!("{uid_seed}/sop"));
    let series_uid = uid_from(&format!("{uid_seed}/series"));

    let mut obj = Obj::new_empty();
    obj.put(el(tags::SPECIFIC_CHARACTER_SET, VR::CS, s("ISO_IR 192")));
    obj.put(el(
        tags::IMAGE_TYPE,
        VR::CS,
        dicom_value!(Strs, ["DERIVED", "PRIMARY"]),
    ));
    obj.put(el(
        tags::SOP_CLASS_UID,
        VR::UI,
        s(uids::SEGMENTATION_STORAGE),
    ));
    obj.put(el(tags::SOP_INSTANCE_UID, VR::UI, s(&sop_uid)));
    // Patient and study: the source's (type 2 attributes are present, possibly empty).
    for (tag, vr) in [
        (tags::PATIENT_NAME, VR::PN),
        (tags::PATIENT_ID, VR::LO),
        (tags::PATIENT_BIRTH_DATE, VR::DA),
        (tags::PATIENT_SEX, VR::CS),
        (tags::STUDY_INSTANCE_UID, VR::UI),
        (tags::STUDY_DATE, VR::DA),
        (tags::STUDY_TIME, VR::TM),
        (tags::REFERRING_PHYSICIAN_NAME, VR::PN),
        (tags::STUDY_ID, VR::SH),
        (tags::ACCESSION_NUMBER, VR::SH),
    ] {
        obj.put(copy(tag).unwrap_or_else(|| el(tag, vr, s(""))));
    }
    obj.put(el(tags::MODALITY, VR::CS, s("SEG")));
    obj.put(el(tags::SERIES_INSTANCE_UID, VR::UI, s(&series_uid)));
    obj.put(el(tags::SERIES_NUMBER, VR::IS, s("9001")));
    obj.put(el(tags::SERIES_DESCRIPTION, VR::LO, s(description)));
    obj.put(el(tags::INSTANCE_NUMBER, VR::IS, s("1")));
    obj.put(el(
        tags::FRAME_OF_REFERENCE_UID,
        VR::UI,
        s(&frame_of_reference),
    ));
    obj.put(el(tags::POSITION_REFERENCE_INDICATOR, VR::LO, s("")));
    obj.put(el(tags::MANUFACTURER, VR::LO, s("dpersona")));
    obj.put(el(
        tags::MANUFACTURER_MODEL_NAME,
        VR::LO,
        s("dpersona predict"),
    ));
    obj.put(el(tags::DEVICE_SERIAL_NUMBER, VR::LO, s("0")));
    obj.put(el(
        tags::SOFTWARE_VERSIONS,
        VR::LO,
        s(env!("CARGO_PKG_VERSION")),
    ));
    obj.put(el(tags::CONTENT_LABEL, VR::CS, s("DPERSONA")));
    obj.put(el(tags::CONTENT_DESCRIPTION, VR::LO, s(description)));
    obj.put(el(tags::CONTENT_CREATOR_NAME, VR::PN, s("dpersona")));
    obj.put(el(tags::CONTENT_DATE, VR::DA, s(&text(tags::STUDY_DATE))));
    obj.put(el(tags::CONTENT_TIME, VR::TM, s(&text(tags::STUDY_TIME))));
    obj.put(seq(
        tags::REFERENCED_SERIES_SEQUENCE,
        vec![Obj::from_element_iter([
            el(
                tags::SERIES_INSTANCE_UID,
                VR::UI,
                s(&series.series_instance_uid),
            ),
            seq(
                tags::REFERENCED_INSTANCE_SEQUENCE,
                series
                    .slices
                    .iter()
                    .map(|sl| {
                        Obj::from_element_iter([
                            el(tags::REFERENCED_SOP_CLASS_UID, VR::UI, s(&source_class)),
                            el(
                                tags::REFERENCED_SOP_INSTANCE_UID,
                                VR::UI,
                                s(&sl.sop_instance_uid),
                            ),
                        ])
                    })
                    .collect(),
            ),
        ])],
    ));

    // Image pixel and segmentation image modules.
    obj.put(el(tags::SAMPLES_PER_PIXEL, VR::US, dicom_value!(U16, [1])));
    obj.put(el(
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        s("MONOCHROME2"),
    ));
    obj.put(el(
        tags::ROWS,
        VR::US,
        dicom_value!(U16, [series.rows as u16]),
    ));
    obj.put(el(
        tags::COLUMNS,
        VR::US,
        dicom_value!(U16, [series.cols as u16]),
    ));
    obj.put(el(tags::BITS_ALLOCATED, VR::US, dicom_value!(U16, [1])));
    obj.put(el(tags::BITS_STORED, VR::US, dicom_value!(U16, [1])));
    obj.put(el(tags::HIGH_BIT, VR::US, dicom_value!(U16, [0])));
    obj.put(el(
        tags::PIXEL_REPRESENTATION,
        VR::US,
        dicom_value!(U16, [0]),
    ));
    obj.put(el(tags::LOSSY_IMAGE_COMPRESSION, VR::CS, s("00")));
    obj.put(el(tags::SEGMENTATION_TYPE, VR::CS, s("BINARY")));
    obj.put(seq(
        tags::SEGMENT_SEQUENCE,
        segments
            .iter()
            .enumerate()
            .map(|(i, seg)| {
                Obj::from_element_iter([
                    el(
                        tags::SEGMENT_NUMBER,
                        VR::US,
                        dicom_value!(U16, [(i + 1) as u16]),
                    ),
                    el(tags::SEGMENT_LABEL, VR::LO, s(&seg.label)),
                    el(tags::SEGMENT_ALGORITHM_TYPE, VR::CS, s("AUTOMATIC")),
                    el(
                        tags::SEGMENT_ALGORITHM_NAME,
                        VR::LO,
                        s("D-Persona Stage II"),
                    ),
                    seq(
                        tags::SEGMENTED_PROPERTY_CATEGORY_CODE_SEQUENCE,
                        vec![code("49755003", "SCT", "Morphologically Altered Structure")],
                    ),
                    seq(
                        tags::SEGMENTED_PROPERTY_TYPE_CODE_SEQUENCE,
                        vec![code("4147007", "SCT", "Mass")],
                    ),
                ])
            })
            .collect(),
    ));

    // Multi-frame functional groups: one frame per (segment, plane).
    let dim_uid = uid_from(&format!("{uid_seed}/dimensions"));
    obj.put(seq(
        tags::DIMENSION_ORGANIZATION_SEQUENCE,
        vec![Obj::from_element_iter([el(
            tags::DIMENSION_ORGANIZATION_UID,
            VR::UI,
            s(&dim_uid),
        )])],
    ));
    let dim = |pointer: Tag, group: Tag, what: &str| {
        Obj::from_element_iter([
            el(tags::DIMENSION_ORGANIZATION_UID, VR::UI, s(&dim_uid)),
            el(
                tags::DIMENSION_INDEX_POINTER,
                VR::AT,
                dicom_value!(Tags, [pointer]),
            ),
            el(
                tags::FUNCTIONAL_GROUP_POINTER,
                VR::AT,
                dicom_value!(Tags, [group]),
            ),
            el(tags::DIMENSION_DESCRIPTION_LABEL, VR::LO, s(what)),
        ])
    };
    obj.put(seq(
        tags::DIMENSION_INDEX_SEQUENCE,
        vec![
            dim(
                tags::REFERENCED_SEGMENT_NUMBER,
                tags::SEGMENT_IDENTIFICATION_SEQUENCE,
                "ReferencedSegmentNumber",
            ),
            dim(
                tags::IMAGE_POSITION_PATIENT,
                tags::PLANE_POSITION_SEQUENCE,
                "ImagePositionPatient",
            ),
        ],
    ));
    obj.put(seq(
        tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE,
        vec![Obj::from_element_iter([
            seq(
                tags::PLANE_ORIENTATION_SEQUENCE,
                vec![Obj::from_element_iter([el(
                    tags::IMAGE_ORIENTATION_PATIENT,
                    VR::DS,
                    ds(&series.orientation),
                )])],
            ),
            seq(
                tags::PIXEL_MEASURES_SEQUENCE,
                vec![Obj::from_element_iter([
                    el(tags::PIXEL_SPACING, VR::DS, ds(&series.pixel_spacing)),
                    el(tags::SLICE_THICKNESS, VR::DS, ds(&[series.slice_thickness])),
                ])],
            ),
        ])],
    ));
    let hw = series.rows * series.cols;
    let mut frames = Vec::new();
    let mut bits: Vec<u8> = vec![0; (segments.len() * planes.len() * hw).div_ceil(8)];
    let mut at = 0usize;
    for (i, seg) in segments.iter().enumerate() {
        for (p, &k) in planes.iter().enumerate() {
            let sl = &series.slices[k];
            frames.push(Obj::from_element_iter([
                seq(
                    tags::DERIVATION_IMAGE_SEQUENCE,
                    vec![Obj::from_element_iter([
                        seq(
                            tags::SOURCE_IMAGE_SEQUENCE,
                            vec![Obj::from_element_iter([
                                el(tags::REFERENCED_SOP_CLASS_UID, VR::UI, s(&source_class)),
                                el(
                                    tags::REFERENCED_SOP_INSTANCE_UID,
                                    VR::UI,
                                    s(&sl.sop_instance_uid),
                                ),
                                seq(
                                    tags::PURPOSE_OF_REFERENCE_CODE_SEQUENCE,
                                    vec![code(
                                        "121322",
                                        "DCM",
                                        "Source image for image processing operation",
                                    )],
                                ),
                            ])],
                        ),
                        seq(
                            tags::DERIVATION_CODE_SEQUENCE,
                            vec![code("113076", "DCM", "Segmentation")],
                        ),
                    ])],
                ),
                seq(
                    tags::FRAME_CONTENT_SEQUENCE,
                    vec![Obj::from_element_iter([el(
                        tags::DIMENSION_INDEX_VALUES,
                        VR::UL,
                        dicom_value!(U32, [(i + 1) as u32, (p + 1) as u32]),
                    )])],
                ),
                seq(
                    tags::PLANE_POSITION_SEQUENCE,
                    vec![Obj::from_element_iter([el(
                        tags::IMAGE_POSITION_PATIENT,
                        VR::DS,
                        ds(&sl.position),
                    )])],
                ),
                seq(
                    tags::SEGMENT_IDENTIFICATION_SEQUENCE,
                    vec![Obj::from_element_iter([el(
                        tags::REFERENCED_SEGMENT_NUMBER,
                        VR::US,
                        dicom_value!(U16, [(i + 1) as u16]),
                    )])],
                ),
            ]));
            // Frames are packed back to back, bit i of the stream in byte i / 8 at bit
            // i % 8 (least significant first), as PS3.5 8.1.1 packs 1-bit pixels.
            for &v in &seg.planes[k][..hw] {
                if v != 0 {
                    bits[at / 8] |= 1 << (at % 8);
                }
                at += 1;
            }
        }
    }
    obj.put(el(
        tags::NUMBER_OF_FRAMES,
        VR::IS,
        s(&frames.len().to_string()),
    ));
    obj.put(seq(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE, frames));
    if bits.len() % 2 == 1 {
        bits.push(0);
    }
    obj.put(el(tags::PIXEL_DATA, VR::OB, PrimitiveValue::from(bits)));

    let file = obj
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
                .media_storage_sop_class_uid(uids::SEGMENTATION_STORAGE)
                .media_storage_sop_instance_uid(&sop_uid),
        )
        .map_err(|e| format!("{}: building the file meta group: {e}", path.display()))?;
    file.write_to_file(path)
        .map_err(|e| format!("{}: writing DICOM failed: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_are_valid_and_stable() {
        let a = uid_from("x");
        assert_eq!(a, uid_from("x"));
        assert_ne!(a, uid_from("y"));
        assert!(a.len() <= 64 && a.starts_with("2.25.") && !a[5..].starts_with('0'));
        assert!(a[5..].bytes().all(|b| b.is_ascii_digit()));
    }
}
