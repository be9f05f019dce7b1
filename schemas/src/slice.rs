//! Slice shards: one row per 2D slice of one target (a nodule or a lesion).
//!
//! Images are stored as `List<Float32>` in C x H x W order, so that Polars users get plain
//! lists they can reshape with numpy. Masks (R x H x W, R = the manifest's raters, always
//! in manifest order), the intersection and the union (H x W) are `Binary`, bit-packed in
//! numpy's `packbits` order ([`crate::packed_bits`] says why and how to unpack them).
//! [`SliceColumns`] unpacks them on read, so Rust readers see 0/1 bytes.
//!
//! A rater who did not read a study is *missing* (`raters_present[r] = false`, mask all
//! zero) and is left out of the intersection and the union; a rater who read it and drew
//! nothing is present with an empty mask.
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Float32Array, Float64Array, Int32Array, ListArray,
    RecordBatch, StringArray, UInt32Array,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::meta::SchemaId;
use crate::packed_bits;

/// Identity of slice shard files. Version 2 bit-packs the masks (version 1 stored them as
/// `List<UInt8>`, which this build no longer reads).
pub const SCHEMA: SchemaId = SchemaId::new("slices", 2).reads_from(2);
/// Shard metadata key: the preprocessing fingerprint the shard was made with.
pub const KEY_FINGERPRINT: &str = "dpersona.fingerprint";
/// Shard metadata key: JSON list of the study ids whose rows the shard holds (all of them).
pub const KEY_STUDIES: &str = "dpersona.studies";

/// Column names, defined once.
pub mod col {
    pub const STUDY_ID: &str = "study_id";
    pub const PATIENT_ID: &str = "patient_id";
    pub const TARGET_ID: &str = "target_id";
    pub const SLICE_INDEX: &str = "slice_index";
    pub const Z_MM: &str = "z_mm";
    pub const HEIGHT: &str = "height";
    pub const WIDTH: &str = "width";
    pub const CHANNELS: &str = "channels";
    pub const SPACING_ROW_MM: &str = "spacing_row_mm";
    pub const SPACING_COL_MM: &str = "spacing_col_mm";
    pub const IMAGE: &str = "image";
    pub const MASKS: &str = "masks";
    pub const RATERS_PRESENT: &str = "raters_present";
    pub const RATER_AREA: &str = "rater_area";
    pub const INTERSECTION: &str = "intersection";
    pub const UNION: &str = "union";
    pub const CROP_ROW0: &str = "crop_row0";
    pub const CROP_COL0: &str = "crop_col0";
    pub const SOURCE_HEIGHT: &str = "source_height";
    pub const SOURCE_WIDTH: &str = "source_width";
    pub const SOURCE_FILES: &str = "source_files";
    pub const SOURCE_SHA256: &str = "source_sha256";
}

/// One slice of one target, ready for training.
#[derive(Debug, Clone, PartialEq)]
pub struct SliceRecord {
    pub study_id: String,
    pub patient_id: String,
    /// Nodule / lesion id, unique within the study.
    pub target_id: String,
    /// Index of this slice in the source volume, ordered by z (0 = lowest z).
    pub slice_index: i32,
    /// z position of the slice in mm (DICOM ImagePositionPatient z, or the NIfTI affine).
    pub z_mm: f64,
    pub height: u32,
    pub width: u32,
    pub channels: u32,
    pub spacing_row_mm: f64,
    pub spacing_col_mm: f64,
    /// `[C, H, W]` row-major.
    pub image: Vec<f32>,
    /// `[R, H, W]` row-major, values 0 or 1.
    pub masks: Vec<u8>,
    /// `[R]`: whether rater r read this study.
    pub raters_present: Vec<bool>,
    /// `[R]`: foreground pixels of each rater's mask (0 for missing raters).
    pub rater_area: Vec<u32>,
    /// `[H, W]`: pixels every present rater marked.
    pub intersection: Vec<u8>,
    /// `[H, W]`: pixels any present rater marked.
    pub union: Vec<u8>,
    /// Row and column of the crop's top-left pixel in the source slice grid (negative
    /// where the crop reaches past the border and was zero-padded).
    pub crop_row0: i32,
    pub crop_col0: i32,
    /// Size of the source slice grid the crop was taken from (after any resampling).
    pub source_height: u32,
    pub source_width: u32,
    /// Files this slice was made from (image and annotation files).
    pub source_files: Vec<String>,
    /// SHA-256 of each file in `source_files`.
    pub source_sha256: Vec<String>,
}

impl SliceRecord {
    pub fn raters(&self) -> usize {
        self.raters_present.len()
    }

