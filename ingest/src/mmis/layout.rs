//! Where the cases of an MMIS-2024 Task 1 folder are, and which split each belongs to.
//!
//! ```text
//! RAW/training/Sample_<n>.h5                  public release: one 3D case per file
//! RAW/validation/Sample_<n>.h5
//! RAW/testing/Sample_<n>.h5                   (the paper's test set; not public)
//! RAW/training_2d/Sample_<n>_slice_<k>.h5     the official loader's layout: one 2D slice
//!                                             per file, grouped back into case n by k
//! ```
//! Any `<folder>_2d` of the three holds 2D slice files of that folder's split. A case whose
//! 3D file and 2D slice files are both present is one study with both kinds of files; it
//! is rejected when loaded (which of the two is the truth cannot be told). Everything
//! else (other names, subfolders, other top-level entries) is reported as a notice.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::study::StudyError;

/// The release's three folders, in split order.
pub const FOLDERS: [(&str, &str); 3] = [
    ("training", "train"),
    ("validation", "val"),
    ("testing", "test"),
];

/// One case found on disk, not yet read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Case {
    /// `training`, `validation` or `testing`.
    pub folder: String,
    /// The sample number `n` of `Sample_<n>`.
    pub sample: u64,
    /// `<folder>/Sample_<n>.h5`, when present.
    pub volume: Option<PathBuf>,
    /// `<folder>_2d/Sample_<n>_slice_<k>.h5` by k.
    pub slices: BTreeMap<u64, PathBuf>,
}

/// What a file name says it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// `Sample_<n>.h5`.
    Volume { sample: u64 },
    /// `Sample_<n>_slice_<k>.h5`.
    Slice { sample: u64, k: u64 },
}

/// Decimal digits only (no sign, no empty string), as a number.
fn number(s: &str) -> Option<u64> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// The kind of a file name, if it fits one of the two patterns.
pub fn file_kind(name: &str) -> Option<FileKind> {
    let stem = name.strip_suffix(".h5")?.strip_prefix("Sample_")?;
    if let Some((n, k)) = stem.split_once("_slice_") {
        return Some(FileKind::Slice {
            sample: number(n)?,
            k: number(k)?,
        });
    }
    Some(FileKind::Volume {
        sample: number(stem)?,
    })
}

/// Cases keyed by (folder, sample number).
pub type Cases = BTreeMap<(String, u64), Case>;

/// Every case under `raw`, keyed by (folder, sample), and the notices about entries that
/// are left out (each naming the entry). An unreadable folder is an error of the whole
/// input; no case at all is one too.
pub fn scan(raw: &Path) -> Result<(Cases, Vec<StudyError>), StudyError> {
    let mut cases = Cases::new();
    let mut notices = Vec::new();
    let known: Vec<String> = FOLDERS
        .iter()
        .flat_map(|(f, _)| [f.to_string(), format!("{f}_2d")])
        .collect();
    for name in list(raw)? {
        let path = raw.join(&name);
        if !known.contains(&name) {
            notices.push(StudyError::new(
                &path,
                format!(
                    "left out: not one of the release's folders ({})",
                    known.join(", ")
                ),
            ));
        }
    }
    for (folder, _) in FOLDERS {
        for (dir, two_d) in [
            (raw.join(folder), false),
            (raw.join(format!("{folder}_2d")), true),
        ] {
            if !dir.is_dir() {
                continue;
            }
            for name in list(&dir)? {
                let path = dir.join(&name);
                let kind = file_kind(&name).filter(|_| path.is_file());
                match (kind, two_d) {
                    (Some(FileKind::Volume { sample }), false) => {
                        case(&mut cases, folder, sample).volume = Some(path);
                    }
                    (Some(FileKind::Slice { sample, k }), true) => {
                        case(&mut cases, folder, sample).slices.insert(k, path);
                    }
                    _ => notices.push(StudyError::new(
                        &path,
                        if two_d {
                            "left out: not a 2D slice file named Sample_<n>_slice_<k>.h5"
                        } else {
                            "left out: not a 3D case file named Sample_<n>.h5"
                        },
                    )),
                }
            }
        }
    }
    if cases.is_empty() {
        return Err(StudyError::new(
            raw,
            "no MMIS cases: expected training/, validation/ or testing/ with Sample_<n>.h5 \
             files (or <folder>_2d/ with Sample_<n>_slice_<k>.h5 files)",
        ));
    }
    for c in cases.values() {
        if let Some(gaps) = slice_gaps(c) {
            notices.push(StudyError::new(
                c.slices.values().next().expect("slices"),
                gaps,
            ));
        }
    }
    Ok((cases, notices))
}

/// A notice when the slice numbers of a 2D-layout case do not run 0, 1, 2, ... without a
/// gap: the case is still ingested with the slices present, each keeping its k as
/// `slice_index`, and its volume is those planes stacked in k order.
fn slice_gaps(c: &Case) -> Option<String> {
    let last = *c.slices.keys().next_back()?;
    let missing: Vec<u64> = (0..=last).filter(|k| !c.slices.contains_key(k)).collect();
    if missing.is_empty() {
        return None;
    }
    let shown: Vec<String> = missing.iter().take(10).map(u64::to_string).collect();
    Some(format!(
        "Sample_{}: slice files for k = 0..={last} lack k = {}{}; the case is ingested with \
         the {} slices present (its volume stacks them in k order)",
        c.sample,
        shown.join(", "),
        if missing.len() > 10 { ", ..." } else { "" },
        c.slices.len()
    ))
}

fn case<'a>(cases: &'a mut Cases, folder: &str, sample: u64) -> &'a mut Case {
    cases
        .entry((folder.to_string(), sample))
        .or_insert_with(|| Case {
            folder: folder.to_string(),
            sample,
            ..Case::default()
        })
}

/// Names in `dir`, sorted, without hidden entries (temporary files, `.DS_Store`).
fn list(dir: &Path) -> Result<Vec<String>, StudyError> {
    let err = |e: std::io::Error| StudyError::new(dir, format!("cannot list the folder: {e}"));
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(err)? {
        let name = entry
            .map_err(err)?
            .file_name()
            .to_string_lossy()
            .into_owned();
        if !name.starts_with('.') {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names() {
        assert_eq!(
            file_kind("Sample_12.h5"),
            Some(FileKind::Volume { sample: 12 })
        );
        assert_eq!(
            file_kind("Sample_3_slice_17.h5"),
            Some(FileKind::Slice { sample: 3, k: 17 })
        );
        for bad in [
            "Sample_x.h5",
            "Sample_.h5",
            "Sample_1.h5.bak",
            "notes.txt",
            "Sample_1_slice_.h5",
            "Sample_-1.h5",
            "sample_1.h5",
        ] {
            assert_eq!(file_kind(bad), None, "{bad}");
        }
    }
}
