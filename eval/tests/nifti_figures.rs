//! Report figures from a NIfTI volume predictions folder written by nibabel
//! (tests/py/nifti_figure_volumes.py): each target is drawn by the plane where its raters
//! drew the most (ties -> lowest z), rows ranked by that area, and every panel pixel equals
//! what numpy computed from the (x, y, z) volumes (rater and sample contours at (row,
//! column), never transposed; image and mean-probability greys). `dpersona report` writes
//! the same figures for the folder; a volume of the wrong shape or an empty folder is
//! refused naming the file.
use std::path::Path;

use eval::figures::{
    one_prediction_per_rater, panel_origin, personalised_figure, samples_figure, SCALE,
};
use eval::metric_rows::UnitKind;
use eval::raster::{Canvas, Rgb, PALETTE, WHITE};
use eval::results_frame::{write_results, Conventions};
use eval::unit_metrics::MetricOptions;
use schemas::metrics::MetricRecord;
use serde_json::Value;

/// Rows drawn per figure: the third (one-pixel) volume must be left out.
const ROWS: usize = 2;

/// `[H][W]` array of expected.json as rows of i64.
fn grid(v: &Value) -> Vec<Vec<i64>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_i64().unwrap())
                .collect()
        })
        .collect()
}

fn decode(path: &Path) -> Canvas {
    let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = dec.read_info().unwrap();
    let mut buf = vec![0u8; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb, "{}", path.display());
    buf.truncate((info.width * info.height * 3) as usize);
    Canvas {
        width: info.width,
        height: info.height,
        rgb: buf,
    }
}

/// What one crop pixel of a panel must show.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Want {
    Colour(Rgb),
    Grey(i64),
}

/// Checks every crop pixel `(row, col)` of the panel at (x0, y0) (all `SCALE` x `SCALE`
/// canvas pixels of its block) against `want`: no text is drawn over a panel, so every
/// pixel counts. Greys may differ by 1 (f32 vs f64 rounding). Returns the number of
/// pixels checked.
fn check_panel(
    c: &Canvas,
    (x0, y0): (i64, i64),
    h: usize,
    w: usize,
    what: &str,
    want: impl Fn(usize, usize) -> Want,
) -> usize {
    let mut checked = 0;
    for row in 0..h {
        for col in 0..w {
            let (bx, by) = (
                x0 + (col as u32 * SCALE) as i64,
                y0 + (row as u32 * SCALE) as i64,
            );
            for dy in 0..SCALE as i64 {
                for dx in 0..SCALE as i64 {
                    let got = c.get((bx + dx) as u32, (by + dy) as u32);
                    match want(row, col) {
                        Want::Colour(rgb) => assert_eq!(
                            got, rgb,
                            "{what}: pixel (row {row}, col {col}) is {got:?}, want {rgb:?}"
                        ),
                        Want::Grey(g) => assert!(
                            got[0] == got[1] && got[1] == got[2] && (got[0] as i64 - g).abs() <= 1,
                            "{what}: pixel (row {row}, col {col}) is {got:?}, want grey {g}"
                        ),
                    }
                }
            }
            checked += 1;
        }
    }
    checked
}

/// The layer drawn last wins: the last mask (in drawing order) set at (row, col).
fn last_set(masks: &[Option<Vec<Vec<i64>>>], row: usize, col: usize) -> Option<usize> {
    (0..masks.len())
        .rev()
        .find(|&k| masks[k].as_ref().is_some_and(|m| m[row][col] != 0))
}

fn masks(v: &Value) -> Vec<Option<Vec<Vec<i64>>>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|m| (!m.is_null()).then(|| grid(m)))
        .collect()
}

