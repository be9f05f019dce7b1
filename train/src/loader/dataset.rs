//! The slices of a manifest selection, validated and decoded into memory.
//!
//! Opening checks everything that can make training silently wrong before the first step:
//! the manifest's schema and fingerprint (by `schemas`), that every needed shard exists and
//! has the SHA-256 recorded in the manifest header, that each shard carries the manifest's
//! preprocessing fingerprint, and that every row has the crop size, channel and rater
//! counts of the header. Rows stay in their Arrow buffers (read zero-copy through
//! [`SliceColumns`]); a selection costs its decoded size in memory (about 128 KiB per
//! 128x128 slice with 1 channel and 4 raters).
use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use arrow::array::AsArray;
use arrow::datatypes::{Int32Type, UInt32Type};
use rayon::prelude::*;

use schemas::manifest::{Manifest, RaterOrder};
use schemas::parquet_io::open_checked;
use schemas::slice::{col, SliceColumns, KEY_FINGERPRINT, SCHEMA};

use super::error::{LoaderError, Result};
use super::selection::Selection;
use crate::batch::RowId;

/// Where one served row lives: record batch `part` of the loaded shards, row `row`.
#[derive(Debug, Clone, Copy)]
struct RowRef {
    part: u32,
    row: u32,
}

/// One decoded, not yet augmented slice, borrowing the Arrow buffers.
#[derive(Debug, Clone, Copy)]
pub struct RawSlice<'a> {
    /// `[C, H, W]`.
    pub image: &'a [f32],
    /// `[R, H, W]`, 0/1, manifest rater order.
    pub masks: &'a [u8],
    /// `[R]`.
    pub present: &'a [bool],
    pub id: &'a RowId,
    /// `[H, W]` a per-slice training target (fused MV/STAPLE label) when the dataset has
    /// them ([`Dataset::with_targets`]); augmented with the same warp as the masks.
    pub target: Option<&'a [f32]>,
}

/// The selected slices of one manifest.
pub struct Dataset {
    manifest: Manifest,
    selection: Selection,
    index: Index,
    /// `[N, H, W]` optional per-slice targets in slice order.
    targets: Option<Vec<f32>>,
}

impl Dataset {
    /// Reads and validates the shards holding the studies that `selection` picks.
    pub fn open(manifest_path: &Path, selection: &Selection) -> Result<Self> {
        let manifest = Manifest::read(manifest_path)?;
        Self::from_manifest(manifest, selection)
    }

    /// Like [`open`](Self::open) for a manifest already read.
    pub fn from_manifest(manifest: Manifest, selection: &Selection) -> Result<Self> {
        let mpath = manifest.path.clone();
        let header = &manifest.header;
        if let Some((k, _)) = selection.fold {
            if k >= header.k_folds {
                return Err(LoaderError::NoSuchFold {
                    manifest: mpath,
                    fold: k,
                    k_folds: header.k_folds,
                });
            }
        }
        let studies: BTreeSet<&str> = manifest
            .studies
            .iter()
            .filter(|s| selection.matches(s))
            .map(|s| s.study_id.as_str())
            .collect();
        if studies.is_empty() {
            return Err(LoaderError::EmptySelection {
                manifest: mpath,
                selection: selection.to_string(),
                studies: manifest.studies.len(),
            });
        }
        // Shards needed, in header order (which fixes the row order of the dataset).
        let mut needed: BTreeSet<&str> = BTreeSet::new();
        for s in manifest
            .studies
            .iter()
            .filter(|s| studies.contains(s.study_id.as_str()))
        {
            if !header.shards.iter().any(|e| e.path == s.shard) {
                return Err(LoaderError::UnlistedShard {
                    manifest: mpath,
                    study: s.study_id.clone(),
                    shard: s.shard.clone(),
                });
            }
            needed.insert(s.shard.as_str());
        }
        let entries: Vec<_> = header
            .shards
            .iter()
            .filter(|e| needed.contains(e.path.as_str()))
            .collect();
        let loaded: Vec<Vec<SliceColumns>> = entries
            .par_iter()
            .map(|e| {
                load_shard(
                    &mpath,
                    &manifest.resolve(&e.path),
                    &e.sha256,
                    &header.fingerprint,
                )
            })
            .collect::<Result<_>>()?;

        let (c, r) = (header.channels.len(), header.raters.len());
        let (h, w) = (header.crop_size as usize, header.crop_size as usize);
        let mut index = Index {
            dims: (c, r, h, w),
            ..Index::default()
        };
        for (entry, parts) in entries.iter().zip(loaded) {
            let shard_path = manifest.resolve(&entry.path);
            for part in parts {
                index.push_part(&shard_path, part, &studies)?;
            }
        }
        index.sort_by_id();
        if index.rows.is_empty() {
            return Err(LoaderError::EmptySelection {
                manifest: mpath,
                selection: format!(
                    "{selection} (its {} studies have no slice rows)",
                    studies.len()
                ),
                studies: manifest.studies.len(),
            });
        }
        Ok(Dataset {
            manifest,
            selection: selection.clone(),
            index,
            targets: None,
        })
    }

