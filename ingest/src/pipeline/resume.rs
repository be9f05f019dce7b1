//! What an earlier (possibly killed) run left in the output folder.
//!
//! Only finished shards count: a killed writer leaves at most a temporary file
//! (`.shard-NNNNN.parquet.<pid>.tmp`), which is deleted here, and its studies are simply
//! not listed in any finished shard, so they are read again. Because a shard holds whole
//! studies and is renamed into place only when complete, "the studies listed in finished
//! shards" is exactly the set of studies whose rows are safely on disk: a rerun neither
//! loses nor duplicates rows whenever the earlier run was killed.
use std::collections::BTreeSet;
use std::path::Path;

use schemas::atomic::is_temp_name;
use schemas::parquet_io::open_checked;
use schemas::slice::{self, KEY_FINGERPRINT, KEY_STUDIES};

use super::shard_writer::{parse_shard_name, FinishedShard, WrittenStudy, KEY_STUDY_RECORDS};
use super::IngestError;

/// Deletes temporary files left by killed writers in `dir` (shards, manifest, rejects).
pub fn remove_temp_files(dir: &Path) -> Result<usize, IngestError> {
    if !dir.is_dir() {
        return Ok(0);
    }
    let mut removed = 0;
    for entry in std::fs::read_dir(dir).map_err(|e| IngestError::io(dir, e))? {
        let entry = entry.map_err(|e| IngestError::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_temp_name(&name) && entry.path().is_file() {
            std::fs::remove_file(entry.path()).map_err(|e| IngestError::io(&entry.path(), e))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Reads the finished shards in `dir`, sorted by index. Every shard must carry
/// `fingerprint`; a shard made with other parameters is an error (the caller suggests
/// another `--out` or `--overwrite`), as is a study listed by two shards.
pub fn scan_shards(dir: &Path, fingerprint: &str) -> Result<Vec<FinishedShard>, IngestError> {
    let mut shards = Vec::new();
    if !dir.is_dir() {
        return Ok(shards);
    }
    for entry in std::fs::read_dir(dir).map_err(|e| IngestError::io(dir, e))? {
        let entry = entry.map_err(|e| IngestError::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(index) = parse_shard_name(&name) else {
            continue;
        };
        shards.push(read_shard(&entry.path(), index, fingerprint)?);
    }
    shards.sort_by_key(|s| s.index);
    let mut seen = BTreeSet::new();
    for shard in &shards {
        for study in &shard.studies {
            if !seen.insert(study.study_id.clone()) {
                return Err(IngestError::BadShard {
                    path: shard.path.clone(),
                    reason: format!(
                        "study `{}` is also in an earlier shard (were two ingests run into the same --out?); \
                         rerun with --overwrite",
                        study.study_id
                    ),
                });
            }
        }
    }
    Ok(shards)
}

fn read_shard(path: &Path, index: u32, fingerprint: &str) -> Result<FinishedShard, IngestError> {
    let file = open_checked(path, &slice::SCHEMA)?;
    let found = file.require(KEY_FINGERPRINT, slice::SCHEMA.name)?;
    if found != fingerprint {
        return Err(IngestError::FingerprintMismatch {
            path: path.to_path_buf(),
            found: found.to_string(),
            expected: fingerprint.to_string(),
        });
    }
    let bad = |reason: String| IngestError::BadShard {
        path: path.to_path_buf(),
        reason,
    };
    let ids: Vec<String> = serde_json::from_str(file.require(KEY_STUDIES, slice::SCHEMA.name)?)
        .map_err(|e| {
            bad(format!(
                "`{KEY_STUDIES}` is not a JSON list of study ids: {e}"
            ))
        })?;
    let studies: Vec<WrittenStudy> =
        serde_json::from_str(file.require(KEY_STUDY_RECORDS, slice::SCHEMA.name)?)
            .map_err(|e| bad(format!("`{KEY_STUDY_RECORDS}` does not parse: {e}")))?;
    let listed: Vec<&str> = studies.iter().map(|s| s.study_id.as_str()).collect();
    if listed != ids {
        return Err(bad(format!(
            "`{KEY_STUDIES}` and `{KEY_STUDY_RECORDS}` list different studies"
        )));
    }
    let rows = file.builder.metadata().file_metadata().num_rows() as u64;
    let counted: u64 = studies.iter().map(|s| s.n_slices as u64).sum();
    if rows != counted {
        return Err(bad(format!(
            "holds {rows} rows but its studies account for {counted}"
        )));
    }
    Ok(FinishedShard {
        path: path.to_path_buf(),
        index,
        rows,
        studies,
        sha256: None,
    })
}
