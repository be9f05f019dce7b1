//! The training logs of a run: `train_log.parquet` (tidy [`TrainLogRecord`] rows, for
//! plots) and `train.log` (one readable line per epoch). Both are rewritten atomically at
//! every epoch end, so a killed run leaves complete files; a resumed run drops the rows of
//! epochs it is about to redo.
use std::path::PathBuf;

use schemas::train_log::TrainLogRecord;

use crate::run_dir::RunDir;

pub struct TrainLog {
    parquet: PathBuf,
    text: PathBuf,
    rows: Vec<TrainLogRecord>,
    /// (stage, epoch, line) of the readable log.
    lines: Vec<(u8, u32, String)>,
}

impl TrainLog {
    /// Opens the logs of `run`, reading what an earlier (interrupted) session wrote.
    pub fn open(run: &RunDir) -> Result<Self, schemas::SchemaError> {
        let parquet = run.train_log_path();
        let text = run.text_log_path();
        let rows = if parquet.exists() {
            schemas::read_table::<TrainLogRecord>(&parquet)?.0
        } else {
            Vec::new()
        };
        let lines = match std::fs::read_to_string(&text) {
            Ok(t) => t.lines().filter_map(parse_line).collect(),
            Err(_) => Vec::new(),
        };
        Ok(Self {
            parquet,
            text,
            rows,
            lines,
        })
    }

    /// Keeps only what was logged up to and including (stage, epoch); `epoch = None`
    /// drops all of `stage` (and later stages).
    pub fn truncate_after(&mut self, stage: u8, epoch: Option<u32>) {
        let keep = |s: u8, e: u32| s < stage || (s == stage && epoch.is_some_and(|last| e <= last));
        self.rows.retain(|r| keep(r.stage, r.epoch));
        self.lines.retain(|(s, e, _)| keep(*s, *e));
    }

    pub fn push(&mut self, row: TrainLogRecord) {
        self.rows.push(row);
    }

    /// Adds the readable line of (stage, epoch); it must start with [`line_prefix`].
    pub fn push_line(&mut self, stage: u8, epoch: u32, line: String) {
        self.lines.push((stage, epoch, line));
    }

    /// The newest readable line.
    pub fn last_line(&self) -> Option<&str> {
        self.lines.last().map(|(_, _, l)| l.as_str())
    }

    pub fn rows(&self) -> &[TrainLogRecord] {
        &self.rows
    }

    /// Rewrites both files atomically.
    pub fn flush(&self) -> Result<(), schemas::SchemaError> {
        schemas::write_table(&self.parquet, &self.rows, &[])?;
        let mut text = String::new();
        for (_, _, l) in &self.lines {
            text.push_str(l);
            text.push('\n');
        }
        schemas::atomic::write_file_atomic(&self.text, text.as_bytes())
    }
}

/// `stage S epoch E/T` with E 1-based, the start of every readable line.
pub fn line_prefix(stage: u8, epoch: u32, epochs: u32) -> String {
    format!("stage {stage} epoch {:>3}/{epochs}", epoch + 1)
}

fn parse_line(line: &str) -> Option<(u8, u32, String)> {
    let mut it = line.split_whitespace();
    if it.next()? != "stage" {
        return None;
    }
    let stage: u8 = it.next()?.parse().ok()?;
    if it.next()? != "epoch" {
        return None;
    }
    let e1: u32 = it.next()?.split('/').next()?.parse().ok()?;
    Some((stage, e1.checked_sub(1)?, line.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_back_to_stage_and_epoch() {
        let l = format!("{} | total 0.5", line_prefix(2, 9, 100));
        assert_eq!(parse_line(&l), Some((2, 9, l.clone())));
        assert_eq!(parse_line("resumed at ..."), None);
    }
}
