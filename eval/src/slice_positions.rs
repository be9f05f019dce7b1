//! Where each shard slice lies (`z_mm`, in-plane spacing), read from the manifest's shards
//! with only the id and position columns decoded (a few bytes per slice, against the
//! image and masks' kilobytes): the voxel geometry of saved NIfTI volumes, and the `z_mm`
//! of slice-unit metric rows whose scorer saw only `slice_index`.
use std::collections::{BTreeMap, HashMap};

use arrow::array::{Array, Float64Array, Int32Array, StringArray};
use schemas::manifest::Manifest;
use schemas::metrics::MetricRecord;
use schemas::parquet_io::open_checked;
use schemas::slice::{col, SCHEMA as SLICE_SCHEMA};

use crate::prediction_error::{invalid, PredictionsError};

/// One slice's place in its volume.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlicePosition {
    pub z_mm: f64,
    pub spacing_row_mm: f64,
    pub spacing_col_mm: f64,
}

/// (study, target) -> slice_index -> position.
pub type SlicePositions = HashMap<(String, String), BTreeMap<i32, SlicePosition>>;

/// Positions of every slice of `studies` (each must be in the manifest).
pub fn read_slice_positions(
    manifest: &Manifest,
    studies: &[String],
) -> Result<SlicePositions, PredictionsError> {
    let by_id: HashMap<&str, &str> = manifest
        .studies
        .iter()
        .map(|s| (s.study_id.as_str(), s.shard.as_str()))
        .collect();
    let mut shards: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for s in studies {
        let shard = by_id.get(s.as_str()).ok_or_else(|| {
            invalid(
                &manifest.path,
                format!("study `{s}` is not in the manifest"),
            )
        })?;
        shards.entry(shard).or_default().push(s);
    }
    let mut planes: SlicePositions = HashMap::new();
    for (shard, ids) in shards {
        let path = manifest.resolve(shard);
        let file = open_checked(&path, &SLICE_SCHEMA)?;
        let names = [
            col::STUDY_ID,
            col::TARGET_ID,
            col::SLICE_INDEX,
            col::Z_MM,
            col::SPACING_ROW_MM,
            col::SPACING_COL_MM,
        ];
        let fields = file.builder.parquet_schema().root_schema().get_fields();
        let roots: Vec<usize> = names
            .iter()
            .map(|n| {
                fields
                    .iter()
                    .position(|f| f.name() == *n)
                    .ok_or_else(|| invalid(&path, format!("has no column `{n}`")))
            })
            .collect::<Result<_, _>>()?;
        let mask =
            parquet::arrow::ProjectionMask::roots(file.builder.parquet_schema(), roots.clone());
        let reader = file
            .builder
            .with_projection(mask)
            .build()
            .map_err(|e| invalid(&path, format!("cannot be read: {e}")))?;
        for batch in reader {
            let batch = batch.map_err(|e| invalid(&path, format!("cannot be read: {e}")))?;
            let column = |n: &str| {
                batch
                    .column_by_name(n)
                    .ok_or_else(|| invalid(&path, format!("has no column `{n}`")))
            };
            let typed = |n: &'static str| invalid(&path, format!("column `{n}` has another type"));
            let study = column(col::STUDY_ID)?;
            let study = study
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(|| typed(col::STUDY_ID))?;
            let target = column(col::TARGET_ID)?;
            let target = target
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(|| typed(col::TARGET_ID))?;
            let slice = column(col::SLICE_INDEX)?;
            let slice = slice
                .as_any()
                .downcast_ref::<Int32Array>()
                .ok_or_else(|| typed(col::SLICE_INDEX))?;
            let f64col = |n: &'static str| -> Result<Float64Array, PredictionsError> {
                column(n)?
                    .as_any()
                    .downcast_ref::<Float64Array>()
                    .cloned()
                    .ok_or_else(|| typed(n))
            };
            let (z, row, colm) = (
                f64col(col::Z_MM)?,
                f64col(col::SPACING_ROW_MM)?,
                f64col(col::SPACING_COL_MM)?,
            );
            for i in 0..batch.num_rows() {
                if !ids.contains(&study.value(i)) {
                    continue;
                }
                planes
                    .entry((study.value(i).to_string(), target.value(i).to_string()))
                    .or_default()
                    .insert(
                        slice.value(i),
                        SlicePosition {
                            z_mm: z.value(i),
                            spacing_row_mm: row.value(i),
                            spacing_col_mm: colm.value(i),
                        },
                    );
            }
        }
    }
    Ok(planes)
}

/// Sets `z_mm` of every row that names a `slice_index` but no `z_mm`, from the manifest's
/// shards. A slice the shards do not hold is an error naming the manifest: the row
/// could not be joined back to its slice either.
pub fn fill_z_mm(rows: &mut [MetricRecord], manifest: &Manifest) -> Result<(), PredictionsError> {
    let mut studies: Vec<String> = rows
        .iter()
        .filter(|r| r.slice_index.is_some() && r.z_mm.is_none())
        .map(|r| r.study_id.clone())
        .collect();
    studies.sort();
    studies.dedup();
    if studies.is_empty() {
        return Ok(());
    }
    let planes = read_slice_positions(manifest, &studies)?;
    for r in rows.iter_mut().filter(|r| r.z_mm.is_none()) {
        let Some(k) = r.slice_index else { continue };
        let p = planes
            .get(&(r.study_id.clone(), r.target_id.clone()))
            .and_then(|m| m.get(&k))
            .ok_or_else(|| {
                invalid(
                    &manifest.path,
                    format!(
                        "slice {k} of {}/{} is not in the manifest's shards",
                        r.study_id, r.target_id
                    ),
                )
            })?;
        r.z_mm = Some(p.z_mm);
    }
    Ok(())
}
