//! A tiny RGB raster (filled rectangles, lines, mask contours, anti-aliased text in the
//! embedded typeface of [`crate::typeface`]) and PNG encoding/decoding: the image panels of
//! the report's figures, pixel-exact where tests check them, and the predictions folder.
//! Plots with axes are drawn by plotters (`crate::curves`) into the same kind of buffer.
use std::io::{BufReader, Cursor};
use std::path::{Path, PathBuf};

pub type Rgb = [u8; 3];

pub const WHITE: Rgb = [255, 255, 255];
pub const BLACK: Rgb = [0, 0, 0];
pub const GREY: Rgb = [150, 150, 150];
pub const LIGHT_GREY: Rgb = [225, 225, 225];

/// Distinct colours for overlays and curves (Okabe-Ito, readable by colour-blind readers),
/// cycled when more are needed.
pub const PALETTE: [Rgb; 8] = [
    [230, 159, 0],
    [86, 180, 233],
    [0, 158, 115],
    [240, 228, 66],
    [0, 114, 178],
    [213, 94, 0],
    [204, 121, 167],
    [120, 120, 120],
];

/// Text size of panel labels and row titles, in pixels.
pub const TEXT_PX: f32 = 13.0;

#[derive(Debug, thiserror::Error)]
pub enum RasterError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a readable PNG: {reason}")]
    Png { path: PathBuf, reason: String },
    #[error(transparent)]
    Write(#[from] schemas::SchemaError),
}

/// An RGB image, row-major `[H, W, 3]`.
#[derive(Debug, Clone)]
pub struct Canvas {
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<u8>,
}

impl Canvas {
    pub fn new(width: u32, height: u32, background: Rgb) -> Self {
        let rgb = background
            .iter()
            .cloned()
            .cycle()
            .take((width * height * 3) as usize)
            .collect();
        Canvas { width, height, rgb }
    }

    /// Sets one pixel; coordinates outside the canvas are ignored (clipping).
    pub fn set(&mut self, x: i64, y: i64, c: Rgb) {
        if x < 0 || y < 0 || x >= self.width as i64 || y >= self.height as i64 {
            return;
        }
        let i = ((y as u32 * self.width + x as u32) * 3) as usize;
        self.rgb[i..i + 3].copy_from_slice(&c);
    }

    pub fn get(&self, x: u32, y: u32) -> Rgb {
        let i = ((y * self.width + x) * 3) as usize;
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }

    pub fn fill_rect(&mut self, x: i64, y: i64, w: u32, h: u32, c: Rgb) {
        for yy in y..y + h as i64 {
            for xx in x..x + w as i64 {
                self.set(xx, yy, c);
            }
        }
    }

    /// Outline of a rectangle, 1 pixel wide.
    pub fn rect(&mut self, x: i64, y: i64, w: u32, h: u32, c: Rgb) {
        let (x1, y1) = (x + w as i64 - 1, y + h as i64 - 1);
        self.line(x, y, x1, y, c);
        self.line(x, y1, x1, y1, c);
        self.line(x, y, x, y1, c);
        self.line(x1, y, x1, y1, c);
    }

