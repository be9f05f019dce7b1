//! One shard file written row group by row group, several groups encoded at once.
//!
//! Encoding and zstd-compressing a row group is the ingest writer's whole job, and with
//! parquet's `ArrowWriter` it runs on one thread. Once masks were bit-packed, the float
//! image column was most of that work (zstd works hardest on it), and a timeline of 50
//! synthetic LIDC studies showed its single encoding thread busy from start to end while
//! the loader threads idled at half a core each: the writer, not the cores, set the wall
//! time. So each full row group is handed to its own encoding thread (the image column on
//! one more) as soon as it fills, up to as many groups at a time as there are cores, and the
//! finished column chunks are appended strictly in group order. The file is the one
//! `ArrowWriter` writes when handed one batch per row group: same properties, same row
//! group boundaries (a group closes at `row_group_rows` rows, spanning studies), so the
//! bytes are the same too, except for an image column of uint8 crops over 255, which
//! [`super::image_chunk`] dictionary-encodes without parquet's hashing (same schema, same
//! values read back, same properties honoured).
use std::collections::VecDeque;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use arrow::array::{ArrayRef, Float32Array, ListArray, RecordBatch};
use arrow::buffer::OffsetBuffer;
use parquet::arrow::arrow_writer::{
    compute_leaves, ArrowColumnChunk, ArrowColumnWriter, ArrowRowGroupWriterFactory,
};
use parquet::arrow::ArrowWriter;
use parquet::errors::ParquetError;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterPropertiesBuilder;
use parquet::file::writer::{SerializedFileWriter, SerializedRowGroupWriter};

use schemas::atomic::{commit_temp, temp_path_for};
use schemas::hashing::Sha256Writer;
use schemas::slice::{self, SliceRecord};
use schemas::SchemaError;

use super::image_chunk::{EncodedChunk, ImageChunkEncoder};

/// A shard being written under a temporary name; [`finish`](Self::finish) renames it into
/// place, dropping it unfinished deletes the temporary file.
pub struct ShardFile {
    path: PathBuf,
    tmp: PathBuf,
    /// Hashes the bytes as they are written: the manifest's checksum of the shard, without
    /// reading the file back after the last row (a serial tail of the run otherwise).
    writer: Option<SerializedFileWriter<Sha256Writer<File>>>,
    factory: ArrowRowGroupWriterFactory,
    /// Rows of the row group being filled, in order.
    pending: Vec<SliceRecord>,
    row_group_rows: usize,
    /// Row groups being encoded, oldest first; appended to the file in this order.
    encoding: VecDeque<JoinHandle<EncodedGroup>>,
    /// How many row groups may be encoding at once.
    in_flight: usize,
    /// The image column's own encoder, where the properties let it apply.
    image_encoder: Option<Arc<ImageChunkEncoder>>,
}

/// One encoded column chunk: by parquet's Arrow writer, or by [`ImageChunkEncoder`].
enum Chunk {
    Arrow(ArrowColumnChunk),
    Image(EncodedChunk),
}

impl Chunk {
    fn append_to_row_group(
        self,
        group: &mut SerializedRowGroupWriter<'_, Sha256Writer<File>>,
    ) -> Result<(), ParquetError> {
        match self {
            Chunk::Arrow(c) => c.append_to_row_group(group),
            Chunk::Image(c) => c.append_to_row_group(group),
        }
    }
}

/// The column chunks of one row group, in schema order.
type EncodedGroup = Result<Vec<Chunk>, ParquetError>;

