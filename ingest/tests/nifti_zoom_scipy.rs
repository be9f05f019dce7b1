//! The nearest-neighbour resampling of NIfTI slices against scipy.ndimage.zoom(order=0),
//! which the paper's NPC loader uses.

use testkit::run_script;

use ingest::nifti::slicing::zoom_index;

#[test]
fn zoom_index_matches_scipy() {
    let sizes = [
        (160, 128),
        (100, 128),
        (512, 128),
        (3, 5),
        (5, 3),
        (128, 128),
        (257, 64),
        (7, 128),
    ];
    let cases: Vec<_> = sizes
        .iter()
        .map(|&(n_in, n_out)| {
            let index: Vec<usize> = (0..n_out).map(|o| zoom_index(o, n_in, n_out)).collect();
            serde_json::json!({"n_in": n_in, "n_out": n_out, "index": index})
        })
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("cases.json");
    std::fs::write(&f, serde_json::to_vec(&cases).unwrap()).unwrap();
    let (ok, text) = run_script("nifti_zoom_vs_scipy.py", &[f.as_os_str()]);
    assert!(
        ok && text.contains("8/8 zooms match scipy"),
        "scipy disagrees:\n{text}"
    );
}
