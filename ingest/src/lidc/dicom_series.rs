//! Reading CT series (one DICOM file per slice) and single DICOM images.
//!
//! A series is read in two passes so that a 300-slice LIDC scan does not sit in memory as a
//! whole volume: [`read_series`] opens every file (validating header, geometry and the
//! presence and size of the pixel data) and keeps only the per-slice facts; the HU values of
//! the few slices a nodule touches are decoded on demand by [`CtSeries::slice_samples`], which
//! converts to HU only the pixels a crop asks for (a 128 x 128 crop is 1/16 of a 512 x 512
//! slice; converting whole slices was a fifth of ingest's CPU time).
use std::path::{Path, PathBuf};

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_encoding::transfer_syntax::TransferSyntaxIndex;
use dicom_object::file::ReadPreamble;
use dicom_object::{open_file, DefaultDicomObject, OpenFileOptions};
use dicom_pixeldata::{DecodedPixelData, PixelDecoder, PixelRepresentation, Rescale};
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
    /// ImagePositionPatient (x, y, z) in mm: where `dpersona predict` places its outputs
    /// and patient-mm ROIs.
    pub position: [f64; 3],
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
    /// ImageOrientationPatient of the first file (row direction, then column direction),
    /// `None` when absent.
    pub orientation: Option<[f64; 6]>,
}

fn err(path: &Path, reason: impl Into<String>) -> StudyError {
    StudyError::new(path, reason)
}

