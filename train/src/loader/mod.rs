//! The training data loader: a validated selection of a manifest's slices, augmented by a
//! pool of worker threads and prefetched to the training thread in mini-batches.
//!
//! ```no_run
//! use train::loader::{AugmentKind, Dataset, FoldRole, Loader, LoaderConfig, Selection};
//! # fn main() -> Result<(), train::loader::LoaderError> {
//! let ds = Dataset::open("data/manifest.parquet".as_ref(), &Selection::fold(0, FoldRole::Train))?;
//! let loader = Loader::new(ds, LoaderConfig { augment: AugmentKind::Lidc, ..LoaderConfig::default() })?;
//! for batch in loader.epoch(0) {
//!     let batch = batch?; // images [B,C,H,W], masks [B,R,H,W], union / intersection [B,H,W]
//! }
//! # Ok(()) }
//! ```
//!
//! Reproducibility: batch contents depend only on (seed, epoch), never on the number of
//! worker threads or on scheduling: the epoch's order is a shuffle seeded by (seed, epoch),
//! each sample's augmentation draws from an RNG seeded by (seed, epoch, position), and the
//! batches are reassembled in order.
//!
//! Sub-modules:
//! - [`selection`]: split / fold filters over the manifest's studies.
//! - [`dataset`]: shard validation (checksum, fingerprint, shape) and zero-copy row access.
//! - [`warp`]: flips, rot90 and the PIL / scipy nearest-neighbour rotations as gather maps.
//! - [`augment`]: the paper's LIDC and NPC augmentation pipelines.
//! - [`rank`]: area ranking of the rater channels.
//! - [`sample`]: per-sample RNG, augmentation, ranking, union and intersection.
//! - [`prefetch`]: the worker pool and the bounded channel to the training thread.
pub mod augment;
pub mod dataset;
pub mod error;
pub mod prefetch;
pub mod rank;
pub mod sample;
pub mod selection;
pub mod warp;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use augment::{AugmentKind, Augmenter, LidcParams, NpcParams};
pub use dataset::Dataset;
pub use error::{LoaderError, Result};
pub use prefetch::EpochIter;
pub use selection::{FoldRole, Selection};

use crate::batch::Batch;
use sample::{epoch_order, Sample};

/// How a [`Loader`] serves its dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoaderConfig {
    /// Slices per mini-batch (the paper: 12). The last, partial batch of an epoch is kept.
    pub batch_size: usize,
    /// Worker threads that decode and augment (0: one per core).
    pub threads: usize,
    /// Batches made ahead of the training thread (bounded channel depth, at least 1).
    pub prefetch: usize,
    /// Visit the rows in a new random order every epoch (training) or in dataset order.
    pub shuffle: bool,
    /// Augmentation pipeline.
    pub augment: AugmentKind,
    /// Its parameters (the paper's by default).
    #[serde(default)]
    pub lidc: LidcParams,
    #[serde(default)]
    pub npc: NpcParams,
    /// Seed of the shuffles and of every augmentation draw.
    pub seed: u64,
}

impl Default for LoaderConfig {
    fn default() -> Self {
        Self {
            batch_size: 12,
            threads: 0,
            prefetch: 4,
            shuffle: true,
            augment: AugmentKind::None,
            lidc: LidcParams::default(),
            npc: NpcParams::default(),
            seed: 0,
        }
    }
}

impl LoaderConfig {
    /// Evaluation settings: dataset order, no augmentation, batch size `batch_size`.
    pub fn eval(batch_size: usize) -> Self {
        Self {
            batch_size,
            shuffle: false,
            augment: AugmentKind::None,
            ..Self::default()
        }
    }
}

/// A dataset plus the settings and worker pool that serve it.
pub struct Loader {
    dataset: Arc<Dataset>,
    config: LoaderConfig,
    augmenter: Augmenter,
    pool: Arc<rayon::ThreadPool>,
}

