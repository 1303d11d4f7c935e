//! Rendering: the wgpu point-cloud renderer used by the views, its camera, colour maps
//! (scanpy's palettes, viridis) and the colouring a view draws (a colour per point, with a
//! legend or a colour-bar range). Knows points, colours and cameras, never cells or genes:
//! nothing here imports another layer of the crate.

pub mod camera;
pub mod coloring;
pub mod colors;
pub mod points;
