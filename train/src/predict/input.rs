//! Which cases the INPUT arguments of `dpersona predict` name, and their files.
//!
//! nnU-Net's naming is the contract: a case is `CASE_0000.nii.gz`, `CASE_0001.nii.gz`, ...,
//! one file per channel, the number being the channel's index in the run's manifest (the
//! order the run was trained on). An INPUT is
//! - a NIfTI file (`.nii` / `.nii.gz`): one channel of a case (several files of the same
//!   case on the command line make up its channels); a file without the `_XXXX` suffix is a
//!   whole case of a one-channel run;
//! - a folder of such files, or a folder holding `imagesTs/` (an nnU-Net dataset folder);
//! - a folder of DICOM files: one CT series, the case named after the folder.
//!
//! A case whose channels do not fit the run (missing, extra, unnumbered) is a [`CaseError`]
//! naming its files; the other cases are still predicted.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where one case's image comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum CaseSource {
    /// One NIfTI file per channel, in the run's channel order.
    Nifti(Vec<PathBuf>),
    /// A folder holding one DICOM series.
    Dicom(PathBuf),
}

/// One case to predict.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseInput {
    /// Output folder name (`DIR/<case>/`).
    pub case: String,
    pub source: CaseSource,
}

impl CaseInput {
    /// The files (or folder) the case is read from, for messages and `predict.json`.
    pub fn paths(&self) -> Vec<PathBuf> {
        match &self.source {
            CaseSource::Nifti(files) => files.clone(),
            CaseSource::Dicom(dir) => vec![dir.clone()],
        }
    }
}

/// A case that cannot be predicted, and why (the message names the file at fault).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("case {case}: {reason}")]
pub struct CaseError {
    pub case: String,
    pub reason: String,
}

impl CaseError {
    pub fn new(case: impl Into<String>, reason: impl Into<String>) -> Self {
        CaseError {
            case: case.into(),
            reason: reason.into(),
        }
    }
}

/// The cases found (sorted by name) and those refused while grouping files.
#[derive(Debug, Default)]
pub struct Discovered {
    pub cases: Vec<CaseInput>,
    pub errors: Vec<CaseError>,
}

/// NIfTI file endings, longest first.
const NIFTI_ENDINGS: [&str; 2] = [".nii.gz", ".nii"];

/// The NIfTI ending of a file name, if it has one.
fn nifti_ending(name: &str) -> Option<&'static str> {
    NIFTI_ENDINGS.into_iter().find(|e| name.ends_with(e))
}

/// `(CASE, Some(channel))` for `CASE_XXXX.nii[.gz]`, `(stem, None)` for another NIfTI name.
fn split_name(name: &str) -> Option<(String, Option<usize>)> {
    let stem = name.strip_suffix(nifti_ending(name)?)?;
    if let Some((case, idx)) = stem.rsplit_once('_') {
        if idx.len() == 4 && idx.bytes().all(|b| b.is_ascii_digit()) && !case.is_empty() {
            return Some((case.to_string(), idx.parse().ok()));
        }
    }
    Some((stem.to_string(), None))
}

/// True when `path` starts like a DICOM Part-10 file (`DICM` at byte 128) or is named `.dcm`.
pub fn looks_like_dicom(path: &Path) -> bool {
    use std::io::Read;
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("dcm"))
    {
        return true;
    }
    let mut head = [0u8; 132];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && &head[128..] == b"DICM"
}

/// Visible files of a folder, sorted; an unreadable folder is an error naming it.
fn list_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: cannot list the folder: {e}", dir.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: cannot list the folder: {e}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue; // hidden or temporary files (ours are `.partial-*`)
        }
        let path = entry.path();
        if path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Finds the cases of `inputs` for a run trained on `channels` (names in channel order).