    /// Bresenham line between two points (inclusive).
    pub fn line(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, c: Rgb) {
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let (mut x, mut y, mut err) = (x0, y0, dx + dy);
        loop {
            self.set(x, y, c);
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    /// A line `thickness` pixels wide (offset copies; enough for plot curves).
    pub fn thick_line(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, thickness: i64, c: Rgb) {
        let lo = -(thickness - 1) / 2;
        for d in lo..lo + thickness {
            if (x1 - x0).abs() >= (y1 - y0).abs() {
                self.line(x0, y0 + d, x1, y1 + d, c);
            } else {
                self.line(x0 + d, y0, x1 + d, y1, c);
            }
        }
    }

    /// Draws a grey `[h, w]` image (values in 0..=1, clamped) at (x0, y0), each pixel a
    /// `scale` x `scale` block.
    pub fn blit_grey(&mut self, x0: i64, y0: i64, grey: &[f32], w: u32, h: u32, scale: u32) {
        for y in 0..h {
            for x in 0..w {
                let v = (grey[(y * w + x) as usize].clamp(0.0, 1.0) * 255.0).round() as u8;
                self.fill_rect(
                    x0 + (x * scale) as i64,
                    y0 + (y * scale) as i64,
                    scale,
                    scale,
                    [v, v, v],
                );
            }
        }
    }

    /// Draws the contour of a binary `[h, w]` mask (foreground pixels with a 4-neighbour in
    /// the background or outside) at (x0, y0), scaled like [`Canvas::blit_grey`].
    // Position, mask geometry and style are all needed; a struct would only rename them.
    #[allow(clippy::too_many_arguments)]
    pub fn contour(&mut self, x0: i64, y0: i64, mask: &[u8], w: u32, h: u32, scale: u32, c: Rgb) {
        let at = |x: i64, y: i64| {
            x >= 0
                && y >= 0
                && x < w as i64
                && y < h as i64
                && mask[(y * w as i64 + x) as usize] != 0
        };
        for y in 0..h as i64 {
            for x in 0..w as i64 {
                if at(x, y) && !(at(x - 1, y) && at(x + 1, y) && at(x, y - 1) && at(x, y + 1)) {
                    self.fill_rect(
                        x0 + x * scale as i64,
                        y0 + y * scale as i64,
                        scale,
                        scale,
                        c,
                    );
                }
            }
        }
    }

    /// Blends colour `c` with weight `alpha` over the foreground of a binary `[h, w]` mask.
    // Position, mask geometry and style are all needed; a struct would only rename them.
    #[allow(clippy::too_many_arguments)]
    pub fn tint(
        &mut self,
        x0: i64,
        y0: i64,
        mask: &[u8],
        w: u32,
        h: u32,
        scale: u32,
        c: Rgb,
        alpha: f32,
    ) {
        for y in 0..h {
            for x in 0..w {
                if mask[(y * w + x) as usize] == 0 {
                    continue;
                }
                for dy in 0..scale {
                    for dx in 0..scale {
                        let (px, py) = (x0 + (x * scale + dx) as i64, y0 + (y * scale + dy) as i64);
                        if px < 0 || py < 0 || px >= self.width as i64 || py >= self.height as i64 {
                            continue;
                        }
                        let old = self.get(px as u32, py as u32);
                        let mix = |o: u8, n: u8| {
                            (o as f32 * (1.0 - alpha) + n as f32 * alpha).round() as u8
                        };
                        self.set(
                            px,
                            py,
                            [mix(old[0], c[0]), mix(old[1], c[1]), mix(old[2], c[2])],
                        );
                    }
                }
            }
        }
    }

    /// Blends `c` over pixel (x, y) with weight `alpha` (0..=1); outside is ignored.
    pub fn blend(&mut self, x: i64, y: i64, c: Rgb, alpha: f32) {
        if x < 0 || y < 0 || x >= self.width as i64 || y >= self.height as i64 {
            return;
        }
        let i = ((y as u32 * self.width + x as u32) * 3) as usize;
        for (px, &want) in self.rgb[i..i + 3].iter_mut().zip(&c) {
            let old = *px as f32;
            *px = (old + (want as f32 - old) * alpha).round() as u8;
        }
    }

    /// Writes `text` at `px` pixels, top-left at (x, y) ([`crate::typeface::draw`]).
    pub fn text(&mut self, x: i64, y: i64, text: &str, c: Rgb, px: f32) {
        crate::typeface::draw(self, x, y, text, c, px);
    }

    /// Width in pixels of `text` at `px` pixels.
    pub fn text_width(text: &str, px: f32) -> u32 {
        crate::typeface::width(text, px).ceil() as u32
    }

    /// Encodes as an 8-bit RGB PNG.
    pub fn to_png(&self) -> Vec<u8> {
        encode_png(self.width, self.height, png::ColorType::Rgb, &self.rgb)
    }

    /// Writes the PNG atomically.
    pub fn save(&self, path: &Path) -> Result<(), RasterError> {
        Ok(schemas::atomic::write_file_atomic(path, &self.to_png())?)
    }
}

pub(crate) fn encode_png(width: u32, height: u32, color: png::ColorType, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, width, height);
        enc.set_color(color);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().expect("PNG header into memory");
        w.write_image_data(data)
            .expect("PNG data matches its header");
    }
    out
}

/// Encodes an 8-bit grey `[h, w]` image as PNG bytes.
pub fn encode_grey8(width: u32, height: u32, grey: &[u8]) -> Vec<u8> {
    encode_png(width, height, png::ColorType::Grayscale, grey)
}

/// A decoded single-channel image with values scaled to [0, 1] (v / 255 for 8-bit,
/// v / 65535 for 16-bit).
#[derive(Debug, Clone, PartialEq)]
pub struct GreyImage {
    pub width: u32,
    pub height: u32,
    /// `[h, w]`.
    pub values: Vec<f32>,
}

/// Most bytes deflate (the PNG pixel stream) produces per input byte: a 258-byte match
/// coded in as little as ~2 bits (about 1032:1, RFC 1951).
const MAX_INFLATE_RATIO: usize = 1032;

/// Reads a greyscale PNG (1-16 bit; palette and RGB images are refused: a probability map
/// must have one channel).
pub fn read_grey_png(path: &Path) -> Result<GreyImage, RasterError> {
    let bytes = std::fs::read(path).map_err(|source| RasterError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |reason: String| RasterError::Png {
        path: path.to_path_buf(),
        reason,
    };
    let file_len = bytes.len();
    let mut dec = png::Decoder::new(BufReader::new(Cursor::new(bytes)));
    dec.set_transformations(png::Transformations::EXPAND);
    let mut reader = dec.read_info().map_err(|e| bad(e.to_string()))?;
    let (color, depth) = reader.output_color_type();
    if color != png::ColorType::Grayscale {
        return Err(bad(format!(
            "colour type {color:?}; expected a single-channel greyscale PNG"
        )));
    }
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| bad("image too large".into()))?;
    // The header's size is only a claim: the pixels come from the file's deflate stream,
    // which cannot expand a byte into more than MAX_INFLATE_RATIO bytes (x8 when 1-bit grey
    // is expanded to 8 bits). Refusing larger claims keeps a 100-byte file from allocating
    // a terabyte (found by fuzzing, fuzz/ target `predictions_folder`).
    let most = file_len
        .saturating_mul(MAX_INFLATE_RATIO * 8)
        .saturating_add(1 << 16);
    if size > most {
        let (w, h) = (reader.info().width, reader.info().height);
        return Err(bad(format!(
            "header claims {w}x{h} pixels, more than a {file_len}-byte PNG can hold"
        )));
    }
    let mut buf = vec![0u8; size];
    let info = reader
        .next_frame(&mut buf)
        .map_err(|e| bad(e.to_string()))?;
    let (w, h) = (info.width, info.height);
    let values: Vec<f32> = match depth {
        png::BitDepth::Sixteen => buf[..(w * h * 2) as usize]
            .chunks_exact(2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]) as f32 / 65535.0)
            .collect(),
        _ => buf[..(w * h) as usize]
            .iter()
            .map(|&v| v as f32 / 255.0)
            .collect(),
    };
    Ok(GreyImage {
        width: w,
        height: h,
        values,
    })
}
