//! The one typeface of every figure: DejaVu Sans, embedded, drawn through `ab_glyph`.
//!
//! Embedded rather than looked up on the system so that a figure looks the same on every
//! machine (CI, a cluster node without fonts) and nothing outside the binary is read; the
//! font's licence (Bitstream Vera, free to redistribute) is in `eval/assets/`. The same
//! bytes serve the overlay figures' titles ([`draw`]) and plotters' axes and legends
//! ([`register_with_plotters`]), so both read alike.
use std::sync::OnceLock;

use ab_glyph::{point, Font, FontRef, PxScale, ScaleFont};

use crate::raster::{Canvas, Rgb};

/// DejaVu Sans 2.37 (Debian's fonts-dejavu-core).
pub static DEJAVU_SANS: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// The family name figures ask plotters for.
pub const FAMILY: &str = "sans-serif";

fn font() -> &'static FontRef<'static> {
    static FONT: OnceLock<FontRef<'static>> = OnceLock::new();
    FONT.get_or_init(|| FontRef::try_from_slice(DEJAVU_SANS).expect("the embedded font parses"))
}

/// Makes [`FAMILY`] available to plotters (once per process; later calls do nothing).
pub fn register_with_plotters() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        plotters::style::register_font(FAMILY, plotters::style::FontStyle::Normal, DEJAVU_SANS)
            .unwrap_or_else(|_| panic!("the embedded font registers"));
    });
}

/// Width in pixels of `text` set at `px` pixels (advances and kerning).
pub fn width(text: &str, px: f32) -> f32 {
    let f = font().as_scaled(PxScale::from(px));
    let mut w = 0.0;
    let mut prev = None;
    for ch in text.chars() {
        let id = f.glyph_id(ch);
        if let Some(p) = prev {
            w += f.kern(p, id);
        }
        w += f.h_advance(id);
        prev = Some(id);
    }
    w
}

/// Draws `text` at `px` pixels with its top-left corner at (x, y), anti-aliased over what
/// the canvas holds. Characters the font lacks show its replacement glyph.
pub fn draw(canvas: &mut Canvas, x: i64, y: i64, text: &str, colour: Rgb, px: f32) {
    let f = font().as_scaled(PxScale::from(px));
    let baseline = y as f32 + f.ascent();
    let mut pen = x as f32;
    let mut prev = None;
    for ch in text.chars() {
        let id = f.glyph_id(ch);
        if let Some(p) = prev {
            pen += f.kern(p, id);
        }
        let glyph = id.with_scale_and_position(PxScale::from(px), point(pen, baseline));
        pen += f.h_advance(id);
        prev = Some(id);
        let Some(outline) = font().outline_glyph(glyph) else {
            continue; // a space
        };
        let b = outline.px_bounds();
        outline.draw(|gx, gy, coverage| {
            let (cx, cy) = (b.min.x as i64 + gx as i64, b.min.y as i64 + gy as i64);
            canvas.blend(cx, cy, colour, coverage.clamp(0.0, 1.0));
        });
    }
}

/// `id` made short enough for a figure title: a DICOM UID (digits and dots, longer than
/// `max` characters) keeps its first and last digits around an ellipsis, so a person can
/// still match it against a file; anything else longer than `max` is cut at the end. The
/// full id goes into the figure's caption file (see `figures`).
pub fn shorten(id: &str, max: usize) -> String {
    let n = id.chars().count();
    if n <= max || max < 5 {
        return id.to_string();
    }
    let keep_tail = (max - 1) / 2;
    let keep_head = max - 1 - keep_tail;
    let chars: Vec<char> = id.chars().collect();
    let head: String = chars[..keep_head].iter().collect();
    let tail: String = chars[n - keep_tail..].iter().collect();
    format!("{head}…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raster::WHITE;

    #[test]
    fn shorten_keeps_both_ends_of_a_uid() {
        let uid = "1.3.6.1.4.1.14519.5.2.1.6279.6001.303494235102183795724852353824";
        let s = shorten(uid, 21);
        assert_eq!(s.chars().count(), 21);
        assert!(s.starts_with("1.3.6.1.4.") && s.ends_with("2353824"), "{s}");
        assert_eq!(shorten("case_01/lesion z4", 21), "case_01/lesion z4");
    }

    #[test]
    fn text_is_drawn_inside_its_width_and_darkens_pixels() {
        let mut c = Canvas::new(120, 24, WHITE);
        draw(&mut c, 2, 2, "Dice 0.82", [0, 0, 0], 14.0);
        let w = width("Dice 0.82", 14.0);
        assert!(w > 40.0 && w < 100.0, "width {w}");
        let mut dark_cols = Vec::new();
        for x in 0..120 {
            if (0..24).any(|y| c.get(x, y)[0] < 128) {
                dark_cols.push(x);
            }
        }
        assert!(!dark_cols.is_empty(), "nothing drawn");
        assert!(*dark_cols.first().unwrap() >= 2);
        assert!((*dark_cols.last().unwrap() as f32) <= 2.0 + w + 1.0);
    }
}
