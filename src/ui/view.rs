//! One point view (embedding or spatial): GPU points, camera interaction, hover, box selection.

use egui::{Color32, Pos2, Rect, Sense, Stroke, Ui};

use crate::render::camera::Camera;
use crate::render::points::{PointData, PointsCallback, ViewUniform, paint_callback};

use crate::data::vendor::outlines::Outlines;

/// Most cell outlines drawn in one frame: beyond this many cells on screen they would be too
/// small to read, and the points show the cells.
pub const MAX_OUTLINES: usize = 20_000;

/// What the spatial view draws besides the points: the image under them and the cells'
/// outlines over them.
#[derive(Clone, Copy, Default)]
pub struct Backdrop<'a> {
    /// The image under the points.
    pub underlay: Option<&'a Underlay>,
    /// One outline per point (cell segmentation), drawn when zoomed in.
    pub outlines: Option<&'a Outlines>,
    /// Whether the outlines are filled (translucent, in the cell's colour) as well as stroked.
    pub fill: bool,
}

impl<'a> Backdrop<'a> {
    /// The underlay and outlines for a spatial view (`y_down`), nothing for an embedding.
    pub fn of(
        y_down: bool,
        underlay: Option<&'a Underlay>,
        outlines: Option<&'a Outlines>,
        fill: bool,
    ) -> Self {
        if y_down {
            Self {
                underlay,
                outlines,
                fill,
            }
        } else {
            Self::default()
        }
    }
}

/// An image under the spatial view (H&E, Visium tissue image, a MERSCOPE mosaic).
pub struct Underlay {
    /// The uploaded texture.
    pub texture: egui::TextureHandle,
    /// Its extent in data units (width, height).
    pub size: [f64; 2],
    /// Data coordinates of its top-left corner.
    pub origin: [f64; 2],
    /// 0 (hidden) to 1.
    pub opacity: f32,
    /// What was decoded: the file, its full-resolution placement and the contrast limits.
    pub request: crate::pipeline::jobs::open::ImageRequest,
    /// The grey values shown black and white, when it is a grey image (contrast limits apply).
    pub grey_range: Option<[u16; 2]>,
    /// Whether finer levels of its pyramid can be read for a zoomed-in view.
    pub pyramid: bool,
    /// A finer window of it over the zoomed-in view, when one has been read.
    pub detail: Option<Detail>,
}

/// A window of an underlay read at a finer pyramid level than the whole image's texture.
pub struct Detail {
    /// The uploaded texture.
    pub texture: egui::TextureHandle,
    /// Data coordinates of its top-left corner.
    pub origin: [f64; 2],
    /// Its extent in data units (width, height).
    pub size: [f64; 2],
    /// The pyramid level it was read from (0 = full resolution).
    pub level: usize,
}

/// What a view reports back to the app after a frame.
#[derive(Debug, Default)]
pub struct ViewResponse {
    /// Point under the cursor.
    pub hovered: Option<usize>,
    /// A finished box selection: indices inside the box.
    pub selected: Option<Vec<usize>>,
}

/// A 2-D k-d tree over a view's positions for hover picking (kiddo), built on its own thread
/// so that a million-point view never stalls the UI; until it is ready hover scans the drawn
/// points.
type HoverIndex = std::sync::Arc<std::sync::OnceLock<kiddo::ImmutableKdTree<f32, 2>>>;

/// Starts building the hover index of `positions` in the background.
fn build_hover_index(positions: std::sync::Arc<Vec<[f32; 2]>>) -> HoverIndex {
    let index: HoverIndex = std::sync::Arc::default();
    let slot = index.clone();
    let _ = std::thread::Builder::new()
        .name("cellscope-hover-index".into())
        .spawn(move || {
            if positions
                .iter()
                .all(|p| p[0].is_finite() && p[1].is_finite())
                && let Ok(tree) = kiddo::ImmutableKdTree::new_from_slice(&positions)
            {
                let _ = slot.set(tree);
            }
        });
    index
}

