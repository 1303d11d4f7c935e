//! What the window shows, at run time: the open dataset, the results computed for it (pipeline,
//! embedding, predictions, model), the colouring and the selection, and the point views that
//! draw them. Panels read it; the app changes it when the worker reports or a panel asks.
//! Nothing here is persisted (see [`super::app::Settings`]).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use egui::Color32;
use ndarray::Array2;

use super::view::{PointView, Underlay};
use crate::data::anndata::AnnData;
use crate::pipeline::jobs::analyze::Analysis;
use crate::pipeline::jobs::coloring::{ColorBy, ColorInputs, Coloring};
use crate::pipeline::worker::Worker;
use crate::render::points::{PointData, pack};

/// A loaded model as the model panel describes it.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    /// Kind, widths and parameter count.
    pub summary: String,
    /// Compute device and backend in use.
    pub device: String,
    /// Input genes.
    pub n_genes: usize,
}

/// The window's run-time state.
pub struct Explorer {
    /// The open dataset.
    pub data: Option<Arc<AnnData>>,
    /// Its `cellscope inspect` summary.
    pub summary: String,
    /// The last pipeline run's results.
    pub analysis: Option<Arc<Analysis>>,
    /// The representation the last pipeline ran on, in words.
    pub rep_name: String,
    /// The loaded model's embedding of the dataset and its gene coverage.
    pub embedding: Option<(Arc<Array2<f32>>, String)>,
    /// Predicted label and confidence per cell (label transfer or a classifier).
    pub prediction: Option<Arc<(Vec<String>, Vec<f32>)>>,
    /// The loaded model.
    pub model: Option<ModelInfo>,
    /// The loaded model's file or folder (`None` for one trained here and not saved).
    pub model_path: Option<PathBuf>,
    /// What the points are coloured by.
    pub color_by: ColorBy,
    /// The colouring shown.
    pub coloring: Arc<Coloring>,
    /// Legend categories hidden from the views.
    pub hidden: BTreeSet<String>,
    /// One flag per cell.
    pub selection: Vec<bool>,
    /// Cells selected.
    pub n_selected: usize,
    /// The user's named selections `(name, cells)`.
    pub annotations: Vec<(String, Vec<usize>)>,
    /// Ground-truth obs column of the metrics.
    pub truth_key: Option<String>,
    /// The embedding view (id 1) and the spatial view (id 2).
    pub views: Vec<PointView>,
    /// What each of the two views draws.
    pub point_data: [PointData; 2],
    /// The image under the spatial view.
    pub underlay: Option<Underlay>,
    /// The cells' outlines (instruments' segmentation), drawn over the spatial view when zoomed in.
    pub outlines: Option<std::sync::Arc<crate::data::vendor::outlines::Outlines>>,
    /// Whether the outlines are filled as well as stroked (Data panel).
    pub fill_outlines: bool,
    /// The images the dataset offers for the underlay: name, file, placement.
    pub images: Vec<(
        String,
        std::path::PathBuf,
        crate::pipeline::jobs::open::Placement,
    )>,
    /// The cell under the pointer.
    pub hovered: Option<usize>,
    /// The status line.
    pub status: String,
    /// Errors shown at the bottom until dismissed.
    pub errors: Vec<String>,
    /// Counts changes of results (analysis, predictions, data, comparison); the metrics
    /// recompute when it moves.
    pub results_gen: u64,
    /// Upload generation of the point buffers.
    pub generation: u64,
    /// The draw buffers (order, selection, colours) need rebuilding.
    pub dirty: bool,
    /// The colouring's inputs changed: ask for a new one.
    pub color_dirty: bool,
    color_request: u64,
    color_pending: bool,
}

impl Default for Explorer {
    fn default() -> Self {
        Explorer {
            data: None,
            summary: String::new(),
            analysis: None,
            rep_name: String::new(),
            embedding: None,
            prediction: None,
            model: None,
            model_path: None,
            color_by: ColorBy::Leiden,
            coloring: Arc::default(),
            hidden: BTreeSet::new(),
            selection: Vec::new(),
            n_selected: 0,
            annotations: Vec::new(),
            truth_key: None,
            views: Vec::new(),
            point_data: Default::default(),
            underlay: None,
            outlines: None,
            fill_outlines: false,
            images: Vec::new(),
            hovered: None,
            status: "No data. Open an .h5ad, a 10x .h5 or a Visium folder (or drop it here)."
                .into(),
            errors: Vec::new(),
            results_gen: 0,
            generation: 0,
            dirty: true,
            color_dirty: true,
            color_request: 0,
            color_pending: false,
        }
    }
}

