//! LIDC slice rows against pydicom: the HU that `CtSeries` converts per pixel (only the
//! crop window of a slice is converted) and the windowed crops and SHA-256 hashes in the
//! shards (tests/py/lidc_crops_vs_pydicom.py recomputes them with pydicom and hashlib).
use std::path::{Path, PathBuf};

use dicom_core::{dicom_value, DataElement, VR};
use dicom_dictionary_std::tags;
use testkit::run_script;

use ingest::lidc::{read_series, LidcFormat, LidcParams};
use ingest::pipeline::{run_ingest, IngestOptions};

fn dicom_files(dir: &Path) -> Vec<PathBuf> {
    testkit::files_with_extension(dir, "dcm")
}

/// A copy of `src` at `dst` with some header elements replaced.
fn variant(src: &Path, dst: &Path, elements: Vec<DataElement<dicom_object::InMemDicomObject>>) {
    let mut obj = dicom_object::open_file(src).unwrap();
    for e in elements {
        obj.put(e);
    }
    obj.write_to_file(dst).unwrap();
}

/// `CtSeries::slice_hu` of a one-file series, as a JSON entry for the script.
fn hu_entry(path: &Path, work: &Path, i: usize) -> serde_json::Value {
    let series = read_series(&[path.to_path_buf()]).unwrap();
    let hu = series.slice_hu(0).unwrap();
    let raw = work.join(format!("hu{i}.f32"));
    let bytes: Vec<u8> = hu.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&raw, bytes).unwrap();
    serde_json::json!({"path": path, "values": raw, "rows": series.rows, "columns": series.columns})
}

#[test]
fn lidc_hu_crops_and_hashes_match_pydicom() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw");
    ingest::synth::lidc::write_dataset(&raw, 4, 5).unwrap();
    let out = dir.path().join("out");
    let params = LidcParams::default();
    let options = IngestOptions {
        progress: false,
        ..IngestOptions::default()
    };
    let summary = run_ingest(&LidcFormat::new(params.clone()), &raw, &out, &options).unwrap();
    assert!(
        summary.slices > 0 && summary.rejects.is_empty(),
        "{summary}"
    );

    // Stored-value layouts real LIDC scans use besides the synthetic one (signed 16 bits):
    // 12 stored bits unsigned, 12 stored bits signed (values >= 2048 are negative), and a
    // non-trivial rescale.
    let src = dicom_files(&raw)[0].clone();
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let us = |tag, v: u16| DataElement::new(tag, VR::US, dicom_value!(U16, [v]));
    let ds = |tag, v: &str| DataElement::new(tag, VR::DS, dicom_value!(Str, v));
    let variants = [
        vec![
            us(tags::BITS_STORED, 12),
            us(tags::HIGH_BIT, 11),
            us(tags::PIXEL_REPRESENTATION, 0),
        ],
        vec![us(tags::BITS_STORED, 12), us(tags::HIGH_BIT, 11)],
        vec![
            ds(tags::RESCALE_SLOPE, "2.5"),
            ds(tags::RESCALE_INTERCEPT, "-1000.25"),
        ],
    ];
    let mut files = vec![src.clone()];
    for (i, elements) in variants.into_iter().enumerate() {
        let dst = work.join(format!("variant{i}.dcm"));
        variant(&src, &dst, elements);
        files.push(dst);
    }
    let entries: Vec<serde_json::Value> = files
        .iter()
        .enumerate()
        .map(|(i, f)| hu_entry(f, &work, i))
        .collect();
    let manifest = work.join("manifest.json");
    let m = serde_json::json!({
        "hu": entries,
        "out": out,
        "window_lo": params.window_lo,
        "window_hi": params.window_hi,
    });
    std::fs::write(&manifest, serde_json::to_vec(&m).unwrap()).unwrap();
    let (ok, text) = run_script("lidc_crops_vs_pydicom.py", &[manifest.as_os_str()]);
    assert!(ok, "pydicom disagrees:\n{text}");
    assert_eq!(text.matches("HU EQUAL").count(), files.len(), "{text}");
    assert!(
        text.contains(&format!("ROWS EQUAL {}", summary.slices)),
        "{text}"
    );
}
