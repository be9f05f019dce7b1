//! Synthetic LIDC round trip: `synth::lidc::write_dataset` -> `LidcFormat` discover/load gives
//! back every rater's phantom mask exactly (contours traced just outside the mask, pylidc's
//! rasterising rule), with missing raters as missing slots.
use ingest::lidc::{LidcFormat, LidcParams};
use ingest::study::SourceFormat;
use ingest::synth::lidc::{study_params, study_seed, write_dataset};
use ingest::synth::phantom::generate;

#[test]
fn synthetic_lidc_round_trips_every_rater_mask() {
    let dir = tempfile::tempdir().unwrap();
    let (n, seed) = (3, 11);
    let summary = write_dataset(dir.path(), n, seed).unwrap();
    assert_eq!(summary.inexact_slices, 0, "{summary:?}");
    let format = LidcFormat::new(LidcParams::default());
    let studies = format.discover(dir.path()).unwrap();
    assert_eq!(studies.len(), n);
    for (i, study) in studies.iter().enumerate() {
        assert_eq!(study.patient_id, format!("LIDC-IDRI-{:04}", i + 1));
        let out = format.load(study).unwrap();
        let vol = generate(&study_params(i), study_seed(seed, i));
        let (d, h, w) = (vol.depth, vol.height, vol.width);
        assert_eq!(out.volume_shape, [d as u32, h as u32, w as u32]);
        // Present raters fill the first slots in order.
        let present: Vec<usize> = (0..vol.targets[0].rater_masks.len())
            .filter(|&r| vol.targets[0].rater_masks[r].is_some())
            .collect();
        assert!(out.n_targets as usize <= vol.targets.len());
        // Paste every record's slot masks back into the full volume.
        let mut pasted = vec![vec![0u8; d * h * w]; 4];
        for rec in &out.slices {
            assert_eq!(
                rec.raters_present,
                (0..4).map(|s| s < present.len()).collect::<Vec<_>>()
            );
            assert!(rec.image.iter().all(|v| (0.0..=1.0).contains(v)));
            let c = rec.width as usize;
            for (s, plane) in pasted.iter_mut().enumerate() {
                for y in 0..c {
                    for x in 0..c {
                        let (r, col) = (rec.crop_row0 + y as i32, rec.crop_col0 + x as i32);
                        let v = rec.masks[s * c * c + y * c + x];
                        if r < 0 || col < 0 || r >= h as i32 || col >= w as i32 {
                            assert_eq!(v, 0);
                            continue;
                        }
                        plane[rec.slice_index as usize * h * w + r as usize * w + col as usize] |=
                            v;
                    }
                }
            }
        }
        for (s, &r) in present.iter().enumerate() {
            let mut want = vec![0u8; d * h * w];
            for t in &vol.targets {
                for (a, b) in want.iter_mut().zip(t.rater_masks[r].as_ref().unwrap()) {
                    *a |= b;
                }
            }
            let area: usize = want.iter().map(|&v| v as usize).sum();
            assert!(
                pasted[s] == want,
                "study {i} rater {r} (slot {s}): mask differs (phantom area {area})"
            );
        }
        for plane in &pasted[present.len()..] {
            assert!(plane.iter().all(|&v| v == 0));
        }
        println!(
            "study {i}: {} nodules, {} slices, raters present {present:?}",
            out.n_targets,
            out.slices.len()
        );
    }
}
