//! Evaluation units: the slices or volumes that `dpersona eval` and per-epoch validation
//! both score, assembled from predicted slices arriving in any order. One place, so that the
//! checkpoint chosen as best is chosen on the units later reported.
use std::collections::{BTreeMap, HashMap};

use eval::metric_rows::{UnitId, UnitKind};
use schemas::manifest::Manifest;

use crate::batch::RowId;
use crate::loader::Dataset;

/// One slice's maps while its unit is incomplete: N probability maps `[HW]`, R rater
/// masks `[HW]` (None = missing) and image channel 0 `[HW]`.
struct SliceMaps {
    probs: Vec<Vec<f32>>,
    raters: Vec<Option<Vec<u8>>>,
    image: Vec<f32>,
}

/// One complete evaluation unit: a slice, or a target's slices stacked by `slice_index`.
/// Every map is `[D·H·W]` (D = 1 for a slice unit).
pub struct AssembledUnit {
    pub id: UnitId,
    pub depth: usize,
    /// `[N]` probability maps.
    pub probs: Vec<Vec<f32>>,
    /// `[R]` rater masks; a rater counts as present for a volume if it read every slice.
    pub raters: Vec<Option<Vec<u8>>>,
    /// Image channel 0.
    pub image: Vec<f32>,
}

impl AssembledUnit {
    pub fn rater_refs(&self) -> Vec<Option<&[u8]>> {
        self.raters.iter().map(|m| m.as_deref()).collect()
    }

    pub fn prob_refs(&self) -> Vec<&[f32]> {
        self.probs.iter().map(Vec::as_slice).collect()
    }
}

/// Groups predicted slices, arriving in any order, into evaluation units: each slice is a
/// unit, or (volume units) a target's slices are stacked in `slice_index` order as soon as
/// the last of them arrives. Used by `dpersona eval` and by per-epoch validation, so both
/// score the same units.
pub struct UnitAssembler {
    unit: UnitKind,
    /// Slices per (study, target) in the dataset.
    expected: HashMap<(String, String), usize>,
    /// (study, target) → slice_index → maps.
    open: HashMap<(String, String), BTreeMap<i32, SliceMaps>>,
    next_index: u32,
}

impl UnitAssembler {
    pub fn new(unit: UnitKind, dataset: &Dataset) -> Self {
        let mut expected: HashMap<(String, String), usize> = HashMap::new();
        for i in 0..dataset.len() {
            let id = dataset.get(i).id;
            *expected
                .entry((id.study_id.clone(), id.target_id.clone()))
                .or_default() += 1;
        }
        UnitAssembler {
            unit,
            expected,
            open: HashMap::new(),
            next_index: 0,
        }
    }

    /// Default unit of a manifest: slices for LIDC-style crops, volumes for NPC-style
    /// datasets (NIfTI, MMIS), as the paper computes them.
    pub fn default_unit(manifest: &Manifest) -> UnitKind {
        if manifest.header.source_kind.is_volumetric() {
            UnitKind::Volume
        } else {
            UnitKind::Slice
        }
    }

    pub fn unit(&self) -> UnitKind {
        self.unit
    }

    /// Units completed so far.
    pub fn units(&self) -> usize {
        self.next_index as usize
    }

    /// `slice_index`: the slice of a slice unit (`z_mm` is filled from the shards by
    /// [`eval::slice_positions::fill_z_mm`] before the frame is written).
    fn take_id(&mut self, study_id: &str, target_id: &str, slice_index: Option<i32>) -> UnitId {
        let id = UnitId {
            study_id: study_id.to_string(),
            target_id: target_id.to_string(),
            kind: self.unit,
            unit_index: self.next_index,
            slice_index,
            z_mm: None,
        };
        self.next_index += 1;
        id
    }

    /// Adds one predicted slice (`probs` N maps `[HW]`, `raters` R slots `[HW]`, `image`
    /// channel 0 `[HW]`); returns the unit it completes, if any.
    pub fn push(
        &mut self,
        row: &RowId,
        probs: &[&[f32]],
        raters: &[Option<&[u8]>],
        image: &[f32],
    ) -> Option<AssembledUnit> {
        let maps = SliceMaps {
            probs: probs.iter().map(|p| p.to_vec()).collect(),
            raters: raters.iter().map(|r| r.map(<[u8]>::to_vec)).collect(),
            image: image.to_vec(),
        };
        if self.unit == UnitKind::Slice {
            let id = self.take_id(&row.study_id, &row.target_id, Some(row.slice_index));
            return Some(AssembledUnit {
                id,
                depth: 1,
                probs: maps.probs,
                raters: maps.raters,
                image: maps.image,
            });
        }
        let key = (row.study_id.clone(), row.target_id.clone());
        let slices = self.open.entry(key.clone()).or_default();
        slices.insert(row.slice_index, maps);
        if slices.len() < self.expected.get(&key).copied().unwrap_or(0) {
            return None;
        }
        let slices = self.open.remove(&key).expect("just inserted");
        let id = self.take_id(&key.0, &key.1, None);
        Some(stack_volume(id, slices))
    }

    /// Checks that every volume received all its slices.
    pub fn finish(self) -> Result<usize, String> {
        match self.open.keys().next() {
            Some(k) => Err(format!(
                "volume {}/{} never received all its slices (internal error)",
                k.0, k.1
            )),
            None => Ok(self.next_index as usize),
        }
    }
}

/// Concatenates a unit's slices in `slice_index` order: N maps, R rater masks and the
/// image, each `[D·H·W]`. A rater counts as present for the volume if it read every slice.
fn stack_volume(id: UnitId, slices: BTreeMap<i32, SliceMaps>) -> AssembledUnit {
    let depth = slices.len();
    let mut probs: Vec<Vec<f32>> = Vec::new();
    let mut raters: Vec<Option<Vec<u8>>> = Vec::new();
    let mut image = Vec::new();
    for (i, s) in slices.into_values().enumerate() {
        if i == 0 {
            probs = vec![Vec::new(); s.probs.len()];
            raters = vec![Some(Vec::new()); s.raters.len()];
        }
        for (dst, src) in probs.iter_mut().zip(s.probs) {
            dst.extend_from_slice(&src);
        }
        for (dst, src) in raters.iter_mut().zip(s.raters) {
            match (dst.as_mut(), src) {
                (Some(d), Some(src)) => d.extend_from_slice(&src),
                _ => *dst = None,
            }
        }
        image.extend_from_slice(&s.image);
    }
    AssembledUnit {
        id,
        depth,
        probs,
        raters,
        image,
    }
}