/// How spots are drawn over a tissue image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpotStyle {
    /// Diameter in data units (spots at their physical size, scaled with the zoom); `None`: the
    /// automatic on-screen size.
    pub diameter: Option<f64>,
    /// Rings instead of discs, so the tissue under each spot shows.
    pub outline: bool,
    /// Alpha multiplier, 0..1.
    pub opacity: f32,
}

impl Default for SpotStyle {
    fn default() -> Self {
        Self {
            diameter: None,
            outline: false,
            opacity: 1.0,
        }
    }
}

/// State of one view.
pub struct PointView {
    /// Stable id for GPU buffers.
    pub id: u64,
    /// Title shown in the corner (also its accessibility label).
    pub title: String,
    /// Image-style coordinates (y down).
    pub y_down: bool,
    /// Units name for the scale bar (`None` hides it).
    pub units: Option<String>,
    /// Positions (data units).
    pub positions: std::sync::Arc<Vec<[f32; 2]>>,
    /// Camera (fitted on first show).
    pub camera: Option<Camera>,
    /// Point-size multiplier set by the user.
    pub size_factor: f32,
    /// How points are drawn over an image (spots at their physical size, outlines, opacity).
    pub spots: SpotStyle,
    /// Where the view was last drawn.
    pub last_rect: Option<Rect>,
    drag_start: Option<Pos2>,
    lasso: Vec<Pos2>,
    /// Hover index over `positions` (the positions it was built for, by address).
    hover_index: Option<(usize, HoverIndex)>,
    /// Draw rank of each point (`u32::MAX` = hidden), for the `PointData` generation it was
    /// computed from.
    rank: Option<(u64, Vec<u32>)>,
}

impl PointView {
    /// A view of `positions`.
    pub fn new(
        id: u64,
        title: &str,
        positions: Vec<[f32; 2]>,
        y_down: bool,
        units: Option<String>,
    ) -> Self {
        PointView {
            id,
            title: title.into(),
            y_down,
            units,
            positions: std::sync::Arc::new(positions),
            camera: None,
            size_factor: 1.0,
            spots: SpotStyle::default(),
            last_rect: None,
            drag_start: None,
            lasso: Vec::new(),
            hover_index: None,
            rank: None,
        }
    }

    /// The point under the cursor at data position `d`: the nearest drawn point within `r`
    /// data units, the one drawn on top on ties. Uses the k-d tree when it is ready (built in
    /// the background when the view first shows its positions), else a scan over the drawn
    /// points.
    fn pick(
        hover_index: &Option<(usize, HoverIndex)>,
        rank_cache: &mut Option<(u64, Vec<u32>)>,
        positions: &[[f32; 2]],
        data: &PointData,
        d: [f64; 2],
        r: f64,
    ) -> Option<usize> {
        let tree = hover_index.as_ref().and_then(|(_, t)| t.get());
        let Some(tree) = tree else {
            let mut best = (r * r, None);
            for &i in data.order.iter() {
                let Some(q) = positions.get(i as usize) else {
                    continue;
                };
                let dd = (q[0] as f64 - d[0]).powi(2) + (q[1] as f64 - d[1]).powi(2);
                if dd <= best.0 {
                    best = (dd, Some(i as usize));
                }
            }
            return best.1;
        };
        if rank_cache
            .as_ref()
            .is_none_or(|(g, _)| *g != data.generation)
        {
            let mut rank = vec![u32::MAX; positions.len()];
            for (k, &i) in data.order.iter().enumerate() {
                if let Some(r) = rank.get_mut(i as usize) {
                    *r = k as u32;
                }
            }
            *rank_cache = Some((data.generation, rank));
        }
        let rank = &rank_cache.as_ref()?.1;
        let q = [d[0] as f32, d[1] as f32];
        tree.query(&q)
            .within::<kiddo::SquaredEuclidean<f32>>((r * r) as f32)
            .execute()
            .into_iter()
            .filter(|n| rank.get(n.item as usize).is_some_and(|&k| k != u32::MAX))
            .min_by(|a, b| {
                a.distance
                    .total_cmp(&b.distance)
                    .then(rank[b.item as usize].cmp(&rank[a.item as usize]))
            })
            .map(|n| n.item as usize)
    }

