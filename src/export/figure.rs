//! Figures of a view (spatial or embedding) with plotters: the points in the colours the view
//! shows, in its draw order, with a title, a legend (categories with counts) or a colour bar
//! (continuous values), and a scale bar for spatial views. PNG (with its DPI in `pHYs` and the
//! provenance in a `tEXt` chunk) or SVG (provenance in `<metadata>`), chosen by the extension.

use std::path::Path;

use egui::Color32;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{ExportError, write_atomic};
use crate::render::coloring::{LegendItem, Ramp};

/// What a figure shows.
#[derive(Debug, Clone)]
pub struct Figure<'a> {
    /// Title above the plot.
    pub title: String,
    /// Point positions in data units.
    pub positions: &'a [[f32; 2]],
    /// Colour per point (as on screen).
    pub colors: &'a [Color32],
    /// Points to draw, back to front (hidden points left out), as the view draws them.
    pub order: &'a [u32],
    /// Legend entries (categorical colourings).
    pub legend: &'a [LegendItem],
    /// Colour bar `(low, high, ramp)` (continuous colourings).
    pub colorbar: Option<(f32, f32, Ramp)>,
    /// Units of a scale bar (spatial views); `None` for embeddings.
    pub scale_bar: Option<String>,
    /// Image-style y axis (down), as spatial pixel coordinates.
    pub y_down: bool,
    /// Provenance written into the file.
    pub provenance: serde_json::Value,
}

/// Physical size of a figure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FigureSize {
    /// Width in inches.
    pub width_in: f32,
    /// Height in inches.
    pub height_in: f32,
    /// Dots per inch: PNG pixels per inch (written to `pHYs`); an SVG gets the same pixel size
    /// in user units.
    pub dpi: u32,
}

impl Default for FigureSize {
    /// 6 x 5 inches at 300 dpi (a journal column figure).
    fn default() -> Self {
        FigureSize {
            width_in: 6.0,
            height_in: 5.0,
            dpi: 300,
        }
    }
}

impl FigureSize {
    /// The largest side a figure may have, in pixels (plotters' bitmap backend holds the whole
    /// canvas in memory: 32,768 x 32,768 RGB is 3 GiB).
    pub const MAX_SIDE_PX: f32 = 32_768.0;

    /// Checks that the size is finite and positive and the canvas at most
    /// [`Self::MAX_SIDE_PX`] a side.
    ///
    /// # Errors
    /// [`ExportError::FigureSize`] saying what is accepted.
    pub fn check(&self) -> Result<(), ExportError> {
        let ok = |v: f32| v.is_finite() && v > 0.0;
        let side = self.width_in.max(self.height_in) * self.dpi as f32;
        let expected = if !ok(self.width_in) || !ok(self.height_in) || self.dpi == 0 {
            "width, height and dpi must be positive numbers".to_string()
        } else if side > Self::MAX_SIDE_PX {
            format!("{side:.0} px a side; at most {} px", Self::MAX_SIDE_PX)
        } else {
            return Ok(());
        };
        Err(ExportError::FigureSize {
            width_in: self.width_in,
            height_in: self.height_in,
            dpi: self.dpi,
            expected,
        })
    }

    /// Pixel size `(width, height)`.
    pub fn pixels(&self) -> (u32, u32) {
        (
            (self.width_in * self.dpi as f32).round().max(16.0) as u32,
            (self.height_in * self.dpi as f32).round().max(16.0) as u32,
        )
    }
}

fn rgb(c: Color32) -> RGBColor {
    RGBColor(c.r(), c.g(), c.b())
}

static FONT: std::sync::Once = std::sync::Once::new();

/// Registers egui's default font (Ubuntu Light) as plotters' "sans-serif" once.
pub(crate) fn register_font() {
    FONT.call_once(|| {
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            epaint_default_fonts::UBUNTU_LIGHT,
        );
    });
}

/// A "nice" scale-bar length (1, 2 or 5 times a power of ten) near `target`.
pub fn nice_length(target: f64) -> f64 {
    if !target.is_finite() || target <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(target.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .rfind(|&l| l <= target)
        .unwrap_or(p)
}

/// Top-left anchored text of `points` typographic points (`pt` pixels each), so PNG and SVG
/// place it alike.
fn font(points: f64, pt: f64) -> TextStyle<'static> {
    ("sans-serif", (points * pt) as i32)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Left, VPos::Top))
}

