//! Errors of the format layer. Every variant names the file it is about.
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a readable Parquet file: {source}")]
    Parquet {
        path: PathBuf,
        #[source]
        source: parquet::errors::ParquetError,
    },
    #[error("{path}: Arrow error: {source}")]
    Arrow {
        path: PathBuf,
        #[source]
        source: arrow::error::ArrowError,
    },
    #[error(
        "{path}: has no dpersona schema metadata (key `{key}`); it was not written by dpersona"
    )]
    NotDpersona { path: PathBuf, key: &'static str },
    #[error("{path}: is a `{found}` file, expected a `{expected}` file")]
    WrongSchema {
        path: PathBuf,
        found: String,
        expected: &'static str,
    },
    #[error(
        "{path}: `{name}` schema version {found} is newer than this dpersona reads (up to {supported}); upgrade dpersona"
    )]
    NewerVersion {
        path: PathBuf,
        name: &'static str,
        found: u32,
        supported: u32,
    },
    #[error(
        "{path}: `{name}` schema version {found} was written by an older dpersona; this one reads version {oldest} and later: write the file again (for shards: rerun ingest with --overwrite)"
    )]
    OlderVersion {
        path: PathBuf,
        name: &'static str,
        found: u32,
        oldest: u32,
    },
    #[error("{path}: bad `{name}` file: {reason}")]
    Invalid {
        path: PathBuf,
        name: &'static str,
        reason: String,
    },
}

impl SchemaError {
    pub fn invalid(
        path: impl Into<PathBuf>,
        name: &'static str,
        reason: impl Into<String>,
    ) -> Self {
        SchemaError::Invalid {
            path: path.into(),
            name,
            reason: reason.into(),
        }
    }
}

pub type Result<T, E = SchemaError> = std::result::Result<T, E>;

/// An error and its causes on one line, `outer: cause: root`, for the command line.
///
/// Our error types (like [`SchemaError`]) put their cause into their own message *and*
/// expose it as `source()`, so that both `{}` and a chain walk are complete; printing the
/// chain naively (anyhow's `{:#}`) would then repeat each such cause ("...: No such file or
/// directory (os error 2): No such file or directory (os error 2)"). A cause whose text
/// already ends the message so far is skipped.
pub fn one_line(err: &(dyn std::error::Error + 'static)) -> String {
    let mut line = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !line.ends_with(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        cause = c.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_keeps_every_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let err = SchemaError::Io {
            path: "a/b.parquet".into(),
            source: io,
        };
        assert_eq!(one_line(&err), "a/b.parquet: gone");
        let wrapped = anyhow::Error::new(err).context("reading the manifest");
        assert_eq!(
            one_line(wrapped.as_ref()),
            "reading the manifest: a/b.parquet: gone"
        );
        let plain = anyhow::anyhow!("inner").context("outer");
        assert_eq!(one_line(plain.as_ref()), "outer: inner");
    }
}
