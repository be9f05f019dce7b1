//! Every metric against an independent numpy/scipy implementation (tests/py/metrics_reference.py)
//! on random cases: empty raters, all-empty units, ties, N = 1, N = 50, N < R, missing
//! raters, 3D volumes, both GED empty-pair conventions.

use std::collections::BTreeMap;

use eval::unit_metrics::{score_unit, MetricOptions};
use serde_json::{json, Value};

#[test]
fn metrics_equal_numpy_reference() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    testkit::run_py("metrics_reference.py", &["gen", d]);
    let cases: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("cases.json")).unwrap())
            .unwrap();
    let blob = std::fs::read(dir.path().join("cases.bin")).unwrap();
    let mut out = Vec::new();
    for c in &cases {
        let (r, n, p) = (
            c["r"].as_u64().unwrap() as usize,
            c["n"].as_u64().unwrap() as usize,
            c["p"].as_u64().unwrap() as usize,
        );
        let off = c["offset"].as_u64().unwrap() as usize;
        let present: Vec<bool> = c["present"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_bool().unwrap())
            .collect();
        let masks = &blob[off..off + r * p];
        let probs: Vec<f32> = blob[off + r * p..off + r * p + n * p * 4]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let raters: Vec<Option<&[u8]>> = (0..r)
            .map(|k| present[k].then(|| &masks[k * p..(k + 1) * p]))
            .collect();
        let maps: Vec<&[f32]> = probs.chunks_exact(p).collect();
        let opts = MetricOptions {
            ged_empty_pair: c["ged_empty_pair"].as_f64().unwrap(),
            ..Default::default()
        };
        let s = score_unit(&raters, &maps, &opts).unwrap();
        let per = |v: &[Option<f64>]| -> BTreeMap<String, f64> {
            v.iter()
                .enumerate()
                .filter_map(|(k, x)| x.map(|x| ((k + 1).to_string(), x)))
                .collect()
        };
        out.push(json!({
            "name": c["name"],
            "ged": s.ged,
            "dice_soft": s.dice_soft,
            "dice_max": s.dice_max,
            "dice_max_per_sample": s.dice_max_per_sample,
            "dice_match": s.dice_match,
            "dice_rater_matched": per(&s.dice_rater_matched),
            "dice_rater_identity": s.dice_rater_identity.as_deref().map(per),
        }));
    }
    std::fs::write(
        dir.path().join("rust.json"),
        serde_json::to_string(&out).unwrap(),
    )
    .unwrap();
    let report = testkit::run_py("metrics_reference.py", &["check", d]);
    assert!(
        report.contains(&format!("{} cases compared", cases.len())),
        "{report}"
    );
}
