//! Which files of `RAW/images/` and `RAW/labels/` make up which case, and a notice for
//! every entry that makes up none.
//!
//! Discovery used to keep only names that fit `CASE_XXXX{file_ending}` and pass over the
//! rest without a word: a case exported as `.nii` next to a `dataset.json` saying
//! `.nii.gz` simply vanished from the count. Every such entry is now a
//! [`StudyError`] naming the file (the pipeline prints it as a warning; `--strict` stops
//! on it). Hidden entries (`.DS_Store`, editors' and copy tools' temporary files) are
//! the one thing still passed over: they are never data.
//!
//! Cases with images but missing labels are not notices: `load` rejects them, naming the
//! missing label file, so they are reported (and listed in `rejects.parquet`) already.
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::dataset_json::DatasetJson;
use crate::study::StudyError;

/// The two endings dataset.json may name.
const ENDINGS: [&str; 2] = [".nii.gz", ".nii"];

/// What the raw folder holds, as discovery sees it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Survey {
    /// Case ids with at least one well-named channel file.
    pub cases: BTreeSet<String>,
    /// Entries that belong to no case, each naming the file; sorted by path.
    pub notices: Vec<StudyError>,
}

/// `CASE` and channel index of an image file name `CASE_XXXX{ending}`, if it has that form.
pub fn image_name(name: &str, ending: &str) -> Option<(String, usize)> {
    let stem = name.strip_suffix(ending)?;
    let (case, idx) = stem.rsplit_once('_')?;
    (idx.len() == 4 && idx.bytes().all(|b| b.is_ascii_digit()) && !case.is_empty())
        .then(|| (case.to_string(), idx.parse().expect("four digits")))
}

/// `CASE` of a label file name `CASE_{RATER}{ending}` for one of `raters`. When several
/// raters fit (rater `b` and `a_b`), the one whose case has images wins.
fn label_case(stem: &str, raters: &[String], cases: &BTreeSet<String>) -> Option<String> {
    let fits: Vec<String> = raters
        .iter()
        .filter_map(|r| stem.strip_suffix(r.as_str())?.strip_suffix('_'))
        .filter(|case| !case.is_empty())
        .map(str::to_string)
        .collect();
    fits.iter()
        .find(|c| cases.contains(*c))
        .or(fits.first())
        .cloned()
}

/// The other NIfTI ending a name carries, when it is not `ending`.
fn other_ending(name: &str, ending: &str) -> Option<&'static str> {
    ENDINGS
        .into_iter()
        .find(|e| *e != ending && name.ends_with(e) && !name.ends_with(ending))
}

/// Visible entries of `dir`, sorted by name; an unreadable folder is an error about the
/// whole input.
fn list(dir: &Path, what: &str) -> Result<Vec<(String, PathBuf)>, StudyError> {
    let err = |e: std::io::Error| StudyError::new(dir, format!("cannot list the {what}: {e}"));
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(err)? {
        let entry = entry.map_err(err)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') {
            out.push((name, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// The notice for an entry whose ending is not dataset.json's, or that is a folder.
fn misplaced(path: &Path, name: &str, ds: &DatasetJson) -> Option<StudyError> {
    if path.is_dir() {
        return Some(StudyError::new(
            path,
            "is a folder; only files are read here, it is not ingested",
        ));
    }
    other_ending(name, &ds.file_ending).map(|e| {
        StudyError::new(
            path,
            format!(
                "ends in `{e}` but dataset.json's file_ending is `{}`: not ingested \
                 (convert the file or fix file_ending)",
                ds.file_ending
            ),
        )
    })
}

/// Lists `RAW/images` and (when present) `RAW/labels` against `ds`.
pub fn survey(raw: &Path, ds: &DatasetJson) -> Result<Survey, StudyError> {
    let ending = ds.file_ending.as_str();
    let n_ch = ds.channels.len();
    let mut out = Survey::default();
    for (name, path) in list(&raw.join("images"), "image folder")? {
        if let Some(n) = misplaced(&path, &name, ds) {
            out.notices.push(n);
            continue;
        }
        match image_name(&name, ending) {
            Some((case, c)) if c < n_ch => {
                out.cases.insert(case);
            }
            Some((_, c)) => out.notices.push(StudyError::new(
                &path,
                format!(
                    "channel index {c:04}, but dataset.json names {n_ch} channel(s) \
                     (0000..{:04}): not ingested",
                    n_ch - 1
                ),
            )),
            None => out.notices.push(StudyError::new(
                &path,
                format!(
                    "name fits no CASE_XXXX{ending} pattern (XXXX = 4-digit channel index): \
                     not ingested"
                ),
            )),
        }
    }
    let labels = raw.join("labels");
    // A missing label folder leaves every case without labels: `load` rejects each one,
    // naming its missing label files.
    if labels.is_dir() {
        for (name, path) in list(&labels, "label folder")? {
            if let Some(n) = misplaced(&path, &name, ds) {
                out.notices.push(n);
                continue;
            }
            let Some(stem) = name.strip_suffix(ending) else {
                out.notices.push(StudyError::new(
                    &path,
                    format!("name fits no CASE_RATER{ending} pattern: not ingested"),
                ));
                continue;
            };
            match label_case(stem, &ds.raters, &out.cases) {
                Some(case) if out.cases.contains(&case) => {}
                Some(case) => out.notices.push(StudyError::new(
                    &path,
                    format!(
                        "labels without images: images/ holds no CASE_XXXX{ending} file of \
                         case `{case}`, so its labels are not ingested"
                    ),
                )),
                None => out.notices.push(StudyError::new(
                    &path,
                    format!(
                        "name fits no CASE_RATER{ending} pattern for the raters {:?} of \
                         dataset.json: not ingested",
                        ds.raters
                    ),
                )),
            }
        }
    }
    out.notices.sort_by(|a, b| a.file.cmp(&b.file));
    Ok(out)
}

/// The notice for a `numTraining` that disagrees with the cases found, if it does.
pub fn count_notice(dataset_json: &Path, ds: &DatasetJson, found: usize) -> Option<StudyError> {
    let n = ds.num_training?;
    (n != found as u64).then(|| {
        StudyError::new(
            dataset_json,
            format!(
                "numTraining is {n} but images/ holds {found} case(s) named \
                 CASE_XXXX{}: some cases are missing or extra",
                ds.file_ending
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_into_case_channel_and_rater() {
        assert_eq!(
            image_name("npc_01_0002.nii.gz", ".nii.gz"),
            Some(("npc_01".into(), 2))
        );
        assert_eq!(image_name("npc_01_0002.nii", ".nii.gz"), None);
        assert_eq!(image_name("npc_01_002.nii.gz", ".nii.gz"), None);
        assert_eq!(image_name("_0002.nii.gz", ".nii.gz"), None);
        let raters = vec!["b".to_string(), "a_b".to_string()];
        let cases: BTreeSet<String> = ["x".to_string()].into();
        assert_eq!(label_case("x_a_b", &raters, &cases), Some("x".into()));
        assert_eq!(label_case("y_b", &raters, &cases), Some("y".into()));
        assert_eq!(label_case("y_c", &raters, &cases), None);
        assert_eq!(other_ending("a.nii", ".nii.gz"), Some(".nii"));
        assert_eq!(other_ending("a.nii.gz", ".nii"), Some(".nii.gz"));
        assert_eq!(other_ending("a.nii.gz", ".nii.gz"), None);
        assert_eq!(other_ending("a.mha", ".nii.gz"), None);
    }
}
