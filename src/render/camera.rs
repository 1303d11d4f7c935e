//! 2-D camera for point views: data ↔ screen transforms with a single scale for both axes
//! (aspect preserved), zoom about the cursor, pan, fit to data.

use egui::{Pos2, Rect, Vec2};

/// A view's camera.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Camera {
    /// Data coordinates at the centre of the view.
    pub center: [f64; 2],
    /// Data units per screen point.
    pub units_per_point: f64,
    /// True when data y grows downwards on screen (image/pixel coordinates).
    pub y_down: bool,
}

impl Camera {
    /// A camera showing `bounds` (`[min_x, min_y, max_x, max_y]`) inside `rect` with a 5 % margin.
    pub fn fit(bounds: [f64; 4], rect: Rect, y_down: bool) -> Self {
        let w = (bounds[2] - bounds[0]).max(1e-9);
        let h = (bounds[3] - bounds[1]).max(1e-9);
        let upp = (w / rect.width().max(1.0) as f64).max(h / rect.height().max(1.0) as f64) * 1.05;
        Camera {
            center: [(bounds[0] + bounds[2]) / 2.0, (bounds[1] + bounds[3]) / 2.0],
            units_per_point: upp,
            y_down,
        }
    }

    fn sy(&self) -> f64 {
        if self.y_down { 1.0 } else { -1.0 }
    }

    /// Screen position of a data point.
    pub fn to_screen(&self, rect: Rect, p: [f64; 2]) -> Pos2 {
        let c = rect.center();
        Pos2::new(
            c.x + ((p[0] - self.center[0]) / self.units_per_point) as f32,
            c.y + (self.sy() * (p[1] - self.center[1]) / self.units_per_point) as f32,
        )
    }

    /// Data position under a screen point.
    pub fn to_data(&self, rect: Rect, s: Pos2) -> [f64; 2] {
        let c = rect.center();
        [
            self.center[0] + (s.x - c.x) as f64 * self.units_per_point,
            self.center[1] + self.sy() * (s.y - c.y) as f64 * self.units_per_point,
        ]
    }

    /// Zooms by `factor` (> 1 zooms in) keeping the data under `anchor` fixed.
    pub fn zoom_at(&mut self, rect: Rect, anchor: Pos2, factor: f64) {
        let before = self.to_data(rect, anchor);
        self.units_per_point /= factor.max(1e-6);
        let after = self.to_data(rect, anchor);
        self.center[0] += before[0] - after[0];
        self.center[1] += before[1] - after[1];
    }

    /// Pans by a screen-space drag delta.
    pub fn pan(&mut self, delta: Vec2) {
        self.center[0] -= delta.x as f64 * self.units_per_point;
        self.center[1] -= self.sy() * delta.y as f64 * self.units_per_point;
    }

    /// Data → clip-space scale for the shader (`rect` in points).
    pub fn clip_scale(&self, rect: Rect) -> [f32; 2] {
        let sx = 2.0 / (rect.width() as f64 * self.units_per_point);
        let sy = 2.0 / (rect.height() as f64 * self.units_per_point);
        // clip y is up; screen y is down
        [sx as f32, (-self.sy() * sy) as f32]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_zoom_anchor() {
        let rect = Rect::from_min_size(Pos2::new(10.0, 20.0), Vec2::new(400.0, 300.0));
        for y_down in [false, true] {
            let mut cam = Camera::fit([0.0, 0.0, 100.0, 50.0], rect, y_down);
            let p = [30.0, 40.0];
            let s = cam.to_screen(rect, p);
            let q = cam.to_data(rect, s);
            assert!((q[0] - p[0]).abs() < 1e-3 && (q[1] - p[1]).abs() < 1e-3);
            let anchor = Pos2::new(100.0, 100.0);
            let d0 = cam.to_data(rect, anchor);
            cam.zoom_at(rect, anchor, 2.0);
            let d1 = cam.to_data(rect, anchor);
            assert!((d0[0] - d1[0]).abs() < 1e-6 && (d0[1] - d1[1]).abs() < 1e-6);
            // every corner of the data is on screen after fitting
            let cam = Camera::fit([0.0, 0.0, 100.0, 50.0], rect, y_down);
            for c in [[0.0, 0.0], [100.0, 50.0]] {
                assert!(rect.contains(cam.to_screen(rect, c)));
            }
        }
    }
}
