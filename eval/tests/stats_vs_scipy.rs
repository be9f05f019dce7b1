//! eval::stats against numpy and scipy: the bootstrap interval from the very resample
//! indices dpersona drew (numpy computes the statistics and percentiles), and the Wilcoxon
//! signed-rank p-value against scipy.stats.wilcoxon on vectors with ties and zeros.
use eval::stats::{
    bootstrap_indices, bootstrap_stratified, wilcoxon_p, SplitMix64, DEFAULT_RESAMPLES,
    DEFAULT_SEED,
};

fn py_json(mode: &str, input: &serde_json::Value, tag: &str) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.json");
    std::fs::write(&path, input.to_string()).unwrap();
    let out = testkit::run_py("stats_reference.py", &[mode, path.to_str().unwrap()]);
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix(tag))
        .unwrap_or_else(|| panic!("no {tag} line in {out}"));
    serde_json::from_str(line).unwrap()
}

/// Values on a coarse grid, so that ties are common.
fn grid_values(rng: &mut SplitMix64, n: usize, step: f64, offset: i64) -> Vec<f64> {
    (0..n)
        .map(|_| (rng.index(21) as i64 - 10 + offset) as f64 * step)
        .collect()
}

#[test]
fn wilcoxon_p_equals_scipy_with_ties_and_zeros() {
    let mut rng = SplitMix64::new(7);
    let mut vectors: Vec<Vec<f64>> = vec![
        // Hand-made: ties, zeros, signs on both sides.
        vec![0.1, -0.2, 0.0, 0.3, 0.1, -0.1, 0.0, 0.25, 0.3, -0.3],
        vec![1.0, 1.0, 1.0, -1.0, 2.0, 2.0, 0.0, 0.0, 0.0, 3.0, -3.0, 3.0],
        vec![0.5, 0.4, 0.3, 0.2, 0.1, 0.05],
        vec![-0.01, -0.02, -0.02, -0.03, 0.0, -0.04, 0.02, -0.05],
        vec![0.0, 0.0, 2.0],
        // Every difference tied in magnitude.
        vec![0.5, -0.5, 0.5, 0.5, -0.5, 0.5, 0.5],
        vec![0.0, 0.0, 0.0],
    ];
    for (n, off) in [(25, 0), (80, 2), (300, -1), (1000, 3)] {
        vectors.push(grid_values(&mut rng, n, 0.05, off));
    }
    let want = py_json(
        "wilcoxon",
        &serde_json::json!({ "vectors": vectors }),
        "WILCOXON ",
    );
    let want = want.as_array().unwrap();
    assert_eq!(want.len(), vectors.len());
    for (d, w) in vectors.iter().zip(want) {
        let got = wilcoxon_p(d);
        match w.as_f64() {
            None => assert_eq!(got, None, "{d:?}: scipy gives no p"),
            Some(w) => {
                let g = got.unwrap_or_else(|| panic!("{d:?}: no p, scipy {w}"));
                println!("n={} dpersona p={g:.15e} scipy p={w:.15e}", d.len());
                assert!((g - w).abs() <= 1e-9, "{d:?}: {g} vs scipy {w}");
                assert!(
                    (g - w).abs() <= 1e-9 * w,
                    "{d:?}: {g} vs scipy {w} (relative)"
                );
            }
        }
    }
}

#[test]
fn bootstrap_interval_equals_numpy_on_the_same_resamples() {
    let mut rng = SplitMix64::new(11);
    for sizes in [vec![7], vec![40], vec![5, 9, 3], vec![120, 80, 101, 95]] {
        let strata: Vec<Vec<f64>> = sizes
            .iter()
            .map(|&n| {
                (0..n)
                    .map(|_| rng.next_u64() as f64 / 2f64.powi(64))
                    .collect()
            })
            .collect();
        let iv = bootstrap_stratified(&strata, DEFAULT_RESAMPLES, DEFAULT_SEED).unwrap();
        let indices = bootstrap_indices(&sizes, DEFAULT_RESAMPLES, DEFAULT_SEED);
        let want = py_json(
            "bootstrap",
            &serde_json::json!({ "strata": strata, "indices": indices }),
            "BOOTSTRAP ",
        );
        let f = |k: &str| want[k].as_f64().unwrap();
        println!(
            "sizes {sizes:?}: dpersona {:.12} [{:.12}, {:.12}], numpy {:.12} [{:.12}, {:.12}]",
            iv.mean,
            iv.lo,
            iv.hi,
            f("mean"),
            f("lo"),
            f("hi")
        );
        for (g, k) in [(iv.mean, "mean"), (iv.lo, "lo"), (iv.hi, "hi")] {
            assert!(
                (g - f(k)).abs() <= 1e-12,
                "{sizes:?} {k}: {g} vs numpy {}",
                f(k)
            );
        }
        assert!(iv.lo < iv.mean && iv.mean < iv.hi, "{iv:?}");
        // The resample indices are uniform over each stratum (a fixed seed: not flaky).
        for p in want["chi2_p"].as_array().unwrap() {
            assert!(p.as_f64().unwrap() > 1e-4, "indices not uniform: {want}");
        }
    }
}
