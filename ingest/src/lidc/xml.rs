//! LIDC-IDRI annotation XML (`LidcReadMessage`, default namespace `http://www.nih.gov`):
//! parsing the reads of a CT series, and writing such a file (synthetic data and tests).
//!
//! Structure: `ResponseHeader/SeriesInstanceUid`, then one `readingSession` per reader, each
//! with `unblindedReadNodule`s made of one `roi` per slice (`imageZposition`,
//! `imageSOP_UID`, `inclusion`, `edgeMap` points with `xCoord` = column, `yCoord` = row).
use std::fmt::Write as _;
use std::path::Path;

use crate::study::StudyError;

/// Namespace of CT read messages.
pub const LIDC_NS: &str = "http://www.nih.gov";

/// One contour on one slice.
#[derive(Debug, Clone, PartialEq)]
pub struct Roi {
    pub z_mm: f64,
    pub sop_uid: String,
    /// `false`: an exclusion contour (a hole), subtracted from the read's mask.
    pub inclusion: bool,
    /// Contour points as `(row, col)` = (yCoord, xCoord).
    pub points: Vec<(i32, i32)>,
}

/// One reader's outline of one nodule (an `unblindedReadNodule` with a contour).
#[derive(Debug, Clone, PartialEq)]
pub struct Read {
    pub nodule_id: String,
    pub rois: Vec<Roi>,
}

/// One reader's session: the reads that have a contour.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReadingSession {
    pub reads: Vec<Read>,
}

/// A parsed CT read message.
#[derive(Debug, Clone, PartialEq)]
pub struct LidcXml {
    pub series_instance_uid: String,
    pub study_instance_uid: String,
    /// In document order (reader slots follow it).
    pub sessions: Vec<ReadingSession>,
}

/// What an XML file turned out to be.
#[derive(Debug, Clone, PartialEq)]
pub enum XmlKind {
    /// A CT read message.
    Ct(LidcXml),
    /// A chest X-ray read message (`IdriReadMessage`) or another document: not ours.
    Other(String),
}

fn child<'a, 'i>(node: roxmltree::Node<'a, 'i>, name: &str) -> Option<roxmltree::Node<'a, 'i>> {
    node.children()
        .find(|c| c.is_element() && c.tag_name().name() == name)
}

fn children<'a, 'i: 'a>(
    node: roxmltree::Node<'a, 'i>,
    name: &'a str,
) -> impl Iterator<Item = roxmltree::Node<'a, 'i>> + 'a {
    node.children()
        .filter(move |c| c.is_element() && c.tag_name().name() == name)
}

fn child_text(node: roxmltree::Node, name: &str) -> Option<String> {
    child(node, name)
        .and_then(|c| c.text())
        .map(|t| t.trim().to_string())
}

/// Parses an LIDC XML file. Chest X-ray messages come back as [`XmlKind::Other`].
///
/// Reads without a contour of at least two points (pylidc drops rois with <= 1 edgeMap:
/// nodules under 3 mm carry only a centroid) are left out; a session that has none keeps its
/// place (the reader read the scan).
pub fn parse_file(path: &Path) -> Result<XmlKind, StudyError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| StudyError::new(path, format!("cannot read XML: {e}")))?;
    parse_str(&text).map_err(|reason| StudyError::new(path, reason))
}

