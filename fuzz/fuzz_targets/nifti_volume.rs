//! NIfTI-1 reading (ingest/src/nifti/volume.rs `read_volume`) on arbitrary bytes: the first
//! byte picks `.nii` (even) or `.nii.gz` (odd), the rest is the file.
#![no_main]
use ingest::nifti::volume::read_volume;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let dir = dpersona_fuzz::scratch("nifti");
    let name = if pick % 2 == 0 { "v.nii" } else { "v.nii.gz" };
    let path = dir.join(name);
    std::fs::write(&path, body).expect("scratch file");
    if let Ok(v) = read_volume(&path) {
        let [nx, ny, nz] = v.shape3();
        if nx * ny * nz > 0 && v.data.len() >= nx * ny * nz {
            let _ = v.at(nx - 1, ny - 1, nz - 1);
        }
    }
});
