//! Checks RLE Lossless pixel data (transfer syntax 1.2.840.10008.1.2.5) before
//! dicom-transfer-syntax-registry decodes it: its decoder indexes the 64-byte RLE header
//! and the decoded segments without bounds checks, so a corrupt fragment (found by fuzzing,
//! fuzz/ target `dicom_series`) made it panic where a clear error naming the file belongs.
//!
//! What is checked is exactly what the decoder assumes (DICOM PS3.5 Annex G): each frame's
//! fragment holds the 16 little-endian u32 header (segment count <= 15, then offsets), and
//! every segment the decoder reads (samples x bytes per sample of them) is a valid byte range
//! whose PackBits runs expand to at least `rows x columns` bytes.
use std::path::Path;

use dicom_dictionary_std::tags;
use dicom_object::DefaultDicomObject;

use crate::study::StudyError;

/// The RLE Lossless transfer syntax UID.
pub const RLE_LOSSLESS: &str = "1.2.840.10008.1.2.5";

/// Bytes of the RLE header at the start of each frame's fragment.
const HEADER_BYTES: usize = 64;

/// Number of bytes the PackBits runs of `segment` expand to, read the way the decoder does
/// (a literal run cut short by the segment's end yields what is left).
fn packbits_len(segment: &[u8]) -> usize {
    let (mut at, mut out) = (0usize, 0usize);
    while at < segment.len() {
        let h = segment[at] as i8;
        at += 1;
        match h {
            -128 => {}
            -127..=-1 => {
                if at >= segment.len() {
                    break;
                }
                out += (1 - h as isize) as usize;
                at += 1;
            }
            _ => {
                let n = h as usize + 1;
                out += n.min(segment.len() - at);
                at += n;
            }
        }
    }
    out
}

/// Refuses RLE Lossless pixel data that the decoder would index out of bounds; any other
/// transfer syntax, or a file the decoder itself refuses cleanly (no rows, 12-bit samples,
/// native data), passes unchanged.
pub fn check_rle_fragments(obj: &DefaultDicomObject, path: &Path) -> Result<(), StudyError> {
    if obj.meta().transfer_syntax().trim_end_matches('\0') != RLE_LOSSLESS {
        return Ok(());
    }
    let int = |tag| {
        obj.element_opt(tag)
            .ok()
            .flatten()
            .and_then(|e| e.to_int::<u16>().ok())
    };
    let (Some(rows), Some(columns), Some(spp), Some(bits)) = (
        int(tags::ROWS),
        int(tags::COLUMNS),
        int(tags::SAMPLES_PER_PIXEL),
        int(tags::BITS_ALLOCATED),
    ) else {
        return Ok(());
    };
    if bits != 8 && bits != 16 {
        return Ok(());
    }
    let Some(fragments) = super::pixel_claims::encapsulated_fragments(obj) else {
        return Ok(());
    };
    let bad = |frame: usize, reason: String| {
        StudyError::new(
            path,
            format!("corrupt RLE Lossless pixel data, frame {frame}: {reason}"),
        )
    };
    let need = usize::from(rows) * usize::from(columns);
    let segments = usize::from(spp) * usize::from(bits / 8);
    for (i, f) in fragments.iter().enumerate() {
        if f.len() < HEADER_BYTES {
            return Err(bad(
                i,
                format!(
                    "fragment of {} bytes, shorter than the 64-byte RLE header",
                    f.len()
                ),
            ));
        }
        let word =
            |k: usize| u32::from_le_bytes([f[4 * k], f[4 * k + 1], f[4 * k + 2], f[4 * k + 3]]);
        let count = word(0) as usize;
        if count > 15 {
            return Err(bad(
                i,
                format!("header declares {count} segments (at most 15)"),
            ));
        }
        // offsets[count] is the fragment's end, as the decoder takes it.
        let mut offsets: Vec<usize> = (1..=count).map(|k| word(k) as usize).collect();
        offsets.push(f.len());
        // Too few segments: the decoder refuses them too, but only after allocating the
        // frames the header claims (gigabytes from a 200-byte file).
        if count < segments {
            return Err(bad(
                i,
                format!("{count} segments, {spp} sample(s) of {bits} bits need {segments}"),
            ));
        }
        for s in 0..segments {
            let (a, b) = (offsets[s], offsets[s + 1]);
            let Some(segment) = f.get(a..b) else {
                // An invalid range the decoder refuses itself.
                continue;
            };
            let got = packbits_len(segment);
            if got < need {
                return Err(bad(
                    i,
                    format!(
                        "segment {s} decodes to {got} bytes, a {rows}x{columns} frame needs {need}"
                    ),
                ));
            }
        }
    }
    Ok(())
}
