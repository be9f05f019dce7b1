//! Stage-I training-step benchmark of the paper model (driven by bench/bench_train_step.sh
//! on CPU and by bench/gpu_check.sh on a lent GPU).
//!
//! `step_bench DIR --device cpu|cuda --steps N --batch B --threads T` writes synthetic
//! 128x128 LIDC-style shards into DIR (once), then runs N Stage-I optimisation steps
//! (backbone + prior + posterior + Fcomb, Adam, the paper's K=10 bound loss) fed by the
//! prefetching loader with LIDC augmentation, and prints one `key=value` line per figure:
//! the mean step time, images/s, the share of wall time spent waiting for the loader and
//! the achieved GFLOP/s (215.7 GFLOP per step at batch 12, measured with the authors' code,
//! scaled linearly with the batch).
#[path = "../tests/loader_support/mod.rs"]
mod loader_support;

use std::path::PathBuf;
use std::time::Instant;

use schemas::manifest::{RaterOrder, SourceKind};
use tch::{nn, Device, Kind, Tensor};
use train::loader::{AugmentKind, Dataset, Loader, LoaderConfig, Selection};
use train::losses::{stage1_losses, Stage1Options};
use train::models::{DPersona, ModelConfig};
use train::optim::{Adam, AdamParams};

const SIZE: usize = 128;
const RATERS: usize = 4;
/// Forward + backward FLOPs of one Stage-I step at batch 12, 128x128 (issue 3).
const GFLOP_PER_STEP_B12: f64 = 215.7;

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.windows(2)
        .find(|w| w[0] == name)
        .map(|w| {
            w[1].parse()
                .unwrap_or_else(|_| panic!("bad value for {name}: {}", w[1]))
        })
        .unwrap_or(default)
}

fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = PathBuf::from(args.get(1).expect("usage: step_bench DIR [options]"));
    let device = match arg(&args, "--device", "cpu".to_string()).as_str() {
        "cpu" => Device::Cpu,
        "cuda" => Device::Cuda(0),
        other => panic!("--device must be cpu or cuda, not {other}"),
    };
    let steps: usize = arg(&args, "--steps", 5);
    let warmup: usize = arg(&args, "--warmup", 1);
    let batch: usize = arg(&args, "--batch", 12);
    let threads: usize = arg(&args, "--threads", 2);
    let loader_threads: usize = arg(&args, "--loader-threads", 2);
    tch::set_num_threads(threads as i32);
    tch::manual_seed(1337);

    let manifest = dir.join("manifest.parquet");
    if !manifest.exists() {
        let samples: usize = arg(&args, "--samples", 240);
        let per_study = 20;
        let spec = loader_support::Spec {
            size: SIZE,
            channels: 1,
            raters: RATERS,
            order: RaterOrder::AreaRank,
            source: SourceKind::Lidc,
            studies: loader_support::studies(samples.div_ceil(per_study), 4, per_study),
            per_shard: 8,
            make: Box::new(move |s, z| {
                let seed = (s * 1000 + z) as u64;
                let (masks, present) = loader_support::nested_masks(SIZE, seed, RATERS, &[]);
                let image = (0..SIZE * SIZE)
                    .map(|p| (loader_support::mix(seed * 7919 + p as u64) % 1000) as f32 / 1000.0)
                    .collect();
                (image, masks, present)
            }),
        };
        loader_support::write_dataset(&dir, &spec);
    }
    let ds = Dataset::open(&manifest, &Selection::all()).expect("dataset");
    let loader = Loader::new(
        ds,
        LoaderConfig {
            batch_size: batch,
            threads: loader_threads,
            prefetch: 4,
            augment: AugmentKind::Lidc,
            seed: 1,
            ..LoaderConfig::default()
        },
    )
    .expect("loader");

    let vs = nn::VarStore::new(device);
    let model = DPersona::new(&vs.root(), &ModelConfig::paper(1));
    let mut adam = Adam::new(
        Adam::select(&vs, &[], &[DPersona::head_prefix()]),
        AdamParams::default(),
        1e-4,
    );
    let opts = Stage1Options::default();

    let (mut wait, mut compute, mut done, mut images) = (0f64, 0f64, 0usize, 0usize);
    let mut epoch = 0u64;
    let started = Instant::now();
    let mut timed_from = None;
    'outer: loop {
        let mut it = loader.epoch(epoch);
        loop {
            let t0 = Instant::now();
            let Some(b) = it.next() else { break };
            let b = b.expect("batch");
            let t1 = Instant::now();
            let t = b.tensors(device, device != Device::Cpu);
            let rater = Tensor::full([b.b as i64], (done % RATERS) as i64, (Kind::Int64, device));
            let l = stage1_losses(
                &model,
                &t.images,
                &t.masks,
                &t.union,
                &t.intersection,
                &rater,
                &opts,
                true,
            );
            adam.zero_grad();
            l.total.backward();
            adam.step();
            let loss = l.total.double_value(&[]);
            sync(device);
            assert!(loss.is_finite(), "non-finite loss at step {done}");
            let t2 = Instant::now();
            if done >= warmup {
                timed_from.get_or_insert(t0);
                wait += (t1 - t0).as_secs_f64();
                compute += (t2 - t1).as_secs_f64();
                images += b.b;
            }
            done += 1;
            if done >= warmup + steps {
                break 'outer;
            }
        }
        epoch += 1;
    }
    let wall = timed_from.map(|t| t.elapsed().as_secs_f64()).unwrap_or(0.0);
    let timed = done - warmup;
    let step_s = wall / timed as f64;
    let gflop = GFLOP_PER_STEP_B12 * batch as f64 / 12.0;
    println!("device={device:?}");
    println!("steps={timed} batch={batch} threads={threads} warmup={warmup}");
    println!("step_s={step_s:.4}");
    println!("images_per_s={:.1}", images as f64 / wall);
    println!("data_wait_share={:.4}", wait / (wait + compute));
    println!("gflop_per_s={:.1}", gflop / step_s);
    eprintln!(
        "total {:.1} s including set-up",
        started.elapsed().as_secs_f64()
    );
}
