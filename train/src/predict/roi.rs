//! `--roi FILE`: where to crop, for runs trained on crops around a target (LIDC-style).
//!
//! Such a model never saw a whole slice, only `crop x crop` windows centred on a nodule, so
//! predicting needs the centres. One ROI is one crop on one slice (the unit the model was
//! trained on); a nodule spanning several slices is several rows.
//!
//! CSV (a header line naming the columns, any order; `unit` optional):
//! ```text
//! case,x,y,z,unit
//! 1.3.6.1.4.1.14519...,256,301,41,voxel
//! ```
//! JSON: `[{"case": "...", "x": 256, "y": 301, "z": 41, "unit": "voxel"}, ...]`.
//!
//! `unit` is `voxel` (the default: x = column, y = row, z = slice index with slices ordered
//! by ImagePositionPatient z, lowest first, as ingest orders them) or `mm` (patient
//! coordinates, DICOM LPS, as ImagePositionPatient gives them).
use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

/// How an ROI's coordinates are given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RoiUnit {
    #[default]
    Voxel,
    Mm,
}

/// One ROI row.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Roi {
    pub case: String,
    pub x: f64,
    pub y: f64,
    pub z: f64,
    #[serde(default)]
    pub unit: RoiUnit,
    /// Where it was read from (`FILE line N` / `FILE item N`), for messages.
    #[serde(skip)]
    pub origin: String,
}

/// Every ROI of the file, per case (in file order).
pub fn read_rois(path: &Path) -> Result<BTreeMap<String, Vec<Roi>>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read the ROI file: {e}", path.display()))?;
    let rois = if text.trim_start().starts_with('[') {
        parse_json(path, &text)?
    } else {
        parse_csv(path, &text)?
    };
    if rois.is_empty() {
        return Err(format!("{}: no ROI rows", path.display()));
    }
    let mut by_case: BTreeMap<String, Vec<Roi>> = BTreeMap::new();
    for r in rois {
        by_case.entry(r.case.clone()).or_default().push(r);
    }
    Ok(by_case)
}

fn parse_json(path: &Path, text: &str) -> Result<Vec<Roi>, String> {
    let mut rois: Vec<Roi> = serde_json::from_str(text).map_err(|e| {
        format!(
            "{}: not a JSON list of {{case, x, y, z[, unit]}} objects: {e}",
            path.display()
        )
    })?;
    for (i, r) in rois.iter_mut().enumerate() {
        r.origin = format!("{} item {}", path.display(), i + 1);
        check_finite(r)?;
    }
    Ok(rois)
}

fn parse_csv(path: &Path, text: &str) -> Result<Vec<Roi>, String> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines
        .next()
        .ok_or_else(|| format!("{}: empty ROI file", path.display()))?;
    let names: Vec<String> = header
        .split(',')
        .map(|c| c.trim().to_ascii_lowercase())
        .collect();
    let col = |name: &str| names.iter().position(|n| n == name);
    let (Some(ci), Some(xi), Some(yi), Some(zi)) = (col("case"), col("x"), col("y"), col("z"))
    else {
        return Err(format!(
            "{} line 1: the header must name the columns case, x, y, z (and optionally unit), found `{header}`",
            path.display()
        ));
    };
    let ui = col("unit");
    let mut rois = Vec::new();
    for (n, line) in lines {
        let origin = format!("{} line {}", path.display(), n + 1);
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        if cells.len() != names.len() {
            return Err(format!(
                "{origin}: {} values, the header has {}",
                cells.len(),
                names.len()
            ));
        }
        let num = |i: usize, what: &str| {
            cells[i]
                .parse::<f64>()
                .map_err(|_| format!("{origin}: {what} `{}` is not a number", cells[i]))
        };
        let unit = match ui.map(|i| cells[i].to_ascii_lowercase()) {
            None => RoiUnit::Voxel,
            Some(u) if u == "voxel" || u.is_empty() => RoiUnit::Voxel,
            Some(u) if u == "mm" => RoiUnit::Mm,
            Some(u) => return Err(format!("{origin}: unit `{u}` is neither voxel nor mm")),
        };
        let r = Roi {
            case: cells[ci].to_string(),
            x: num(xi, "x")?,
            y: num(yi, "y")?,
            z: num(zi, "z")?,
            unit,
            origin,
        };
        check_finite(&r)?;
        rois.push(r);
    }
    Ok(rois)
}

fn check_finite(r: &Roi) -> Result<(), String> {
    if [r.x, r.y, r.z].iter().all(|v| v.is_finite()) && !r.case.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}: case `{}` at ({}, {}, {}): an empty case or a coordinate that is not finite",
            r.origin, r.case, r.x, r.y, r.z
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_and_json_give_the_same_rois() {
        let tmp = tempfile::tempdir().unwrap();
        let csv = tmp.path().join("r.csv");
        std::fs::write(
            &csv,
            "x, case, y, z, unit\n1.5,a,2,3,mm\n4,a,5,6,\n7,b,8,9,voxel\n",
        )
        .unwrap();
        let json = tmp.path().join("r.json");
        std::fs::write(
            &json,
            r#"[{"case":"a","x":1.5,"y":2,"z":3,"unit":"mm"},{"case":"a","x":4,"y":5,"z":6},{"case":"b","x":7,"y":8,"z":9}]"#,
        )
        .unwrap();
        let strip = |m: BTreeMap<String, Vec<Roi>>| -> Vec<(String, f64, f64, f64, RoiUnit)> {
            m.into_values()
                .flatten()
                .map(|r| (r.case, r.x, r.y, r.z, r.unit))
                .collect()
        };
        let a = strip(read_rois(&csv).unwrap());
        assert_eq!(a, strip(read_rois(&json).unwrap()));
        assert_eq!(a[0], ("a".into(), 1.5, 2.0, 3.0, RoiUnit::Mm));
        assert_eq!(a[1].4, RoiUnit::Voxel);
    }

    #[test]
    fn bad_rows_name_the_file_and_line() {
        let tmp = tempfile::tempdir().unwrap();
        let csv = tmp.path().join("r.csv");
        std::fs::write(&csv, "case,x,y,z\na,1,2,3\nb,1,two,3\n").unwrap();
        let e = read_rois(&csv).unwrap_err();
        assert!(e.contains("r.csv line 3") && e.contains("`two`"), "{e}");
        std::fs::write(&csv, "case,x,y\na,1,2\n").unwrap();
        assert!(read_rois(&csv).unwrap_err().contains("line 1"));
    }
}
