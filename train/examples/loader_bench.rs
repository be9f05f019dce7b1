//! Loader throughput benchmark (driven by bench/bench_loader.sh).
//!
//! `loader_bench write DIR --samples N --augment lidc|npc` writes synthetic 128x128 shards
//! and a manifest (the same writers ingest uses); `loader_bench run DIR --epochs E
//! --threads T --batch B --augment lidc|npc` times E epochs of augmented batches and
//! prints `samples_per_s=<float>`.
#[path = "../tests/loader_support/mod.rs"]
mod loader_support;

use std::path::PathBuf;
use std::time::Instant;

use schemas::manifest::{RaterOrder, SourceKind};
use train::loader::{AugmentKind, Dataset, Loader, LoaderConfig, Selection};

const SIZE: usize = 128;
const RATERS: usize = 4;

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.windows(2)
        .find(|w| w[0] == name)
        .map(|w| {
            w[1].parse()
                .unwrap_or_else(|_| panic!("bad value for {name}: {}", w[1]))
        })
        .unwrap_or(default)
}

fn augment(args: &[String]) -> AugmentKind {
    match arg(args, "--augment", "lidc".to_string()).as_str() {
        "lidc" => AugmentKind::Lidc,
        "npc" => AugmentKind::Npc,
        other => panic!("--augment must be lidc or npc, not {other}"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (cmd, dir) = match (args.get(1), args.get(2)) {
        (Some(c), Some(d)) => (c.as_str(), PathBuf::from(d)),
        _ => panic!("usage: loader_bench write|run DIR [options]"),
    };
    let kind = augment(&args);
    match cmd {
        "write" => {
            let samples: usize = arg(&args, "--samples", 1200);
            let channels = if kind == AugmentKind::Npc { 3 } else { 1 };
            let per_study = 20;
            let spec = loader_support::Spec {
                size: SIZE,
                channels,
                raters: RATERS,
                order: if kind == AugmentKind::Npc {
                    RaterOrder::Identity
                } else {
                    RaterOrder::AreaRank
                },
                source: if kind == AugmentKind::Npc {
                    SourceKind::Nifti
                } else {
                    SourceKind::Lidc
                },
                studies: loader_support::studies(samples.div_ceil(per_study), 4, per_study),
                per_shard: 8,
                make: Box::new(move |s, z| {
                    let seed = (s * 1000 + z) as u64;
                    let (masks, present) = loader_support::nested_masks(SIZE, seed, RATERS, &[]);
                    let image = (0..channels * SIZE * SIZE)
                        .map(|p| {
                            (loader_support::mix(seed * 7919 + p as u64) % 1000) as f32 / 1000.0
                        })
                        .collect();
                    (image, masks, present)
                }),
            };
            let m = loader_support::write_dataset(&dir, &spec);
            println!("wrote {}", m.display());
        }
        "run" => {
            let epochs: u64 = arg(&args, "--epochs", 3);
            let cfg = LoaderConfig {
                batch_size: arg(&args, "--batch", 12),
                threads: arg(&args, "--threads", 2),
                prefetch: 4,
                augment: kind,
                seed: 1,
                ..LoaderConfig::default()
            };
            let ds =
                Dataset::open(&dir.join("manifest.parquet"), &Selection::all()).expect("dataset");
            let loader = Loader::new(ds, cfg).expect("loader");
            let start = Instant::now();
            let mut n = 0usize;
            let mut checksum = 0f64;
            for e in 0..epochs {
                for b in loader.epoch(e) {
                    let b = b.expect("batch");
                    n += b.b;
                    checksum += b.union.iter().map(|&v| v as f64).sum::<f64>();
                }
            }
            let secs = start.elapsed().as_secs_f64();
            eprintln!("{n} samples in {secs:.3} s (union checksum {checksum})");
            println!("samples_per_s={:.1}", n as f64 / secs);
        }
        other => panic!("unknown command {other}"),
    }
}