    /// Fills `rater_area`, `intersection` and `union` from `masks` and `raters_present`.
    /// With no rater present both are empty.
    pub fn derive_consensus(&mut self) {
        let hw = (self.height * self.width) as usize;
        let r = self.raters();
        self.rater_area = (0..r)
            .map(|k| {
                self.masks[k * hw..(k + 1) * hw]
                    .iter()
                    .map(|&v| v as u32)
                    .sum()
            })
            .collect();
        let present: Vec<usize> = (0..r).filter(|&k| self.raters_present[k]).collect();
        self.union = vec![0; hw];
        if present.is_empty() {
            self.intersection = vec![0; hw];
            return;
        }
        // One pass per rater over whole planes (vectorised), not one per pixel over raters.
        self.intersection = vec![1; hw];
        for &k in &present {
            let plane = &self.masks[k * hw..(k + 1) * hw];
            for ((all, any), &v) in self
                .intersection
                .iter_mut()
                .zip(self.union.iter_mut())
                .zip(plane)
            {
                *all &= v;
                *any |= v;
            }
        }
    }
}

fn list_of(name: &str, item: DataType) -> Field {
    Field::new(
        name,
        DataType::List(Arc::new(Field::new("item", item, false))),
        false,
    )
}

/// The Arrow schema of slice shards.
pub fn schema() -> SchemaRef {
    use col::*;
    Arc::new(Schema::new(vec![
        Field::new(STUDY_ID, DataType::Utf8, false),
        Field::new(PATIENT_ID, DataType::Utf8, false),
        Field::new(TARGET_ID, DataType::Utf8, false),
        Field::new(SLICE_INDEX, DataType::Int32, false),
        Field::new(Z_MM, DataType::Float64, false),
        Field::new(HEIGHT, DataType::UInt32, false),
        Field::new(WIDTH, DataType::UInt32, false),
        Field::new(CHANNELS, DataType::UInt32, false),
        Field::new(SPACING_ROW_MM, DataType::Float64, false),
        Field::new(SPACING_COL_MM, DataType::Float64, false),
        list_of(IMAGE, DataType::Float32),
        Field::new(MASKS, DataType::Binary, false),
        list_of(RATERS_PRESENT, DataType::Boolean),
        list_of(RATER_AREA, DataType::UInt32),
        Field::new(INTERSECTION, DataType::Binary, false),
        Field::new(UNION, DataType::Binary, false),
        Field::new(CROP_ROW0, DataType::Int32, false),
        Field::new(CROP_COL0, DataType::Int32, false),
        Field::new(SOURCE_HEIGHT, DataType::UInt32, false),
        Field::new(SOURCE_WIDTH, DataType::UInt32, false),
        list_of(SOURCE_FILES, DataType::Utf8),
        list_of(SOURCE_SHA256, DataType::Utf8),
    ]))
}

fn list_array<T, A>(
    rows: &[SliceRecord],
    get: impl Fn(&SliceRecord) -> &[T],
    make: impl FnOnce(Vec<T>) -> A,
) -> ArrayRef
where
    T: Clone,
    A: Array + 'static,
{
    let lengths = rows.iter().map(|r| get(r).len());
    let offsets = OffsetBuffer::<i32>::from_lengths(lengths);
    let mut values = Vec::with_capacity(rows.iter().map(|r| get(r).len()).sum());
    for r in rows {
        values.extend_from_slice(get(r));
    }
    let values: ArrayRef = Arc::new(make(values));
    let field = Arc::new(Field::new("item", values.data_type().clone(), false));
    Arc::new(ListArray::new(field, offsets, values, None))
}

/// One bit-packed binary value per row.
fn packed_array(rows: &[SliceRecord], get: impl Fn(&SliceRecord) -> &[u8]) -> ArrayRef {
    let offsets = OffsetBuffer::<i32>::from_lengths(
        rows.iter().map(|r| packed_bits::packed_len(get(r).len())),
    );
    let mut values = Vec::with_capacity(offsets.last().unsigned_abs() as usize);
    for r in rows {
        packed_bits::pack_into(get(r), &mut values);
    }
    Arc::new(BinaryArray::new(offsets, values.into(), None))
}

fn string_list(rows: &[SliceRecord], get: impl Fn(&SliceRecord) -> &[String]) -> ArrayRef {
    let offsets = OffsetBuffer::<i32>::from_lengths(rows.iter().map(|r| get(r).len()));
    let values: ArrayRef = Arc::new(StringArray::from_iter_values(
        rows.iter().flat_map(|r| get(r).iter()),
    ));
    Arc::new(ListArray::new(
        Arc::new(Field::new("item", DataType::Utf8, false)),
        offsets,
        values,
        None,
    ))
}