/// The legend: a box and `name (count)` per category from `(x, top)` down, cut with "… N more"
/// at `bottom`.
fn draw_legend<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    legend: &[LegendItem],
    (lx, y0, y1): (i32, i32, i32),
    pt: f64,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let row = (11.0 * pt) as i32;
    let box_ = (7.0 * pt) as i32;
    let fit = ((y1 - y0) / row).max(1) as usize;
    let mut ly = y0;
    for (k, item) in legend.iter().enumerate() {
        if k + 1 == fit && legend.len() > fit {
            let more = format!("… {} more", legend.len() - k);
            root.draw(&Text::new(more, (lx, ly), font(7.0, pt)))?;
            break;
        }
        root.draw(&Rectangle::new(
            [(lx, ly), (lx + box_, ly + box_)],
            rgb(item.color).filled(),
        ))?;
        let label: String = item.name.chars().take(28).collect();
        root.draw(&Text::new(
            format!("{label} ({})", item.count),
            (lx + box_ + (3.0 * pt) as i32, ly - (1.0 * pt) as i32),
            font(7.0, pt),
        ))?;
        ly += row;
    }
    Ok(())
}

/// The colour bar of a continuous colouring, 60 % of the plot's height, with its range.
fn draw_colorbar<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    (lo_v, hi_v, ramp): (f32, f32, Ramp),
    (lx, y0, y1): (i32, i32, i32),
    pt: f64,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let bar_h = ((y1 - y0) as f64 * 0.6) as i32;
    let bw = (8.0 * pt) as i32;
    let steps = 64;
    for s in 0..steps {
        let t = 1.0 - s as f32 / (steps - 1) as f32;
        let ya = y0 + bar_h * s / steps;
        let yb = y0 + bar_h * (s + 1) / steps;
        root.draw(&Rectangle::new(
            [(lx, ya), (lx + bw, yb)],
            rgb(ramp.at(t)).filled(),
        ))?;
    }
    let tx = lx + bw + (3.0 * pt) as i32;
    let top = format!("{hi_v:.3} (p99)");
    root.draw(&Text::new(top, (tx, y0 - (4.0 * pt) as i32), font(7.0, pt)))?;
    let bottom = format!("{lo_v:.3}");
    root.draw(&Text::new(
        bottom,
        (tx, y0 + bar_h - (6.0 * pt) as i32),
        font(7.0, pt),
    ))?;
    Ok(())
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    fig: &Figure<'_>,
    size: &FigureSize,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    register_font();
    let (w, h) = size.pixels();
    let pt = size.dpi as f64 / 72.0; // pixels per typographic point
    let text = |points: f64| font(points, pt);
    root.fill(&WHITE)?;
    let title_h = (16.0 * pt) as i32;
    root.draw(&Text::new(
        fig.title.clone(),
        ((8.0 * pt) as i32, (4.0 * pt) as i32),
        text(11.0),
    ))?;
    let side = if fig.legend.is_empty() && fig.colorbar.is_none() {
        0
    } else {
        (w as f64 * 0.28) as i32
    };
    let margin = (8.0 * pt) as i32;
    let (x0, y0) = (margin, title_h + margin);
    let (x1, y1) = (
        w as i32 - side - margin,
        h as i32 - margin - (14.0 * pt) as i32,
    );
    // Data bounds of the drawn points; equal aspect, centred.
    let drawn = || {
        fig.order
            .iter()
            .filter_map(|&i| fig.positions.get(i as usize))
    };
    let (mut lo, mut hi) = ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]);
    for p in drawn() {
        for k in 0..2 {
            lo[k] = lo[k].min(p[k] as f64);
            hi[k] = hi[k].max(p[k] as f64);
        }
    }
    if !lo[0].is_finite() {
        lo = [0.0; 2];
        hi = [1.0; 2];
    }
    let span = [(hi[0] - lo[0]).max(1e-9), (hi[1] - lo[1]).max(1e-9)];
    let (pw, ph) = ((x1 - x0).max(1) as f64, (y1 - y0).max(1) as f64);
    let scale = (pw / span[0]).min(ph / span[1]) * 0.96;
    let (cx, cy) = ((lo[0] + hi[0]) / 2.0, (lo[1] + hi[1]) / 2.0);
    let to_px = |p: &[f32; 2]| {
        let x = (x0 + x1) as f64 / 2.0 + (p[0] as f64 - cx) * scale;
        let dy = (p[1] as f64 - cy) * scale;
        let y = (y0 + y1) as f64 / 2.0 + if fig.y_down { dy } else { -dy };
        (x.round() as i32, y.round() as i32)
    };
    let n = fig.order.len().max(1);
    let radius = (((pw * ph) / n as f64).sqrt() * 0.28).clamp(0.6 * pt, 6.0 * pt);
    for &i in fig.order {
        let (Some(p), Some(&c)) = (fig.positions.get(i as usize), fig.colors.get(i as usize))
        else {
            continue;
        };
        root.draw(&Circle::new(to_px(p), radius as i32, rgb(c).filled()))?;
    }
    if let Some(units) = &fig.scale_bar {
        let len = nice_length(pw / scale / 5.0);
        let px = (len * scale) as i32;
        let y = h as i32 - margin;
        let x = x1 - px;
        root.draw(&PathElement::new(
            vec![(x, y), (x + px, y)],
            BLACK.stroke_width((1.5 * pt) as u32),
        ))?;
        root.draw(&Text::new(
            format!("{len} {units}"),
            (x, y - (11.0 * pt) as i32),
            text(8.0),
        ))?;
    }
    let lx = w as i32 - side + margin / 2;
    draw_legend(root, fig.legend, (lx, y0, y1), pt)?;
    if let Some((lo_v, hi_v, ramp)) = fig.colorbar {
        draw_colorbar(root, (lo_v, hi_v, ramp), (lx, y0, y1), pt)?;
    }
    root.present()
}