    /// The median distance from a point to its nearest neighbour (data units) over up to 1,000
    /// points spread through the view, once the hover index is built (`None` before, or with
    /// fewer than two points). On a spot array it is the centre spacing.
    pub fn spot_spacing(&self) -> Option<f64> {
        let tree = self.hover_index.as_ref()?.1.get()?;
        let n = self.positions.len();
        let two = std::num::NonZeroUsize::new(2)?;
        let mut d: Vec<f32> = (0..n)
            .step_by((n / 1000).max(1))
            .filter_map(|i| {
                let res = tree
                    .query(&self.positions[i])
                    .nearest_n::<kiddo::SquaredEuclidean<f32>>(two)
                    .execute();
                res.iter()
                    .map(|r| r.distance)
                    .filter(|&x| x > 0.0)
                    .reduce(f32::min)
            })
            .collect();
        if d.is_empty() {
            return None;
        }
        let mid = d.len() / 2;
        Some(f64::from(*d.select_nth_unstable_by(mid, f32::total_cmp).1).sqrt())
    }

    /// Automatic point diameter in points for `n` points on a `rect`, before the user's factor:
    /// larger for sparse clouds, never below 1.5.
    pub fn auto_point_size(n: usize, rect: Rect) -> f32 {
        let area = rect.width() * rect.height();
        ((area / n.max(1) as f32).sqrt() * 0.55).clamp(1.5, 14.0)
    }