/// [`parse_file`] on a string; the error is the reason only.
pub fn parse_str(text: &str) -> Result<XmlKind, String> {
    let doc = roxmltree::Document::parse(text).map_err(|e| format!("XML does not parse: {e}"))?;
    let root = doc.root_element();
    if root.tag_name().name() != "LidcReadMessage" {
        return Ok(XmlKind::Other(root.tag_name().name().to_string()));
    }
    let header = child(root, "ResponseHeader").ok_or("LidcReadMessage has no ResponseHeader")?;
    let series_instance_uid = child_text(header, "SeriesInstanceUid")
        .filter(|s| !s.is_empty())
        .ok_or("ResponseHeader has no SeriesInstanceUid")?;
    let study_instance_uid = child_text(header, "StudyInstanceUID").unwrap_or_default();
    let mut sessions = Vec::new();
    for session in children(root, "readingSession") {
        let mut reads = Vec::new();
        for nodule in children(session, "unblindedReadNodule") {
            let nodule_id = child_text(nodule, "noduleID").unwrap_or_default();
            let mut rois = Vec::new();
            for roi in children(nodule, "roi") {
                let z: f64 = child_text(roi, "imageZposition")
                    .and_then(|t| t.parse().ok())
                    .ok_or_else(|| {
                        format!("nodule `{nodule_id}`: roi without a numeric imageZposition")
                    })?;
                let sop_uid = child_text(roi, "imageSOP_UID").unwrap_or_default();
                let inclusion = match child_text(roi, "inclusion")
                    .as_deref()
                    .map(str::to_ascii_uppercase)
                    .as_deref()
                {
                    Some("FALSE") => false,
                    Some("TRUE") | None => true,
                    Some(other) => {
                        return Err(format!(
                            "nodule `{nodule_id}`: inclusion `{other}` is not TRUE/FALSE"
                        ))
                    }
                };
                let mut points = Vec::new();
                for em in children(roi, "edgeMap") {
                    let coord = |n: &str| -> Result<i32, String> {
                        child_text(em, n)
                            .and_then(|t| t.parse().ok())
                            .ok_or_else(|| {
                                format!("nodule `{nodule_id}`: edgeMap without an integer {n}")
                            })
                    };
                    points.push((coord("yCoord")?, coord("xCoord")?));
                }
                if points.len() > 1 {
                    rois.push(Roi {
                        z_mm: z,
                        sop_uid,
                        inclusion,
                        points,
                    });
                }
            }
            if !rois.is_empty() {
                reads.push(Read { nodule_id, rois });
            }
        }
        sessions.push(ReadingSession { reads });
    }
    Ok(XmlKind::Ct(LidcXml {
        series_instance_uid,
        study_instance_uid,
        sessions,
    }))
}

/// The series a CT read message names, or `None` for another document (a chest X-ray
/// read); an error when the file cannot be read or does not parse.
///
/// Discovery calls this on every XML before any study loads, only to pair files with
/// series. The `ResponseHeader` comes first and is a few hundred bytes of files that run
/// to hundreds of kB of contours, so only the text up to the header's end tag is parsed
/// (with the root closed after it): a full parse here was 6% of ingest's CPU time, spent
/// again when the study loads. A file whose reads are broken after a good header is still
/// paired with its series, and that study's load reports the parse error.
pub fn series_of_file(path: &Path) -> Result<Option<String>, StudyError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| StudyError::new(path, format!("cannot read XML: {e}")))?;
    series_of_str(&text).map_err(|reason| StudyError::new(path, reason))
}

/// [`series_of_file`] on a string; the error is the reason only.
pub fn series_of_str(text: &str) -> Result<Option<String>, String> {
    if let Some(uid) = header_prefix(text).and_then(|prefix| header_series(&prefix)) {
        return Ok(Some(uid));
    }
    // No recognisable CT header up front: the full parse decides (and words the error).
    Ok(match parse_str(text)? {
        XmlKind::Ct(x) => Some(x.series_instance_uid),
        XmlKind::Other(_) => None,
    })
}

/// The document up to the end tag of its first `ResponseHeader` (any namespace prefix),
/// followed by the root element's end tag, or `None` when either cannot be found.
fn header_prefix(text: &str) -> Option<String> {
    let root = root_qname(text)?;
    let mut from = 0;
    while let Some(found) = text[from..].find("ResponseHeader>") {
        let at = from + found;
        let before = text[..at].trim_end_matches(|c: char| {
            c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')
        });
        if before.ends_with("</") {
            let end = at + "ResponseHeader>".len();
            return Some(format!("{}</{root}>", &text[..end]));
        }
        from = at + 1;
    }
    None
}