/// Builds a record batch of slice rows.
pub fn to_batch(rows: &[SliceRecord]) -> RecordBatch {
    let strings = |f: fn(&SliceRecord) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(rows.iter().map(f)))
    };
    let u32s = |f: fn(&SliceRecord) -> u32| -> ArrayRef {
        Arc::new(UInt32Array::from_iter_values(rows.iter().map(f)))
    };
    let i32s = |f: fn(&SliceRecord) -> i32| -> ArrayRef {
        Arc::new(Int32Array::from_iter_values(rows.iter().map(f)))
    };
    let f64s = |f: fn(&SliceRecord) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from_iter_values(rows.iter().map(f)))
    };
    let columns: Vec<ArrayRef> = vec![
        strings(|r| &r.study_id),
        strings(|r| &r.patient_id),
        strings(|r| &r.target_id),
        i32s(|r| r.slice_index),
        f64s(|r| r.z_mm),
        u32s(|r| r.height),
        u32s(|r| r.width),
        u32s(|r| r.channels),
        f64s(|r| r.spacing_row_mm),
        f64s(|r| r.spacing_col_mm),
        list_array(rows, |r| &r.image, Float32Array::from),
        packed_array(rows, |r| &r.masks),
        list_array(rows, |r| &r.raters_present, BooleanArray::from),
        list_array(rows, |r| &r.rater_area, UInt32Array::from),
        packed_array(rows, |r| &r.intersection),
        packed_array(rows, |r| &r.union),
        i32s(|r| r.crop_row0),
        i32s(|r| r.crop_col0),
        u32s(|r| r.source_height),
        u32s(|r| r.source_width),
        string_list(rows, |r| &r.source_files),
        string_list(rows, |r| &r.source_sha256),
    ];
    RecordBatch::try_new(schema(), columns).expect("slice columns match the slice schema")
}

/// Column `name` of `batch` as its concrete Arrow array type `A`, on a batch whose types
/// are known to match the slice schema (checked by [`SliceColumns::new`] or built by
/// [`to_batch`]).
fn checked<'a, A: Array + 'static>(batch: &'a RecordBatch, name: &str) -> &'a A {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<A>())
        .unwrap_or_else(|| panic!("column `{name}` was checked against the slice schema"))
}

/// Typed access to the columns of a slice batch: zero-copy for the image and the scalar
/// columns; the bit-packed masks are unpacked once, when the batch is wrapped, so that
/// readers (the training loader above all) borrow 0/1 bytes as cheaply as before.
pub struct SliceColumns {
    batch: RecordBatch,
    /// `[rows][R, H, W]` unpacked masks, row `i` at `mask_offsets[i]..mask_offsets[i + 1]`.
    masks: Vec<u8>,
    mask_offsets: Vec<usize>,
    /// `[rows][H, W]` unpacked intersections and unions, row `i` at `plane_offsets[i]..`.
    intersection: Vec<u8>,
    union: Vec<u8>,
    plane_offsets: Vec<usize>,
}

impl SliceColumns {
    /// Wraps a batch read from a shard, checking that every column has its schema type and
    /// that every packed mask holds exactly the bits its row's rater count, height and
    /// width call for.
    pub fn new(batch: RecordBatch) -> Result<Self, String> {
        let expected = schema();
        for field in expected.fields() {
            let col = batch
                .column_by_name(field.name())
                .ok_or_else(|| format!("column `{}` is missing", field.name()))?;
            if col.data_type() != field.data_type() {
                return Err(format!(
                    "column `{}` has type {:?}, expected {:?}",
                    field.name(),
                    col.data_type(),
                    field.data_type()
                ));
            }
        }
        let heights: &UInt32Array = checked(&batch, col::HEIGHT);
        let widths: &UInt32Array = checked(&batch, col::WIDTH);
        let present: &ListArray = checked(&batch, col::RATERS_PRESENT);
        let masks_col: &BinaryArray = checked(&batch, col::MASKS);
        let inter_col: &BinaryArray = checked(&batch, col::INTERSECTION);
        let union_col: &BinaryArray = checked(&batch, col::UNION);
        let rows = batch.num_rows();
        let (mut masks, mut intersection, mut union) = (Vec::new(), Vec::new(), Vec::new());
        let mut mask_offsets = Vec::with_capacity(rows + 1);
        let mut plane_offsets = Vec::with_capacity(rows + 1);
        mask_offsets.push(0);
        plane_offsets.push(0);
        for row in 0..rows {
            let hw = heights.value(row) as usize * widths.value(row) as usize;
            let r = present.value_length(row) as usize;
            for (name, column, n, dest) in [
                (col::MASKS, masks_col, r * hw, &mut masks),
                (col::INTERSECTION, inter_col, hw, &mut intersection),
                (col::UNION, union_col, hw, &mut union),
            ] {
                let packed = column.value(row);
                if packed.len() != packed_bits::packed_len(n) {
                    return Err(format!(
                        "row {row}: `{name}` holds {} packed bytes, but {n} values ({r} raters x {hw} pixels for masks, {hw} pixels otherwise) need {}",
                        packed.len(),
                        packed_bits::packed_len(n)
                    ));
                }
                packed_bits::unpack_into(packed, n, dest);
            }
            mask_offsets.push(masks.len());
            plane_offsets.push(union.len());
        }
        Ok(SliceColumns {
            batch,
            masks,
            mask_offsets,
            intersection,
            union,
            plane_offsets,
        })
    }