    /// Draws the view into `rect` and handles input (wheel zoom at the cursor, drag to pan,
    /// shift-drag for box selection, ctrl/alt-drag for a lasso, double-click to fit).
    pub fn show(
        &mut self,
        ui: &mut Ui,
        rect: Rect,
        data: &PointData,
        dim_unselected: bool,
        format: Option<eframe::wgpu::TextureFormat>,
        backdrop: Backdrop<'_>,
    ) -> ViewResponse {
        let mut out = ViewResponse::default();
        self.last_rect = Some(rect);
        let key = std::sync::Arc::as_ptr(&self.positions) as usize;
        if self.hover_index.as_ref().is_none_or(|(k, _)| *k != key) {
            self.hover_index = Some((key, build_hover_index(self.positions.clone())));
        }
        let resp = ui.allocate_rect(rect, Sense::click_and_drag());
        resp.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Canvas, true, &self.title));
        let painter = ui.painter_at(rect);
        painter.rect_filled(rect, 0.0, Color32::from_gray(250));
        let mut cam = self.zoomed_camera(ui, &resp, rect);
        out.selected = self.select_or_pan(ui, &resp, &painter, &mut cam, rect);
        if let Some(u) = backdrop.underlay
            && u.opacity > 0.0
        {
            let uv = Rect::from_min_max(Pos2::ZERO, Pos2::new(1.0, 1.0));
            let tint = Color32::from_white_alpha((u.opacity * 255.0) as u8);
            let place = |origin: [f64; 2], size: [f64; 2]| {
                let a = cam.to_screen(rect, origin);
                Rect::from_two_pos(
                    a,
                    cam.to_screen(rect, [origin[0] + size[0], origin[1] + size[1]]),
                )
            };
            // A finer window read for the zoomed-in view replaces the coarse texture where it
            // covers the whole view (drawing both would darken the window by blending twice).
            let detail = u.detail.as_ref().map(|d| (d, place(d.origin, d.size)));
            if detail.is_none_or(|(_, r)| !r.contains_rect(rect)) {
                painter.image(u.texture.id(), place(u.origin, u.size), uv, tint);
            }
            if let Some((d, r)) = detail {
                painter.image(d.texture.id(), r, uv, tint);
            }
        }
        let size = match self.spots.diameter {
            Some(d) => (d / cam.units_per_point) as f32 * self.size_factor,
            None => Self::auto_point_size(data.order.len(), rect) * self.size_factor,
        };
        if let Some(format) = format {
            let ppp = ui.ctx().pixels_per_point();
            let uniform = ViewUniform {
                center: [cam.center[0] as f32, cam.center[1] as f32],
                scale: cam.clip_scale(rect),
                viewport: [rect.width() * ppp, rect.height() * ppp],
                point_size: size * ppp,
                dim_unselected: if dim_unselected { 1.0 } else { 0.0 },
                opacity: self.spots.opacity.clamp(0.0, 1.0),
                outline: if self.spots.outline { 1.0 } else { 0.0 },
                pad: [0.0; 2],
            };
            let cb = PointsCallback {
                view_id: self.id,
                data: data.clone(),
                uniform,
                format,
            };
            painter.add(paint_callback(rect, cb));
        }
        if let Some(o) = backdrop.outlines {
            draw_outlines(&painter, rect, &cam, data, o, backdrop.fill);
        }
        // Hover: the nearest drawn point within its radius (+4 points); hidden points are not in
        // `order`.
        if let Some(p) = resp.hover_pos()
            && self.drag_start.is_none()
            && self.lasso.is_empty()
        {
            let d = cam.to_data(rect, p);
            let r = (size as f64 / 2.0 + 4.0) * cam.units_per_point;
            out.hovered = Self::pick(
                &self.hover_index,
                &mut self.rank,
                &self.positions,
                data,
                d,
                r,
            );
        }
        painter.text(
            rect.left_top() + egui::vec2(6.0, 4.0),
            egui::Align2::LEFT_TOP,
            &self.title,
            egui::FontId::proportional(14.0),
            Color32::from_gray(40),
        );
        if let Some(units) = &self.units {
            draw_scale_bar(&painter, rect, cam.units_per_point, units);
        }
        self.camera = Some(cam);
        out
    }

    /// The camera after this frame's fit (first show, double-click) and wheel zoom. Fitted
    /// inside the rect less a point's radius, so edge points are drawn whole.
    fn zoomed_camera(&mut self, ui: &Ui, resp: &egui::Response, rect: Rect) -> Camera {
        let radius = Self::auto_point_size(self.positions.len(), rect) * self.size_factor / 2.0;
        let fit_rect = rect.shrink(radius + 1.0);
        let fit = || Camera::fit(bounds_of(&self.positions), fit_rect, self.y_down);
        let mut cam = match self.camera {
            Some(c) if !resp.double_clicked() => c,
            _ => fit(),
        };
        if resp.hovered() {
            let scroll = ui.input(|i| i.smooth_scroll_delta.y);
            if scroll != 0.0
                && let Some(p) = resp.hover_pos()
            {
                cam.zoom_at(rect, p, (scroll as f64 / 200.0).exp());
            }
        }
        cam
    }

    /// Drags: a lasso (ctrl/alt), a box (shift) or a pan; returns a finished selection.
    fn select_or_pan(
        &mut self,
        ui: &Ui,
        resp: &egui::Response,
        painter: &egui::Painter,
        cam: &mut Camera,
        rect: Rect,
    ) -> Option<Vec<usize>> {
        let shift = ui.input(|i| i.modifiers.shift);
        let lasso_key = ui.input(|i| i.modifiers.command || i.modifiers.alt);
        let stroke = Stroke::new(1.5, Color32::from_rgb(30, 30, 200));
        if resp.drag_started() && lasso_key && !shift {
            self.lasso = ui.input(|i| i.pointer.press_origin()).into_iter().collect();
        }
        if !self.lasso.is_empty() {
            if let Some(p) = resp.interact_pointer_pos()
                && self.lasso.last().is_none_or(|l| l.distance(p) > 2.0)
            {
                self.lasso.push(p);
            }
            painter.add(egui::Shape::closed_line(self.lasso.clone(), stroke));
            if !resp.drag_stopped() {
                return None;
            }
            let poly = std::mem::take(&mut self.lasso);
            let inside = |p: &[f32; 2]| {
                point_in_polygon(cam.to_screen(rect, [p[0] as f64, p[1] as f64]), &poly)
            };
            return (poly.len() >= 3).then(|| self.cells_where(inside));
        }
        if resp.drag_started() && shift {
            self.drag_start = ui
                .input(|i| i.pointer.press_origin())
                .or(resp.interact_pointer_pos());
        }
        let Some(start) = self.drag_start else {
            if resp.dragged() {
                cam.pan(resp.drag_delta());
            }
            return None;
        };
        let Some(now) = resp.interact_pointer_pos() else {
            self.drag_start = None;
            return None;
        };
        let r = Rect::from_two_pos(start, now);
        painter.rect_stroke(r, 0.0, stroke, egui::StrokeKind::Inside);
        if !resp.drag_stopped() {
            return None;
        }
        self.drag_start = None;
        let (a, b) = (cam.to_data(rect, r.min), cam.to_data(rect, r.max));
        let (x0, x1) = (a[0].min(b[0]), a[0].max(b[0]));
        let (y0, y1) = (a[1].min(b[1]), a[1].max(b[1]));
        Some(self.cells_where(|p| {
            (x0..=x1).contains(&(p[0] as f64)) && (y0..=y1).contains(&(p[1] as f64))
        }))
    }

    /// Indices of the points for which `keep` holds.
    fn cells_where(&self, keep: impl Fn(&[f32; 2]) -> bool) -> Vec<usize> {
        (self.positions.iter().enumerate())
            .filter(|(_, p)| keep(p))
            .map(|(i, _)| i)
            .collect()
    }
}