    /// Number of selected slices.
    pub fn len(&self) -> usize {
        self.index.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.rows.is_empty()
    }

    /// Slice `i` (0..len), as stored.
    pub fn get(&self, i: usize) -> RawSlice<'_> {
        let ix = &self.index;
        let RowRef { part, row } = ix.rows[i];
        let cols = &ix.parts[part as usize];
        let r = ix.dims.1;
        RawSlice {
            image: cols.image(row as usize),
            masks: cols.masks(row as usize),
            present: &ix.present[i * r..(i + 1) * r],
            id: &ix.ids[i],
            target: self.targets.as_ref().map(|t| {
                let hw = ix.dims.2 * ix.dims.3;
                &t[i * hw..(i + 1) * hw]
            }),
        }
    }

    /// Attaches one `[H, W]` target per slice, looked up by the slice's id (a fused label
    /// that must be augmented like the masks). `None` from `lookup` or a wrong length is an
    /// error naming the slice.
    pub fn with_targets<'t>(
        mut self,
        lookup: impl Fn(&RowId) -> Option<&'t [f32]>,
    ) -> Result<Self> {
        let (_, _, h, w) = self.dims();
        let mut all = Vec::with_capacity(self.len() * h * w);
        for id in &self.index.ids {
            match lookup(id) {
                Some(t) if t.len() == h * w => all.extend_from_slice(t),
                Some(t) => {
                    return Err(LoaderError::Config(format!(
                        "target of {}/{} slice {} has {} values, the slices {h}x{w}",
                        id.study_id,
                        id.target_id,
                        id.slice_index,
                        t.len()
                    )))
                }
                None => {
                    return Err(LoaderError::Config(format!(
                        "no target for {}/{} slice {}",
                        id.study_id, id.target_id, id.slice_index
                    )))
                }
            }
        }
        self.targets = Some(all);
        Ok(self)
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn selection(&self) -> &Selection {
        &self.selection
    }

    pub fn rater_order(&self) -> RaterOrder {
        self.manifest.header.rater_order
    }

    /// `(C, R, H, W)`: image channels, raters, crop height and width.
    pub fn dims(&self) -> (usize, usize, usize, usize) {
        self.index.dims
    }

    /// Selected slices per study (for logs).
    pub fn slices_per_study(&self) -> HashMap<&str, usize> {
        let mut m = HashMap::new();
        for id in &self.index.ids {
            *m.entry(id.study_id.as_str()).or_default() += 1;
        }
        m
    }
}

/// The selected rows of the loaded record batches.
#[derive(Default)]
struct Index {
    /// `(C, R, H, W)` every row must have.
    dims: (usize, usize, usize, usize),
    parts: Vec<SliceColumns>,
    rows: Vec<RowRef>,
    ids: Vec<RowId>,
    /// `[N, R]`.
    present: Vec<bool>,
}

