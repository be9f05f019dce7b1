//! Helpers shared by the fuzz targets: a per-process scratch folder on tmpfs (the readers
//! take paths) and the little archive format that splits one fuzz input into several files.
use std::path::{Path, PathBuf};

/// A per-process scratch folder, emptied on each call: `/dev/shm` when present (tmpfs, no
/// disk I/O per execution), else the system temp dir.
pub fn scratch(name: &str) -> PathBuf {
    let base = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!("dpersona-fuzz-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch folder");
    dir
}

/// Splits `data` on `sep` into at most `max` parts (the last part keeps any further
/// separators).
pub fn split<'a>(data: &'a [u8], sep: &[u8], max: usize) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while out.len() + 1 < max {
        match rest.windows(sep.len()).position(|w| w == sep) {
            Some(i) => {
                out.push(&rest[..i]);
                rest = &rest[i + sep.len()..];
            }
            None => break,
        }
    }
    out.push(rest);
    out
}

/// Files of a folder packed into one input: repeated `[name length: u8][name][data
/// length: u32 LE][data]`, read until the input ends (a short entry takes what is left).
/// Names are relative paths; a name that is empty, absolute, has `..` or a NUL is skipped,
/// so the target never writes outside its folder.
pub fn unpack(data: &[u8]) -> Vec<(String, &[u8])> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some((&n, r)) = rest.split_first() {
        let n = (n as usize).min(r.len());
        let name = String::from_utf8_lossy(&r[..n]).into_owned();
        let r = &r[n..];
        let len = if r.len() >= 4 {
            u32::from_le_bytes([r[0], r[1], r[2], r[3]]) as usize
        } else {
            0
        };
        let r = &r[r.len().min(4)..];
        let len = len.min(r.len());
        let (body, r) = r.split_at(len);
        rest = r;
        let safe = !name.is_empty()
            && !name.starts_with('/')
            && !name.contains('\0')
            && name
                .split('/')
                .all(|c| !c.is_empty() && c != "." && c != "..")
            && name.split('/').count() <= 4;
        if safe {
            out.push((name, body));
        }
    }
    out
}

/// The inverse of [`unpack`], for seed corpora and regression tests.
pub fn pack(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, body) in files {
        out.push(name.len() as u8);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(body);
    }
    out
}

/// Writes the files of [`unpack`] under `dir` (a name that collides with a folder, or a
/// folder with a file, is skipped: the fuzzer then explores the rest).
pub fn write_tree(dir: &Path, files: &[(String, &[u8])]) {
    for (name, body) in files {
        let p = dir.join(name);
        if let Some(parent) = p.parent() {
            if std::fs::create_dir_all(parent).is_err() {
                continue;
            }
        }
        let _ = std::fs::write(&p, body);
    }
}
