//! Finer windows of a pyramidal underlay (a Xenium morphology image) for a zoomed-in spatial
//! view: once the view has rested for [`SETTLE`] and the whole image's texture is coarser than
//! the screen, the worker reads the view (with a margin) at the finest level that fits; the
//! window is drawn over the texture until the view leaves it or the zoom changes.

use std::time::{Duration, Instant};

use super::CellscopeApp;
use crate::pipeline::jobs::detail::DetailRequest;
use crate::pipeline::worker::Command;

/// How long the view must rest before a window is read (a wheel zoom or drag is many frames).
const SETTLE: Duration = Duration::from_millis(150);

/// The zoomed-in view's window requests.
#[derive(Default)]
pub(super) struct DetailState {
    /// The last window asked for and the screen's data units per pixel then.
    asked: Option<([f64; 4], f64)>,
    /// The view seen last and since when.
    settling: Option<([f64; 4], Instant)>,
}

/// Whether `inner` lies inside `outer` (both left, top, right, bottom).
fn inside(inner: [f64; 4], outer: [f64; 4]) -> bool {
    inner[0] >= outer[0] && inner[1] >= outer[1] && inner[2] <= outer[2] && inner[3] <= outer[3]
}

impl CellscopeApp {
    /// Asks for a finer window of the underlay when the spatial view is zoomed in past its
    /// texture and has rested; drops the window when the view no longer needs one.
    pub(super) fn request_detail(&mut self, ctx: &egui::Context) {
        let Some(u) = self.x.underlay.as_mut().filter(|u| u.pyramid) else {
            self.detail = DetailState::default();
            return;
        };
        let Some(v) = self.x.views.iter().find(|v| v.y_down) else {
            return;
        };
        let (Some(rect), Some(cam)) = (v.last_rect, v.camera) else {
            return;
        };
        let (a, b) = (cam.to_data(rect, rect.min), cam.to_data(rect, rect.max));
        let view = [
            a[0].min(b[0]),
            a[1].min(b[1]),
            a[0].max(b[0]),
            a[1].max(b[1]),
        ];
        let ppp = f64::from(ctx.pixels_per_point());
        let screen_dpp = (view[2] - view[0]) / (f64::from(rect.width()) * ppp).max(1.0);
        let texture_dpp = u.size[0] / u.texture.size()[0].max(1) as f64;
        if texture_dpp <= 1.5 * screen_dpp {
            u.detail = None;
            self.detail = DetailState::default();
            return;
        }
        if let Some((w, dpp)) = self.detail.asked
            && inside(view, w)
            && (dpp / screen_dpp - 1.0).abs() < 0.5
        {
            return;
        }
        let now = Instant::now();
        match self.detail.settling {
            Some((seen, since)) if seen == view => {
                if now.duration_since(since) < SETTLE {
                    ctx.request_repaint_after(SETTLE);
                    return;
                }
            }
            _ => {
                self.detail.settling = Some((view, now));
                ctx.request_repaint_after(SETTLE);
                return;
            }
        }
        let (mx, my) = ((view[2] - view[0]) * 0.25, (view[3] - view[1]) * 0.25);
        let window = [view[0] - mx, view[1] - my, view[2] + mx, view[3] + my];
        let side = f64::from(rect.width().max(rect.height())) * ppp * 1.5;
        let Some(grey_range) = u.grey_range else {
            return;
        };
        let r = DetailRequest {
            image: u.request.clone(),
            window,
            max_side: (side.ceil() as u32).min(crate::pipeline::jobs::open::MAX_IMAGE_SIDE),
            grey_range,
        };
        self.worker.send(Command::LoadDetail(r, texture_dpp / 1.5));
        self.detail.asked = Some((window, screen_dpp));
    }
}
