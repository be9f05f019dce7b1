//! A walk over a DICOM file's element headers that refuses any element whose declared
//! value length exceeds the bytes left in the file, before dicom-object sees the file.
//!
//! Why: dicom-object and dicom-parser allocate (and zero) an element's declared length
//! before reading its value, so a 194-byte file claiming a 2.3 GB file-meta element cost
//! 2.3 GB and 16 s, and a 1.8 GB string claim aborts the process where memory is short
//! (dicom-parser's `resize_with` is infallible). No valid element can be longer than what
//! is left of the file, so the check refuses nothing a real scan holds.
//!
//! What is walked: the file meta group (explicit VR little endian, after the 128-byte
//! preamble and "DICM" when present, up to the length its (0002,0000) gives, as
//! dicom-object reads it), then the data set in the transfer syntax the meta
//! group names (implicit VR LE, explicit VR big endian, explicit VR LE for all others).
//! A data-set element whose VR bytes are no VR code is read as UN (32-bit length), as
//! dicom-parser reads it. A binary element (US, UL, FD, OW, ...) whose length is not a
//! multiple of its value size is refused: dicom-parser would read the next headers from
//! the wrong bytes ([`value_size`]). Sequences and items are descended into (their elements are
//! checked too); items of encapsulated pixel data (fragments) are skipped by their length. Undefined length
//! (0xFFFFFFFF) is legal for sequences, items, UN (walked as a sequence, as dicom-parser
//! reads it) and encapsulated OB/OW pixel data.
//! The walk stops without a verdict (Ok) where it cannot follow the encoding (a deflated
//! data set, no "DICM" magic, a header cut short): dicom-object
//! then reports that problem itself, and none of those lets an element claim more than the
//! file holds on the walked part.
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry, VirtualVr};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::StandardDataDictionary;

use crate::study::StudyError;

const UNDEFINED: u32 = 0xFFFF_FFFF;
const IMPLICIT_LE: &str = "1.2.840.10008.1.2";
const EXPLICIT_BE: &str = "1.2.840.10008.1.2.2";
const DEFLATED_LE: &str = "1.2.840.10008.1.2.1.99";

/// Checks the file at `path` (reads only element headers and the transfer syntax UID).
pub fn check_file(path: &Path) -> Result<(), StudyError> {
    let file = std::fs::File::open(path)
        .map_err(|e| StudyError::new(path, format!("cannot read the file: {e}")))?;
    let len = file
        .metadata()
        .map_err(|e| StudyError::new(path, format!("cannot read the file: {e}")))?
        .len();
    check(path, std::io::BufReader::new(file), len)
}

/// Checks a file already read into memory (`bytes` are the contents of `path`).
pub fn check_bytes(path: &Path, bytes: &[u8]) -> Result<(), StudyError> {
    check(path, std::io::Cursor::new(bytes), bytes.len() as u64)
}

fn check<R: Read + Seek>(path: &Path, r: R, len: u64) -> Result<(), StudyError> {
    let mut w = Walker {
        r,
        len,
        pos: 0,
        big_endian: false,
        explicit: true,
        unknown_vr: None,
    };
    match w.walk() {
        Ok(()) | Err(Stop::Unfollowable) => Ok(()),
        Err(Stop::TooLong {
            tag,
            claim,
            left,
            unknown_vr,
        }) => Err(StudyError::new(
            path,
            format!(
                "element ({:04X},{:04X}){} claims a value of {claim} bytes, but only {left} \
                 bytes are left in the file (corrupt or truncated DICOM file)",
                tag.group(),
                tag.element(),
                unknown_vr.map_or(String::new(), |c| format!(
                    " (VR bytes {:02X} {:02X}, no VR code: read as UN, as dicom-object reads it)",
                    c[0], c[1]
                )),
            ),
        )),
        Err(Stop::BadVr { tag, code }) => Err(StudyError::new(
            path,
            format!(
                "file meta element ({:04X},{:04X}) has no valid VR (bytes {:02X} {:02X}) \
                 (corrupt DICOM file)",
                tag.group(),
                tag.element(),
                code[0],
                code[1]
            ),
        )),
        Err(Stop::BadUndefined { tag, vr }) => Err(StudyError::new(
            path,
            format!(
                "element ({:04X},{:04X}) of VR {vr} has an undefined length, which only \
                 sequences, items and encapsulated pixel data may have (corrupt DICOM file)",
                tag.group(),
                tag.element()
            ),
        )),
        Err(Stop::Misaligned { tag, vr, len, size }) => Err(StudyError::new(
            path,
            format!(
                "element ({:04X},{:04X}) of VR {vr} has a length of {len} bytes, not a \
                 multiple of its {size}-byte values (corrupt DICOM file)",
                tag.group(),
                tag.element()
            ),
        )),
    }
}