    pub fn len(&self) -> usize {
        self.batch.num_rows()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `[C, H, W]` image of `row`.
    pub fn image(&self, row: usize) -> &[f32] {
        let list = self.list(col::IMAGE);
        let (s, e) = bounds(list, row);
        &list
            .values()
            .as_any()
            .downcast_ref::<Float32Array>()
            .unwrap()
            .values()[s..e]
    }

    /// `[R, H, W]` masks of `row`, 0/1.
    pub fn masks(&self, row: usize) -> &[u8] {
        &self.masks[self.mask_offsets[row]..self.mask_offsets[row + 1]]
    }

    /// `[H, W]` intersection over the present raters of `row`, 0/1.
    pub fn intersection(&self, row: usize) -> &[u8] {
        &self.intersection[self.plane_offsets[row]..self.plane_offsets[row + 1]]
    }

    /// `[H, W]` union over the present raters of `row`, 0/1.
    pub fn union(&self, row: usize) -> &[u8] {
        &self.union[self.plane_offsets[row]..self.plane_offsets[row + 1]]
    }

    fn list(&self, name: &str) -> &ListArray {
        checked(&self.batch, name)
    }

    /// The whole row as an owned record.
    pub fn record(&self, row: usize) -> SliceRecord {
        let b = &self.batch;
        let s = |name: &str| checked::<StringArray>(b, name).value(row).to_string();
        let u = |name: &str| checked::<UInt32Array>(b, name).value(row);
        let i = |name: &str| checked::<Int32Array>(b, name).value(row);
        let f = |name: &str| checked::<Float64Array>(b, name).value(row);
        let strs = |name: &str| {
            let list = self.list(name);
            let (s0, e0) = bounds(list, row);
            let v = list
                .values()
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap();
            (s0..e0).map(|k| v.value(k).to_string()).collect::<Vec<_>>()
        };
        let present = {
            let list = self.list(col::RATERS_PRESENT);
            let (s0, e0) = bounds(list, row);
            let v = list
                .values()
                .as_any()
                .downcast_ref::<BooleanArray>()
                .unwrap();
            (s0..e0).map(|k| v.value(k)).collect()
        };
        let area = {
            let list = self.list(col::RATER_AREA);
            let (s0, e0) = bounds(list, row);
            list.values()
                .as_any()
                .downcast_ref::<UInt32Array>()
                .unwrap()
                .values()[s0..e0]
                .to_vec()
        };
        SliceRecord {
            study_id: s(col::STUDY_ID),
            patient_id: s(col::PATIENT_ID),
            target_id: s(col::TARGET_ID),
            slice_index: i(col::SLICE_INDEX),
            z_mm: f(col::Z_MM),
            height: u(col::HEIGHT),
            width: u(col::WIDTH),
            channels: u(col::CHANNELS),
            spacing_row_mm: f(col::SPACING_ROW_MM),
            spacing_col_mm: f(col::SPACING_COL_MM),
            image: self.image(row).to_vec(),
            masks: self.masks(row).to_vec(),
            raters_present: present,
            rater_area: area,
            intersection: self.intersection(row).to_vec(),
            union: self.union(row).to_vec(),
            crop_row0: i(col::CROP_ROW0),
            crop_col0: i(col::CROP_COL0),
            source_height: u(col::SOURCE_HEIGHT),
            source_width: u(col::SOURCE_WIDTH),
            source_files: strs(col::SOURCE_FILES),
            source_sha256: strs(col::SOURCE_SHA256),
        }
    }

    pub fn batch(&self) -> &RecordBatch {
        &self.batch
    }
}

fn bounds(list: &ListArray, row: usize) -> (usize, usize) {
    let o = list.value_offsets();
    (o[row] as usize, o[row + 1] as usize)
}
