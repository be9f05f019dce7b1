//! DICOM series assembly (ingest/src/lidc/dicom_series.rs): the input is split into up to
//! four slice files (separator `--DPERSONA-SLICE--`), which are read as one series
//! (headers, geometry, pixel-data checks), then every slice's samples are decoded as ingest
//! does for the slices a nodule touches; each file is also read alone with
//! `read_dicom_pixels`.
#![no_main]
use ingest::lidc::dicom_series::{read_dicom_pixels, read_series};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = dpersona_fuzz::scratch("dicom");
    let files: Vec<_> = dpersona_fuzz::split(data, b"--DPERSONA-SLICE--", 4)
        .into_iter()
        .enumerate()
        .map(|(i, bytes)| {
            let p = dir.join(format!("{i:03}.dcm"));
            std::fs::write(&p, bytes).expect("scratch file");
            p
        })
        .collect();
    if let Ok(series) = read_series(&files) {
        for k in 0..series.slices.len() {
            if let Ok((samples, _sha)) = series.slice_samples(k) {
                let hw = series.rows as usize * series.columns as usize;
                if hw > 0 {
                    // First and last pixel: the indexing ingest's crops do.
                    let _ = samples.hu(0);
                    let _ = samples.hu(hw - 1);
                }
            }
        }
    }
    for f in &files {
        let _ = read_dicom_pixels(f);
    }
});
