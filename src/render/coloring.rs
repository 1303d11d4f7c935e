//! A colouring of points as the views draw it and the figures export it: one colour per point,
//! with a legend (categories) or a colour-bar range (continuous values). What the colours mean
//! is computed elsewhere ([`crate::pipeline::jobs::coloring`]); this module knows colours only.

use egui::Color32;

use super::colors::viridis;

/// One legend entry.
#[derive(Debug, Clone, PartialEq)]
pub struct LegendItem {
    /// Category name.
    pub name: String,
    /// Its colour.
    pub color: Color32,
    /// Cells in it.
    pub count: usize,
}

/// Per-point colouring: categories (codes into `legend`) or continuous values.
#[derive(Debug, Clone, Default)]
pub struct Coloring {
    /// Legend position of each cell's category (categorical colourings).
    pub codes: Option<Vec<u32>>,
    /// Colour of each cell.
    pub colors: Vec<Color32>,
    /// Categories in legend order (categorical colourings).
    pub legend: Vec<LegendItem>,
    /// Colour-bar range `(low, 99th percentile)` (continuous colourings).
    pub range: Option<(f32, f32)>,
    /// The continuous values coloured (kept for hover text and exports).
    pub values: Option<Vec<f32>>,
}

/// How continuous values are coloured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ramp {
    /// viridis.
    Viridis,
    /// Light grey to red (confidences).
    Confidence,
}

impl Ramp {
    /// The colour at `t` in `[0, 1]`.
    pub fn at(self, t: f32) -> Color32 {
        match self {
            Ramp::Viridis => viridis(t),
            Ramp::Confidence => {
                Color32::from_gray(200).lerp_to_gamma(Color32::from_rgb(200, 30, 30), t)
            }
        }
    }
}
