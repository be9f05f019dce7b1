//! `RAW/dataset.json`: what the dataset holds (nnU-Net style, plus the rater list).
//!
//! ```json
//! { "name": "npc",                                   // optional, default "nifti"
//!   "channel_names": {"0": "t1", "1": "t1c", "2": "t2"},  // index -> name, indices 0..C-1
//!   "raters": ["a1", "a2", "a3", "a4"],
//!   "file_ending": ".nii.gz",                        // ".nii" or ".nii.gz"
//!   "rater_order": "identity",                       // optional: "identity" | "area_rank"
//!   "numTraining": 40 }                              // optional: number of cases
//! ```
//! `numTraining` is only checked against the cases found (a disagreement is a notice, see
//! [`super::layout`]); other keys (nnU-Net's `labels`, ...) are ignored.
use std::path::Path;

use schemas::manifest::RaterOrder;
use serde_json::Value;

use crate::study::StudyError;

/// Dataset name used when dataset.json has no `name`.
pub const DEFAULT_NAME: &str = "nifti";

/// The parsed dataset.json.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetJson {
    pub name: String,
    /// Channel names in channel order (file suffix `_0000` is channel 0).
    pub channels: Vec<String>,
    pub raters: Vec<String>,
    pub file_ending: String,
    pub rater_order: RaterOrder,
    /// nnU-Net's `numTraining`, when given: the number of cases the dataset says it holds.
    pub num_training: Option<u64>,
}

