//! The MMIS-2024 HDF5 case reader (ingest/src/mmis/h5.rs, `H5File`) on arbitrary bytes:
//! parse the file, then read every key an MMIS Task 1 case holds (format.rs's CHANNELS,
//! LABELS and SPACING) as `f64`, as `read_file` does. `from_bytes` is `read` without the
//! file system, so no scratch file is needed.
#![no_main]
use ingest::mmis::format::{CHANNELS, LABELS, SPACING};
use ingest::mmis::h5::H5File;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(f) = H5File::from_bytes(data.to_vec()) else {
        return;
    };
    for key in CHANNELS.iter().chain(&LABELS).chain(&[SPACING]) {
        if f.has(key).unwrap_or(false) {
            let _ = f.read_f64(key);
        }
    }
});
