//! Reading CT series (one DICOM file per slice) and single DICOM images.
//!
//! A series is read in two passes so that a 300-slice LIDC scan does not sit in memory as a
//! whole volume: [`read_series`] opens every file (validating header, geometry and the
//! presence and size of the pixel data) and keeps only the per-slice facts; the HU values of
//! the few slices a nodule touches are decoded on demand by [`CtSeries::slice_hu`].
use std::path::{Path, PathBuf};

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_encoding::transfer_syntax::TransferSyntaxIndex;
use dicom_object::{open_file, DefaultDicomObject};
use dicom_pixeldata::PixelDecoder;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

use crate::study::StudyError;

/// Pixel values of one DICOM file after the modality LUT (Rescale Slope/Intercept).
#[derive(Debug, Clone, PartialEq)]
pub struct DicomPixels {
    pub rows: u32,
    pub columns: u32,
    pub frames: u32,
    pub samples_per_pixel: u16,
    /// `[frames, rows, columns, samples]` row-major (the order of pydicom's `pixel_array`).
    pub values: Vec<f64>,
}

/// One slice of a series, without its pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct CtSlice {
    pub path: PathBuf,
    pub sop_instance_uid: String,
    /// ImagePositionPatient z in mm.
    pub z_mm: f64,
    pub instance_number: i64,
}

/// A CT series: slices ordered by increasing z, with the geometry they share.
#[derive(Debug, Clone, PartialEq)]
pub struct CtSeries {
    pub series_instance_uid: String,
    pub study_instance_uid: String,
    pub patient_id: String,
    pub rows: u32,
    pub columns: u32,
    /// PixelSpacing: [row spacing, column spacing] in mm.
    pub pixel_spacing: [f64; 2],
    /// SliceThickness (0018,0050) when present, else the median z step (pylidc's
    /// clustering tolerance is the scan's slice thickness).
    pub slice_thickness: f64,
    /// Ordered by z; duplicate z positions keep the lower InstanceNumber (pylidc's rule).
    pub slices: Vec<CtSlice>,
}

fn err(path: &Path, reason: impl Into<String>) -> StudyError {
    StudyError::new(path, reason)
}

/// Opens a DICOM file, turning the crate's error into a reason that names the problem.
fn open(path: &Path) -> Result<DefaultDicomObject, StudyError> {
    open_file(path).map_err(|e| {
        let mut msg = format!("not a readable DICOM file (truncated or corrupt?): {e}");
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            msg.push_str(&format!(": {s}"));
            src = s.source();
        }
        err(path, msg)
    })
}

fn text(obj: &DefaultDicomObject, tag: Tag) -> Option<String> {
    let e = obj.element_opt(tag).ok().flatten()?;
    let s = e.to_str().ok()?;
    let s = s
        .trim_matches(|c: char| c == '\0' || c.is_whitespace())
        .to_string();
    (!s.is_empty()).then_some(s)
}

fn floats(obj: &DefaultDicomObject, tag: Tag) -> Option<Vec<f64>> {
    obj.element_opt(tag).ok().flatten()?.to_multi_float64().ok()
}

fn int(obj: &DefaultDicomObject, tag: Tag) -> Option<i64> {
    obj.element_opt(tag).ok().flatten()?.to_int::<i64>().ok()
}

fn required<T>(v: Option<T>, path: &Path, what: &str) -> Result<T, StudyError> {
    v.ok_or_else(|| err(path, format!("missing or unreadable {what}")))
}

/// Refuses transfer syntaxes our build cannot decode, naming the UID, before decoding.
fn check_transfer_syntax(obj: &DefaultDicomObject, path: &Path) -> Result<(), StudyError> {
    let uid = obj
        .meta()
        .transfer_syntax()
        .trim_end_matches('\0')
        .to_string();
    match TransferSyntaxRegistry.get(&uid) {
        None => Err(err(
            path,
            format!("unsupported transfer syntax {uid} (unknown to dpersona's DICOM decoder)"),
        )),
        Some(ts) if !ts.can_decode_all() => Err(err(
            path,
            format!(
                "unsupported transfer syntax {uid} ({}): dpersona cannot decode its pixel data",
                ts.name()
            ),
        )),
        Some(_) => Ok(()),
    }
}