impl Loader {
    pub fn new(dataset: Dataset, config: LoaderConfig) -> Result<Self> {
        if config.batch_size == 0 {
            return Err(LoaderError::Config("batch_size must be at least 1".into()));
        }
        let (_, _, h, w) = dataset.dims();
        if config.augment == AugmentKind::Npc && h != w {
            return Err(LoaderError::Config(format!(
                "NPC augmentation uses rot90 and needs square crops; the manifest's are {h}x{w}"
            )));
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(config.threads)
            .thread_name(|i| format!("loader-{i}"))
            .build()
            .map_err(|e| {
                LoaderError::Config(format!(
                    "cannot start {} loader threads: {e}",
                    config.threads
                ))
            })?;
        let augmenter = Augmenter {
            kind: config.augment,
            lidc: config.lidc,
            npc: config.npc,
        };
        Ok(Self {
            dataset: Arc::new(dataset),
            config,
            augmenter,
            pool: Arc::new(pool),
        })
    }

    pub fn dataset(&self) -> &Dataset {
        &self.dataset
    }

    pub fn config(&self) -> &LoaderConfig {
        &self.config
    }

    /// Slices per epoch.
    pub fn len(&self) -> usize {
        self.dataset.len()
    }

    pub fn is_empty(&self) -> bool {
        self.dataset.is_empty()
    }

    /// Batches per epoch (the last one may be partial).
    pub fn batches_per_epoch(&self) -> usize {
        self.len().div_ceil(self.config.batch_size)
    }

    /// The batches of `epoch`, made ahead by the worker pool. Dropping the iterator early
    /// stops the workers.
    pub fn epoch(&self, epoch: u64) -> EpochIter {
        self.epoch_from(epoch, 0)
    }

    /// Like [`epoch`](Self::epoch) but starting at batch `first_batch` (resuming a run
    /// mid-epoch gives the same remaining batches as an uninterrupted run).
    pub fn epoch_from(&self, epoch: u64, first_batch: usize) -> EpochIter {
        let order = epoch_order(self.len(), self.config.seed, epoch, self.config.shuffle);
        let job = prefetch::EpochJob {
            dataset: Arc::clone(&self.dataset),
            augmenter: self.augmenter,
            seed: self.config.seed,
            epoch,
            order,
            batch_size: self.config.batch_size,
            first_batch,
        };
        EpochIter::spawn(job, Arc::clone(&self.pool), self.config.prefetch.max(1))
    }

    /// Augments one slice exactly as it would appear at `position` of `epoch`'s order
    /// (for figures and tests).
    pub fn sample(&self, epoch: u64, position: usize) -> Sample {
        let order = epoch_order(self.len(), self.config.seed, epoch, self.config.shuffle);
        prefetch::make_at(
            &self.dataset,
            &self.augmenter,
            self.config.seed,
            epoch,
            &order,
            position,
        )
    }
}

/// Concatenates samples into a batch (in the given order).
pub fn collate(samples: Vec<Sample>, dims: (usize, usize, usize, usize)) -> Batch {
    let (c, r, h, w) = dims;
    let b = samples.len();
    let mut batch = Batch {
        images: Vec::with_capacity(b * c * h * w),
        masks: Vec::with_capacity(b * r * h * w),
        present: Vec::with_capacity(b * r),
        intersection: Vec::with_capacity(b * h * w),
        union: Vec::with_capacity(b * h * w),
        target: samples.iter().all(|s| s.target.is_some()).then(Vec::new),
        b,
        c,
        r,
        h,
        w,
        rows: Vec::with_capacity(b),
    };
    for s in samples {
        batch.images.extend_from_slice(&s.image);
        batch.masks.extend_from_slice(&s.masks);
        batch.present.extend_from_slice(&s.present);
        batch.intersection.extend_from_slice(&s.intersection);
        batch.union.extend_from_slice(&s.union);
        if let (Some(dst), Some(t)) = (batch.target.as_mut(), &s.target) {
            dst.extend_from_slice(t);
        }
        batch.rows.push(s.id);
    }
    batch
}
