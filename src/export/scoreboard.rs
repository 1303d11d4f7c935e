//! The scib-style results figure (scib-metrics' `Benchmarker.plot_results_table`): methods as
//! rows, each metric a column of dots whose size and colour (viridis) give the value, the
//! aggregate scores as bars, the rows ordered by the total (best first). PNG, with provenance.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::figure::png_bytes;
use super::{ExportError, write_atomic};
use crate::render::coloring::Ramp;

/// A results table: `values[row][column]`, `None` where a metric could not be computed. The
/// last `aggregates` columns are drawn as bars; every value is in `[0, 1]` (scib scores).
#[derive(Debug, Clone)]
pub struct Scoreboard {
    /// Row names (methods).
    pub rows: Vec<String>,
    /// Column names (metrics, then aggregates).
    pub columns: Vec<String>,
    /// Values per row, one per column.
    pub values: Vec<Vec<Option<f64>>>,
    /// How many trailing columns are aggregates (bars).
    pub aggregates: usize,
    /// Title above the table.
    pub title: String,
}

/// Pixels per typographic point at 150 dpi.
const PT: f64 = 150.0 / 72.0;

fn text(points: f64, h: HPos) -> TextStyle<'static> {
    ("sans-serif", (points * PT) as i32)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(h, VPos::Center))
}

fn rgb(c: egui::Color32) -> RGBColor {
    RGBColor(c.r(), c.g(), c.b())
}

/// Draws `board` as a PNG at `path` (150 dpi), rows sorted by their last column (the total),
/// highest first.
///
/// # Errors
/// [`ExportError::Write`] naming the file.
pub fn save_scoreboard(
    board: &Scoreboard,
    provenance: &serde_json::Value,
    path: &Path,
) -> Result<(), ExportError> {
    let row_h = (22.0 * PT) as u32;
    let col_w = (44.0 * PT) as u32;
    let name_w = (110.0 * PT) as u32;
    let head_h = (70.0 * PT) as u32;
    let w = name_w + col_w * board.columns.len() as u32 + (10.0 * PT) as u32;
    let h = head_h + row_h * board.rows.len().max(1) as u32 + (12.0 * PT) as u32;
    let mut buf = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        draw(&root, board, (name_w, col_w, row_h, head_h))
            .map_err(|e| ExportError::write(path, e))?;
    }
    let meta = serde_json::to_string(provenance).unwrap_or_default();
    let png = png_bytes(&buf, (w, h), 150, &meta).map_err(|e| ExportError::write(path, e))?;
    write_atomic(path, &png)
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    board: &Scoreboard,
    (name_w, col_w, row_h, head_h): (u32, u32, u32, u32),
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    super::figure::register_font();
    root.fill(&WHITE)?;
    root.draw(&Text::new(
        board.title.clone(),
        ((6.0 * PT) as i32, (10.0 * PT) as i32),
        text(10.0, HPos::Left),
    ))?;
    let n_cols = board.columns.len();
    let first_agg = n_cols - board.aggregates.min(n_cols);
    for (c, name) in board.columns.iter().enumerate() {
        let x = (name_w + col_w * c as u32 + col_w / 2) as i32;
        let style = text(6.5, HPos::Left).transform(FontTransform::Rotate270);
        root.draw(&Text::new(name.clone(), (x, head_h as i32 - 4), style))?;
    }
    let mut order: Vec<usize> = (0..board.rows.len()).collect();
    let total = |r: usize| {
        board.values[r]
            .last()
            .copied()
            .flatten()
            .unwrap_or(f64::NEG_INFINITY)
    };
    order.sort_by(|&a, &b| total(b).total_cmp(&total(a)));
    for (k, &r) in order.iter().enumerate() {
        let yc = (head_h + row_h * k as u32 + row_h / 2) as i32;
        if k % 2 == 0 {
            root.draw(&Rectangle::new(
                [
                    (0, yc - row_h as i32 / 2),
                    (root.dim_in_pixel().0 as i32, yc + row_h as i32 / 2),
                ],
                RGBColor(244, 244, 244).filled(),
            ))?;
        }
        root.draw(&Text::new(
            board.rows[r].clone(),
            ((6.0 * PT) as i32, yc),
            text(8.0, HPos::Left),
        ))?;
        for (c, v) in board.values[r].iter().enumerate() {
            let xc = (name_w + col_w * c as u32 + col_w / 2) as i32;
            let Some(v) = *v else {
                root.draw(&Text::new("n/a", (xc, yc), text(6.0, HPos::Center)))?;
                continue;
            };
            let t = v.clamp(0.0, 1.0);
            let color = rgb(Ramp::Viridis.at(t as f32));
            if c >= first_agg {
                let x0 = (name_w + col_w * c as u32) as i32 + 3;
                let len = ((col_w as f64 - 6.0) * t) as i32;
                let half = (row_h as f64 * 0.3) as i32;
                root.draw(&Rectangle::new(
                    [(x0, yc - half), (x0 + len, yc + half)],
                    color.filled(),
                ))?;
            } else {
                let radius = (row_h as f64 * 0.42 * (0.25 + 0.75 * t)) as i32;
                root.draw(&Circle::new((xc, yc), radius, color.filled()))?;
            }
            let label_color = if (0.35..0.55).contains(&t) && c < first_agg {
                WHITE
            } else {
                BLACK
            };
            root.draw(&Text::new(
                format!("{v:.2}"),
                (xc, yc),
                text(5.5, HPos::Center).color(&label_color),
            ))?;
        }
    }
    root.present()
}
