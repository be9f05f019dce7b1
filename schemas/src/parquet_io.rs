//! Parquet files with dpersona's identity metadata: atomic writes and checked reads.
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{WriterProperties, WriterPropertiesBuilder};

use crate::atomic::{commit_temp, temp_path_for};
use crate::error::{Result, SchemaError};
use crate::meta::SchemaId;

/// Writes one Parquet file under a temporary name and renames it into place on
/// [`finish`](Self::finish). Dropped unfinished, it deletes the temporary file.
pub struct AtomicParquetWriter {
    path: PathBuf,
    tmp: PathBuf,
    writer: Option<ArrowWriter<File>>,
}

impl AtomicParquetWriter {
    /// Opens a writer for `schema`, zstd-compressed, with row groups of at most
    /// `row_group_rows` rows (small groups let the loader read single rows cheaply).
    pub fn create(
        path: &Path,
        schema: SchemaRef,
        id: &SchemaId,
        row_group_rows: usize,
    ) -> Result<Self> {
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(
                ZstdLevel::try_new(3).expect("valid zstd level"),
            ))
            .set_max_row_group_row_count(Some(row_group_rows.max(1)));
        Self::create_with_properties(path, schema, id, props)
    }

    /// Like [`create`](Self::create), with the caller's writer properties (encodings,
    /// compression, row groups) for files whose columns need other settings, such as slice
    /// shards whose float images gain nothing from dictionary encoding. The schema identity
    /// metadata is added to `props` here.
    pub fn create_with_properties(
        path: &Path,
        schema: SchemaRef,
        id: &SchemaId,
        props: WriterPropertiesBuilder,
    ) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| SchemaError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let tmp = temp_path_for(path);
        let file = File::create(&tmp).map_err(|source| SchemaError::Io {
            path: tmp.clone(),
            source,
        })?;
        let kv = id
            .key_values()
            .into_iter()
            .map(|(k, v)| KeyValue::new(k, v))
            .collect();
        let props = props.set_key_value_metadata(Some(kv)).build();
        let writer = ArrowWriter::try_new(file, schema, Some(props)).map_err(|source| {
            SchemaError::Parquet {
                path: path.to_path_buf(),
                source,
            }
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            tmp,
            writer: Some(writer),
        })
    }

    fn writer(&mut self) -> &mut ArrowWriter<File> {
        self.writer.as_mut().expect("writer used after finish")
    }

    /// Appends a batch (it must have the schema given to [`create`](Self::create)).
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let path = self.path.clone();
        self.writer()
            .write(batch)
            .map_err(|source| SchemaError::Parquet { path, source })
    }

    /// Adds a key-value pair to the file's metadata (written on finish).
    pub fn set_metadata(&mut self, key: &str, value: String) {
        self.writer()
            .append_key_value_metadata(KeyValue::new(key.to_string(), value));
    }

    /// Rows written so far, including those still buffered.
    pub fn rows_written(&self) -> usize {
        let w = self.writer.as_ref().expect("writer used after finish");
        w.flushed_row_groups()
            .iter()
            .map(|g| g.num_rows() as usize)
            .sum::<usize>()
            + w.in_progress_rows()
    }

    /// Closes the file and renames it into place; returns its size in bytes.
    pub fn finish(mut self) -> Result<u64> {
        let writer = self.writer.take().expect("finish called twice");
        writer.close().map_err(|source| SchemaError::Parquet {
            path: self.path.clone(),
            source,
        })?;
        commit_temp(&self.tmp, &self.path)?;
        std::fs::metadata(&self.path)
            .map(|m| m.len())
            .map_err(|source| SchemaError::Io {
                path: self.path.clone(),
                source,
            })
    }
}

impl Drop for AtomicParquetWriter {
    fn drop(&mut self) {
        if self.writer.is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Writes whole batches to `path` atomically, with extra metadata.
pub fn write_batches(
    path: &Path,
    id: &SchemaId,
    schema: SchemaRef,
    batches: &[RecordBatch],
    metadata: &[(&str, String)],
) -> Result<u64> {
    let mut w = AtomicParquetWriter::create(path, schema, id, 64 * 1024)?;
    for b in batches {
        w.write(b)?;
    }
    for (k, v) in metadata {
        w.set_metadata(k, v.clone());
    }
    w.finish()
}

/// A Parquet file whose dpersona schema identity has been checked.
pub struct CheckedFile {
    pub path: PathBuf,
    pub builder: ParquetRecordBatchReaderBuilder<File>,
    pub metadata: HashMap<String, String>,
    /// The schema version the file was written with (at most the one this build writes).
    pub version: u32,
}

/// Opens `path` and checks that it is a `id.name` file at a version we can read.
pub fn open_checked(path: &Path, id: &SchemaId) -> Result<CheckedFile> {
    let file = File::open(path).map_err(|source| SchemaError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(|source| SchemaError::Parquet {
            path: path.to_path_buf(),
            source,
        })?;
    let metadata: HashMap<String, String> = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .map(|kvs| {
            kvs.iter()
                .filter_map(|kv| kv.value.clone().map(|v| (kv.key.clone(), v)))
                .collect()
        })
        .unwrap_or_default();
    let version = id.validate(path, &metadata)?;
    Ok(CheckedFile {
        path: path.to_path_buf(),
        builder,
        metadata,
        version,
    })
}

impl CheckedFile {
    /// Reads every row.
    pub fn read_all(self) -> Result<Vec<RecordBatch>> {
        let path = self.path.clone();
        let reader = self
            .builder
            .build()
            .map_err(|source| SchemaError::Parquet {
                path: path.clone(),
                source,
            })?;
        reader
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|source| SchemaError::Arrow { path, source })
    }

    /// A metadata value, or an error naming the missing key.
    pub fn require(&self, key: &str, name: &'static str) -> Result<&str> {
        self.metadata.get(key).map(String::as_str).ok_or_else(|| {
            SchemaError::invalid(&self.path, name, format!("metadata key `{key}` is missing"))
        })
    }
}
