//! Stage-I training-step benchmark of the paper model (driven by bench/bench_step.sh on CPU,
//! next to bench/step_reference.py, and by bench/gpu_check.sh on a lent GPU).
//!
//! `step_bench DIR --device cpu|cuda --steps N --batch B --threads T` writes synthetic
//! 128x128 LIDC-style shards into DIR (once), then runs N Stage-I optimisation steps
//! (backbone + prior + posterior + Fcomb, Adam, the paper's K=10 bound loss) fed by the
//! prefetching loader with LIDC augmentation, and prints one `key=value` line per figure:
//! the mean step time, images/s, the share of wall time spent waiting for the loader and
//! the achieved GFLOP/s (215.7 GFLOP per step at batch 12, counted by torch's flop counter on
//! bench/step_reference.py, scaled linearly with the batch), the process CPU seconds and minor
//! page faults per step (from /proc/self/stat), the split of a step into forward / backward /
//! Adam, and with `--sgemm-n N` (CPU) the best N³ sgemm rate through tch in the same process
//! (`--sgemm-only`: that alone, DIR unused).
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
use train::precision::{autocast, backward, LossScaler, Precision};

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
    // As `dpersona train` does (glibc keeps freed tensor memory); --no-keep-memory for A/B.
    if !args.iter().any(|a| a == "--no-keep-memory") {
        schemas::host_memory::keep_freed_memory();
    }
    if args.iter().any(|a| a == "--sgemm-only") {
        // The matmul rate alone, in this process's environment (no loader, no model): tells
        // a slower step from a machine that gave this process less CPU.
        let n: i64 = arg(&args, "--sgemm-n", 4096);
        let reps: usize = arg(&args, "--sgemm-reps", 3);
        println!("sgemm_gflop_per_s={:.1}", sgemm_rate(n, reps));
        return;
    }

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
    let opts = Stage1Options::default();
    // --precision fp32|bf16|fp16: the training loop's autocast (and fp16 loss scaler).
    let precision: Precision = match arg(&args, "--precision", "fp32".to_string()).as_str() {
        "fp32" => Precision::Fp32,
        "bf16" => Precision::Bf16,
        "fp16" => Precision::Fp16,
        other => panic!("--precision must be fp32, bf16 or fp16, not {other}"),
    };
    let mut scaler = (precision == Precision::Fp16).then(LossScaler::default);
    // --channels-last: kernels and inputs in NHWC (optim.channels_last); --cudnn-benchmark:
    // cuDNN's algorithm search (optim.cudnn_benchmark). The training loop's two switches.
    let channels_last = args.iter().any(|a| a == "--channels-last");
    if channels_last {
        train::models::memory_format::vars_to_channels_last(&vs);
    }
    let cudnn_benchmark = args.iter().any(|a| a == "--cudnn-benchmark");
    if device.is_cuda() {
        tch::Cuda::cudnn_set_benchmark(cudnn_benchmark);
    }
    let mut adam = Adam::new(
        Adam::select(&vs, &[], &[DPersona::head_prefix()]),
        AdamParams::default(),
        1e-4,
    );

    let (mut wait, mut compute, mut done, mut images) = (0f64, 0f64, 0usize, 0usize);
    let (mut fwd_s, mut bwd_s, mut adam_s) = (0f64, 0f64, 0f64);
    let mut usage_from = None;
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
            if done == warmup {
                usage_from = Some(ProcUsage::now());
            }
            let mut t = b.tensors(device, device != Device::Cpu);
            if channels_last {
                t.images = train::models::memory_format::to_channels_last(&t.images);
            }
            let rater = Tensor::full([b.b as i64], (done % RATERS) as i64, (Kind::Int64, device));
            let l = autocast(precision, device, || {
                stage1_losses(
                    &model,
                    &t.images,
                    &t.masks,
                    &t.union,
                    &t.intersection,
                    &rater,
                    &opts,
                    true,
                )
            });
            sync(device);
            let tf = Instant::now();
            adam.zero_grad();
            let take_step = backward(&l.total, scaler.as_mut(), &vs);
            sync(device);
            let tb = Instant::now();
            if take_step {
                adam.step();
            }
            let loss = l.total.double_value(&[]);
            sync(device);
            assert!(loss.is_finite(), "non-finite loss at step {done}");
            let t2 = Instant::now();
            if done >= warmup {
                timed_from.get_or_insert(t0);
                wait += (t1 - t0).as_secs_f64();
                compute += (t2 - t1).as_secs_f64();
                fwd_s += (tf - t1).as_secs_f64();
                bwd_s += (tb - tf).as_secs_f64();
                adam_s += (t2 - tb).as_secs_f64();
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
    let usage = usage_from.map(|u| ProcUsage::now().since(&u));
    let timed = done - warmup;
    let step_s = wall / timed as f64;
    let gflop = GFLOP_PER_STEP_B12 * batch as f64 / 12.0;
    println!(
        "device={device:?} precision={precision:?} channels_last={channels_last} cudnn_benchmark={cudnn_benchmark}"
    );
    println!("steps={timed} batch={batch} threads={threads} warmup={warmup}");
    println!("step_s={step_s:.4}");
    println!("images_per_s={:.1}", images as f64 / wall);
    println!("data_wait_share={:.4}", wait / (wait + compute));
    println!("gflop_per_s={:.1}", gflop / step_s);
    let per = |x: f64| x / timed as f64;
    println!(
        "forward_s={:.4} backward_s={:.4} adam_s={:.4}",
        per(fwd_s),
        per(bwd_s),
        per(adam_s)
    );
    if let Some(u) = usage {
        println!("cpu_s_per_step={:.3}", per(u.cpu_s));
        println!("sys_s_per_step={:.3}", per(u.sys_s));
        println!("minor_faults_per_step={:.0}", per(u.minor_faults as f64));
    }
    let sgemm_n: i64 = arg(&args, "--sgemm-n", 0);
    if sgemm_n > 0 && device == Device::Cpu {
        let reps: usize = arg(&args, "--sgemm-reps", 3);
        println!("sgemm_gflop_per_s={:.1}", sgemm_rate(sgemm_n, reps));
    }
    eprintln!(
        "total {:.1} s including set-up",
        started.elapsed().as_secs_f64()
    );
}