impl ShardFile {
    /// Creates the temporary file with slice-shard identity metadata and `props`.
    pub fn create(
        path: &Path,
        props: WriterPropertiesBuilder,
        row_group_rows: usize,
    ) -> Result<Self, SchemaError> {
        let tmp = temp_path_for(path);
        let file = File::create(&tmp).map_err(|source| SchemaError::Io {
            path: tmp.clone(),
            source,
        })?;
        let kv = slice::SCHEMA
            .key_values()
            .into_iter()
            .map(|(k, v)| KeyValue::new(k, v))
            .collect();
        let props = props.set_key_value_metadata(Some(kv)).build();
        let image_props = props.clone();
        let parquet = |source| SchemaError::Parquet {
            path: path.to_path_buf(),
            source,
        };
        // ArrowWriter sets up the file exactly as it would write it itself (Parquet schema,
        // embedded Arrow schema); only the row groups are then written here.
        let file = Sha256Writer::new(file);
        let (writer, factory) = ArrowWriter::try_new(file, slice::schema(), Some(props))
            .and_then(ArrowWriter::into_serialized_writer)
            .map_err(parquet)?;
        // One leaf column per field: the slice schema has no struct columns.
        let image_leaf = slice::schema()
            .index_of(slice::col::IMAGE)
            .expect("the slice schema has an image column");
        let image_encoder =
            ImageChunkEncoder::for_column(&image_props, writer.schema_descr().column(image_leaf))
                .map(Arc::new);
        Ok(ShardFile {
            path: path.to_path_buf(),
            tmp,
            writer: Some(writer),
            factory,
            pending: Vec::new(),
            row_group_rows: row_group_rows.max(1),
            encoding: VecDeque::new(),
            in_flight: std::thread::available_parallelism().map_or(2, |n| n.get().max(2)),
            image_encoder,
        })
    }

    fn parquet_error(&self, source: ParquetError) -> SchemaError {
        SchemaError::Parquet {
            path: self.path.clone(),
            source,
        }
    }

    /// Appends rows; every full row group is encoded and written.
    ///
    /// The rows are kept as they are until their group is full, then the whole group
    /// becomes one Arrow batch on its encoding thread. Building a batch per call instead
    /// (one per study) cost the single writer thread 22 small arrays, a copy of every pixel
    /// and the mask packing per study, and for one-slice studies (the LIDC pickle's 2D
    /// crops) the column writers one `write` per row.
    pub fn write(&mut self, rows: Vec<SliceRecord>) -> Result<(), SchemaError> {
        for row in rows {
            self.pending.push(row);
            if self.pending.len() == self.row_group_rows {
                self.flush()?;
            }
        }
        Ok(())
    }

    /// Starts encoding the pending rows as the next row group, then appends finished
    /// groups while more than [`Self::in_flight`] are encoding.
    fn flush(&mut self) -> Result<(), SchemaError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let rows = std::mem::replace(&mut self.pending, Vec::with_capacity(self.row_group_rows));
        let writer = self.writer.as_ref().expect("shard written after finish");
        let index = writer.flushed_row_groups().len() + self.encoding.len();
        let columns = self
            .factory
            .create_column_writers(index)
            .map_err(|e| self.parquet_error(e))?;
        let image_encoder = self.image_encoder.clone();
        self.encoding.push_back(std::thread::spawn(move || {
            encode_group(rows, columns, image_encoder.as_deref())
        }));
        while self.encoding.len() > self.in_flight {
            self.append_oldest()?;
        }
        Ok(())
    }

    /// Waits for the oldest row group being encoded and appends it to the file.
    fn append_oldest(&mut self) -> Result<(), SchemaError> {
        let Some(job) = self.encoding.pop_front() else {
            return Ok(());
        };
        let chunks = job
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
            .map_err(|e| self.parquet_error(e))?;
        let writer = self.writer.as_mut().expect("shard written after finish");
        let result = (|| {
            let mut group = writer.next_row_group()?;
            for chunk in chunks {
                chunk.append_to_row_group(&mut group)?;
            }
            group.close().map(|_| ())
        })();
        result.map_err(|e| self.parquet_error(e))
    }

    /// Adds a key-value pair to the file's metadata (written on finish).
    pub fn set_metadata(&mut self, key: &str, value: String) {
        self.writer
            .as_mut()
            .expect("shard written after finish")
            .append_key_value_metadata(KeyValue::new(key.to_string(), value));
    }

    /// Writes the last row group and the footer, renames the file into place and returns
    /// its SHA-256 (lower-case hex).
    pub fn finish(mut self) -> Result<String, SchemaError> {
        self.flush()?;
        while !self.encoding.is_empty() {
            self.append_oldest()?;
        }
        let writer = self.writer.take().expect("finish called twice");
        let (_, sha256) = writer
            .into_inner()
            .map_err(|e| self.parquet_error(e))?
            .finish();
        commit_temp(&self.tmp, &self.path)?;
        Ok(sha256)
    }
}