fn rows2(m: &Array2<f32>) -> Vec<[f32; 2]> {
    m.outer_iter().map(|r| [r[0], r[1]]).collect()
}

impl Explorer {
    /// Number of cells of the open dataset.
    pub fn n_obs(&self) -> usize {
        self.data.as_ref().map_or(0, |d| d.n_obs())
    }

    /// Colours the cells by `c` from now on (all categories shown).
    pub fn set_color_by(&mut self, c: ColorBy) {
        self.color_by = c;
        self.hidden.clear();
        self.color_dirty = true;
    }

    /// Whether a colouring was asked for and has not arrived yet.
    pub fn coloring_pending(&self) -> bool {
        self.color_dirty || self.color_pending
    }

    /// Takes a colouring computed off the UI thread, when it answers the newest request.
    pub fn take_coloring(&mut self, request: u64, coloring: Arc<Coloring>) {
        if request == self.color_request {
            self.coloring = coloring;
            self.color_pending = false;
            self.dirty = true;
        }
    }

    /// Asks the worker's colouring thread for the current colouring when its inputs changed.
    pub fn request_coloring(&mut self, worker: &Worker) {
        if !std::mem::take(&mut self.color_dirty) {
            return;
        }
        let Some(data) = self.data.clone() else {
            self.color_pending = false;
            return;
        };
        let inputs = ColorInputs {
            data,
            analysis: self.analysis.clone(),
            prediction: self.prediction.clone(),
        };
        self.color_request += 1;
        self.color_pending = worker.color(self.color_request, self.color_by.clone(), inputs);
    }

    /// Selects exactly the cells `idx`.
    pub fn select(&mut self, idx: &[usize]) {
        self.selection.iter_mut().for_each(|s| *s = false);
        for &i in idx {
            if let Some(s) = self.selection.get_mut(i) {
                *s = true;
            }
        }
        self.n_selected = self.selection.iter().filter(|&&s| s).count();
        self.dirty = true;
    }

    /// The selected cells' indices.
    pub fn selected(&self) -> Vec<usize> {
        (0..self.selection.len())
            .filter(|&i| self.selection[i])
            .collect()
    }

    /// Hides or shows a legend category (`None`: shows them all).
    pub fn toggle_hidden(&mut self, name: Option<String>) {
        match name {
            None => self.hidden.clear(),
            Some(n) => {
                if !self.hidden.remove(&n) {
                    self.hidden.insert(n);
                }
            }
        }
        self.dirty = true;
    }

    /// Builds the views: the pipeline's UMAP (else `obsm['X_umap']`, `X_tsne` or `X_pca`) and
    /// the spatial coordinates.
    pub fn build_views(&mut self) {
        let Some(d) = &self.data else { return };
        let mut views = Vec::new();
        let emb: Option<(Vec<[f32; 2]>, String)> = match &self.analysis {
            Some(a) => Some((rows2(&a.umap), "UMAP (cellscope)".into())),
            None => ["X_umap", "X_tsne", "X_pca"].iter().find_map(|k| {
                d.obsm
                    .get(*k)
                    .filter(|m| m.ncols() >= 2)
                    .map(|m| (rows2(&m.mapv(|v| v as f32)), format!("obsm['{k}']")))
            }),
        };
        if let Some((p, t)) = emb {
            let title = format!("Embedding: {t}");
            views.push(PointView::new(1, &title, p, false, None));
        }
        if let Some(src) = d.default_spatial()
            && let Ok(c) = d.spatial_coords(&src)
        {
            let p = rows2(&c.mapv(|v| v as f32));
            let units = d.spatial_units.clone().unwrap_or_else(|| "units".into());
            views.push(PointView::new(2, "Spatial", p, true, Some(units)));
        }
        self.views = views;
        self.dirty = true;
    }

