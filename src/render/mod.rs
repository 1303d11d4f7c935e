//! Rendering: the wgpu point-cloud renderer used by the views, its camera, and the colourings
//! (palettes, legends, colour bars) shared by the views and the figure exports.

pub mod camera;
pub mod coloring;
pub mod colors;
pub mod points;
