//! What the window exposes to tests and scripts: read-only views of its state.

use std::path::{Path, PathBuf};

use super::{CellscopeApp, LegendItem};
use crate::export::ExportError;
use crate::pipeline::jobs::compare::Comparison;
use crate::ui::explorer::ModelInfo;
use crate::ui::panels;

impl CellscopeApp {
    /// The file of the image under the spatial view, once decoded.
    pub fn underlay_path(&self) -> Option<&Path> {
        self.x.underlay.as_ref().map(|u| u.request.path.as_path())
    }

    /// The contrast limits of the image under the spatial view, when they apply to it (a grey
    /// image).
    pub fn underlay_contrast(&self) -> Option<crate::pipeline::jobs::open::Contrast> {
        let u = self
            .x
            .underlay
            .as_ref()
            .filter(|u| u.grey_range.is_some())?;
        Some(u.request.contrast)
    }

    /// Asks for the image under the spatial view again with new contrast limits, as the Data
    /// panel's black and white values do when let go.
    pub fn set_contrast(&mut self, c: crate::pipeline::jobs::open::Contrast) {
        self.apply(panels::Action::SetContrast(c));
    }

    /// The pyramid level of the finer window drawn over the underlay for the zoomed-in view, if
    /// one is.
    pub fn underlay_detail_level(&self) -> Option<usize> {
        self.x.underlay.as_ref()?.detail.as_ref().map(|d| d.level)
    }

    /// Cells with an outline (an instrument's segmentation), once read.
    pub fn n_outlined(&self) -> Option<usize> {
        self.x.outlines.as_ref().map(|o| o.n_outlined())
    }

    /// Forgets the cell outlines (before/after pictures in tests).
    #[doc(hidden)]
    pub fn drop_outlines(&mut self) {
        self.x.outlines = None;
    }

    /// The error messages shown at the bottom of the window, oldest first.
    pub fn errors(&self) -> &[String] {
        &self.x.errors
    }

    /// Queues a job that panics, to test that a panicking job is reported as an error and the
    /// app goes on with what it had.
    #[doc(hidden)]
    pub fn inject_panic(&self) {
        self.worker
            .send(crate::pipeline::worker::Command::InjectPanic);
    }

    /// The Training panel's state (events of the last run, its summary).
    pub fn training(&self) -> &panels::training::TrainingPanel {
        &self.panels.training
    }

    /// The Benchmark panel (its results and the row shown).
    pub fn benchmark(&self) -> &panels::benchmark::BenchmarkPanel {
        &self.panels.benchmark
    }

    /// The titles of the views shown, left to right.
    pub fn view_titles(&self) -> Vec<String> {
        self.x.views.iter().map(|v| v.title.clone()).collect()
    }

    /// The positions the embedding view draws (`None` without one).
    pub fn embedding_positions(&self) -> Option<&[[f32; 2]]> {
        self.x
            .views
            .iter()
            .find(|v| v.id == 1)
            .map(|v| v.positions.as_slice())
    }

    /// Predicted labels and confidences of the last transfer or classifier.
    pub fn prediction(&self) -> Option<&(Vec<String>, Vec<f32>)> {
        self.x.prediction.as_deref()
    }

    /// The loaded model and its device, when one is loaded.
    pub fn model_info(&self) -> Option<&ModelInfo> {
        self.x.model.as_ref()
    }

    /// Whether the worker is running a job (the Cancel button is enabled).
    pub fn busy(&self) -> bool {
        self.worker.busy()
    }

    /// Name of the representation the last pipeline ran on.
    pub fn representation_name(&self) -> &str {
        &self.x.rep_name
    }

    /// Whether the pipeline has produced results.
    pub fn analyzed(&self) -> bool {
        self.x.analysis.is_some()
    }

    /// Whether the colouring or the dashboard asked for has not arrived yet (both are computed
    /// on the worker's views thread; the window shows the previous ones meanwhile).
    pub fn views_pending(&self) -> bool {
        self.x.coloring_pending() || !self.panels.metrics.up_to_date()
    }

