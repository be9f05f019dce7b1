//! Benchmark body for bench/bench_metrics.sh: scores UNITS units of N probability maps
//! against R rater masks at SIZE x SIZE (defaults 1000 x 50 x 4 at 128 x 128) with
//! `eval::unit_metrics::score_units` (rayon over units) and prints the seconds taken.
//! Inputs are smooth random blobs from a fixed seed, made before the clock starts.
//!
//! Usage: bench_metrics [UNITS] [N] [R] [SIZE]
use std::time::Instant;

use eval::unit_metrics::{score_units, MetricOptions, UnitInput};

fn main() {
    let arg = |i: usize, d: usize| {
        std::env::args()
            .nth(i)
            .map(|s| s.parse().expect("integer argument"))
            .unwrap_or(d)
    };
    let (units, n, r, size) = (arg(1, 1000), arg(2, 50), arg(3, 4), arg(4, 128));
    let p = size * size;
    let mut state = 0x2024_0318u64;
    let mut rand = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    // One disc per rater/sample with a jittered centre and radius: realistic overlap.
    let disc = |cx: f64, cy: f64, rad: f64, soft: bool| -> Vec<f32> {
        (0..p)
            .map(|i| {
                let (x, y) = ((i % size) as f64, (i / size) as f64);
                let d = ((x - cx).powi(2) + (y - cy).powi(2)).sqrt() - rad;
                if soft {
                    (1.0 / (1.0 + d.exp())) as f32
                } else {
                    (d < 0.0) as u8 as f32
                }
            })
            .collect()
    };
    let c = size as f64 / 2.0;
    let mut masks = Vec::with_capacity(units);
    let mut probs = Vec::with_capacity(units);
    for _ in 0..units {
        let m: Vec<Vec<u8>> = (0..r)
            .map(|_| {
                disc(
                    c + rand() * 6.0,
                    c + rand() * 6.0,
                    8.0 + rand() * 10.0,
                    false,
                )
                .iter()
                .map(|&v| v as u8)
                .collect()
            })
            .collect();
        let s: Vec<Vec<f32>> = (0..n)
            .map(|_| {
                disc(
                    c + rand() * 8.0,
                    c + rand() * 8.0,
                    6.0 + rand() * 14.0,
                    true,
                )
            })
            .collect();
        masks.push(m);
        probs.push(s);
    }
    let inputs: Vec<UnitInput<'_>> = masks
        .iter()
        .zip(&probs)
        .map(|(m, s)| UnitInput {
            raters: m.iter().map(|v| Some(v.as_slice())).collect(),
            probs: s.iter().map(Vec::as_slice).collect(),
        })
        .collect();
    let opts = MetricOptions::default();
    let t = Instant::now();
    let scores = score_units(&inputs, &opts);
    let secs = t.elapsed().as_secs_f64();
    let ok = scores.iter().filter(|s| s.is_ok()).count();
    let mean_ged = scores.iter().flatten().map(|s| s.ged).sum::<f64>() / ok as f64;
    println!(
        "units={units} n={n} r={r} size={size} threads={} seconds={secs:.4} mean_ged={mean_ged:.4}",
        rayon::current_num_threads()
    );
}