/// Best rate of an n×n by n×n f32 matmul (at::mm, MKL on CPU) over `reps` runs, GFLOP/s.
fn sgemm_rate(n: i64, reps: usize) -> f64 {
    let a = Tensor::rand([n, n], (Kind::Float, Device::Cpu));
    let b = Tensor::rand([n, n], (Kind::Float, Device::Cpu));
    let _ = a.mm(&b); // warm-up: MKL's first call sets up its buffers
    let best = (0..reps.max(1))
        .map(|_| {
            let t = Instant::now();
            let _ = a.mm(&b);
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    2.0 * (n as f64).powi(3) / best / 1e9
}

/// Process CPU time and minor page faults so far, from /proc/self/stat (Linux).
struct ProcUsage {
    cpu_s: f64,
    sys_s: f64,
    minor_faults: u64,
}

impl ProcUsage {
    fn now() -> Self {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        // Fields after the parenthesised command name: state is field 3, minflt 10,
        // utime 14, stime 15 (proc(5)); clock ticks are 1/100 s on Linux.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let f: Vec<u64> = rest
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        let field = |n: usize| f.get(n - 3).copied().unwrap_or(0);
        Self {
            cpu_s: (field(14) + field(15)) as f64 / 100.0,
            sys_s: field(15) as f64 / 100.0,
            minor_faults: field(10),
        }
    }

    fn since(&self, start: &Self) -> Self {
        Self {
            cpu_s: self.cpu_s - start.cpu_s,
            sys_s: self.sys_s - start.sys_s,
            minor_faults: self.minor_faults - start.minor_faults,
        }
    }
}
