//! The image column chunk of a row group, dictionary-encoded here rather than by
//! parquet-rs, when its values are uint8 crops over 255 ([`super::byte_scaled`]).
//!
//! Why: for `ingest lidc-pickle`, parquet-rs's dictionary encoder hashing each image value
//! was about 40% of the ingest's CPU. Its value encoders are private, so this module writes
//! the chunk the way parquet-rs's column writer lays it out (and as the shard properties
//! ask: dictionary on, no statistics, data page v1, the properties' compression, an offset
//! index), and hands it to `SerializedRowGroupWriter::append_column`, the public API for
//! splicing an encoded chunk into a row group:
//!
//! * one PLAIN dictionary page of the distinct values (at most 256 floats);
//! * data pages of whole rows, each `[rep levels][def levels][bit width][indices]`: levels
//!   RLE-hybrid with a 4-byte length (bit width 1), indices RLE_DICTIONARY;
//! * column metadata with the encodings, page encoding stats, sizes and offsets
//!   parquet-rs's writer records, and no statistics (off for pixel columns).
//!
//! Anything the properties ask for that this writer does not do (statistics, bloom
//! filters, page v2, another codec) makes [`ImageChunkEncoder::for_column`] decline, and
//! values that are not all `k / 255` make [`ImageChunkEncoder::encode`] decline: the caller
//! then uses parquet-rs's own writer, as for DICOM CT and NIfTI images.
use std::sync::Mutex;

use bytes::Bytes;
use parquet::basic::{Compression, Encoding, EncodingMask, PageType, Type as PhysicalType};
use parquet::column::page::{CompressedPage, Page, PageWriter};
use parquet::column::writer::ColumnCloseResult;
use parquet::errors::ParquetError;
use parquet::file::metadata::{ColumnChunkMetaData, OffsetIndexBuilder, PageEncodingStats};
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::file::writer::{SerializedPageWriter, SerializedRowGroupWriter, TrackedWrite};
use parquet::schema::types::ColumnDescPtr;

use super::byte_scaled;
use super::rle_hybrid::{bit_width, HybridEncoder};

/// How one list-of-float column's chunks are written when [`byte_scaled`] applies.
pub struct ImageChunkEncoder {
    descr: ColumnDescPtr,
    /// zstd level, or None for uncompressed pages.
    zstd_level: Option<i32>,
    compression: Compression,
    /// A data page closes once its indices reach this many bytes (whole rows per page).
    page_bytes: usize,
    page_rows: usize,
    offset_index: bool,
    /// zstd contexts of finished chunks, for the next ones: a context allocates and
    /// clears its tables when created, which per chunk showed in profiles.
    compressors: Mutex<Vec<zstd::bulk::Compressor<'static>>>,
}

/// A column chunk encoded here: its bytes (dictionary page first) and what the row group
/// writer records about it.
pub struct EncodedChunk {
    data: Bytes,
    close: ColumnCloseResult,
}

impl EncodedChunk {
    /// Appends the chunk as the row group's next column.
    pub fn append_to_row_group<W: std::io::Write + Send>(
        self,
        group: &mut SerializedRowGroupWriter<'_, W>,
    ) -> Result<(), ParquetError> {
        group.append_column(&self.data, self.close)
    }
}

impl ImageChunkEncoder {
    /// The encoder of leaf column `descr` under `props`, or None when the column is not a
    /// required list of required floats or the properties ask for more than a dictionary.
    pub fn for_column(props: &WriterProperties, descr: ColumnDescPtr) -> Option<Self> {
        let path = &descr.path().clone();
        let zstd_level = match props.compression(path) {
            Compression::ZSTD(level) => Some(level.compression_level()),
            Compression::UNCOMPRESSED => None,
            _ => return None,
        };
        let supported = descr.physical_type() == PhysicalType::FLOAT
            && descr.max_def_level() == 1
            && descr.max_rep_level() == 1
            && props.dictionary_enabled(path)
            && props.statistics_enabled(path) == EnabledStatistics::None
            && props.bloom_filter_properties(path).is_none()
            && props.writer_version() == WriterVersion::PARQUET_1_0;
        // (parquet is built without its `encryption` feature, so pages are never encrypted.)
        supported.then(|| ImageChunkEncoder {
            compression: props.compression(path),
            zstd_level,
            page_bytes: props.column_data_page_size_limit(path).max(1),
            page_rows: props.data_page_row_count_limit().max(1),
            offset_index: !props.offset_index_disabled(),
            descr,
            compressors: Mutex::new(Vec::new()),
        })
    }