    /// The `cellscope inspect` summary of the open dataset.
    pub fn summary(&self) -> &str {
        &self.x.summary
    }

    /// Number of cells selected.
    pub fn n_selected(&self) -> usize {
        self.x.n_selected
    }

    /// Leiden clusters of the last pipeline run.
    pub fn leiden(&self) -> Option<&[u32]> {
        self.x.analysis.as_ref().map(|a| a.leiden.as_slice())
    }

    /// Spatial domains of the last pipeline run.
    pub fn domains(&self) -> Option<&[u32]> {
        self.x
            .analysis
            .as_ref()?
            .domains
            .as_ref()
            .map(|d| d.0.as_slice())
    }

    /// The status line.
    pub fn status(&self) -> &str {
        &self.x.status
    }

    /// The open dataset.
    pub fn data(&self) -> Option<&crate::data::AnnData> {
        self.x.data.as_deref()
    }

    /// Selected cells (one flag per cell).
    pub fn selection(&self) -> &[bool] {
        &self.x.selection
    }

    /// The legend entries of the current categorical colouring.
    pub fn legend_items(&self) -> &[LegendItem] {
        &self.x.coloring.legend
    }

    /// The user's named selections.
    pub fn annotations(&self) -> &[(String, Vec<usize>)] {
        &self.x.annotations
    }

    /// Recently opened files, newest first.
    pub fn recent(&self) -> &[PathBuf] {
        &self.settings.recent
    }

    /// Screen rectangle and camera of view `k` (0: embedding, 1: spatial) as last drawn.
    pub fn view_geometry(
        &self,
        k: usize,
    ) -> Option<(egui::Rect, crate::render::camera::Camera, &[[f32; 2]])> {
        let v = self.x.views.get(k)?;
        Some((v.last_rect?, v.camera?, v.positions.as_slice()))
    }

    /// How the spatial view draws its spots (physical size, outlines, opacity).
    pub fn spot_style(&self) -> Option<crate::ui::view::SpotStyle> {
        self.x.views.iter().find(|v| v.y_down).map(|v| v.spots)
    }

    /// Sets the spatial view's spot opacity (the Data panel's slider).
    pub fn set_spot_opacity(&mut self, opacity: f32) {
        if let Some(v) = self.x.views.iter_mut().find(|v| v.y_down) {
            v.spots.opacity = opacity;
        }
    }

    /// Opacity of the image under the spatial view, when one is loaded.
    pub fn underlay_opacity(&mut self) -> Option<&mut f32> {
        self.x.underlay.as_mut().map(|u| &mut u.opacity)
    }

    /// The last A-vs-B comparison.
    pub fn comparison(&self) -> Option<&Comparison> {
        self.panels
            .compare
            .state
            .as_ref()
            .map(|c| c.result.as_ref())
    }

    /// Whether the A-vs-B views are shown.
    pub fn showing_comparison(&self) -> bool {
        self.panels.compare.showing()
    }

    /// The cameras of the three comparison views (all equal after a frame: synchronised).
    pub fn comparison_cameras(&self) -> Vec<Option<crate::render::camera::Camera>> {
        self.panels.compare.cameras()
    }

    /// Geometry of comparison view `k` (rect, camera, positions), for tests.
    pub fn comparison_view_geometry(
        &self,
        k: usize,
    ) -> Option<(egui::Rect, crate::render::camera::Camera, &[[f32; 2]])> {
        self.panels.compare.view_geometry(k)
    }

    /// Saves the session (what the window shows) to `path`.
    ///
    /// # Errors
    /// [`ExportError::NothingOpen`]; [`ExportError::Write`] when the file cannot be written.
    pub fn save_session(&self, path: &Path) -> Result<(), ExportError> {
        self.session().ok_or(ExportError::NothingOpen)?.save(path)
    }
}
