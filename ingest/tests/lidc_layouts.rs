//! Folder layouts of a LIDC download: the classic `LIDC-IDRI-dddd/<StudyInstanceUID>/
//! <SeriesInstanceUID>/` tree, and a patient with several series (two CT scans plus a chest
//! X-ray whose `IdriReadMessage` XML must be skipped). XML is matched to a series by its
//! `SeriesInstanceUid`, never by folder: the tests put each CT XML in the OTHER series'
//! folder, so folder matching would pair every read with the wrong scan.
//!
//! The expected rows come from the same synthetic studies ingested in the TCIA layout that
//! `synth lidc` writes (checked against the phantom in `lidc_roundtrip.rs` and against pydicom
//! in `lidc_dicom.rs`): a layout must not change a single mask, pixel or slice.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::open_file;
use ingest::lidc::LidcFormat;
use ingest::pipeline::{run_ingest, IngestOptions};
use ingest::study::SourceFormat;
use schemas::slice::SliceRecord;

/// A DICOM text attribute, trimmed of DICOM padding.
fn text(path: &Path, tag: dicom_core::Tag) -> String {
    let obj = open_file(path).unwrap();
    obj.element(tag)
        .unwrap()
        .to_str()
        .unwrap()
        .trim_matches(|c: char| c == '\0' || c.is_whitespace())
        .to_string()
}

/// Sets text attributes of a DICOM file in place (file meta updated for the SOP UID).
fn rewrite(path: &Path, values: &[(dicom_core::Tag, VR, &str)]) {
    let mut obj = open_file(path).unwrap();
    for &(tag, vr, v) in values {
        obj.put(DataElement::new(tag, vr, PrimitiveValue::from(v)));
        if tag == tags::SOP_INSTANCE_UID {
            obj.update_meta(|m| m.media_storage_sop_instance_uid = v.to_string());
        }
    }
    obj.write_to_file(path).unwrap();
}

/// The series folders `synth lidc` wrote (TCIA layout), sorted: (dcm files, xml file).
fn tcia_series(raw: &Path) -> Vec<(Vec<PathBuf>, PathBuf)> {
    let mut out = Vec::new();
    for patient in sorted_dir(&raw.join("LIDC-IDRI")) {
        for study in sorted_dir(&patient) {
            for series in sorted_dir(&study) {
                let files = sorted_dir(&series);
                let dcm: Vec<PathBuf> = files
                    .iter()
                    .filter(|p| p.extension().unwrap() == "dcm")
                    .cloned()
                    .collect();
                let xml = files
                    .iter()
                    .find(|p| p.extension().unwrap() == "xml")
                    .unwrap()
                    .clone();
                out.push((dcm, xml));
            }
        }
    }
    out
}

fn sorted_dir(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

/// Copies one synthetic series into `dest` (created), returning the copied dcm paths.
fn copy_series(dcm: &[PathBuf], dest: &Path) -> Vec<PathBuf> {
    std::fs::create_dir_all(dest).unwrap();
    dcm.iter()
        .map(|f| {
            let to = dest.join(f.file_name().unwrap());
            std::fs::copy(f, &to).unwrap();
            to
        })
        .collect()
}

/// Rows of every study, keyed by study id, as a layout-free comparison key: everything
/// but the source file paths (which name the layout's folders).
fn rows_by_study(raw: &Path) -> BTreeMap<String, Vec<SliceRecord>> {
    let format = LidcFormat::default();
    let mut out = BTreeMap::new();
    for study in format.discover(raw).unwrap() {
        let mut rows = format.load(&study).unwrap().slices;
        for r in &mut rows {
            r.source_files.clear();
        }
        out.insert(study.study_id, rows);
    }
    out
}

/// Two folds and no val/test share: these tests hold two patients.
fn quiet() -> IngestOptions {
    IngestOptions {
        progress: false,
        folds: 2,
        val_fraction: 0.0,
        test_fraction: 0.0,
        ..IngestOptions::default()
    }
}

#[test]
fn classic_layout_with_xml_in_the_other_series_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let tcia = tmp.path().join("tcia");
    ingest::synth::lidc::write_dataset(&tcia, 2, 21).unwrap();
    let series = tcia_series(&tcia);
    assert_eq!(series.len(), 2);

    // LIDC-IDRI-dddd/<StudyInstanceUID>/<SeriesInstanceUID>/*.dcm, with the XMLs swapped.
    let classic = tmp.path().join("classic");
    let mut folders = Vec::new();
    for (dcm, _) in &series {
        let patient = text(&dcm[0], tags::PATIENT_ID);
        let study_uid = text(&dcm[0], tags::STUDY_INSTANCE_UID);
        let series_uid = text(&dcm[0], tags::SERIES_INSTANCE_UID);
        let dest = classic.join(&patient).join(&study_uid).join(&series_uid);
        copy_series(dcm, &dest);
        folders.push(dest);
    }
    for (i, (_, xml)) in series.iter().enumerate() {
        std::fs::copy(xml, folders[1 - i].join(xml.file_name().unwrap())).unwrap();
    }

    let want = rows_by_study(&tcia);
    let got = rows_by_study(&classic);
    assert_eq!(got.len(), 2);
    assert!(want.values().all(|rows| !rows.is_empty()));
    assert!(
        got == want,
        "classic layout rows differ from the TCIA layout's"
    );

    // The whole pipeline: both studies ingested, none rejected, source paths name the
    // classic folders and the XML that lies beside the other series.
    let summary = run_ingest(
        &LidcFormat::default(),
        &classic,
        &tmp.path().join("out"),
        &quiet(),
    )
    .unwrap();
    assert_eq!((summary.studies_ok, summary.rejects.len()), (2, 0));
    let n: usize = want.values().map(Vec::len).sum();
    assert_eq!(summary.slices, n as u64);
    let format = LidcFormat::default();
    for study in format.discover(&classic).unwrap() {
        let xml = study
            .files
            .iter()
            .find(|p| p.extension().unwrap() == "xml")
            .unwrap();
        let dcm = study
            .files
            .iter()
            .find(|p| p.extension().unwrap() == "dcm")
            .unwrap();
        assert_ne!(
            xml.parent(),
            dcm.parent(),
            "XML was taken from the series folder"
        );
        assert!(
            study.source_path.ends_with(&study.study_id),
            "{}",
            study.source_path
        );
    }
}