fn bounds_of(p: &[[f32; 2]]) -> [f64; 4] {
    let mut b = [
        f64::INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NEG_INFINITY,
    ];
    for q in p {
        b[0] = b[0].min(q[0] as f64);
        b[1] = b[1].min(q[1] as f64);
        b[2] = b[2].max(q[0] as f64);
        b[3] = b[3].max(q[1] as f64);
    }
    if !b[0].is_finite() {
        [0.0, 0.0, 1.0, 1.0]
    } else {
        b
    }
}

/// A scale bar of a round length (1, 2 or 5 × 10^k data units) about 100 points long.
fn draw_scale_bar(painter: &egui::Painter, rect: Rect, upp: f64, units: &str) {
    let target = 100.0 * upp;
    let k = 10f64.powf(target.log10().floor());
    let len = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * k)
        .rfind(|l| *l <= target)
        .unwrap_or(k);
    let px = (len / upp) as f32;
    let y = rect.bottom() - 14.0;
    let x0 = rect.right() - 20.0 - px;
    painter.line_segment(
        [Pos2::new(x0, y), Pos2::new(x0 + px, y)],
        Stroke::new(3.0, Color32::from_gray(30)),
    );
    painter.text(
        Pos2::new(x0 + px / 2.0, y - 4.0),
        egui::Align2::CENTER_BOTTOM,
        format!("{len} {units}"),
        egui::FontId::proportional(12.0),
        Color32::from_gray(30),
    );
}

/// Even-odd rule point-in-polygon test (screen coordinates).
pub fn point_in_polygon(p: Pos2, poly: &[Pos2]) -> bool {
    let mut inside = false;
    let mut j = poly.len() - 1;
    for i in 0..poly.len() {
        let (a, b) = (poly[i], poly[j]);
        if (a.y > p.y) != (b.y > p.y) && p.x < (b.x - a.x) * (p.y - a.y) / (b.y - a.y) + a.x {
            inside = !inside;
        }
        j = i;
    }
    inside
}

