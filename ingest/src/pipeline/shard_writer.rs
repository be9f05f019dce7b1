//! Writes slice rows into rolling Parquet shards, whole studies at a time.
//!
//! Layout: `OUT/shards/shard-NNNNN.parquet`. Each shard is written under a temporary name
//! and renamed into place when full (see [`super::shard_file::ShardFile`]), so
//! a finished shard name always means a complete file. A shard only ever holds whole
//! studies; its metadata lists them ([`schemas::slice::KEY_STUDIES`]) with the preprocessing
//! fingerprint ([`schemas::slice::KEY_FINGERPRINT`]) and, for resuming, each study's
//! manifest facts ([`KEY_STUDY_RECORDS`]).
use std::path::{Path, PathBuf};

use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterPropertiesBuilder};
use parquet::schema::types::ColumnPath;
use serde::{Deserialize, Serialize};

use schemas::slice::{self, KEY_FINGERPRINT, KEY_STUDIES};
use schemas::SchemaError;

use super::shard_file::ShardFile;
use crate::study::{ImageValues, StudyInput, StudyOutput};

/// Shard metadata key (ingest's own): JSON list of [`WrittenStudy`], in the order the
/// studies' rows appear in the shard. It lets a resumed run rebuild the manifest rows of
/// studies it does not read again (the volume shape is not in the slice rows).
pub const KEY_STUDY_RECORDS: &str = "dpersona.ingest.study_records";

/// Sub-folder of the output folder holding the shards.
pub const SHARD_DIR: &str = "shards";

/// Rows per Parquet row group. The training loader reads random single slices; Parquet
/// decodes whole row groups (per column chunk), so a group must be small enough that
/// fetching one row does not decode hundreds of others: 32 rows of a 128 x 128 crop with
/// 1 to 3 channels and 4 rater masks are 4-10 MB decoded, a few hundred kB zstd-compressed,
/// yet large enough that per-group overhead (page headers, statistics) stays under 1%.
pub const DEFAULT_ROW_GROUP_ROWS: usize = 32;

/// zstd level of the shards: 2, one below the level of every other file we write. The
/// float image column is nearly all of a shard's bytes and of its encoding time; on 50
/// synthetic LIDC studies level 2 cut ingest's CPU time by about a third against level 3
/// for shards 15% larger (11 vs 9.6 MB), while level 1 saved no more CPU and made them 55%
/// larger. Shards are written once and read whole into memory by the loader, so a few
/// more bytes cost nothing at training time.
pub const SHARD_ZSTD_LEVEL: i32 = 2;

/// The per-pixel columns, large and never filtered on by value: the image (a list, whose
/// leaf is `image.list.item`) and the bit-packed masks (binary, a leaf of their own).
const PIXEL_COLUMNS: [&[&str]; 4] = [
    &[slice::col::IMAGE, "list", "item"],
    &[slice::col::MASKS],
    &[slice::col::INTERSECTION],
    &[slice::col::UNION],
];

/// Writer settings of a slice shard.
///
/// Dictionary encoding is off except for the image column of [`ImageValues::Quantised`]
/// datasets (windowed CT: a few thousand distinct values, which the dictionary codes in
/// ~11 bits, leaving zstd a third of the bytes). Where those values are uint8 crops over
/// 255 (the LIDC pickle), [`super::image_chunk`] writes that dictionary itself, without
/// parquet-rs's per-value hashing. Elsewhere it only costs: the masks are
/// bit-packed binaries, z-scored images have nearly all values distinct, and the small
/// columns do not matter. (Before the masks were packed, dictionary hash lookups on their
/// 98k values per row were the largest single cost of ingest.) Min/max statistics of the
/// per-pixel columns are off too: a reader never prunes row groups by pixel values, and
/// computing them is another pass over every value.
pub(crate) fn shard_properties(
    row_group_rows: usize,
    image_values: ImageValues,
) -> WriterPropertiesBuilder {
    let mut props = WriterProperties::builder()
        .set_dictionary_enabled(false)
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(SHARD_ZSTD_LEVEL).expect("valid zstd level"),
        ))
        .set_max_row_group_row_count(Some(row_group_rows.max(1)));
    for leaf in PIXEL_COLUMNS {
        let path = ColumnPath::from(leaf.iter().map(|p| p.to_string()).collect::<Vec<_>>());
        props = props.set_column_statistics_enabled(path, EnabledStatistics::None);
    }
    let image = ColumnPath::from(vec![
        slice::col::IMAGE.to_string(),
        "list".into(),
        "item".into(),
    ]);
    props.set_column_dictionary_enabled(image, image_values == ImageValues::Quantised)
}

/// Manifest facts about one study whose rows are in a shard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WrittenStudy {
    pub study_id: String,
    pub patient_id: String,
    pub source_path: String,
    /// Distinct targets among the study's slice rows.
    pub n_targets: u32,
    pub n_slices: u32,
    /// Source volume shape `[depth, height, width]`.
    pub volume_shape: [u32; 3],
}