fn decode(obj: &DefaultDicomObject, path: &Path) -> Result<DicomPixels, StudyError> {
    if obj.element_opt(tags::PIXEL_DATA).ok().flatten().is_none() {
        return Err(err(path, "no pixel data (7FE0,0010)"));
    }
    check_transfer_syntax(obj, path)?;
    let px = obj
        .decode_pixel_data()
        .map_err(|e| err(path, format!("cannot decode pixel data: {e}")))?;
    let values = px
        .to_vec::<f64>()
        .map_err(|e| err(path, format!("cannot convert pixel data: {e}")))?;
    let out = DicomPixels {
        rows: px.rows(),
        columns: px.columns(),
        frames: px.number_of_frames(),
        samples_per_pixel: px.samples_per_pixel(),
        values,
    };
    let expected = out.rows as usize
        * out.columns as usize
        * out.frames as usize
        * out.samples_per_pixel as usize;
    if out.values.len() != expected {
        return Err(err(
            path,
            format!(
                "pixel data holds {} values, expected {expected} (truncated?)",
                out.values.len()
            ),
        ));
    }
    Ok(out)
}

/// Pixel values of any single DICOM file after the modality LUT (HU for CT).
///
/// Errors name the file: unreadable/truncated file, no pixel data, unsupported transfer
/// syntax (with its UID).
pub fn read_dicom_pixels(path: &Path) -> Result<DicomPixels, StudyError> {
    let obj = open(path)?;
    decode(&obj, path)
}

/// Header facts of one slice file, validated.
struct SliceHeader {
    slice: CtSlice,
    rows: u32,
    columns: u32,
    spacing: [f64; 2],
    thickness: Option<f64>,
    series_uid: String,
    study_uid: String,
    patient_id: String,
}

fn read_slice_header(path: &Path) -> Result<SliceHeader, StudyError> {
    let obj = open(path)?;
    let rows = required(int(&obj, tags::ROWS), path, "Rows (0028,0010)")? as u32;
    let columns = required(int(&obj, tags::COLUMNS), path, "Columns (0028,0011)")? as u32;
    let ipp = required(
        floats(&obj, tags::IMAGE_POSITION_PATIENT),
        path,
        "ImagePositionPatient (0020,0032)",
    )?;
    if ipp.len() != 3 {
        return Err(err(
            path,
            format!("ImagePositionPatient has {} values, expected 3", ipp.len()),
        ));
    }
    let ps = required(
        floats(&obj, tags::PIXEL_SPACING),
        path,
        "PixelSpacing (0028,0030)",
    )?;
    if ps.len() != 2 || ps.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
        return Err(err(
            path,
            format!("PixelSpacing {ps:?} is not two positive numbers"),
        ));
    }
    let pixel = obj
        .element_opt(tags::PIXEL_DATA)
        .ok()
        .flatten()
        .ok_or_else(|| err(path, "no pixel data (7FE0,0010)"))?;
    check_transfer_syntax(&obj, path)?;
    // Native pixel data must hold the whole frame; encapsulated data is checked at decode.
    if let Ok(bytes) = pixel.to_bytes() {
        let bits = int(&obj, tags::BITS_ALLOCATED).unwrap_or(16) as usize;
        let spp = int(&obj, tags::SAMPLES_PER_PIXEL).unwrap_or(1) as usize;
        let need = rows as usize * columns as usize * spp * bits.div_ceil(8);
        if bytes.len() < need {
            return Err(err(
                path,
                format!(
                    "pixel data is {} bytes, a {rows}x{columns} frame needs {need} (truncated)",
                    bytes.len()
                ),
            ));
        }
    }
    Ok(SliceHeader {
        slice: CtSlice {
            path: path.to_path_buf(),
            sop_instance_uid: required(
                text(&obj, tags::SOP_INSTANCE_UID),
                path,
                "SOPInstanceUID (0008,0018)",
            )?,
            z_mm: ipp[2],
            instance_number: int(&obj, tags::INSTANCE_NUMBER).unwrap_or(i64::MAX),
        },
        rows,
        columns,
        spacing: [ps[0], ps[1]],
        thickness: floats(&obj, tags::SLICE_THICKNESS)
            .and_then(|v| v.first().copied())
            .filter(|t| *t > 0.0),
        series_uid: required(
            text(&obj, tags::SERIES_INSTANCE_UID),
            path,
            "SeriesInstanceUID (0020,000E)",
        )?,
        study_uid: text(&obj, tags::STUDY_INSTANCE_UID).unwrap_or_default(),
        patient_id: text(&obj, tags::PATIENT_ID).unwrap_or_default(),
    })
}

