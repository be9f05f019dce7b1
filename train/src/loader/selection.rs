//! Which studies of a manifest a loader serves: by split, by cross-validation fold, or both.
use std::fmt;

use serde::{Deserialize, Serialize};

use schemas::manifest::StudyRecord;

/// The side of a cross-validation fold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FoldRole {
    /// Every study whose fold is NOT the given one.
    Train,
    /// The studies whose fold IS the given one.
    Test,
}

/// A filter over a manifest's studies; `None` fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selection {
    /// Keep studies whose `split` column equals this (`train`, `val`, `test`).
    pub split: Option<String>,
    /// Keep fold `K`'s test studies (`fold == K`) or its training studies (`fold != K`).
    pub fold: Option<(u32, FoldRole)>,
}

impl Selection {
    /// Every study.
    pub fn all() -> Self {
        Self::default()
    }

    /// Studies of one split.
    pub fn split(name: &str) -> Self {
        Self {
            split: Some(name.to_string()),
            fold: None,
        }
    }

    /// One side of cross-validation fold `k`.
    pub fn fold(k: u32, role: FoldRole) -> Self {
        Self {
            split: None,
            fold: Some((k, role)),
        }
    }

    pub fn matches(&self, study: &StudyRecord) -> bool {
        let split_ok = self.split.as_deref().is_none_or(|s| study.split == s);
        let fold_ok = match self.fold {
            None => true,
            Some((k, FoldRole::Test)) => study.fold == k,
            Some((k, FoldRole::Train)) => study.fold != k,
        };
        split_ok && fold_ok
    }
}

impl fmt::Display for Selection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(s) = &self.split {
            parts.push(format!("split={s}"));
        }
        match self.fold {
            Some((k, FoldRole::Test)) => parts.push(format!("fold {k} test (fold == {k})")),
            Some((k, FoldRole::Train)) => parts.push(format!("fold {k} train (fold != {k})")),
            None => {}
        }
        if parts.is_empty() {
            parts.push("all studies".into());
        }
        write!(f, "[{}]", parts.join(", "))
    }
}