/// Errors that concern one INPUT (a missing path, a folder with nothing to read) are
/// returned as the whole call's error: the command line itself is wrong.
pub fn discover(inputs: &[PathBuf], channels: &[String]) -> Result<Discovered, String> {
    // (case) -> channel files seen; `None` channel = unnumbered name.
    let mut nifti: BTreeMap<String, Vec<(Option<usize>, PathBuf)>> = BTreeMap::new();
    let mut dicom: BTreeMap<String, PathBuf> = BTreeMap::new();
    for input in inputs {
        if input.is_dir() {
            let dir = if input.join("imagesTs").is_dir() {
                input.join("imagesTs")
            } else {
                input.clone()
            };
            let files = list_files(&dir)?;
            let niftis: Vec<&PathBuf> = files
                .iter()
                .filter(|f| {
                    nifti_ending(&f.file_name().unwrap_or_default().to_string_lossy()).is_some()
                })
                .collect();
            if !niftis.is_empty() {
                for f in niftis {
                    add_nifti(&mut nifti, f);
                }
            } else if files.iter().any(|f| looks_like_dicom(f)) {
                let case = case_name_of_dir(&dir);
                if let Some(first) = dicom.insert(case.clone(), dir.clone()) {
                    return Err(format!(
                        "{} and {} both give case `{case}` (case names come from the folder name); rename one",
                        first.display(),
                        dir.display()
                    ));
                }
            } else {
                return Err(format!(
                    "{}: no NIfTI images (CASE_0000.nii.gz, ...) and no DICOM files in this folder",
                    dir.display()
                ));
            }
        } else if input.is_file() {
            let name = input.file_name().unwrap_or_default().to_string_lossy();
            if nifti_ending(&name).is_none() {
                return Err(format!(
                    "{}: not a NIfTI file (.nii or .nii.gz); a DICOM series is given as its folder",
                    input.display()
                ));
            }
            add_nifti(&mut nifti, input);
        } else {
            return Err(format!("{}: no such file or folder", input.display()));
        }
    }
    let mut found = Discovered::default();
    for (case, files) in nifti {
        if dicom.contains_key(&case) {
            found.errors.push(CaseError::new(
                &case,
                "given both as NIfTI files and as a DICOM folder; predicted from neither",
            ));
            continue;
        }
        match channel_files(&case, files, channels) {
            Ok(files) => found.cases.push(CaseInput {
                case,
                source: CaseSource::Nifti(files),
            }),
            Err(e) => found.errors.push(e),
        }
    }
    for (case, dir) in dicom {
        if !found.errors.iter().any(|e| e.case == case) {
            found.cases.push(CaseInput {
                case,
                source: CaseSource::Dicom(dir),
            });
        }
    }
    found.cases.sort_by(|a, b| a.case.cmp(&b.case));
    Ok(found)
}

fn add_nifti(map: &mut BTreeMap<String, Vec<(Option<usize>, PathBuf)>>, file: &Path) {
    let name = file.file_name().unwrap_or_default().to_string_lossy();
    if let Some((case, channel)) = split_name(&name) {
        let entry = map.entry(case).or_default();
        if !entry.iter().any(|(_, f)| f == file) {
            entry.push((channel, file.to_path_buf()));
        }
    }
}

/// A DICOM folder's case name: the folder's own name.
fn case_name_of_dir(dir: &Path) -> String {
    std::fs::canonicalize(dir)
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "series".into())
}