/// Reads the headers of every file of a series and orders the slices by z.
///
/// Errors (naming the file): unreadable or truncated file, missing geometry, no pixel data,
/// unsupported transfer syntax, a slice whose Rows/Columns/PixelSpacing differ from the
/// first slice's, or a file of another series.
pub fn read_series(files: &[PathBuf]) -> Result<CtSeries, StudyError> {
    let first_path = files
        .first()
        .ok_or_else(|| err(Path::new("."), "series has no DICOM file"))?;
    let mut headers = Vec::with_capacity(files.len());
    for f in files {
        headers.push(read_slice_header(f)?);
    }
    let h0 = &headers[0];
    for h in &headers[1..] {
        if (h.rows, h.columns) != (h0.rows, h0.columns) {
            return Err(err(
                &h.slice.path,
                format!(
                    "inconsistent slice size: {}x{} but {} is {}x{}",
                    h.rows,
                    h.columns,
                    first_path.display(),
                    h0.rows,
                    h0.columns
                ),
            ));
        }
        if (h.spacing[0] - h0.spacing[0]).abs() > 1e-6
            || (h.spacing[1] - h0.spacing[1]).abs() > 1e-6
        {
            return Err(err(
                &h.slice.path,
                format!(
                    "inconsistent PixelSpacing {:?}, first slice has {:?}",
                    h.spacing, h0.spacing
                ),
            ));
        }
        if h.series_uid != h0.series_uid {
            return Err(err(
                &h.slice.path,
                format!("belongs to series {}, not {}", h.series_uid, h0.series_uid),
            ));
        }
    }
    let (rows, columns, spacing) = (h0.rows, h0.columns, h0.spacing);
    let (series_uid, study_uid, patient_id) = (
        h0.series_uid.clone(),
        h0.study_uid.clone(),
        h0.patient_id.clone(),
    );
    let thickness = h0.thickness;
    let mut slices: Vec<CtSlice> = headers.into_iter().map(|h| h.slice).collect();
    slices.sort_by(|a, b| {
        a.z_mm
            .total_cmp(&b.z_mm)
            .then(a.instance_number.cmp(&b.instance_number))
    });
    // Duplicate z: keep the first (lowest InstanceNumber), as pylidc does.
    slices.dedup_by(|later, kept| later.z_mm == kept.z_mm);
    let slice_thickness = thickness.unwrap_or_else(|| median_step(&slices));
    Ok(CtSeries {
        series_instance_uid: series_uid,
        study_instance_uid: study_uid,
        patient_id,
        rows,
        columns,
        pixel_spacing: spacing,
        slice_thickness,
        slices,
    })
}

/// Median of the z steps between consecutive slices (1.0 for a single slice).
fn median_step(slices: &[CtSlice]) -> f64 {
    let mut d: Vec<f64> = slices.windows(2).map(|w| w[1].z_mm - w[0].z_mm).collect();
    if d.is_empty() {
        return 1.0;
    }
    d.sort_by(f64::total_cmp);
    d[d.len() / 2]
}

impl CtSeries {
    /// `[rows, columns]` HU values of slice `k` (index in z order).
    pub fn slice_hu(&self, k: usize) -> Result<Vec<f32>, StudyError> {
        let s = &self.slices[k];
        let px = read_dicom_pixels(&s.path)?;
        if px.rows != self.rows
            || px.columns != self.columns
            || px.frames != 1
            || px.samples_per_pixel != 1
        {
            return Err(err(
                &s.path,
                format!(
                    "expected one {}x{} single-sample frame, found {} frame(s) of {}x{}x{}",
                    self.rows, self.columns, px.frames, px.rows, px.columns, px.samples_per_pixel
                ),
            ));
        }
        Ok(px.values.iter().map(|&v| v as f32).collect())
    }

    /// z positions of the slices, in order.
    pub fn z_values(&self) -> Vec<f64> {
        self.slices.iter().map(|s| s.z_mm).collect()
    }
}