/// The qualified name of the root element: the first start tag after the XML declaration,
/// processing instructions, comments and a doctype.
fn root_qname(text: &str) -> Option<&str> {
    let mut rest = text;
    loop {
        rest = &rest[rest.find('<')?..];
        if let Some(after) = rest.strip_prefix("<!--") {
            rest = &after[after.find("-->")? + 3..];
        } else if rest.starts_with("<?") || rest.starts_with("<!") {
            rest = &rest[rest.find('>')? + 1..];
        } else {
            let name = &rest[1..];
            let end = name.find(|c: char| c.is_whitespace() || c == '>' || c == '/')?;
            return (end > 0).then(|| &name[..end]);
        }
    }
}

/// The non-empty `SeriesInstanceUid` of a `LidcReadMessage`'s header in `prefix`.
fn header_series(prefix: &str) -> Option<String> {
    let doc = roxmltree::Document::parse(prefix).ok()?;
    let root = doc.root_element();
    if root.tag_name().name() != "LidcReadMessage" {
        return None;
    }
    child(root, "ResponseHeader")
        .and_then(|h| child_text(h, "SeriesInstanceUid"))
        .filter(|s| !s.is_empty())
}

/// Writes a CT read message with the structure of the LIDC-IDRI files (namespaced root,
/// ResponseHeader, one readingSession per session, one roi per contour).
pub fn write_string(xml: &LidcXml) -> String {
    let mut s = String::new();
    s.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        s,
        "<LidcReadMessage uid=\"{}\" xmlns=\"{LIDC_NS}\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
         xsi:schemaLocation=\"http://www.nih.gov http://troll.rad.med.umich.edu/lidc/LidcReadMessage.xsd\">",
        escape(&xml.series_instance_uid)
    );
    s.push_str("  <ResponseHeader>\n    <Version>1.8.1</Version>\n    <TaskDescription>Second unblinded read</TaskDescription>\n");
    let _ = writeln!(
        s,
        "    <SeriesInstanceUid>{}</SeriesInstanceUid>",
        escape(&xml.series_instance_uid)
    );
    let _ = writeln!(
        s,
        "    <StudyInstanceUID>{}</StudyInstanceUID>",
        escape(&xml.study_instance_uid)
    );
    s.push_str("  </ResponseHeader>\n");
    for (k, session) in xml.sessions.iter().enumerate() {
        s.push_str("  <readingSession>\n    <annotationVersion>3.12</annotationVersion>\n");
        let _ = writeln!(
            s,
            "    <servicingRadiologistID>reader-{}</servicingRadiologistID>",
            k + 1
        );
        for read in &session.reads {
            s.push_str("    <unblindedReadNodule>\n");
            let _ = writeln!(s, "      <noduleID>{}</noduleID>", escape(&read.nodule_id));
            for roi in &read.rois {
                s.push_str("      <roi>\n");
                let _ = writeln!(s, "        <imageZposition>{}</imageZposition>", roi.z_mm);
                let _ = writeln!(
                    s,
                    "        <imageSOP_UID>{}</imageSOP_UID>",
                    escape(&roi.sop_uid)
                );
                let _ = writeln!(
                    s,
                    "        <inclusion>{}</inclusion>",
                    if roi.inclusion { "TRUE" } else { "FALSE" }
                );
                for &(row, col) in &roi.points {
                    let _ = writeln!(
                        s,
                        "        <edgeMap><xCoord>{col}</xCoord><yCoord>{row}</yCoord></edgeMap>"
                    );
                }
                s.push_str("      </roi>\n");
            }
            s.push_str("    </unblindedReadNodule>\n");
        }
        s.push_str("  </readingSession>\n");
    }
    s.push_str("</LidcReadMessage>\n");
    s
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_parse_keeps_everything() {
        let xml = LidcXml {
            series_instance_uid: "2.25.1".into(),
            study_instance_uid: "2.25.2".into(),
            sessions: vec![
                ReadingSession {
                    reads: vec![Read {
                        nodule_id: "n<1>".into(),
                        rois: vec![Roi {
                            z_mm: -12.5,
                            sop_uid: "2.25.3".into(),
                            inclusion: false,
                            points: vec![(3, 4), (5, 6)],
                        }],
                    }],
                },
                ReadingSession::default(),
            ],
        };
        assert_eq!(parse_str(&write_string(&xml)).unwrap(), XmlKind::Ct(xml));
    }

    #[test]
    fn single_point_rois_and_cxr_files_are_skipped() {
        let one_point = r#"<LidcReadMessage xmlns="http://www.nih.gov"><ResponseHeader><SeriesInstanceUid>1.2</SeriesInstanceUid></ResponseHeader>
            <readingSession><unblindedReadNodule><noduleID>small</noduleID><roi><imageZposition>1</imageZposition>
            <imageSOP_UID>9</imageSOP_UID><inclusion>TRUE</inclusion><edgeMap><xCoord>5</xCoord><yCoord>6</yCoord></edgeMap></roi>
            </unblindedReadNodule></readingSession></LidcReadMessage>"#;
        match parse_str(one_point).unwrap() {
            XmlKind::Ct(x) => {
                assert_eq!(x.sessions.len(), 1);
                assert!(x.sessions[0].reads.is_empty());
            }
            other => panic!("{other:?}"),
        }
        let cxr = r#"<IdriReadMessage xmlns="http://www.nih.gov/idri"><CXRreadingSession/></IdriReadMessage>"#;
        assert_eq!(
            parse_str(cxr).unwrap(),
            XmlKind::Other("IdriReadMessage".into())
        );
        assert!(parse_str("<LidcReadMessage><oops></LidcReadMessage>")
            .unwrap_err()
            .contains("does not parse"));
    }

    #[test]
    fn the_series_is_read_from_the_header_alone() {
        let xml = LidcXml {
            series_instance_uid: "2.25.7".into(),
            study_instance_uid: "2.25.8".into(),
            sessions: vec![ReadingSession::default()],
        };
        let text = write_string(&xml);
        assert!(header_prefix(&text).is_some());
        assert_eq!(series_of_str(&text).unwrap().as_deref(), Some("2.25.7"));
        // Reads that no longer parse after a good header: still paired with the series
        // (the study's load reports the error), where the full parse fails.
        let broken = text.replace("</readingSession>", "<readingSession>");
        assert!(parse_str(&broken).is_err());
        assert_eq!(series_of_str(&broken).unwrap().as_deref(), Some("2.25.7"));
        // A namespace prefix, a comment before the root and a header tag's look-alike.
        let prefixed = r#"<?xml version="1.0"?><!-- <Fake> --><n:LidcReadMessage xmlns:n="http://www.nih.gov"><n:ResponseHeader><n:Note>a ResponseHeader> b</n:Note><n:SeriesInstanceUid> 1.2.3 </n:SeriesInstanceUid></n:ResponseHeader><n:readingSession/></n:LidcReadMessage>"#;
        assert_eq!(series_of_str(prefixed).unwrap().as_deref(), Some("1.2.3"));
        // Chest X-ray reads name no CT series; a header without a UID and a file that does
        // not parse at all are errors, worded by the full parse.
        let cxr = r#"<IdriReadMessage xmlns="http://www.nih.gov/idri"><ResponseHeader><SeriesInstanceUid>9</SeriesInstanceUid></ResponseHeader></IdriReadMessage>"#;
        assert_eq!(series_of_str(cxr).unwrap(), None);
        let no_uid = r#"<LidcReadMessage><ResponseHeader></ResponseHeader></LidcReadMessage>"#;
        assert!(series_of_str(no_uid)
            .unwrap_err()
            .contains("no SeriesInstanceUid"));
        assert!(series_of_str("<LidcReadMessage><oops></LidcReadMessage>")
            .unwrap_err()
            .contains("does not parse"));
    }
}