    /// Shows `positions` (`n x 2`, e.g. a benchmarked method's UMAP) as the embedding view,
    /// titled `title`; the spatial view stays.
    pub fn show_embedding(&mut self, positions: &Array2<f32>, title: &str) {
        if positions.nrows() != self.n_obs() || positions.ncols() < 2 {
            return;
        }
        let view = PointView::new(
            1,
            &format!("Embedding: {title}"),
            rows2(positions),
            false,
            None,
        );
        match self.views.iter().position(|v| v.id == 1) {
            Some(k) => self.views[k] = view,
            None => self.views.insert(0, view),
        }
        self.dirty = true;
    }

    /// Rebuilds the two views' draw buffers when something they draw changed: visible cells
    /// back to front (selected last), selection bits, packed colours.
    pub fn refresh_points(&mut self) {
        if !self.dirty {
            return;
        }
        self.dirty = false;
        let n = self.n_obs();
        if self.coloring.colors.len() != n {
            // The colouring of a dataset no longer open: grey until the new one arrives.
            self.coloring = Arc::new(Coloring {
                colors: vec![Color32::from_gray(120); n],
                ..Default::default()
            });
        }
        let hidden: Vec<bool> = self
            .coloring
            .legend
            .iter()
            .map(|l| self.hidden.contains(&l.name))
            .collect();
        let visible = |i: usize| match &self.coloring.codes {
            Some(c) => !hidden.get(c[i] as usize).copied().unwrap_or(false),
            None => true,
        };
        let sel = |i: usize| self.selection.get(i).copied().unwrap_or(false);
        let mut order: Vec<u32> = (0..n)
            .filter(|&i| visible(i) && !sel(i))
            .map(|i| i as u32)
            .collect();
        order.extend((0..n).filter(|&i| visible(i) && sel(i)).map(|i| i as u32));
        let colors: Vec<u32> = self.coloring.colors.iter().map(|&c| pack(c)).collect();
        let (colors, order) = (Arc::new(colors), Arc::new(order));
        let bits = Arc::new(selection_bits(&self.selection));
        self.generation += 1;
        for (k, v) in self.views.iter().enumerate().take(2) {
            self.point_data[k] = PointData {
                positions: v.positions.clone(),
                colors: colors.clone(),
                order: order.clone(),
                selected: bits.clone(),
                generation: self.generation,
            };
        }
    }

    /// The hover text of cell `i`: its id, obs values, prediction, cluster, domain and the
    /// coloured gene's value.
    pub fn hover_text(&self, i: usize) -> String {
        let Some(d) = &self.data else {
            return String::new();
        };
        let mut s = format!("{}\n", d.obs_names()[i]);
        for name in d.obs.column_names().into_iter().take(8) {
            if let Some(c) = d.obs.column(name) {
                s.push_str(&format!("{name}: {}\n", c.value_string(i)));
            }
        }
        if let Some((p, c)) = self.prediction.as_deref() {
            s.push_str(&format!(
                "predicted: {} ({:.0} % of votes)\n",
                p[i],
                c[i] * 100.0
            ));
        }
        if let Some(a) = &self.analysis {
            s.push_str(&format!("leiden: {}\n", a.leiden[i]));
            if let Some((dom, conf)) = &a.domains {
                s.push_str(&format!("spatial domain: {} ({:.2})\n", dom[i], conf[i]));
            }
        }
        if let ColorBy::Gene(g) = &self.color_by
            && let Some(v) = &self.coloring.values
        {
            s.push_str(&format!("{g}: {:.3}\n", v[i]));
        }
        s
    }

    /// What the colouring shows, in words (legend title, figure titles, CSV headers).
    pub fn color_label(&self) -> String {
        match &self.color_by {
            ColorBy::Leiden => "Leiden cluster".into(),
            ColorBy::Domain => "spatial domain".into(),
            ColorBy::DomainConfidence => "domain confidence".into(),
            ColorBy::Obs(k) => k.clone(),
            ColorBy::Gene(g) => g.clone(),
            ColorBy::Predicted { fade: false } => "predicted type".into(),
            ColorBy::Predicted { fade: true } => "predicted type × confidence".into(),
            ColorBy::Agreement(a, b) => format!("{a} vs {b}"),
        }
    }
}

/// One bit per cell, set for the selected ones (the shader's selection buffer).
pub fn selection_bits(selection: &[bool]) -> Vec<u32> {
    let mut bits = vec![0u32; selection.len().div_ceil(32).max(1)];
    for (i, &s) in selection.iter().enumerate() {
        if s {
            bits[i / 32] |= 1 << (i % 32);
        }
    }
    bits
}
