//! LIDC annotation XML (ingest/src/lidc/xml.rs) on arbitrary bytes, then what ingest does
//! with a parsed message: contours rasterised on a small grid and reads clustered.
#![no_main]
use ingest::lidc::cluster::cluster;
use ingest::lidc::contour::{contour_points, rasterise_boxed, SliceGeometry};
use ingest::lidc::xml::{parse_str, series_of_str, XmlKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // parse_file reads the file with read_to_string: non-UTF-8 is an I/O error there.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = series_of_str(text);
    let Ok(XmlKind::Ct(xml)) = parse_str(text) else {
        return;
    };
    // A 64 x 64 grid with a slice at every roi's z (ingest uses the series' slices).
    let mut z: Vec<f64> = xml
        .sessions
        .iter()
        .flat_map(|s| s.reads.iter())
        .flat_map(|r| r.rois.iter().map(|roi| roi.z_mm))
        .filter(|z| z.is_finite())
        .collect();
    z.sort_by(f64::total_cmp);
    z.dedup();
    let g = SliceGeometry {
        rows: 64,
        columns: 64,
        sop_uids: (0..z.len()).map(|k| format!("1.2.{k}")).collect(),
        z_mm: z,
    };
    let mut points = Vec::new();
    for read in xml.sessions.iter().flat_map(|s| s.reads.iter()) {
        let _ = rasterise_boxed(read, &g, false);
        points.push(contour_points(read, &g));
    }
    let _ = cluster(&points, 2.5);
});
