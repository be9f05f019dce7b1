//! Worker pool and bounded prefetch channel.
//!
//! A producer thread walks the epoch's order in waves of whole batches; the samples of a
//! wave are made in parallel on the rayon pool (`par_iter().collect()` keeps their order),
//! cut into batches and sent, in order, through a bounded channel whose depth caps the
//! batches held ahead of the training thread. A wave holds enough samples to keep every
//! worker busy even when batches are smaller than the pool.
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver};
use rayon::prelude::*;

use super::augment::Augmenter;
use super::collate;
use super::dataset::Dataset;
use super::error::{LoaderError, Result};
use super::sample::{make_sample, sample_rng, Sample};
use crate::batch::Batch;

/// Everything the producer needs for one epoch.
pub(crate) struct EpochJob {
    pub dataset: Arc<Dataset>,
    pub augmenter: Augmenter,
    pub seed: u64,
    pub epoch: u64,
    /// Dataset row index at each position of the epoch.
    pub order: Vec<usize>,
    pub batch_size: usize,
    pub first_batch: usize,
}

/// The sample at `position` of an epoch's `order`.
pub(crate) fn make_at(
    ds: &Dataset,
    aug: &Augmenter,
    seed: u64,
    epoch: u64,
    order: &[usize],
    position: usize,
) -> Sample {
    let (_, _, h, w) = ds.dims();
    let mut rng = sample_rng(seed, epoch, position as u64);
    make_sample(
        &ds.get(order[position]),
        h,
        w,
        aug,
        ds.rater_order(),
        &mut rng,
    )
}

/// Iterator over one epoch's batches; see [`Loader::epoch`](super::Loader::epoch).
pub struct EpochIter {
    rx: Option<Receiver<Batch>>,
    handle: Option<JoinHandle<()>>,
    remaining: usize,
}

impl EpochIter {
    pub(crate) fn spawn(job: EpochJob, pool: Arc<rayon::ThreadPool>, depth: usize) -> Self {
        let n = job.order.len();
        let total = n.div_ceil(job.batch_size);
        let remaining = total.saturating_sub(job.first_batch);
        let (tx, rx) = bounded::<Batch>(depth);
        let handle = std::thread::Builder::new()
            .name(format!("loader-epoch-{}", job.epoch))
            .spawn(move || {
                let bs = job.batch_size;
                let wave_batches = (2 * pool.current_num_threads()).div_ceil(bs).max(1);
                let mut batch = job.first_batch;
                while batch < total {
                    let end_batch = (batch + wave_batches).min(total);
                    let positions: Vec<usize> = (batch * bs..(end_batch * bs).min(n)).collect();
                    let mut samples: Vec<Sample> = pool.install(|| {
                        positions
                            .par_iter()
                            .map(|&p| {
                                make_at(
                                    &job.dataset,
                                    &job.augmenter,
                                    job.seed,
                                    job.epoch,
                                    &job.order,
                                    p,
                                )
                            })
                            .collect()
                    });
                    let dims = job.dataset.dims();
                    while !samples.is_empty() {
                        let rest = samples.split_off(bs.min(samples.len()));
                        if tx.send(collate(samples, dims)).is_err() {
                            return; // the training thread dropped the iterator
                        }
                        samples = rest;
                    }
                    batch = end_batch;
                }
            })
            .expect("spawning the loader thread");
        Self {
            rx: Some(rx),
            handle: Some(handle),
            remaining,
        }
    }

    /// Batches not yet returned.
    pub fn remaining(&self) -> usize {
        self.remaining
    }

    /// Joins the producer and turns a panic into an error.
    fn join(&mut self) -> Result<()> {
        match self.handle.take().map(JoinHandle::join) {
            Some(Err(panic)) => {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "unknown panic".into());
                Err(LoaderError::Worker(msg))
            }
            _ => Ok(()),
        }
    }
}

impl Iterator for EpochIter {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        match self.rx.as_ref()?.recv() {
            Ok(batch) => {
                self.remaining -= 1;
                Some(Ok(batch))
            }
            Err(_) => {
                // The producer stopped before the epoch's end: it panicked.
                self.remaining = 0;
                self.rx = None;
                Some(self.join().and(Err(LoaderError::Worker(
                    "the loader thread stopped before the end of the epoch".into(),
                ))))
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for EpochIter {}

impl Drop for EpochIter {
    fn drop(&mut self) {
        // Closing the channel makes a blocked producer's `send` fail, so it exits.
        self.rx = None;
        let _ = self.join();
    }
}
