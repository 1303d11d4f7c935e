//! Rendering: the wgpu point-cloud renderer used by the views, and its camera.

pub mod camera;
pub mod points;
