//! Studies loaded in parallel, written by one thread.
//!
//! ```text
//! rayon pool (--threads): load(study) ──► bounded channel (2 x threads) ──► writer thread
//!                                                                          ShardWriter
//! ```
//! The channel is bounded so that a fast reader cannot pile decoded studies up in memory
//! while the writer compresses: at most `threads` studies being loaded plus `2 x threads`
//! waiting are alive at once, whatever the dataset size, so peak memory stays flat.
//! A single writer keeps shard contents and numbering simple and deterministic per run.
use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam_channel::{bounded, Receiver};
use indicatif::ProgressBar;
use rayon::prelude::*;

use schemas::rejects::RejectRecord;

use super::shard_writer::{FinishedShard, ShardWriter};
use super::IngestError;
use crate::study::{SourceFormat, StudyError, StudyInput, StudyOutput};

/// Rejected studies printed one by one on stderr; past these a count is printed (a
/// dataset with thousands of bad files would otherwise bury the summary).
pub const PRINTED_REJECTS: usize = 20;

/// Prints `line` on stderr above the progress bar. Not `ProgressBar::println`: that prints
/// nothing while the bar is hidden, and indicatif hides it whenever stderr is not a
/// terminal (a log file, a CI job), which dropped every `rejected ...` line there.
pub(crate) fn print_line(progress: &ProgressBar, line: &str) {
    progress.suspend(|| eprintln!("{line}"));
}

enum Message<'a> {
    Loaded(&'a StudyInput, StudyOutput),
    Failed(&'a StudyInput, StudyError),
    /// Every study was sent. Without it (a producer panicked) the open shard is dropped,
    /// which deletes its temporary file: only finished shards ever hold rows.
    Done,
}

/// What the writer produced.
pub struct LoadResult {
    pub shards: Vec<FinishedShard>,
    pub rejects: Vec<RejectRecord>,
}

/// Loads `todo` with `format` on `pool` and writes the rows with `writer`; `progress`
/// (None = quiet) counts studies and prints the first rejects.
pub fn load_and_write(
    format: &dyn SourceFormat,
    todo: &[StudyInput],
    pool: &rayon::ThreadPool,
    writer: ShardWriter,
    n_raters: usize,
    strict: bool,
    progress: Option<&ProgressBar>,
) -> Result<LoadResult, IngestError> {
    let (tx, rx) = bounded::<Message>(2 * pool.current_num_threads().max(1));
    let cancel = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let handle = scope.spawn(|| write_all(rx, writer, n_raters, strict, progress, &cancel));
        pool.install(|| {
            todo.par_iter().for_each_with(tx.clone(), |tx, study| {
                if cancel.load(Ordering::Relaxed) {
                    return;
                }
                let message = match format.load(study) {
                    Ok(out) => Message::Loaded(study, out),
                    Err(e) => Message::Failed(study, e),
                };
                // A send fails only when the writer has stopped (error or --strict).
                if tx.send(message).is_err() {
                    cancel.store(true, Ordering::Relaxed);
                }
            })
        });
        let _ = tx.send(Message::Done);
        drop(tx);
        handle
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

fn write_all(
    rx: Receiver<Message<'_>>,
    mut writer: ShardWriter,
    n_raters: usize,
    strict: bool,
    progress: Option<&ProgressBar>,
    cancel: &AtomicBool,
) -> Result<LoadResult, IngestError> {
    let stop = |e: IngestError| {
        cancel.store(true, Ordering::Relaxed);
        e
    };
    let mut rejects = Vec::new();
    for message in rx.iter() {
        let (study, error) = match message {
            Message::Done => {
                if let Some(bar) = progress.filter(|_| rejects.len() > PRINTED_REJECTS) {
                    print_line(
                        bar,
                        &format!(
                        "... and {} more rejected studies (every one is listed in rejects.parquet)",
                            rejects.len() - PRINTED_REJECTS
                        ),
                    );
                }
                let shards = writer.finish().map_err(|e| stop(e.into()))?;
                return Ok(LoadResult { shards, rejects });
            }
            Message::Loaded(study, out) => match check_output(study, &out, n_raters) {
                Ok(()) => {
                    writer.add_study(study, out).map_err(|e| stop(e.into()))?;
                    progress.inspect(|bar| bar.inc(1));
                    continue;
                }
                Err(e) => (study, e),
            },
            Message::Failed(study, e) => (study, e),
        };
        if strict {
            return Err(stop(IngestError::Strict {
                study_id: study.study_id.clone(),
                source: error,
            }));
        }
        if let Some(bar) = progress {
            if rejects.len() < PRINTED_REJECTS {
                print_line(bar, &format!("rejected {}: {error}", study.study_id));
            }
            bar.inc(1);
        }
        rejects.push(RejectRecord {
            study_id: study.study_id.clone(),
            file: error.file.display().to_string(),
            reason: error.reason,
        });
    }
    Err(IngestError::Interrupted)
}

/// Rejects a study whose rows would make a shard the loader cannot read: rows of another
/// study, or list lengths that do not match the declared shapes.
fn check_output(study: &StudyInput, out: &StudyOutput, n_raters: usize) -> Result<(), StudyError> {
    let file = study
        .files
        .first()
        .cloned()
        .unwrap_or_else(|| study.source_path.clone().into());
    for (i, s) in out.slices.iter().enumerate() {
        let hw = (s.height * s.width) as usize;
        let problem = if s.study_id != study.study_id || s.patient_id != study.patient_id {
            Some(format!(
                "row {i} is labelled study `{}` / patient `{}`, expected `{}` / `{}`",
                s.study_id, s.patient_id, study.study_id, study.patient_id
            ))
        } else if s.raters_present.len() != n_raters {
            Some(format!(
                "row {i} has {} raters, the dataset has {n_raters}",
                s.raters_present.len()
            ))
        } else if s.image.len() != s.channels as usize * hw
            || s.masks.len() != n_raters * hw
            || s.intersection.len() != hw
            || s.union.len() != hw
            || s.rater_area.len() != n_raters
            || s.source_files.len() != s.source_sha256.len()
        {
            Some(format!(
                "row {i} (target {}, slice {}) has list lengths that do not match {}x{}x{} with {n_raters} raters",
                s.target_id, s.slice_index, s.channels, s.height, s.width
            ))
        } else {
            None
        };
        if let Some(p) = problem {
            return Err(StudyError::new(
                file,
                format!("format produced a malformed slice: {p}"),
            ));
        }
    }
    Ok(())
}