#[test]
fn patient_with_two_ct_series_and_a_chest_xray() {
    let tmp = tempfile::tempdir().unwrap();
    let tcia = tmp.path().join("tcia");
    ingest::synth::lidc::write_dataset(&tcia, 3, 5).unwrap();
    let mut series = tcia_series(&tcia);
    let want = rows_by_study(&tcia);
    // The third study stays patient LIDC-IDRI-0003, in its own TCIA folder.
    let (other_dcm, other_xml) = series.pop().unwrap();

    // One patient, LIDC-IDRI-0001, with both CT scans (the second rewritten to name the
    // patient in its DICOM files, as a follow-up scan would) in one study folder, each
    // series' XML in the other's folder, and a CR series with its IdriReadMessage XML.
    let patient = "LIDC-IDRI-0001";
    let raw = tmp.path().join("raw");
    let study_dir = raw
        .join("LIDC-IDRI")
        .join(patient)
        .join("01-01-2000-NA-NA-30001");
    let mut folders = Vec::new();
    for (i, (dcm, _)) in series.iter().enumerate() {
        let copied = copy_series(dcm, &study_dir.join(format!("300{i}.000000-NA-4000{i}")));
        for f in &copied {
            rewrite(f, &[(tags::PATIENT_ID, VR::LO, patient)]);
        }
        folders.push(copied[0].parent().unwrap().to_path_buf());
    }
    for (i, (_, xml)) in series.iter().enumerate() {
        std::fs::copy(xml, folders[1 - i].join(format!("0{i}9.xml"))).unwrap();
    }
    let other = raw.join("LIDC-IDRI/LIDC-IDRI-0003/01-01-2000-NA-NA-30003/3003.000000-NA-40003");
    copy_series(&other_dcm, &other);
    std::fs::copy(&other_xml, other.join("003.xml")).unwrap();
    let cxr = study_dir.join("1.000000-NA-50000");
    let cr_file = copy_series(&series[0].0[..1], &cxr).remove(0);
    rewrite(
        &cr_file,
        &[
            (tags::MODALITY, VR::CS, "CR"),
            (tags::SERIES_INSTANCE_UID, VR::UI, "2.25.1234567"),
            (tags::SOP_INSTANCE_UID, VR::UI, "2.25.1234567.1"),
            (tags::PATIENT_ID, VR::LO, patient),
        ],
    );
    std::fs::write(
        cxr.join("001.xml"),
        r#"<?xml version="1.0" encoding="UTF-8"?>
<IdriReadMessage xmlns="http://www.nih.gov/idri">
  <ResponseHeader><SeriesInstanceUid>2.25.1234567</SeriesInstanceUid></ResponseHeader>
  <CXRreadingSession><unblindedRead><noduleID>1</noduleID></unblindedRead></CXRreadingSession>
</IdriReadMessage>"#,
    )
    .unwrap();

    let format = LidcFormat::default();
    let studies = format.discover(&raw).unwrap();
    assert_eq!(studies.len(), 3, "the chest X-ray series must be skipped");
    let patients: Vec<&str> = studies.iter().map(|s| s.patient_id.as_str()).collect();
    assert_eq!(patients, [patient, patient, "LIDC-IDRI-0003"]);
    let got = rows_by_study(&raw);
    assert_eq!(got.len(), 3);
    for (id, rows) in &want {
        let ours = &got[id];
        assert!(!rows.is_empty());
        assert_eq!(ours.len(), rows.len(), "study {id}");
        for (a, b) in ours.iter().zip(rows) {
            // Same masks, image and slice; only the rewritten patient id (and with it the
            // DICOM file's hash) may differ.
            let mut b = b.clone();
            b.patient_id = a.patient_id.clone();
            b.source_sha256[0] = a.source_sha256[0].clone();
            assert_eq!(
                a.source_sha256[1], b.source_sha256[1],
                "study {id}: other XML"
            );
            assert!(*a == b, "study {id} slice {} differs", a.slice_index);
        }
    }

    let summary = run_ingest(&format, &raw, &tmp.path().join("out"), &quiet()).unwrap();
    assert_eq!(summary.studies_found, 3);
    assert_eq!((summary.studies_ok, summary.rejects.len()), (3, 0));
    // Patient-level folds: both scans of LIDC-IDRI-0001 share a fold, the other patient
    // has the other one.
    let fold = |p: &str| -> Vec<u32> {
        let s = summary
            .manifest
            .studies
            .iter()
            .filter(|s| s.patient_id == p);
        s.map(|s| s.fold).collect()
    };
    let (a, b) = (fold(patient), fold("LIDC-IDRI-0003"));
    assert_eq!(a.len(), 2);
    assert_eq!(a[0], a[1]);
    assert_ne!(a[0], b[0]);
}