/// The reason for a file dicom-object could not parse, with the whole cause chain (the
/// innermost cause says what was wrong: a truncated element, a bad tag).
fn unreadable(path: &Path, e: &(dyn std::error::Error + 'static)) -> StudyError {
    err(
        path,
        format!(
            "not a readable DICOM file (truncated or corrupt?): {}",
            schemas::error::one_line(e)
        ),
    )
}

/// Opens a DICOM file, turning the crate's error into a reason that names the problem.
/// Element lengths are checked against the file first ([`super::claimed_lengths`]).
fn open(path: &Path) -> Result<DefaultDicomObject, StudyError> {
    super::claimed_lengths::check_file(path)?;
    open_file(path).map_err(|e| unreadable(path, &e))
}

/// Like [`open`], parsing a file already read into memory (`bytes`), with the preamble rule
/// `open_file` applies: skip 128 bytes unless the file starts with the "DICM" magic.
fn open_bytes(path: &Path, bytes: &[u8]) -> Result<DefaultDicomObject, StudyError> {
    super::claimed_lengths::check_bytes(path, bytes)?;
    let at = |i: usize| bytes.get(i..i + 4) == Some(b"DICM".as_slice());
    let preamble = if at(0) && !at(128) {
        ReadPreamble::Never
    } else {
        ReadPreamble::Always
    };
    OpenFileOptions::new()
        .read_preamble(preamble)
        .from_reader(bytes)
        .map_err(|e| unreadable(path, &e))
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
    super::rle_check::check_rle_fragments(obj, path)?;
    super::pixel_claims::check_pixel_claims(obj, path)?;
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
    orientation: Option<[f64; 6]>,
    series_uid: String,
    study_uid: String,
    patient_id: String,
}

/// Bytes one native frame needs (Bits Allocated defaults to 16 and Samples per Pixel to 1,
/// as [`read_slice_header`] reads them).
fn frame_bytes(obj: &DefaultDicomObject) -> Option<usize> {
    let rows = int(obj, tags::ROWS)? as usize;
    let columns = int(obj, tags::COLUMNS)? as usize;
    let bits = int(obj, tags::BITS_ALLOCATED).unwrap_or(16) as usize;
    let spp = int(obj, tags::SAMPLES_PER_PIXEL).unwrap_or(1) as usize;
    Some(rows * columns * spp * bits.div_ceil(8))
}

/// The header of a slice file without reading its pixel data, when the file provably ends
/// with a complete native Pixel Data element: little-endian transfer syntax and, at
/// `file length - frame bytes - element header`, the (7FE0,0010) tag with a value length of
/// exactly one frame. `None` for anything else (compressed, big-endian, trailing elements,
/// a truncated file, ...), which the caller then opens whole and checks as before.
///
/// Most slices of a scan hold no nodule and only need their header: reading and copying
/// their 512 x 512 pixels just to check them was ~9% of ingest's CPU.
fn header_with_verified_pixels(path: &Path) -> Option<DefaultDicomObject> {
    use std::io::{Read, Seek, SeekFrom};
    const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
    const IMPLICIT_LE: &str = "1.2.840.10008.1.2";
    // A refused file gets None: the caller's full open refuses it again, with the reason.
    super::claimed_lengths::check_file(path).ok()?;
    let obj = OpenFileOptions::new()
        .read_until(tags::PIXEL_DATA)
        .open_file(path)
        .ok()?;
    let explicit = match obj.meta().transfer_syntax().trim_end_matches('\0') {
        EXPLICIT_LE => true,
        IMPLICIT_LE => false,
        _ => return None,
    };
    let need = frame_bytes(&obj)?;
    let head = if explicit { 12 } else { 8 };
    let mut file = std::fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len() as usize;
    let at = len.checked_sub(need + head)?;
    let mut h = [0u8; 12];
    file.seek(SeekFrom::Start(at as u64)).ok()?;
    file.read_exact(&mut h[..head]).ok()?;
    let tag_ok = h[..4] == [0xE0, 0x7F, 0x10, 0x00];
    let (vr_ok, length) = if explicit {
        (
            (&h[4..6] == b"OW" || &h[4..6] == b"OB") && h[6..8] == [0, 0],
            u32::from_le_bytes([h[8], h[9], h[10], h[11]]),
        )
    } else {
        (true, u32::from_le_bytes([h[4], h[5], h[6], h[7]]))
    };
    (tag_ok && vr_ok && length as usize == need).then_some(obj)
}

fn read_slice_header(path: &Path) -> Result<SliceHeader, StudyError> {
    if let Some(obj) = header_with_verified_pixels(path) {
        return slice_header(&obj, path, false);
    }
    slice_header(&open(path)?, path, true)
}

/// Header facts of an opened slice file; `check_pixels`: the object holds its Pixel Data,
/// whose presence and size are checked here.
fn slice_header(
    obj: &DefaultDicomObject,
    path: &Path,
    check_pixels: bool,
) -> Result<SliceHeader, StudyError> {
    let rows = required(int(obj, tags::ROWS), path, "Rows (0028,0010)")? as u32;
    let columns = required(int(obj, tags::COLUMNS), path, "Columns (0028,0011)")? as u32;
    let ipp = required(
        floats(obj, tags::IMAGE_POSITION_PATIENT),
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
        floats(obj, tags::PIXEL_SPACING),
        path,
        "PixelSpacing (0028,0030)",
    )?;
    if ps.len() != 2 || ps.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
        return Err(err(
            path,
            format!("PixelSpacing {ps:?} is not two positive numbers"),
        ));
    }
    if check_pixels {
        let pixel = obj
            .element_opt(tags::PIXEL_DATA)
            .ok()
            .flatten()
            .ok_or_else(|| err(path, "no pixel data (7FE0,0010)"))?;
        check_transfer_syntax(obj, path)?;
        // Native pixel data must hold the whole frame; encapsulated data is checked at
        // decode.
        if let Ok(bytes) = pixel.to_bytes() {
            let need = frame_bytes(obj).unwrap_or(0);
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
    } else {
        check_transfer_syntax(obj, path)?;
    }
    Ok(SliceHeader {
        slice: CtSlice {
            path: path.to_path_buf(),
            sop_instance_uid: required(
                text(obj, tags::SOP_INSTANCE_UID),
                path,
                "SOPInstanceUID (0008,0018)",
            )?,
            z_mm: ipp[2],
            instance_number: int(obj, tags::INSTANCE_NUMBER).unwrap_or(i64::MAX),
            position: [ipp[0], ipp[1], ipp[2]],
        },
        rows,
        columns,
        spacing: [ps[0], ps[1]],
        thickness: floats(obj, tags::SLICE_THICKNESS)
            .and_then(|v| v.first().copied())
            .filter(|t| *t > 0.0),
        orientation: floats(obj, tags::IMAGE_ORIENTATION_PATIENT)
            .filter(|v| v.len() == 6 && v.iter().all(|x| x.is_finite()))
            .map(|v| [v[0], v[1], v[2], v[3], v[4], v[5]]),
        series_uid: required(
            text(obj, tags::SERIES_INSTANCE_UID),
            path,
            "SeriesInstanceUID (0020,000E)",
        )?,
        study_uid: text(obj, tags::STUDY_INSTANCE_UID).unwrap_or_default(),
        patient_id: text(obj, tags::PATIENT_ID).unwrap_or_default(),
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
    let orientation = h0.orientation;
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
        orientation,
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

/// The stored samples of one decoded slice and the modality LUT that maps them to HU,
/// applied per pixel on demand ([`SliceSamples::hu`]).
#[derive(Debug, Clone)]
pub struct SliceSamples {
    columns: usize,
    values: SampleValues,
}

#[derive(Debug, Clone)]
enum SampleValues {
    /// 16-bit monochrome samples (CT): `[rows * columns]` raw stored values in native byte
    /// order (as dicom-pixeldata decodes them) and the Rescale Slope/Intercept.
    Stored16 {
        raw: Vec<u8>,
        /// `2^bits_stored - 1`: higher bits are ignored, as dicom-pixeldata's LUT does.
        mask: u32,
        /// Pixel Representation 1: stored values at or above `2^(bits_stored - 1)` are
        /// negative (two's complement on `bits_stored` bits).
        signed: bool,
        size: f64,
        slope: f64,
        intercept: f64,
    },
    /// Anything else, converted whole by dicom-pixeldata: `[rows * columns]` HU.
    Converted(Vec<f32>),
}

impl SampleValues {
    /// Number of samples held.
    fn len(&self) -> usize {
        match self {
            SampleValues::Stored16 { raw, .. } => raw.len() / 2,
            SampleValues::Converted(hu) => hu.len(),
        }
    }
}

impl SliceSamples {
    /// HU of pixel `row * columns + col`.
    ///
    /// For 16-bit samples this is dicom-pixeldata's own modality LUT entry
    /// (`Lut::new_rescale`: `slope * x + intercept` in f64, x the sign-extended stored
    /// value), then rounded to f32, the value `to_vec::<f64>` followed by `as f32` gives.
    #[inline]
    pub fn hu(&self, p: usize) -> f32 {
        match &self.values {
            SampleValues::Stored16 {
                raw,
                mask,
                signed,
                size,
                slope,
                intercept,
            } => {
                let v = u32::from(u16::from_ne_bytes([raw[2 * p], raw[2 * p + 1]])) & mask;
                let x = if *signed && f64::from(v) >= size / 2.0 {
                    f64::from(v) - size
                } else {
                    f64::from(v)
                };
                (slope * x + intercept) as f32
            }
            SampleValues::Converted(hu) => hu[p],
        }
    }

    /// HU at `(row, col)`.
    #[inline]
    pub fn hu_at(&self, row: usize, col: usize) -> f32 {
        self.hu(row * self.columns + col)
    }
}

/// The rescale of 16-bit samples that dicom-pixeldata maps through a plain rescale LUT
/// (monochrome, one sample, one frame, default options); `None` for anything else.
fn plain_rescale16(px: &DecodedPixelData<'_>) -> Option<Rescale> {
    let plain = px.bits_allocated() == 16
        && (1..=16).contains(&px.bits_stored())
        && px.samples_per_pixel() == 1
        && px.number_of_frames() == 1
        && px.photometric_interpretation().is_monochrome();
    match px.rescale() {
        Ok(r) if plain => r.first().copied(),
        _ => None,
    }
}

/// Keeps the stored samples of a plain 16-bit slice, or converts anything else whole.
fn sample_values(px: DecodedPixelData<'_>, path: &Path) -> Result<SampleValues, StudyError> {
    if let Some(rescale) = plain_rescale16(&px) {
        let bits = px.bits_stored();
        let signed = px.pixel_representation() == PixelRepresentation::Signed;
        return Ok(SampleValues::Stored16 {
            raw: px.into_data(),
            mask: (1u32 << bits) - 1,
            signed,
            size: f64::from(1u32 << bits),
            slope: rescale.slope,
            intercept: rescale.intercept,
        });
    }
    Ok(SampleValues::Converted(
        px.to_vec::<f64>()
            .map_err(|e| err(path, format!("cannot convert pixel data: {e}")))?
            .into_iter()
            .map(|v| v as f32)
            .collect(),
    ))
}

impl CtSeries {
    /// The samples of slice `k` (index in z order), checked to be one
    /// `rows x columns` single-sample frame, and the SHA-256 of its file: the file is read
    /// once, hashed and parsed from memory.
    pub fn slice_samples(&self, k: usize) -> Result<(SliceSamples, String), StudyError> {
        let s = &self.slices[k];
        let bytes =
            std::fs::read(&s.path).map_err(|e| err(&s.path, format!("cannot read file: {e}")))?;
        let sha = schemas::hashing::sha256_bytes(&bytes);
        let obj = open_bytes(&s.path, &bytes)?;
        drop(bytes);
        if obj.element_opt(tags::PIXEL_DATA).ok().flatten().is_none() {
            return Err(err(&s.path, "no pixel data (7FE0,0010)"));
        }
        check_transfer_syntax(&obj, &s.path)?;
        super::rle_check::check_rle_fragments(&obj, &s.path)?;
        super::pixel_claims::check_pixel_claims(&obj, &s.path)?;
        let px = obj
            .decode_pixel_data()
            .map_err(|e| err(&s.path, format!("cannot decode pixel data: {e}")))?;
        let (rows, columns, frames, spp) = (
            px.rows(),
            px.columns(),
            px.number_of_frames(),
            px.samples_per_pixel(),
        );
        if rows != self.rows || columns != self.columns || frames != 1 || spp != 1 {
            return Err(err(
                &s.path,
                format!(
                    "expected one {}x{} single-sample frame, found {frames} frame(s) of \
                     {rows}x{columns}x{spp}",
                    self.rows, self.columns
                ),
            ));
        }
        let hw = rows as usize * columns as usize;
        let values = sample_values(px, &s.path)?;
        if values.len() < hw {
            return Err(err(
                &s.path,
                format!(
                    "pixel data holds {} values, expected {hw} (truncated?)",
                    values.len()
                ),
            ));
        }
        Ok((
            SliceSamples {
                columns: columns as usize,
                values,
            },
            sha,
        ))
    }

    /// `[rows, columns]` HU values of slice `k` (index in z order).
    pub fn slice_hu(&self, k: usize) -> Result<Vec<f32>, StudyError> {
        let (samples, _) = self.slice_samples(k)?;
        let hw = self.rows as usize * self.columns as usize;
        Ok((0..hw).map(|p| samples.hu(p)).collect())
    }

    /// z positions of the slices, in order.
    pub fn z_values(&self) -> Vec<f64> {
        self.slices.iter().map(|s| s.z_mm).collect()
    }
}
