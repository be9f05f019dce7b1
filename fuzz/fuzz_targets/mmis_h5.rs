//! The MMIS-2024 HDF5 case reader (ingest/src/mmis/h5.rs, `H5File`) on arbitrary bytes:
//! parse the file, then read every key an MMIS Task 1 case holds (format.rs's CHANNELS,
//! LABELS and SPACING) as `f64`, as `read_file` does. `from_bytes` is `read` without the
//! file system, so no scratch file is needed.
//!
//! The adapter turns hdf5-reader's panics into errors (h5.rs, `contain`); libFuzzer's
//! panic hook would abort on those too, so `init` wraps it to skip exactly those panics.
#![no_main]
use ingest::mmis::format::{CHANNELS, LABELS, SPACING};
use ingest::mmis::h5::H5File;
use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: {
        let libfuzzer_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !ingest::mmis::h5::panic_is_contained() {
                libfuzzer_hook(info);
            }
        }));
    },
    |data: &[u8]| {
    let Ok(f) = H5File::from_bytes(data.to_vec()) else {
        return;
    };
    for key in CHANNELS.iter().chain(&LABELS).chain(&[SPACING]) {
        if f.has(key).unwrap_or(false) {
            let _ = f.read_f64(key);
        }
    }
}
);