/// Bytes of one value of a binary VR of fixed value size, `None` for the others.
///
/// dicom-parser reads `length / size` values of such an element but counts `length`
/// bytes as read, so a length that is not a multiple of the size leaves its reader
/// behind its count: every later header is read from the wrong bytes (a fuzzed UL of 6
/// bytes then made it read a 740 MB claim out of a UID). PS3.5 6.2 fixes these sizes.
fn value_size(vr: VR) -> Option<u32> {
    match vr {
        VR::OW | VR::SS | VR::US => Some(2),
        VR::AT | VR::FL | VR::OF | VR::OL | VR::SL | VR::UL => Some(4),
        VR::FD | VR::OD | VR::OV | VR::SV | VR::UV => Some(8),
        _ => None,
    }
}

/// A sequence or an item the walk is inside of, as dicom-parser's data set reader tracks
/// them: each ends at a byte position (defined length) or at its delimiter (`None`).
/// Whether an item header opens an item or is read as a plain element depends on it.
enum Open {
    Sequence(Option<u64>),
    Item(Option<u64>),
}

enum Stop {
    /// The walk cannot follow the encoding any further: no verdict.
    Unfollowable,
    /// Not a VR code: refused in the file meta group (always explicit VR, and
    /// dicom-object allocates what the bytes after it claim); in the data set such an
    /// element is read as UN, as dicom-parser reads it.
    BadVr {
        tag: Tag,
        code: [u8; 2],
    },
    TooLong {
        tag: Tag,
        claim: u32,
        left: u64,
        /// The element's VR bytes when they were no VR code (read as UN).
        unknown_vr: Option<[u8; 2]>,
    },
    BadUndefined {
        tag: Tag,
        vr: &'static str,
    },
    /// A binary value whose length is not a multiple of its VR's value size.
    Misaligned {
        tag: Tag,
        vr: &'static str,
        len: u32,
        size: u32,
    },
}

/// I/O errors (a file cut short, a read failing) end the walk without a verdict.
impl From<std::io::Error> for Stop {
    fn from(_: std::io::Error) -> Self {
        Stop::Unfollowable
    }
}

struct Walker<R> {
    r: R,
    len: u64,
    pos: u64,
    big_endian: bool,
    explicit: bool,
    /// The VR bytes of the last header read when they were no VR code (read as UN).
    unknown_vr: Option<[u8; 2]>,
}

impl<R: Read + Seek> Walker<R> {
    fn bytes<const N: usize>(&mut self) -> Result<[u8; N], Stop> {
        let mut b = [0u8; N];
        self.r.read_exact(&mut b)?;
        self.pos += N as u64;
        Ok(b)
    }

