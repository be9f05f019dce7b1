//! The run folder: where a training run keeps its configuration, checkpoints and logs.
//!
//! ```text
//! RUN/
//!   config.toml          resolved configuration (preset + --config + flags)
//!   run.json             manifest, fold, seed, preset, dpersona version ([`RunInfo`])
//!   train_log.parquet    schemas::train_log rows, rewritten atomically every epoch
//!   train.log            one readable line per epoch
//!   stage1/ stage2/      last.json + last-eNNNN{.safetensors,.adam.safetensors},
//!                        best.json + best-eNNNN.safetensors
//! ```
//! `runs/latest` (a one-line text file holding the run's absolute path) lets
//! `dpersona eval` find the newest run without `--run`.
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;

#[derive(Debug, thiserror::Error)]
pub enum RunDirError {
    #[error(transparent)]
    Schema(#[from] schemas::SchemaError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("{path}: {reason}")]
    Bad { path: PathBuf, reason: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> schemas::SchemaError + '_ {
    move |source| schemas::SchemaError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Facts about a run that are not training settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// Absolute path of the manifest trained on.
    pub manifest: PathBuf,
    pub manifest_fingerprint: String,
    pub dataset: String,
    /// Cross-validation fold held out (None: split-based training).
    pub fold: Option<u32>,
    pub preset: String,
    /// `dpersona`.
    pub method: String,
    /// Stages requested (1, 2 or both).
    pub stages: Vec<u8>,
    pub created_unix_s: u64,
    pub dpersona_version: String,
}

/// Paths inside one run folder.
#[derive(Debug, Clone)]
pub struct RunDir {
    pub root: PathBuf,
}

impl RunDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// `runs/<dataset>-<method>-<UTC timestamp>` under `parent`.
    pub fn default_path(parent: &Path, dataset: &str, method: &str) -> PathBuf {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        parent.join(format!("{dataset}-{method}-{}", utc_stamp(now)))
    }

    pub fn config_path(&self) -> PathBuf {
        self.root.join("config.toml")
    }
    pub fn info_path(&self) -> PathBuf {
        self.root.join("run.json")
    }
    pub fn train_log_path(&self) -> PathBuf {
        self.root.join("train_log.parquet")
    }
    pub fn text_log_path(&self) -> PathBuf {
        self.root.join("train.log")
    }
    /// Checkpoint folder of stage 1 or 2.
    pub fn stage_dir(&self, stage: u8) -> PathBuf {
        self.root.join(format!("stage{stage}"))
    }

    /// The stages to use: `requested` when given, else every stage with a best checkpoint
    /// (`stageN/best.json`), as `eval` and `predict` both default to.
    pub fn stages_or_trained(&self, requested: &[u8]) -> Vec<u8> {
        if requested.is_empty() {
            [1u8, 2]
                .into_iter()
                .filter(|&s| self.stage_dir(s).join("best.json").exists())
                .collect()
        } else {
            requested.to_vec()
        }
    }

    pub fn exists(&self) -> bool {
        self.config_path().is_file()
    }

    pub fn write_config(&self, cfg: &TrainConfig) -> Result<(), RunDirError> {
        Ok(schemas::atomic::write_file_atomic(
            &self.config_path(),
            cfg.to_toml().as_bytes(),
        )?)
    }

    pub fn read_config(&self) -> Result<TrainConfig, RunDirError> {
        let path = self.config_path();
        let text = std::fs::read_to_string(&path).map_err(io(&path))?;
        Ok(TrainConfig::from_toml_str(
            &text,
            &path.display().to_string(),
        )?)
    }

    pub fn write_info(&self, info: &RunInfo) -> Result<(), RunDirError> {
        let json = serde_json::to_string_pretty(info).expect("run info serialises");
        Ok(schemas::atomic::write_file_atomic(
            &self.info_path(),
            json.as_bytes(),
        )?)
    }

    pub fn read_info(&self) -> Result<RunInfo, RunDirError> {
        let path = self.info_path();
        let text = std::fs::read_to_string(&path).map_err(io(&path))?;
        serde_json::from_str(&text).map_err(|e| RunDirError::Bad {
            path,
            reason: format!("not a run.json: {e}"),
        })
    }

    /// Records this run as the latest in `pointer` (a text file holding the absolute path).
    pub fn mark_latest(&self, pointer: &Path) -> Result<(), RunDirError> {
        let abs = std::path::absolute(&self.root).map_err(io(&self.root))?;
        Ok(schemas::atomic::write_file_atomic(
            pointer,
            format!("{}\n", abs.display()).as_bytes(),
        )?)
    }

    /// The run a `latest` pointer file names.
    pub fn from_latest(pointer: &Path) -> Result<Self, RunDirError> {
        let text = std::fs::read_to_string(pointer).map_err(|e| RunDirError::Bad {
            path: pointer.to_path_buf(),
            reason: format!(
                "cannot read the latest-run pointer ({e}); train a run first or pass --run"
            ),
        })?;
        let run = Self::new(text.trim());
        // A run folder, or a folder of per-rater runs (`unet-rater` for all raters).
        if !run.exists() && !Self::new(run.root.join("rater_0")).exists() {
            return Err(RunDirError::Bad {
                path: pointer.to_path_buf(),
                reason: format!(
                    "points at {}, which holds no config.toml (nor rater_0/config.toml)",
                    run.root.display()
                ),
            });
        }
        Ok(run)
    }
}

/// `YYYYMMDD-HHMMSS` (UTC) of a Unix time, without a date crate (civil-from-days).
pub fn utc_stamp(unix_s: u64) -> String {
    let days = (unix_s / 86_400) as i64;
    let secs = unix_s % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_stamp_matches_known_dates() {
        // `date -u -d @0` and `date -u -d @1700000000`.
        assert_eq!(utc_stamp(0), "19700101-000000");
        assert_eq!(utc_stamp(1_700_000_000), "20231114-221320");
        assert_eq!(utc_stamp(951_782_400), "20000229-000000");
    }
}