/// Encodes one row group's rows into column chunks: the image column (the costliest)
/// on a second thread, the others on this one. The image column goes to `image_encoder`
/// first; parquet's writer encodes it when that declines.
///
/// The images leave the rows before the other columns become an Arrow batch, so the
/// image thread starts at once and the batch is built without copying them (2 MB a group
/// of 32 128 x 128 crops); only parquet's writer needs them as an Arrow list.
fn encode_group(
    mut rows: Vec<SliceRecord>,
    mut columns: Vec<ArrowColumnWriter>,
    image_encoder: Option<&ImageChunkEncoder>,
) -> EncodedGroup {
    let schema = slice::schema();
    let image = schema
        .index_of(slice::col::IMAGE)
        .expect("the slice schema has an image column");
    // One leaf column per field: the slice schema has no struct columns.
    let image_writer = columns.remove(image);
    let images: Vec<Vec<f32>> = rows
        .iter_mut()
        .map(|r| std::mem::take(&mut r.image))
        .collect();
    let encode_image = || -> Result<Chunk, ParquetError> {
        if let Some(encoder) = image_encoder {
            if let Some(chunk) = encoder.encode(&images)? {
                return Ok(Chunk::Image(chunk));
            }
        }
        let field = schema.field(image);
        let list = image_list(&images, field);
        let mut w = image_writer;
        for leaf in compute_leaves(field, &list)? {
            w.write(&leaf)?;
        }
        w.close().map(Chunk::Arrow)
    };
    let (image_chunk, rest) = std::thread::scope(|s| {
        let image_job = s.spawn(encode_image);
        // Its image column holds empty lists and is not written.
        let batch: RecordBatch = slice::to_batch(&rows);
        drop(rows);
        let rest: Result<Vec<Chunk>, ParquetError> = columns
            .into_iter()
            .enumerate()
            .map(|(i, mut w)| {
                let col = if i < image { i } else { i + 1 };
                for leaf in compute_leaves(schema.field(col), batch.column(col))? {
                    w.write(&leaf)?;
                }
                w.close().map(Chunk::Arrow)
            })
            .collect();
        let image_chunk = image_job
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        (image_chunk, rest)
    });
    let mut chunks = rest?;
    chunks.insert(image, image_chunk?);
    Ok(chunks)
}

/// `images` as the slice schema's image column (`field`, a list of float32), the array
/// [`slice::to_batch`] would have made of them.
fn image_list(images: &[Vec<f32>], field: &arrow::datatypes::Field) -> ArrayRef {
    let arrow::datatypes::DataType::List(item) = field.data_type() else {
        unreachable!("the slice schema's image column is a list");
    };
    let offsets = OffsetBuffer::from_lengths(images.iter().map(Vec::len));
    let values = Float32Array::from(images.concat());
    Arc::new(ListArray::new(
        item.clone(),
        offsets,
        Arc::new(values),
        None,
    ))
}