    fn u16(&mut self) -> Result<u16, Stop> {
        let b = self.bytes::<2>()?;
        Ok(if self.big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        })
    }

    fn u32(&mut self) -> Result<u32, Stop> {
        let b = self.bytes::<4>()?;
        Ok(if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }

    fn skip(&mut self, n: u64) -> Result<(), Stop> {
        self.r.seek(SeekFrom::Start(self.pos + n))?;
        self.pos += n;
        Ok(())
    }

    fn left(&self) -> u64 {
        self.len.saturating_sub(self.pos)
    }

    /// Refuses a defined `claim` longer than what is left after the header just read.
    fn bounded(&self, tag: Tag, claim: u32) -> Result<(), Stop> {
        if claim != UNDEFINED && u64::from(claim) > self.left() {
            return Err(Stop::TooLong {
                tag,
                claim,
                left: self.left(),
                unknown_vr: self.unknown_vr,
            });
        }
        Ok(())
    }

    /// One element header: tag, VR (None for items, delimiters and implicit VR) and length.
    ///
    /// `unknown_as_un`: read two bytes that are no VR code as UN (reserved bytes, then a
    /// 32-bit length), as dicom-parser's explicit VR decoders do in the data set; in the file
    /// meta group they are an error ([`Stop::BadVr`]).
    fn header(&mut self, unknown_as_un: bool) -> Result<(Tag, Option<VR>, u32), Stop> {
        self.unknown_vr = None;
        let tag = Tag(self.u16()?, self.u16()?);
        if tag.group() == 0xFFFE || !self.explicit {
            return Ok((tag, None, self.u32()?));
        }
        let code = self.bytes::<2>()?;
        let vr = match VR::from_binary(code) {
            Some(vr) => vr,
            None if unknown_as_un => {
                self.unknown_vr = Some(code);
                VR::UN
            }
            None => return Err(Stop::BadVr { tag, code }),
        };
        let long = matches!(
            vr,
            VR::OB
                | VR::OD
                | VR::OF
                | VR::OL
                | VR::OV
                | VR::OW
                | VR::SQ
                | VR::SV
                | VR::UC
                | VR::UN
                | VR::UR
                | VR::UT
                | VR::UV
        );
        let len = if long {
            self.bytes::<2>()?;
            self.u32()?
        } else {
            u32::from(self.u16()?)
        };
        Ok((tag, Some(vr), len))
    }

    fn walk(&mut self) -> Result<(), Stop> {
        // Preamble rule of dicom-object's `open_file`: "DICM" at 0, else at 128.
        let magic_at = |w: &mut Self, at: u64| -> Result<bool, Stop> {
            w.r.seek(SeekFrom::Start(at))?;
            w.pos = at;
            Ok(&w.bytes::<4>()? == b"DICM")
        };
        if !magic_at(self, 128).unwrap_or(false) && !magic_at(self, 0)? {
            return Err(Stop::Unfollowable);
        }
        // File meta group, as dicom-object reads it: explicit VR little endian, the group
        // length (0002,0000) first, then elements (of any group) until their bytes reach
        // it; the data set starts after the last. (Ending the group at the first tag of
        // another group instead let a fuzzed file's data set start elsewhere for the walk
        // than for dicom-object, which then allocated a 772 MB claim.) A file whose group
        // length is missing or malformed dicom-object refuses itself.
        let mut ts = String::new();
        let (tag, _, len) = self.header(false)?;
        if tag != Tag(0x0002, 0x0000) || len != 4 {
            return Err(Stop::Unfollowable);
        }
        let group_len = u64::from(self.u32()?);
        let start = self.pos;
        while self.pos - start < group_len {
            let (tag, vr, len) = self.header(false)?;
            if len == UNDEFINED {
                return Err(Stop::BadUndefined {
                    tag,
                    vr: vr.map_or("(none)", |v| v.to_string()),
                });
            }
            self.bounded(tag, len)?;
            if tag == Tag(0x0002, 0x0010) && len <= 64 {
                let mut b = vec![0u8; len as usize];
                self.r.read_exact(&mut b)?;
                self.pos += u64::from(len);
                ts = String::from_utf8_lossy(&b)
                    .trim_end_matches(['\0', ' '])
                    .to_string();
            } else {
                self.skip(u64::from(len))?;
            }
        }
        match ts.as_str() {
            IMPLICIT_LE => self.explicit = false,
            EXPLICIT_BE => self.big_endian = true,
            DEFLATED_LE => return Err(Stop::Unfollowable),
            _ => {}
        }
        self.data_set()
    }

    /// The data set, linearly: sequences and items are entered (their elements follow in
    /// the stream), so only leaf values and fragments are skipped.
    fn data_set(&mut self) -> Result<(), Stop> {
        let mut fragments = false;
        let mut open: Vec<Open> = Vec::new();
        while self.left() > 0 {
            // Sequences and items of defined length end where their bytes do.
            while let Some(Open::Sequence(Some(end)) | Open::Item(Some(end))) = open.last() {
                if *end > self.pos {
                    break;
                }
                open.pop();
            }
            // A code that is no VR is read as UN, the way dicom-parser reads it: it then
            // allocates the 32-bit length that follows (a fuzzed 982-byte file: 565 MB).
            let (tag, vr, len) = self.header(true)?;
            let end = (len != UNDEFINED).then(|| self.pos + u64::from(len));
            let item = tag == Tag(0xFFFE, 0xE000);
            if tag == Tag(0xFFFE, 0xE00D) || tag == Tag(0xFFFE, 0xE0DD) {
                // Delimiters (length 0 by the standard; a non-zero one is skipped, bounded).
                self.bounded(tag, len)?;
                if len != UNDEFINED {
                    self.skip(u64::from(len))?;
                }
                if tag == Tag(0xFFFE, 0xE0DD) {
                    fragments = false;
                    while let Some(o) = open.pop() {
                        if matches!(o, Open::Sequence(_)) {
                            break;
                        }
                    }
                } else if matches!(open.last(), Some(Open::Item(None))) {
                    open.pop();
                }
                continue;
            }
            if item {
                self.bounded(tag, len)?;
                if fragments {
                    if len == UNDEFINED {
                        return Err(Stop::Unfollowable);
                    }
                    self.skip(u64::from(len))?;
                } else if matches!(open.last(), Some(Open::Sequence(_))) {
                    // A sequence item: its elements follow.
                    open.push(Open::Item(end));
                } else if len == UNDEFINED {
                    // Outside a sequence dicom-parser reads an item header as an element of
                    // VR UN: of undefined length, a sequence.
                    open.push(Open::Sequence(None));
                } else {
                    // ... of defined length, a value it reads (a fuzzed item at the top level
                    // hid, from a walk that entered it, the 875 MB claim the parser read next).
                    self.skip(u64::from(len))?;
                }
                continue;
            }
            // Implicit VR: the VR dicom-encoding's implicit decoder gives the element (OW
            // for pixel and overlay data, else the dictionary's, an ambiguous one relaxed:
            // US or SS to US, OB or OW to OW), so that value sizes are checked as read.
            let overlay = tag.group() >> 8 == 0x60 && tag.element() == 0x3000;
            let vr = match vr {
                Some(vr) => vr,
                None if tag == Tag(0x7FE0, 0x0010) || overlay => VR::OW,
                None => match StandardDataDictionary.by_tag(tag).map(|e| e.vr()) {
                    Some(VirtualVr::Exact(vr)) => vr,
                    Some(v) if len != UNDEFINED => v.relaxed(),
                    _ if len == UNDEFINED && tag != Tag(0x7FE0, 0x0010) => VR::SQ,
                    _ => VR::UN,
                },
            };
            match (vr, len) {
                // dicom-parser reads a UN of undefined length as a sequence in the same
                // encoding (a fuzzed one held an element claiming 522 MB): its items and
                // elements follow, and are walked as any sequence's.
                // Only Pixel Data of undefined length holds fragments (dicom-core's
                // `is_encapsulated_pixeldata`); an OB or OW of undefined length under any
                // other tag is a sequence to dicom-parser (a fuzzed one hid a 522 MB claim
                // from a walk that skipped its items as fragments).
                (_, UNDEFINED) if tag == Tag(0x7FE0, 0x0010) => fragments = true,
                (VR::SQ | VR::OB | VR::OW, _) | (VR::UN, UNDEFINED)
                    if vr == VR::SQ || len == UNDEFINED =>
                {
                    self.bounded(tag, len)?;
                    open.push(Open::Sequence(end));
                }
                (vr, UNDEFINED) => {
                    return Err(Stop::BadUndefined {
                        tag,
                        vr: vr.to_string(),
                    })
                }
                (vr, len) => {
                    if let Some(size) = value_size(vr).filter(|size| len % size != 0) {
                        return Err(Stop::Misaligned {
                            tag,
                            vr: vr.to_string(),
                            len,
                            size,
                        });
                    }
                    self.bounded(tag, len)?;
                    self.skip(u64::from(len))?;
                }
            }
        }
        Ok(())
    }
}
