//! PENDING (not built): the MMIS-2024 HDF5 case reader (branch `mmis`,
//! ingest/src/mmis/h5.rs) on arbitrary bytes. Activate after `mmis` is merged: move this
//! file to fuzz_targets/, add a [[bin]] `mmis_h5` to fuzz/Cargo.toml and `mmis_h5` to
//! TARGETS/MAX_LEN in scripts/fuzz.sh, and seed fuzz/seeds/mmis_h5/ with small cases
//! written by h5py (fuzz/make_seeds.py).
#![no_main]
use ingest::mmis::h5::H5File;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = dpersona_fuzz::scratch("mmis");
    let path = dir.join("case.h5");
    std::fs::write(&path, data).expect("scratch file");
    let Ok(f) = H5File::read(&path) else {
        return;
    };
    // The keys an MMIS Task 1 case holds: replace by the CHANNELS, LABELS and SPACING
    // that ingest/src/mmis/format.rs reads (names guessed here, not checked).
    for key in ["t1", "t1c", "t2", "label_a1", "label_a2", "label_a3", "label_a4"] {
        if f.has(key).unwrap_or(false) {
            let _ = f.read_f64(key);
        }
    }
});
