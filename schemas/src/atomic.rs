//! Atomic file replacement: write beside the target, fsync, rename.
//!
//! A reader (or a resumed run) therefore sees either the old file or the complete new one,
//! never a torn write, whenever the process is killed.
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Result, SchemaError};

/// The temporary name a file is written under before it is renamed into place. It starts
/// with a dot and ends in `.tmp` so that listings of finished files can skip it.
pub fn temp_path_for(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// True for names made by [`temp_path_for`] (left behind by a killed writer).
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".tmp")
}

/// Renames a finished temporary file into place after syncing it to disk.
pub fn commit_temp(tmp: &Path, path: &Path) -> Result<()> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| SchemaError::Io { path: p, source }
    };
    std::fs::File::open(tmp)
        .and_then(|f| f.sync_all())
        .map_err(io(tmp))?;
    std::fs::rename(tmp, path).map_err(io(path))?;
    if let Some(dir) = path.parent() {
        // Persist the rename itself; not every filesystem allows opening a directory.
        if let Ok(d) = std::fs::File::open(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        }) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically, creating parent folders.
pub fn write_file_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| SchemaError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let tmp = temp_path_for(path);
    let result = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|source| SchemaError::Io {
            path: tmp.clone(),
            source,
        });
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    commit_temp(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_content_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        write_file_atomic(&p, b"one").unwrap();
        write_file_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec!["a.json".to_string()]);
        assert!(is_temp_name(
            temp_path_for(&p).file_name().unwrap().to_str().unwrap()
        ));
    }
}