impl Drop for ShardFile {
    fn drop(&mut self) {
        if self.writer.is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::shard_writer::shard_properties;
    use crate::study::ImageValues;

    /// A small slice row whose every list differs from the other rows'.
    fn record(i: usize) -> SliceRecord {
        let (h, w, r) = (6usize, 5usize, 4usize);
        let mut rec = SliceRecord {
            study_id: format!("S{}", i / 7),
            patient_id: format!("P{}", i / 7),
            target_id: format!("nodule-{}", i % 3 + 1),
            slice_index: i as i32,
            z_mm: i as f64 * 1.25,
            height: h as u32,
            width: w as u32,
            channels: 1,
            spacing_row_mm: 0.7,
            spacing_col_mm: 0.7,
            image: (0..h * w)
                .map(|p| ((p * 31 + i * 7) % 97) as f32 / 96.0)
                .collect(),
            masks: (0..r * h * w)
                .map(|p| u8::from((p + i).is_multiple_of(5)))
                .collect(),
            raters_present: (0..r).map(|k| k < 3 || i.is_multiple_of(2)).collect(),
            rater_area: vec![],
            intersection: vec![],
            union: vec![],
            crop_row0: i as i32 - 3,
            crop_col0: 2,
            source_height: 512,
            source_width: 512,
            source_files: vec![format!("a/{i}.dcm"), "a/1.xml".into()],
            source_sha256: vec![format!("{i:064x}"), "0".repeat(64)],
        };
        rec.derive_consensus();
        rec
    }

    /// The two-thread row group encoder writes the very bytes parquet's own ArrowWriter
    /// writes with the same properties, handed one batch per row group (row groups
    /// spanning studies, a short last group).
    #[test]
    fn same_bytes_as_arrow_writer() {
        let dir = tempfile::tempdir().unwrap();
        let rows: Vec<SliceRecord> = (0..75).map(record).collect();
        // Studies of 7 rows, as the shard writer hands them over.
        let studies: Vec<&[SliceRecord]> = rows.chunks(7).collect();
        let group = 8;

        let ours = dir.path().join("ours.parquet");
        let mut f = ShardFile::create(
            &ours,
            shard_properties(group, ImageValues::Quantised),
            group,
        )
        .unwrap();
        for s in &studies {
            f.write(s.to_vec()).unwrap();
        }
        f.set_metadata("k", "v".into());
        let sha256 = f.finish().unwrap();
        // The checksum taken while writing is the file's.
        assert_eq!(sha256, schemas::hashing::sha256_file(&ours).unwrap());

        let reference = dir.path().join("reference.parquet");
        let kv = slice::SCHEMA
            .key_values()
            .into_iter()
            .map(|(k, v)| KeyValue::new(k, v))
            .collect();
        let props = shard_properties(group, ImageValues::Quantised)
            .set_key_value_metadata(Some(kv))
            .build();
        let file = File::create(&reference).unwrap();
        let mut w = ArrowWriter::try_new(file, slice::schema(), Some(props)).unwrap();
        for g in rows.chunks(group) {
            w.write(&slice::to_batch(g)).unwrap();
        }
        w.append_key_value_metadata(KeyValue::new("k".to_string(), "v".to_string()));
        w.close().unwrap();

        let (a, b) = (
            std::fs::read(&ours).unwrap(),
            std::fs::read(&reference).unwrap(),
        );
        assert_eq!(a.len(), b.len());
        assert!(a == b, "the shard differs from ArrowWriter's");
        let meta = parquet::file::reader::FileReader::metadata(
            &parquet::file::serialized_reader::SerializedFileReader::new(
                File::open(&ours).unwrap(),
            )
            .unwrap(),
        )
        .clone();
        let groups: Vec<i64> = meta.row_groups().iter().map(|g| g.num_rows()).collect();
        assert_eq!(groups, vec![8, 8, 8, 8, 8, 8, 8, 8, 8, 3]);
        // No temporary file is left next to the shard.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    /// `record(i)` with `image` as its image.
    fn with_image(i: usize, image: Vec<f32>) -> SliceRecord {
        SliceRecord { image, ..record(i) }
    }

    /// A uint8 image over 255, `n` values, with runs and every byte value in turn.
    fn byte_image(i: usize, n: usize) -> Vec<f32> {
        (0..n)
            .map(|p| {
                let k = if p % 50 < 20 {
                    0
                } else {
                    (p * 37 + i * 11) % 256
                };
                k as f32 / 255.0
            })
            .collect()
    }

    /// Writes `rows` into a shard of `group`-row groups under `props` and returns the
    /// rows as parquet's own reader reads them back, with the shard's metadata.
    fn write_and_read(
        path: &Path,
        rows: &[SliceRecord],
        group: usize,
        props: WriterPropertiesBuilder,
    ) -> (RecordBatch, parquet::file::metadata::ParquetMetaData) {
        let mut f = ShardFile::create(path, props, group).unwrap();
        for r in rows {
            f.write(vec![r.clone()]).unwrap();
        }
        f.finish().unwrap();
        use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
        // The offset index too: its page locations must match the pages written.
        let options = ArrowReaderOptions::new()
            .with_offset_index_policy(parquet::file::metadata::PageIndexPolicy::Required);
        let builder = ParquetRecordBatchReaderBuilder::try_new_with_options(
            File::open(path).unwrap(),
            options,
        )
        .unwrap();
        let meta = builder.metadata().as_ref().clone();
        let batches: Vec<RecordBatch> = builder.build().unwrap().map(|b| b.unwrap()).collect();
        let batch = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
        (batch, meta)
    }

    /// Runs tests/py/image_column_check.py: pyarrow and polars must read the shard's image
    /// column bit for bit as `rows` hold it.
    fn check_with_pyarrow_and_polars(path: &Path, rows: &[SliceRecord], dictionary: &str) {
        let values: Vec<u8> = rows
            .iter()
            .flat_map(|r| r.image.iter().flat_map(|v| v.to_le_bytes()))
            .collect();
        let lengths: Vec<u8> = rows
            .iter()
            .flat_map(|r| (r.image.len() as u32).to_le_bytes())
            .collect();
        let (v, l) = (path.with_extension("f32"), path.with_extension("u32"));
        std::fs::write(&v, values).unwrap();
        std::fs::write(&l, lengths).unwrap();
        let args = [path, v.as_path(), l.as_path()].map(|p| p.to_str().unwrap().to_string());
        let out = testkit::run_py(
            "image_column_check.py",
            &[&args[0], &args[1], &args[2], dictionary],
        );
        println!("{}", out.trim());
    }

    /// The image column of uint8-over-255 images is dictionary-encoded by
    /// `image_chunk` (not by parquet: the bytes differ from ArrowWriter's, every other
    /// column chunk is the same size), and parquet, pyarrow and polars read back exactly
    /// the rows written.
    #[test]
    fn byte_images_take_the_own_encoder_and_read_back_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let rows: Vec<SliceRecord> = (0..75).map(|i| with_image(i, byte_image(i, 30))).collect();
        let group = 8;
        let ours = dir.path().join("ours.parquet");
        let (batch, meta) = write_and_read(
            &ours,
            &rows,
            group,
            shard_properties(group, ImageValues::Quantised),
        );
        assert_eq!(batch.columns(), slice::to_batch(&rows).columns());

        let reference = dir.path().join("reference.parquet");
        let props = shard_properties(group, ImageValues::Quantised)
            .set_key_value_metadata(Some(
                slice::SCHEMA
                    .key_values()
                    .into_iter()
                    .map(|(k, v)| KeyValue::new(k, v))
                    .collect(),
            ))
            .build();
        let mut w = ArrowWriter::try_new(
            File::create(&reference).unwrap(),
            slice::schema(),
            Some(props),
        )
        .unwrap();
        for g in rows.chunks(group) {
            w.write(&slice::to_batch(g)).unwrap();
        }
        let want = w.close().unwrap();
        assert_ne!(
            std::fs::read(&ours).unwrap(),
            std::fs::read(&reference).unwrap()
        );

        let image = slice::schema().index_of(slice::col::IMAGE).unwrap();
        assert_eq!(meta.num_row_groups(), want.num_row_groups());
        for (g, w) in meta.row_groups().iter().zip(want.row_groups()) {
            assert_eq!(g.num_rows(), w.num_rows());
            for (c, (ours, theirs)) in g.columns().iter().zip(w.columns()).enumerate() {
                if c != image {
                    assert_eq!(
                        ours.compressed_size(),
                        theirs.compressed_size(),
                        "column {c}"
                    );
                    continue;
                }
                assert!(ours.dictionary_page_offset().is_some());
                assert!(ours.statistics().is_none(), "pixel statistics are off");
                assert_eq!(ours.encodings_mask(), theirs.encodings_mask());
                assert_eq!(ours.num_values(), theirs.num_values());
                assert_eq!(ours.compression(), theirs.compression());
            }
        }
        check_with_pyarrow_and_polars(&ours, &rows, "dict");
    }

    /// Dictionaries of one value (0-bit indices), of all 256, empty image lists, rows
    /// whose value count is no multiple of 8, data pages split within a row group, and
    /// uncompressed pages: each read back exactly by parquet, pyarrow and polars.
    #[test]
    fn byte_image_edge_cases_read_back_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let all_bytes =
            |i: usize| -> Vec<f32> { (0..256).map(|k| ((k + i) % 256) as f32 / 255.0).collect() };
        let cases: Vec<(&str, Vec<SliceRecord>, WriterPropertiesBuilder)> = vec![
            (
                "constant",
                (0..9).map(|i| with_image(i, vec![0.0; 21])).collect(),
                shard_properties(4, ImageValues::Quantised),
            ),
            (
                "one-value",
                (0..3).map(|i| with_image(i, vec![1.0])).collect(),
                shard_properties(4, ImageValues::Quantised),
            ),
            (
                "all-256",
                (0..10).map(|i| with_image(i, all_bytes(i))).collect(),
                shard_properties(4, ImageValues::Quantised),
            ),
            (
                "empty-lists",
                (0..10)
                    .map(|i| {
                        with_image(
                            i,
                            if i % 3 == 0 {
                                vec![]
                            } else {
                                byte_image(i, 13)
                            },
                        )
                    })
                    .collect(),
                shard_properties(4, ImageValues::Quantised),
            ),
            (
                "small-pages",
                (0..12).map(|i| with_image(i, byte_image(i, 333))).collect(),
                shard_properties(6, ImageValues::Quantised).set_data_page_size_limit(500),
            ),
            (
                "uncompressed",
                (0..12).map(|i| with_image(i, byte_image(i, 100))).collect(),
                shard_properties(6, ImageValues::Quantised)
                    .set_compression(parquet::basic::Compression::UNCOMPRESSED),
            ),
        ];
        for (name, rows, props) in cases {
            let path = dir.path().join(format!("{name}.parquet"));
            let (batch, meta) = write_and_read(&path, &rows, 4, props);
            assert_eq!(batch.columns(), slice::to_batch(&rows).columns(), "{name}");
            let image = slice::schema().index_of(slice::col::IMAGE).unwrap();
            for g in meta.row_groups() {
                assert!(g.column(image).dictionary_page_offset().is_some(), "{name}");
            }
            if name == "small-pages" {
                let group0 = meta.page_index_for_row_group(0);
                let pages = group0.offset_index(image).unwrap().page_locations().len();
                assert!(pages > 1, "{name}: {pages} data page(s)");
            }
            check_with_pyarrow_and_polars(&path, &rows, "dict");
        }
    }