/// Draws the outlines of the drawn cells whose centres are on screen, coloured like their
/// points, when at most [`MAX_OUTLINES`] are and they are large enough to read (the first one's
/// extent at least 6 points).
fn draw_outlines(
    painter: &egui::Painter,
    rect: Rect,
    cam: &Camera,
    data: &PointData,
    o: &Outlines,
    fill: bool,
) {
    let [x0, y0] = cam.to_data(rect, rect.min);
    let [x1, y1] = cam.to_data(rect, rect.max);
    let (lo, hi) = ([x0.min(x1), y0.min(y1)], [x0.max(x1), y0.max(y1)]);
    let mut on_screen = Vec::new();
    for &i in data.order.iter() {
        let i = i as usize;
        let Some(p) = data.positions.get(i) else {
            continue;
        };
        let (x, y) = (f64::from(p[0]), f64::from(p[1]));
        if x >= lo[0] && x <= hi[0] && y >= lo[1] && y <= hi[1] && i < o.n_cells() {
            if on_screen.len() == MAX_OUTLINES {
                return;
            }
            on_screen.push(i);
        }
    }
    let extent = |ring: &[[f64; 2]]| {
        let (a, b) = ring
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                (a.min(v[0]), b.max(v[0]))
            });
        (b - a) / cam.units_per_point
    };
    let Some(first) = on_screen.iter().map(|&i| o.ring(i)).find(|r| !r.is_empty()) else {
        return;
    };
    if extent(first) < 6.0 {
        return;
    }
    let mut fills = egui::Mesh::default();
    let mut earcut = earcut::Earcut::<f32>::new();
    let mut triangles: Vec<u32> = Vec::new();
    let mut lines = Vec::new();
    for i in on_screen {
        let ring = o.ring(i);
        if ring.len() < 3 {
            continue;
        }
        let c = data.colors.get(i).copied().unwrap_or(0xff00_0000);
        let [r, g, b, _] = c.to_le_bytes();
        let points: Vec<Pos2> = ring.iter().map(|&v| cam.to_screen(rect, v)).collect();
        if fill {
            // Cell outlines are often not convex: ear clipping (mapbox's earcut) triangulates
            // them.
            earcut.earcut(
                points.iter().map(|p| [p.x, p.y]),
                &[] as &[u32],
                &mut triangles,
            );
            let base = fills.vertices.len() as u32;
            let tint = Color32::from_rgba_unmultiplied(r, g, b, 90);
            for p in &points {
                fills.colored_vertex(*p, tint);
            }
            fills.indices.extend(triangles.iter().map(|t| base + t));
        }
        lines.push(egui::Shape::closed_line(
            points,
            Stroke::new(1.5, Color32::from_rgb(r, g, b)),
        ));
    }
    if !fills.is_empty() {
        painter.add(egui::Shape::mesh(fills));
    }
    painter.extend(lines);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polygon_membership() {
        let sq = [
            Pos2::new(0.0, 0.0),
            Pos2::new(10.0, 0.0),
            Pos2::new(10.0, 10.0),
            Pos2::new(0.0, 10.0),
        ];
        assert!(point_in_polygon(Pos2::new(5.0, 5.0), &sq));
        assert!(!point_in_polygon(Pos2::new(15.0, 5.0), &sq));
        // a concave "L"
        let l = [
            Pos2::new(0.0, 0.0),
            Pos2::new(10.0, 0.0),
            Pos2::new(10.0, 4.0),
            Pos2::new(4.0, 4.0),
            Pos2::new(4.0, 10.0),
            Pos2::new(0.0, 10.0),
        ];
        assert!(point_in_polygon(Pos2::new(2.0, 8.0), &l));
        assert!(!point_in_polygon(Pos2::new(8.0, 8.0), &l));
    }
}