impl DatasetJson {
    /// Reads and checks `path`. Every error names the file and the key at fault.
    pub fn read(path: &Path) -> Result<Self, StudyError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| StudyError::new(path, format!("cannot read dataset.json: {e}")))?;
        Self::parse(&text).map_err(|reason| StudyError::new(path, reason))
    }

    /// Parses dataset.json text; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let v: Value = serde_json::from_str(text)
            .map_err(|e| format!("dataset.json is not valid JSON: {e}"))?;
        let obj = v.as_object().ok_or("dataset.json must be a JSON object")?;
        let name = match obj.get("name") {
            None | Some(Value::Null) => DEFAULT_NAME.to_string(),
            Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
            Some(other) => return Err(format!("`name` must be a non-empty string, got {other}")),
        };
        let channels = parse_channels(obj.get("channel_names").ok_or(
            "missing key `channel_names` (an object index -> name, e.g. {\"0\": \"t1\"})",
        )?)?;
        let raters = match obj.get("raters") {
            Some(Value::Array(a)) if !a.is_empty() => a
                .iter()
                .map(|r| match r {
                    Value::String(s) if valid_name(s) => Ok(s.clone()),
                    other => Err(format!(
                        "`raters` entries must be non-empty names without '/', got {other}"
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(other) => {
                return Err(format!(
                    "`raters` must be a non-empty list of names, got {other}"
                ))
            }
            None => {
                return Err(
                    "missing key `raters` (a list of rater names, e.g. [\"a1\", \"a2\"])".into(),
                )
            }
        };
        if let Some(dup) = first_duplicate(&raters) {
            return Err(format!("`raters` names `{dup}` twice"));
        }
        let file_ending = match obj.get("file_ending") {
            Some(Value::String(s)) if s == ".nii" || s == ".nii.gz" => s.clone(),
            Some(other) => {
                return Err(format!(
                    "`file_ending` must be \".nii\" or \".nii.gz\", got {other}"
                ))
            }
            None => return Err("missing key `file_ending` (\".nii\" or \".nii.gz\")".into()),
        };
        let rater_order = match obj.get("rater_order") {
            None | Some(Value::Null) => RaterOrder::Identity,
            Some(Value::String(s)) if s == "identity" => RaterOrder::Identity,
            Some(Value::String(s)) if s == "area_rank" => RaterOrder::AreaRank,
            Some(other) => {
                return Err(format!(
                    "`rater_order` must be \"identity\" or \"area_rank\", got {other}"
                ))
            }
        };
        let num_training = match obj.get("numTraining") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) if n.as_u64().is_some() => n.as_u64(),
            Some(other) => {
                return Err(format!(
                    "`numTraining` must be a whole number of cases, got {other}"
                ))
            }
        };
        Ok(DatasetJson {
            name,
            channels,
            raters,
            file_ending,
            rater_order,
            num_training,
        })
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty() && !s.contains('/') && !s.contains('\\')
}

fn first_duplicate(names: &[String]) -> Option<&str> {
    names
        .iter()
        .enumerate()
        .find(|(i, n)| names[..*i].contains(n))
        .map(|(_, n)| n.as_str())
}

/// `{"0": "t1", "1": "t1c"}` → `["t1", "t1c"]`; the indices must be exactly 0..C-1.
fn parse_channels(v: &Value) -> Result<Vec<String>, String> {
    let obj = v.as_object().filter(|o| !o.is_empty()).ok_or_else(|| {
        format!("`channel_names` must be a non-empty object index -> name, got {v}")
    })?;
    let mut slots: Vec<Option<String>> = vec![None; obj.len()];
    for (key, name) in obj {
        let idx: usize = key.parse().map_err(|_| {
            format!("`channel_names` key `{key}` is not a channel index (0, 1, ...)")
        })?;
        let name = name.as_str().filter(|s| !s.is_empty()).ok_or_else(|| {
            format!("`channel_names[{key}]` must be a non-empty string, got {name}")
        })?;
        let slot = slots.get_mut(idx).ok_or_else(|| {
            format!(
                "`channel_names` has {} entries but index {idx}: indices must be 0..{}",
                obj.len(),
                obj.len() - 1
            )
        })?;
        if slot.is_some() {
            return Err(format!("`channel_names` index {idx} appears twice"));
        }
        *slot = Some(name.to_string());
    }
    Ok(slots
        .into_iter()
        .map(|s| s.expect("every index 0..C-1 filled"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_example() {
        let d = DatasetJson::parse(
            r#"{"name": "npc", "channel_names": {"1": "t1c", "0": "t1", "2": "t2"},
                "raters": ["a1", "a2"], "file_ending": ".nii", "rater_order": "area_rank", "labels": {}}"#,
        )
        .unwrap();
        assert_eq!(d.name, "npc");
        assert_eq!(d.channels, ["t1", "t1c", "t2"]);
        assert_eq!(d.raters, ["a1", "a2"]);
        assert_eq!(d.file_ending, ".nii");
        assert_eq!(d.rater_order, RaterOrder::AreaRank);
        assert_eq!(d.num_training, None);
        let d = DatasetJson::parse(
            r#"{"channel_names": {"0": "ct"}, "raters": ["r"], "file_ending": ".nii.gz", "numTraining": 7}"#,
        )
        .unwrap();
        assert_eq!(d.num_training, Some(7));
        assert_eq!(
            (d.name.as_str(), d.rater_order),
            (DEFAULT_NAME, RaterOrder::Identity)
        );
    }

    #[test]
    fn says_what_is_wrong() {
        let cases = [
            ("{", "not valid JSON"),
            ("[]", "must be a JSON object"),
            (
                r#"{"raters": ["a"], "file_ending": ".nii"}"#,
                "missing key `channel_names`",
            ),
            (
                r#"{"channel_names": {"0": "t1", "2": "t2"}, "raters": ["a"], "file_ending": ".nii"}"#,
                "indices must be 0..1",
            ),
            (
                r#"{"channel_names": {"x": "t1"}, "raters": ["a"], "file_ending": ".nii"}"#,
                "key `x` is not a channel index",
            ),
            (
                r#"{"channel_names": {"0": "t1"}, "file_ending": ".nii"}"#,
                "missing key `raters`",
            ),
            (
                r#"{"channel_names": {"0": "t1"}, "raters": [], "file_ending": ".nii"}"#,
                "`raters` must be a non-empty list",
            ),
            (
                r#"{"channel_names": {"0": "t1"}, "raters": ["a", "a"], "file_ending": ".nii"}"#,
                "names `a` twice",
            ),
            (
                r#"{"channel_names": {"0": "t1"}, "raters": ["a"], "file_ending": ".mha"}"#,
                "`file_ending` must be",
            ),
            (
                r#"{"channel_names": {"0": "t1"}, "raters": ["a"]}"#,
                "missing key `file_ending`",
            ),
            (
                r#"{"channel_names": {"0": "t1"}, "raters": ["a"], "file_ending": ".nii", "rater_order": "random"}"#,
                "`rater_order` must be",
            ),
            (
                r#"{"channel_names": {"0": "t1"}, "raters": ["a"], "file_ending": ".nii", "numTraining": "5"}"#,
                "`numTraining` must be a whole number of cases, got \"5\"",
            ),
            (
                r#"{"channel_names": {"0": "t1"}, "raters": ["a"], "file_ending": ".nii", "numTraining": -1}"#,
                "`numTraining` must be a whole number of cases, got -1",
            ),
        ];
        for (text, want) in cases {
            let err = DatasetJson::parse(text).unwrap_err();
            assert!(err.contains(want), "{text}: got `{err}`, want `{want}`");
        }
    }
}