impl Index {
    /// Validates one record batch and appends its selected rows.
    fn push_part(
        &mut self,
        shard: &Path,
        part: SliceColumns,
        studies: &BTreeSet<&str>,
    ) -> Result<()> {
        let batch = part.batch();
        let bad = |row: usize, reason: String| LoaderError::BadRow {
            shard: shard.to_path_buf(),
            row,
            reason,
        };
        // SliceColumns::new checked every column's type.
        let column = |name: &str| batch.column_by_name(name).expect("checked column");
        let strings = |name: &str| column(name).as_string::<i32>();
        let u32s = |name: &str| column(name).as_primitive::<UInt32Type>();
        let (study, target) = (strings(col::STUDY_ID), strings(col::TARGET_ID));
        let slice = column(col::SLICE_INDEX).as_primitive::<Int32Type>();
        let (hs, ws, cs) = (u32s(col::HEIGHT), u32s(col::WIDTH), u32s(col::CHANNELS));
        let present_list = column(col::RATERS_PRESENT).as_list::<i32>();
        let present_values = present_list.values().as_boolean();
        let part_index = self.parts.len() as u32;
        let (c, r, h, w) = self.dims;
        for row in 0..part.len() {
            if !studies.contains(study.value(row)) {
                continue;
            }
            let dims = (
                cs.value(row) as usize,
                hs.value(row) as usize,
                ws.value(row) as usize,
            );
            if dims != (c, h, w) {
                return Err(bad(
                    row,
                    format!("channels x height x width {dims:?}, the manifest header says ({c}, {h}, {w})"),
                ));
            }
            if part.image(row).len() != c * h * w {
                return Err(bad(
                    row,
                    format!(
                        "image has {} values, expected {}",
                        part.image(row).len(),
                        c * h * w
                    ),
                ));
            }
            if part.masks(row).len() != r * h * w {
                return Err(bad(
                    row,
                    format!(
                        "masks have {} values, expected {}",
                        part.masks(row).len(),
                        r * h * w
                    ),
                ));
            }
            let offsets = present_list.value_offsets();
            let (s, e) = (offsets[row] as usize, offsets[row + 1] as usize);
            if e - s != r {
                return Err(bad(
                    row,
                    format!(
                        "raters_present has {} entries, the manifest has {r} raters",
                        e - s
                    ),
                ));
            }
            self.present.extend((s..e).map(|k| present_values.value(k)));
            self.ids.push(RowId {
                study_id: study.value(row).to_string(),
                target_id: target.value(row).to_string(),
                slice_index: slice.value(row),
            });
            self.rows.push(RowRef {
                part: part_index,
                row: row as u32,
            });
        }
        self.parts.push(part);
        Ok(())
    }

    /// Puts the rows in (study, target, slice) order. Why not shard order: ingest writes
    /// studies as its threads finish them (and a resumed ingest in resume order), so two
    /// ingests of the same studies hold the same rows in different orders, and the seeded
    /// shuffle of positions would then serve different samples: the same data and seed
    /// must train the same model.
    fn sort_by_id(&mut self) {
        let mut order: Vec<usize> = (0..self.rows.len()).collect();
        order.sort_by(|&a, &b| {
            let (x, y) = (&self.ids[a], &self.ids[b]);
            (&x.study_id, &x.target_id, x.slice_index).cmp(&(
                &y.study_id,
                &y.target_id,
                y.slice_index,
            ))
        });
        let r = self.dims.1;
        self.rows = order.iter().map(|&i| self.rows[i]).collect();
        self.ids = order.iter().map(|&i| self.ids[i].clone()).collect();
        self.present = order
            .iter()
            .flat_map(|&i| self.present[i * r..(i + 1) * r].iter().copied())
            .collect();
    }
}

/// Checks one shard against the manifest and reads all of it.
fn load_shard(
    manifest: &Path,
    shard: &Path,
    sha256: &str,
    fingerprint: &str,
) -> Result<Vec<SliceColumns>> {
    if !shard.is_file() {
        return Err(LoaderError::MissingShard {
            manifest: manifest.to_path_buf(),
            shard: shard.to_path_buf(),
        });
    }
    let found = schemas::hashing::sha256_file(shard)?;
    if found != sha256 {
        return Err(LoaderError::ChecksumMismatch {
            manifest: manifest.to_path_buf(),
            shard: shard.to_path_buf(),
            expected: sha256.to_string(),
            found,
        });
    }
    let file = open_checked(shard, &SCHEMA)?;
    let shard_fp = file.require(KEY_FINGERPRINT, SCHEMA.name)?;
    if shard_fp != fingerprint {
        return Err(LoaderError::FingerprintMismatch {
            manifest: manifest.to_path_buf(),
            shard: shard.to_path_buf(),
            expected: fingerprint.to_string(),
            found: shard_fp.to_string(),
        });
    }
    file.read_all()?
        .into_iter()
        .map(|b| {
            SliceColumns::new(b).map_err(|reason| LoaderError::BadShard {
                shard: shard.to_path_buf(),
                reason,
            })
        })
        .collect()
}