    /// Values that are not uint8 over 255 in one row group send that group's image
    /// column to parquet's writer, dictionary-encoded as before (Quantised) or plain
    /// (Continuous); the others still take the own encoder.
    #[test]
    fn other_values_fall_back_per_row_group() {
        let dir = tempfile::tempdir().unwrap();
        let mut rows: Vec<SliceRecord> =
            (0..12).map(|i| with_image(i, byte_image(i, 40))).collect();
        rows[5].image[17] = 0.3; // row group 1 of 3 (4 rows each)
        for values in [ImageValues::Quantised, ImageValues::Continuous] {
            let path = dir.path().join(format!("{values:?}.parquet"));
            let (batch, meta) = write_and_read(&path, &rows, 4, shard_properties(4, values));
            assert_eq!(batch.columns(), slice::to_batch(&rows).columns());
            let image = slice::schema().index_of(slice::col::IMAGE).unwrap();
            let dict: Vec<bool> = meta
                .row_groups()
                .iter()
                .map(|g| g.column(image).dictionary_page_offset().is_some())
                .collect();
            let want = values == ImageValues::Quantised;
            assert_eq!(dict, vec![want; 3], "{values:?}");
            check_with_pyarrow_and_polars(&path, &rows, "any");
        }
    }

    #[test]
    fn an_unfinished_shard_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.parquet");
        let mut f =
            ShardFile::create(&path, shard_properties(4, ImageValues::Quantised), 4).unwrap();
        f.write((0..6).map(record).collect()).unwrap();
        drop(f);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
