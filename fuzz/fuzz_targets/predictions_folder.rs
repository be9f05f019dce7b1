//! The predictions folder reader (eval/src/predictions.rs, prediction_volumes.rs): the
//! input is a packed folder (`dpersona_fuzz::unpack`: predictions.json, slice folders of
//! PNGs, volume folders of NIfTI files), written to a scratch folder and read the way
//! `dpersona eval --predictions` / `report --predictions` do up to the manifest: header,
//! listing, and every prediction, rater and image file decoded (a volume with the shape
//! its own header gives, as the report's figures read it).
#![no_main]
use eval::prediction_volumes::{read_mask_volume, read_probability_volume, volume_shape};
use eval::predictions::{list_slices, list_volumes, read_header, PredictionFiles};
use eval::raster::read_grey_png;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = dpersona_fuzz::scratch("predictions");
    dpersona_fuzz::write_tree(&dir, &dpersona_fuzz::unpack(data));
    let files = match read_header(&dir) {
        Ok(h) => h.files,
        // The listing is still explored: a malformed header alone stops nothing below.
        Err(_) => PredictionFiles::Png,
    };
    match files {
        PredictionFiles::Png => {
            if let Ok(slices) = list_slices(&dir) {
                for s in slices {
                    let all = s
                        .preds
                        .iter()
                        .chain(s.raters.iter().flatten())
                        .chain(s.image.iter());
                    for p in all {
                        let _ = read_grey_png(p);
                    }
                }
            }
        }
        PredictionFiles::Nifti => {}
    }
    if let Ok(volumes) = list_volumes(&dir) {
        for v in volumes {
            for p in &v.preds {
                if let Ok([x, y, z]) = volume_shape(p) {
                    let _ = read_probability_volume(p, z, y, x);
                }
            }
            for p in v.raters.iter().flatten().chain(v.image.iter()) {
                if let Ok([x, y, z]) = volume_shape(p) {
                    let _ = read_mask_volume(p, z, y, x);
                }
            }
        }
    }
});