/// The case's files in channel order, or an error saying what does not fit the run.
fn channel_files(
    case: &str,
    mut files: Vec<(Option<usize>, PathBuf)>,
    channels: &[String],
) -> Result<Vec<PathBuf>, CaseError> {
    let n = channels.len();
    let expected = || {
        let names: Vec<String> = (0..n)
            .map(|c| format!("{case}_{c:04} ({})", channels[c]))
            .collect();
        format!(
            "the run was trained on {n} channel{} ({})",
            if n == 1 { "" } else { "s" },
            names.join(", ")
        )
    };
    let list = |files: &[(Option<usize>, PathBuf)]| {
        files
            .iter()
            .map(|(_, f)| f.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    // One unnumbered file is a whole case of a one-channel run.
    if let [(None, f)] = files.as_slice() {
        if n == 1 {
            return Ok(vec![f.clone()]);
        }
        return Err(CaseError::new(
            case,
            format!(
                "{}: one file without a _XXXX channel number, but {}",
                f.display(),
                expected()
            ),
        ));
    }
    if files.iter().any(|(c, _)| c.is_none()) {
        return Err(CaseError::new(
            case,
            format!(
                "{}: files with and without a _XXXX channel number for the same case",
                list(&files)
            ),
        ));
    }
    files.sort_by_key(|(c, _)| c.unwrap_or(usize::MAX));
    let have: Vec<usize> = files.iter().filter_map(|(c, _)| *c).collect();
    if have != (0..n).collect::<Vec<_>>() {
        let missing: Vec<String> = (0..n)
            .filter(|c| !have.contains(c))
            .map(|c| format!("{case}_{c:04}"))
            .collect();
        let extra: Vec<String> = have
            .iter()
            .filter(|&&c| c >= n)
            .map(|c| format!("{case}_{c:04}"))
            .collect();
        let mut what = Vec::new();
        let dup: Vec<String> = have
            .windows(2)
            .filter(|w| w[0] == w[1])
            .map(|w| format!("{case}_{:04} twice", w[0]))
            .collect();
        if !dup.is_empty() {
            what.push(dup.join(", "));
        }
        if !missing.is_empty() {
            what.push(format!("missing {}", missing.join(", ")));
        }
        if !extra.is_empty() {
            what.push(format!("unexpected {}", extra.join(", ")));
        }
        return Err(CaseError::new(
            case,
            format!(
                "wrong channel count: {} file{} ({}); {}: {}",
                files.len(),
                if files.len() == 1 { "" } else { "s" },
                list(&files),
                expected(),
                what.join("; ")
            ),
        ));
    }
    Ok(files.into_iter().map(|(_, f)| f).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(dir: &Path, name: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, b"x").unwrap();
        p
    }

    fn chans(n: usize) -> Vec<String> {
        (0..n).map(|c| format!("c{c}")).collect()
    }

    #[test]
    fn names_split_into_case_and_channel() {
        assert_eq!(split_name("a_b_0002.nii.gz"), Some(("a_b".into(), Some(2))));
        assert_eq!(split_name("scan.nii"), Some(("scan".into(), None)));
        assert_eq!(split_name("scan_12.nii"), Some(("scan_12".into(), None)));
        assert_eq!(split_name("scan.txt"), None);
    }

    #[test]
    fn folder_and_images_ts_group_channels_in_order() {
        let tmp = tempfile::tempdir().unwrap();
        let ts = tmp.path().join("imagesTs");
        std::fs::create_dir(&ts).unwrap();
        for n in [
            "b_0001.nii.gz",
            "b_0000.nii.gz",
            "a_0000.nii.gz",
            "a_0001.nii.gz",
        ] {
            touch(&ts, n);
        }
        let found = discover(&[tmp.path().to_path_buf()], &chans(2)).unwrap();
        assert!(found.errors.is_empty(), "{:?}", found.errors);
        let names: Vec<&str> = found.cases.iter().map(|c| c.case.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(
            found.cases[1].source,
            CaseSource::Nifti(vec![ts.join("b_0000.nii.gz"), ts.join("b_0001.nii.gz")])
        );
    }

    #[test]
    fn a_wrong_channel_count_names_the_case_and_its_files() {
        let tmp = tempfile::tempdir().unwrap();
        let one = touch(tmp.path(), "x_0000.nii.gz");
        touch(tmp.path(), "y_0000.nii.gz");
        touch(tmp.path(), "y_0001.nii.gz");
        let found = discover(&[tmp.path().to_path_buf()], &chans(2)).unwrap();
        assert_eq!(found.cases.len(), 1);
        assert_eq!(found.errors.len(), 1);
        let msg = found.errors[0].to_string();
        assert!(
            msg.contains("case x") && msg.contains(&one.display().to_string()),
            "{msg}"
        );
        assert!(msg.contains("missing x_0001"), "{msg}");
    }

    #[test]
    fn unnumbered_files_are_cases_of_one_channel_runs_only() {
        let tmp = tempfile::tempdir().unwrap();
        let f = touch(tmp.path(), "scan.nii.gz");
        let found = discover(std::slice::from_ref(&f), &chans(1)).unwrap();
        assert_eq!(found.cases[0].case, "scan");
        let found = discover(&[f], &chans(3)).unwrap();
        assert!(
            found.errors[0].reason.contains("3 channels"),
            "{:?}",
            found.errors
        );
    }

    #[test]
    fn a_folder_with_nothing_readable_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        touch(tmp.path(), "notes.txt");
        let err = discover(&[tmp.path().to_path_buf()], &chans(1)).unwrap_err();
        assert!(err.contains("no NIfTI images"), "{err}");
        let err = discover(&[tmp.path().join("nope")], &chans(1)).unwrap_err();
        assert!(err.contains("no such file"), "{err}");
    }
}
