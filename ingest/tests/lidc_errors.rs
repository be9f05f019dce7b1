//! Bad LIDC input: each error names the file at fault and what is wrong.
use std::path::{Path, PathBuf};

use dicom_dictionary_std::tags;
use ingest::lidc::LidcFormat;
use ingest::study::{SourceFormat, StudyInput};

fn one_study(dir: &Path) -> (LidcFormat, StudyInput) {
    ingest::synth::lidc::write_dataset(dir, 1, 3).unwrap();
    let f = LidcFormat::default();
    let mut s = f.discover(dir).unwrap();
    (f, s.remove(0))
}

fn dcm(study: &StudyInput, i: usize) -> PathBuf {
    study
        .files
        .iter()
        .filter(|p| p.extension().unwrap() == "dcm")
        .nth(i)
        .unwrap()
        .clone()
}

fn xml_path(study: &StudyInput) -> PathBuf {
    study
        .files
        .iter()
        .find(|p| p.extension().unwrap() == "xml")
        .unwrap()
        .clone()
}

fn load_err(f: &LidcFormat, dir: &Path) -> String {
    let study = f.discover(dir).unwrap().remove(0);
    f.load(&study).unwrap_err().to_string()
}

#[test]
fn truncated_dicom() {
    let d = tempfile::tempdir().unwrap();
    let (f, s) = one_study(d.path());
    let p = dcm(&s, 2);
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let e = load_err(&f, d.path());
    assert!(
        e.contains(&p.display().to_string()) && e.contains("truncated"),
        "{e}"
    );
}

/// A file missing only its last two bytes: the header-only read (which checks that the file
/// ends with a whole Pixel Data element) must not take it for complete.
#[test]
fn dicom_short_by_two_bytes() {
    let d = tempfile::tempdir().unwrap();
    let (f, s) = one_study(d.path());
    let p = dcm(&s, 3);
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() - 2]).unwrap();
    let e = load_err(&f, d.path());
    assert!(
        e.contains(&p.display().to_string()) && e.contains("truncated"),
        "{e}"
    );
}

#[test]
fn dicom_without_pixel_data() {
    let d = tempfile::tempdir().unwrap();
    let (f, s) = one_study(d.path());
    let p = dcm(&s, 1);
    let mut obj = dicom_object::open_file(&p).unwrap();
    obj.remove_element(tags::PIXEL_DATA);
    obj.write_to_file(&p).unwrap();
    let e = load_err(&f, d.path());
    assert!(
        e.contains(&p.display().to_string()) && e.contains("no pixel data"),
        "{e}"
    );
}

#[test]
fn inconsistent_slice_sizes() {
    let d = tempfile::tempdir().unwrap();
    let (f, s) = one_study(d.path());
    let p = dcm(&s, 3);
    let mut obj = dicom_object::open_file(&p).unwrap();
    let px = obj
        .element(tags::PIXEL_DATA)
        .unwrap()
        .to_bytes()
        .unwrap()
        .to_vec();
    obj.put(dicom_core::DataElement::new(
        tags::ROWS,
        dicom_core::VR::US,
        dicom_core::dicom_value!(U16, [80]),
    ));
    obj.put(dicom_core::DataElement::new(
        tags::PIXEL_DATA,
        dicom_core::VR::OW,
        dicom_core::PrimitiveValue::from(px[..px.len() / 2].to_vec()),
    ));
    obj.write_to_file(&p).unwrap();
    let e = load_err(&f, d.path());
    assert!(
        e.contains(&p.display().to_string()) && e.contains("inconsistent slice size"),
        "{e}"
    );
}

#[test]
fn xml_that_does_not_parse() {
    let d = tempfile::tempdir().unwrap();
    let (f, s) = one_study(d.path());
    let x = xml_path(&s);
    std::fs::write(&x, "<LidcReadMessage><ResponseHeader></LidcReadMessage>").unwrap();
    let e = load_err(&f, d.path());
    assert!(
        e.contains(&x.display().to_string()) && e.contains("does not parse"),
        "{e}"
    );
}

#[test]
fn xml_pointing_at_unknown_slices() {
    let d = tempfile::tempdir().unwrap();
    let (f, s) = one_study(d.path());
    let x = xml_path(&s);
    let text = std::fs::read_to_string(&x).unwrap();
    let text = regex_free_replace(&text, "<imageSOP_UID>", "</imageSOP_UID>", "2.25.999");
    let text = regex_free_replace(&text, "<imageZposition>", "</imageZposition>", "9999");
    std::fs::write(&x, text).unwrap();
    let e = f.load(&s).unwrap_err().to_string();
    assert!(
        e.contains(&x.display().to_string()) && e.contains("2.25.999") && e.contains("not in"),
        "{e}"
    );
}

/// Replaces the text between every `open` and `close` by `with`.
fn regex_free_replace(s: &str, open: &str, close: &str, with: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find(open) {
        out.push_str(&rest[..i + open.len()]);
        out.push_str(with);
        let j = rest[i..].find(close).unwrap() + i;
        rest = &rest[j..];
    }
    out.push_str(rest);
    out
}

#[test]
fn unsupported_transfer_syntax_in_a_series() {
    let d = tempfile::tempdir().unwrap();
    let (f, s) = one_study(d.path());
    let p = dcm(&s, 0);
    let mut obj = dicom_object::open_file(&p).unwrap();
    obj.update_meta(|m| m.transfer_syntax = "1.2.840.10008.1.2.4.80".into());
    // Written with the declared syntax's encoding (explicit VR LE), as JPEG-LS headers are.
    obj.write_to_file(&p).unwrap();
    let e = f.load(&s).unwrap_err().to_string();
    assert!(e.contains(&p.display().to_string()), "{e}");
    assert!(e.contains("1.2.840.10008.1.2.4.80"), "{e}");
}