#[test]
fn nifti_volume_folder_figures_show_the_raters_plane_unrotated() {
    let dir = tempfile::tempdir().unwrap();
    let out = testkit::run_py("nifti_figure_volumes.py", &[dir.path()]);
    assert!(out.contains("wrote 3 volumes"), "{out}");
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("expected.json")).unwrap())
            .unwrap();
    let rows = expected["rows"].as_array().unwrap();
    let preds = dir.path().join("preds");
    let (w, h) = (
        rows[0]["width"].as_u64().unwrap() as usize,
        rows[0]["height"].as_u64().unwrap() as usize,
    );
    assert_ne!(w, h, "a square crop cannot tell a transposed plane");
    let (pw, ph) = (w as u32 * SCALE, h as u32 * SCALE);

    // Fig. 4: image + rater contours | image + sample contours | mean probability.
    let samples = dir.path().join("samples.png");
    let (fw, fh) = samples_figure(&preds, &samples, ROWS).unwrap();
    let c = decode(&samples);
    assert_eq!((c.width, c.height), (fw, fh));
    let (_, last_row_y) = panel_origin(ROWS - 1, 0, pw, ph);
    assert!(
        fh as i64 > last_row_y + ph as i64 && (fh as i64) < last_row_y + 2 * ph as i64,
        "{ROWS} rows expected, figure is {fh} pixels high"
    );
    for (r, e) in rows.iter().take(ROWS).enumerate() {
        let name = format!(
            "{}/{} z{}",
            e["study"].as_str().unwrap(),
            e["target"].as_str().unwrap(),
            e["z"]
        );
        let image = grid(&e["image_grey"]);
        let raters = masks(&e["rater_contour"]);
        let samples_c = masks(&e["pred_contour"]);
        let mean = grid(&e["mean_grey"]);
        let n = check_panel(
            &c,
            panel_origin(r, 0, pw, ph),
            h,
            w,
            &name,
            |y, x| match last_set(&raters, y, x) {
                Some(k) => Want::Colour(PALETTE[k % PALETTE.len()]),
                None => Want::Grey(image[y][x]),
            },
        );
        assert_eq!(n, w * h);
        check_panel(
            &c,
            panel_origin(r, 1, pw, ph),
            h,
            w,
            &name,
            |y, x| match last_set(&samples_c, y, x) {
                Some(j) => Want::Colour(PALETTE[j % PALETTE.len()]),
                None => Want::Grey(image[y][x]),
            },
        );
        check_panel(&c, panel_origin(r, 2, pw, ph), h, w, &name, |y, x| {
            Want::Grey(mean[y][x])
        });
        // The asymmetric contours are where numpy put them and NOT at the transposed
        // positions: the first present rater's colour appears exactly on its contour.
        let (k, m) = raters
            .iter()
            .enumerate()
            .find_map(|(k, m)| m.as_ref().map(|m| (k, m)))
            .unwrap();
        let (x0, y0) = panel_origin(r, 0, pw, ph);
        let at = |y: usize, x: usize| {
            c.get(
                (x0 + (x as u32 * SCALE) as i64) as u32,
                (y0 + (y as u32 * SCALE) as i64) as u32,
            )
        };
        let mut transposed_checked = 0;
        for (y, line) in m.iter().enumerate() {
            for (x, &v) in line.iter().enumerate() {
                if v == 0 {
                    continue;
                }
                assert_eq!(
                    at(y, x),
                    PALETTE[k],
                    "{name}: contour at (row {y}, col {x})"
                );
                // Transposed position (row x, col y), where inside the plane and off every
                // contour, must not show the colour.
                if x < h && y < w && last_set(&raters, x, y).is_none() {
                    assert_ne!(
                        at(x, y),
                        PALETTE[k],
                        "{name}: colour at transposed ({x}, {y})"
                    );
                    transposed_checked += 1;
                }
            }
        }
        assert!(
            transposed_checked > 0,
            "{name}: no transposed position to check"
        );
        println!("{name}: samples row {r} matches numpy ({transposed_checked} transposed positions clear)");
    }

    // Fig. 5: panel k = image, prediction k tinted, rater k's contour in white.
    assert!(one_prediction_per_rater(&preds).unwrap());
    let personal = dir.path().join("personalised.png");
    let (fw, fh) = personalised_figure(&preds, &personal, ROWS).unwrap();
    let c = decode(&personal);
    assert_eq!((c.width, c.height), (fw, fh));
    for (r, e) in rows.iter().take(ROWS).enumerate() {
        let image = grid(&e["image_grey"]);
        let raters = masks(&e["rater_contour"]);
        let fg = masks(&e["pred_fg"]);
        for k in 0..fg.len() {
            let what = format!("{} personalised A{}", e["study"], k + 1);
            check_panel(&c, panel_origin(r, k, pw, ph), h, w, &what, |y, x| {
                let g = image[y][x];
                let tint = |p: u8| (g as f32 * 0.45 + p as f32 * 0.55).round() as u8;
                if raters
                    .get(k)
                    .and_then(Option::as_ref)
                    .is_some_and(|m| m[y][x] != 0)
                {
                    Want::Colour(WHITE)
                } else if fg[k].as_ref().unwrap()[y][x] != 0 {
                    let p = PALETTE[k % PALETTE.len()];
                    Want::Colour([tint(p[0]), tint(p[1]), tint(p[2])])
                } else {
                    Want::Grey(g)
                }
            });
        }
    }

    // `dpersona report --figures --predictions` writes the same two figures.
    let results = dir.path().join("results.parquet");
    let rows_frame: Vec<MetricRecord> = rows
        .iter()
        .enumerate()
        .map(|(i, e)| MetricRecord {
            run: "nibabel-figures".into(),
            method: "other_tool".into(),
            stage: 1,
            n_samples: 2,
            bank: 0,
            n_outputs: 2,
            fold: 0,
            study_id: e["study"].as_str().unwrap().into(),
            target_id: e["target"].as_str().unwrap().into(),
            unit: "volume".into(),
            unit_index: i as u32,
            slice_index: None,
            z_mm: None,
            metric: "ged".into(),
            value: 0.5 + i as f64 * 0.1,
            seed: 1,
            checkpoint_sha256: String::new(),
        })
        .collect();
    write_results(
        &results,
        &rows_frame,
        &Conventions::new(&MetricOptions::default(), UnitKind::Volume, 1),
    )
    .unwrap();
    let figs = dir.path().join("figs");
    eval::cli::run_report(eval::cli::ReportArgs {
        results: vec![results],
        markdown: false,
        by_method: false,
        claims: false,
        figures: Some(figs.clone()),
        runs: vec![],
        predictions: vec![preds.clone()],
        predict_cases: vec![],
        figure_slices: ROWS,
    })
    .unwrap();
    // Bad input names the file and what is wrong.
    let err = samples_figure(
        &dir.path().join("bad_shape"),
        &dir.path().join("x.png"),
        ROWS,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("ST_A/1/rater_1.nii.gz") && err.contains(&format!("expected ({w}, {h}, 4)")),
        "{err}"
    );
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    std::fs::copy(
        preds.join("predictions.json"),
        empty.join("predictions.json"),
    )
    .unwrap();
    let err = samples_figure(&empty, &dir.path().join("x.png"), ROWS)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no pred_01.nii.gz"), "{err}");

    for (made, direct) in [
        ("samples_preds.png", &samples),
        ("personalised_preds.png", &personal),
    ] {
        assert_eq!(
            std::fs::read(figs.join(made)).unwrap(),
            std::fs::read(direct).unwrap(),
            "{made} differs from the figure drawn directly"
        );
        if let Ok(keep) = std::env::var("EVAL_KEEP_FIGURES") {
            std::fs::copy(
                figs.join(made),
                Path::new(&keep).join(format!("nifti_{made}")),
            )
            .unwrap();
        }
    }
}