/// Renders `fig` at `size` to `path`: PNG or SVG by the extension. PNG: 8-bit RGB with the
/// DPI in `pHYs` and the provenance JSON in a `tEXt` chunk (`cellscope-provenance`); SVG: the
/// provenance in a `<metadata>` element.
///
/// # Errors
/// [`ExportError::Write`]: an extension other than png/svg, drawing or I/O failures.
pub fn save_figure(fig: &Figure<'_>, size: &FigureSize, path: &Path) -> Result<(), ExportError> {
    size.check()?;
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let (w, h) = size.pixels();
    let meta = serde_json::to_string(&fig.provenance).unwrap_or_default();
    match ext.as_deref() {
        Some("png") => {
            let mut buf = vec![0u8; (w * h * 3) as usize];
            {
                let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
                draw(&root, fig, size).map_err(|e| ExportError::write(path, e))?;
            }
            let out = png_bytes(&buf, (w, h), size.dpi, &meta)
                .map_err(|e| ExportError::write(path, e))?;
            write_atomic(path, &out)
        }
        Some("svg") => {
            let mut svg = String::new();
            {
                let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
                draw(&root, fig, size).map_err(|e| ExportError::write(path, e))?;
            }
            let escaped = meta
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;");
            if let Some(end) = svg
                .find("<svg")
                .and_then(|s| svg[s..].find('>').map(|e| s + e + 1))
            {
                svg.insert_str(
                    end,
                    &format!("\n<metadata id=\"cellscope-provenance\">{escaped}</metadata>"),
                );
            }
            write_atomic(path, svg.as_bytes())
        }
        _ => Err(ExportError::write(
            path,
            "the figure's extension must be .png or .svg",
        )),
    }
}

/// An 8-bit RGB PNG of `buf` (`w x h`) with `dpi` in `pHYs`, the software and `meta` (the
/// provenance JSON, `cellscope-provenance`) in `tEXt` chunks.
///
/// # Errors
/// The PNG encoder's error.
pub(crate) fn png_bytes(
    buf: &[u8],
    (w, h): (u32, u32),
    dpi: u32,
    meta: &str,
) -> Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let ppm = (dpi as f64 / 0.0254).round() as u32;
        enc.set_pixel_dims(Some(png::PixelDimensions {
            xppu: ppm,
            yppu: ppm,
            unit: png::Unit::Meter,
        }));
        enc.add_text_chunk(
            "Software".into(),
            format!("cellscope {}", env!("CARGO_PKG_VERSION")),
        )?;
        enc.add_text_chunk("cellscope-provenance".into(), meta.to_string())?;
        let mut wr = enc.write_header()?;
        wr.write_image_data(buf)?;
    }
    Ok(out)
}