impl WrittenStudy {
    pub fn new(input: &StudyInput, output: &StudyOutput) -> Self {
        let targets: std::collections::BTreeSet<&str> =
            output.slices.iter().map(|s| s.target_id.as_str()).collect();
        WrittenStudy {
            study_id: input.study_id.clone(),
            patient_id: input.patient_id.clone(),
            source_path: input.source_path.clone(),
            n_targets: targets.len() as u32,
            n_slices: output.slices.len() as u32,
            volume_shape: output.volume_shape,
        }
    }
}

/// A shard renamed into place.
#[derive(Debug, Clone, PartialEq)]
pub struct FinishedShard {
    pub path: PathBuf,
    /// The `NNNNN` of `shard-NNNNN.parquet`.
    pub index: u32,
    pub rows: u64,
    pub studies: Vec<WrittenStudy>,
    /// SHA-256 of the file when this run wrote it (hashed as written); None for a shard
    /// found on disk, which is hashed when the manifest is built.
    pub sha256: Option<String>,
}

/// File name of shard `index`.
pub fn shard_name(index: u32) -> String {
    format!("shard-{index:05}.parquet")
}

/// The index of a finished shard's file name, or None for any other name.
pub fn parse_shard_name(name: &str) -> Option<u32> {
    name.strip_prefix("shard-")?
        .strip_suffix(".parquet")?
        .parse()
        .ok()
}

struct OpenShard {
    writer: ShardFile,
    path: PathBuf,
    index: u32,
    rows: u64,
    studies: Vec<WrittenStudy>,
}

/// Appends whole studies to the current shard and rolls over to a new one once it holds
/// at least `shard_rows` rows (a shard may therefore exceed `shard_rows` by one study).
pub struct ShardWriter {
    dir: PathBuf,
    fingerprint: String,
    shard_rows: usize,
    row_group_rows: usize,
    image_values: ImageValues,
    next_index: u32,
    current: Option<OpenShard>,
    finished: Vec<FinishedShard>,
}

impl ShardWriter {
    /// `first_index`: the index the first new shard gets (one past any shard on disk).
    pub fn new(
        dir: &Path,
        fingerprint: &str,
        shard_rows: usize,
        row_group_rows: usize,
        image_values: ImageValues,
        first_index: u32,
    ) -> Self {
        ShardWriter {
            dir: dir.to_path_buf(),
            fingerprint: fingerprint.to_string(),
            shard_rows: shard_rows.max(1),
            row_group_rows: row_group_rows.max(1),
            image_values,
            next_index: first_index,
            current: None,
            finished: Vec::new(),
        }
    }

    /// Writes all rows of one study (possibly none) to the current shard. The rows are
    /// taken, not copied: they wait in the open row group until it is full and are turned
    /// into Arrow columns on that group's encoding thread.
    pub fn add_study(
        &mut self,
        input: &StudyInput,
        output: StudyOutput,
    ) -> Result<(), SchemaError> {
        if self.current.is_none() {
            let index = self.next_index;
            self.next_index += 1;
            let path = self.dir.join(shard_name(index));
            let writer = ShardFile::create(
                &path,
                shard_properties(self.row_group_rows, self.image_values),
                self.row_group_rows,
            )?;
            self.current = Some(OpenShard {
                writer,
                path,
                index,
                rows: 0,
                studies: Vec::new(),
            });
        }
        let shard = self.current.as_mut().expect("opened above");
        shard.studies.push(WrittenStudy::new(input, &output));
        shard.rows += output.slices.len() as u64;
        shard.writer.write(output.slices)?;
        if shard.rows as usize >= self.shard_rows {
            self.roll()?;
        }
        Ok(())
    }

    fn roll(&mut self) -> Result<(), SchemaError> {
        let Some(mut shard) = self.current.take() else {
            return Ok(());
        };
        let ids: Vec<&str> = shard.studies.iter().map(|s| s.study_id.as_str()).collect();
        shard
            .writer
            .set_metadata(KEY_FINGERPRINT, self.fingerprint.clone());
        shard.writer.set_metadata(
            KEY_STUDIES,
            serde_json::to_string(&ids).expect("ids serialise"),
        );
        shard.writer.set_metadata(
            KEY_STUDY_RECORDS,
            serde_json::to_string(&shard.studies).expect("records serialise"),
        );
        let sha256 = shard.writer.finish()?;
        self.finished.push(FinishedShard {
            path: shard.path,
            index: shard.index,
            rows: shard.rows,
            studies: shard.studies,
            sha256: Some(sha256),
        });
        Ok(())
    }

    /// Finishes the open shard (if any) and returns every shard this writer finished.
    pub fn finish(mut self) -> Result<Vec<FinishedShard>, SchemaError> {
        self.roll()?;
        Ok(std::mem::take(&mut self.finished))
    }
}