    /// The chunk of one row group's images (one list per row), or None when their values
    /// are not all uint8 over 255.
    pub fn encode(&self, images: &[Vec<f32>]) -> Result<Option<EncodedChunk>, ParquetError> {
        if images.is_empty() {
            return Ok(None);
        }
        let mut offsets = Vec::with_capacity(images.len() + 1);
        offsets.push(0usize);
        for image in images {
            offsets.push(offsets[offsets.len() - 1] + image.len());
        }
        let mut coder = byte_scaled::Coder::new(offsets[images.len()]);
        for image in images {
            if !coder.push(image) {
                return Ok(None);
            }
        }
        let coded = coder.finish();
        let width = bit_width(coded.dictionary.len().saturating_sub(1) as u32);
        let mut compressor = match self.zstd_level {
            Some(level) => Some(
                match self.compressors.lock().ok().and_then(|mut p| p.pop()) {
                    Some(c) => c,
                    None => zstd::bulk::Compressor::new(level)?,
                },
            ),
            None => None,
        };
        let mut compress = |buf: Vec<u8>| -> Result<(Bytes, usize), ParquetError> {
            let size = buf.len();
            Ok(match compressor.as_mut() {
                Some(c) => (Bytes::from(c.compress(&buf)?), size),
                None => (Bytes::from(buf), size),
            })
        };

        let mut sink = TrackedWrite::new(Vec::new());
        let mut pages = SerializedPageWriter::new(&mut sink);
        let mut meta = ChunkTotals::default();

        let dict: Vec<u8> = coded
            .dictionary
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let (buf, size) = compress(dict)?;
        let spec = pages.write_page(CompressedPage::new(
            Page::DictionaryPage {
                buf,
                num_values: coded.dictionary.len() as u32,
                encoding: Encoding::PLAIN,
                is_sorted: true,
            },
            size,
        ))?;
        meta.add(&spec);

        // Rows [start, end) per data page.
        let mut offset_index = OffsetIndexBuilder::new();
        let mut data_pages = 0;
        let mut start = 0;
        while start < images.len() {
            let mut end = start + 1;
            while end < images.len()
                && end - start < self.page_rows
                && (offsets[end + 1] - offsets[start]) * width as usize / 8 <= self.page_bytes
            {
                end += 1;
            }
            let rows = &offsets[start..=end];
            let (lo, hi) = (rows[0], rows[rows.len() - 1]);
            let (buf, levels) = data_page(rows, width, &coded.indices[lo..hi]);
            let (buf, size) = compress(buf)?;
            let spec = pages.write_page(CompressedPage::new(
                Page::DataPage {
                    buf,
                    num_values: levels as u32,
                    encoding: Encoding::RLE_DICTIONARY,
                    def_level_encoding: Encoding::RLE,
                    rep_level_encoding: Encoding::RLE,
                    statistics: None,
                },
                size,
            ))?;
            meta.add(&spec);
            offset_index.append_offset_and_size(spec.offset as i64, spec.compressed_size as i32);
            offset_index.append_row_count((end - start) as i64);
            data_pages += 1;
            start = end;
        }
        pages.close()?;
        if let (Some(c), Ok(mut pool)) = (compressor, self.compressors.lock()) {
            pool.push(c);
        }

        let metadata = ColumnChunkMetaData::builder(self.descr.clone())
            .set_compression(self.compression)
            .set_encodings_mask(EncodingMask::new_from_encodings(
                [Encoding::PLAIN, Encoding::RLE, Encoding::RLE_DICTIONARY].iter(),
            ))
            .set_page_encoding_stats(vec![
                PageEncodingStats {
                    page_type: PageType::DICTIONARY_PAGE,
                    encoding: Encoding::PLAIN,
                    count: 1,
                },
                PageEncodingStats {
                    page_type: PageType::DATA_PAGE,
                    encoding: Encoding::RLE_DICTIONARY,
                    count: data_pages,
                },
            ])
            .set_total_compressed_size(meta.compressed as i64)
            .set_total_uncompressed_size(meta.uncompressed as i64)
            .set_num_values(meta.values as i64)
            .set_data_page_offset(meta.data_page_offset.unwrap_or(0) as i64)
            .set_dictionary_page_offset(Some(0))
            .build()?;
        let bytes_written = sink.bytes_written() as u64;
        let data = Bytes::from(sink.into_inner()?);
        Ok(Some(EncodedChunk {
            data,
            close: ColumnCloseResult {
                bytes_written,
                rows_written: images.len() as u64,
                metadata,
                bloom_filter: None,
                column_index: None,
                offset_index: self.offset_index.then(|| offset_index.build()),
            },
        }))
    }
}

/// The sizes and offsets a column writer sums over its pages.
#[derive(Default)]
struct ChunkTotals {
    compressed: u64,
    uncompressed: u64,
    values: u64,
    data_page_offset: Option<u64>,
}

impl ChunkTotals {
    fn add(&mut self, spec: &parquet::column::page::PageWriteSpec) {
        self.compressed += spec.compressed_size as u64;
        self.uncompressed += spec.uncompressed_size as u64;
        if spec.page_type != PageType::DICTIONARY_PAGE {
            self.values += spec.num_values as u64;
            self.data_page_offset.get_or_insert(spec.offset);
        }
    }
}

/// One v1 data page's uncompressed bytes for the rows whose list offsets are `offsets`
/// (`rows + 1` of them), and its level count (values, plus one per empty list).
fn data_page(offsets: &[usize], width: u8, indices: &[u8]) -> (Vec<u8>, usize) {
    let rows = offsets.len() - 1;
    let levels = indices.len() + offsets.windows(2).filter(|w| w[0] == w[1]).count();
    // Repetition: 0 opens a row, 1 continues its list. Definition: 1 for a value, 0 for
    // an empty list (the list itself is required, so there is no null level).
    let mut rep = HybridEncoder::new(1, levels);
    let mut def = HybridEncoder::new(1, levels);
    for w in offsets.windows(2) {
        let len = w[1] - w[0];
        rep.put_run(0, 1);
        if len == 0 {
            def.put_run(0, 1);
        } else {
            rep.put_run(1, len - 1);
            def.put_run(1, len);
        }
    }
    debug_assert!(rows > 0);
    let mut buf = Vec::with_capacity(indices.len() * width as usize / 8 + 64);
    for levels in [rep.finish(), def.finish()] {
        buf.extend_from_slice(&(levels.len() as u32).to_le_bytes());
        buf.extend_from_slice(&levels);
    }
    buf.push(width);
    let mut idx = HybridEncoder::appending_to(width, buf);
    idx.put_values(indices);
    (idx.finish(), levels)
}
