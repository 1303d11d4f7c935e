//! The drain of the worker's events: each frame takes what arrived (in a 4 ms time box) and
//! hands each event to the state or panel it concerns.

use std::sync::Arc;

use super::CellscopeApp;
use crate::data::anndata::AnnData;
use crate::pipeline::jobs::coloring::ColorBy;
use crate::pipeline::worker::{Event, JobKind};
use crate::ui::explorer::ModelInfo;

/// Obs columns taken as the ground truth of the metrics when present, in this order.
const TRUTH_KEYS: [&str; 6] = [
    "layer",
    "label",
    "cluster",
    "cell_type",
    "bulk_labels",
    "Cell_class",
];

impl CellscopeApp {
    /// Takes the worker's events for at most 4 ms.
    pub(super) fn drain_events(&mut self, ctx: &egui::Context) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(4);
        while std::time::Instant::now() < deadline {
            let Ok(e) = self.worker.events.try_recv() else {
                break;
            };
            self.event(e, ctx);
        }
    }

    fn event(&mut self, e: Event, ctx: &egui::Context) {
        let x = &mut self.x;
        match e {
            Event::Started(job) => {
                if matches!(job, JobKind::Embed | JobKind::Analyze) {
                    self.panels.pipeline.started(job == JobKind::Embed);
                }
                x.status = format!("{job} …");
                return;
            }
            Event::Progress(p) => return self.progress(p),
            Event::Colored { request, coloring } => return x.take_coloring(request, coloring),
            Event::Dashboard { request, dashboard } => {
                return self.panels.metrics.take(request, dashboard);
            }
            Event::Opened(a, summary) => self.opened(a, summary),
            Event::Outlines(o) => self.x.outlines = Some(o),
            Event::Images(i) => self.x.images = i,
            Event::Detail {
                image,
                placement,
                level,
                request,
            } => {
                if let Some(u) = &mut x.underlay
                    && u.request == request.image
                {
                    let [w, h] = image.size;
                    let options = egui::TextureOptions::LINEAR;
                    let texture = ctx.load_texture("underlay-detail", (*image).clone(), options);
                    let dpp = placement.data_per_pixel;
                    u.detail = Some(crate::ui::view::Detail {
                        texture,
                        origin: placement.origin,
                        size: [w as f64 * dpp, h as f64 * dpp],
                        level,
                    });
                }
                return;
            }
            Event::Analyzed { analysis, name, .. } => {
                self.panels.pipeline.finished(analysis.domains.is_some());
                x.status = format!("pipeline done on {name}");
                x.rep_name = name;
                x.color_by = if analysis.domains.is_some() {
                    ColorBy::Domain
                } else {
                    ColorBy::Leiden
                };
                x.analysis = Some(analysis);
                x.color_dirty = true;
                x.build_views();
                self.apply_session();
            }
            Event::Image {
                image,
                placement,
                request,
                grey_range,
                pyramid,
            } => {
                // A new image (or new contrast): windows of the old one no longer apply.
                self.detail = Default::default();
                let [w, h] = image.size;
                let texture =
                    ctx.load_texture("underlay", (*image).clone(), egui::TextureOptions::LINEAR);
                let opacity = x.underlay.as_ref().map_or(0.8, |u| u.opacity);
                x.underlay = Some(crate::ui::view::Underlay {
                    texture,
                    size: [
                        w as f64 * placement.data_per_pixel,
                        h as f64 * placement.data_per_pixel,
                    ],
                    origin: placement.origin,
                    opacity,
                    request,
                    grey_range,
                    pyramid,
                    detail: None,
                });
            }
            Event::ModelLoaded {
                summary,
                device,
                n_genes,
            } => {
                x.status = "model loaded".into();
                x.model = Some(ModelInfo {
                    summary,
                    device,
                    n_genes,
                });
                x.embedding = None;
                if std::mem::take(&mut self.embed_when_ready) {
                    self.embed();
                }
            }
            Event::Embedded {
                values,
                coverage,
                cells_per_sec,
            } => {
                x.status =
                    format!("embedded at {cells_per_sec:.0} cells/s; running the pipeline on it");
                x.embedding = Some((values, coverage));
                self.run_pipeline();
            }
            Event::Transferred {
                predicted,
                confidence,
            } => {
                x.status = "labels transferred".into();
                x.prediction = Some(Arc::new((predicted, confidence)));
                x.set_color_by(ColorBy::Predicted { fade: false });
            }
            Event::Trained { summary } => {
                x.model_path = None;
                x.status = format!("training done: {summary}");
                self.panels.training.summary = Some(summary);
            }
            Event::Benchmarked(r) => {
                x.status = format!("benchmark done: {} methods scored", r.rows.len());
                self.panels.benchmark.take(r);
            }
            Event::Compared(c) => {
                x.status = format!(
                    "A vs B: {} of {} cells disagree",
                    c.n_disagree(),
                    c.disagree.len()
                );
                self.panels.compare.take(c, x);
            }
            Event::Saved(p) => {
                x.status = format!("saved the model to {}", p.display());
                x.model_path = Some(p);
            }
            Event::Cancelled => {
                x.status = "cancelled".into();
                self.panels.pipeline.running = false;
            }
            Event::Failed(e) => {
                if std::mem::take(&mut self.embed_when_ready) && self.auto_analyze {
                    // The default model did not load: the pipeline runs on PCA instead.
                    self.run_pipeline();
                }
                self.x.errors.push(e.to_string());
                self.panels.pipeline.running = false;
                self.x.status = "failed (see the message)".into();
            }
        }
        // Results changed: the metrics and the draw buffers follow.
        self.x.results_gen += 1;
        self.x.dirty = true;
    }

    /// A progress report: a pipeline step's bar, a download in the status line, a training
    /// step in the training panel.
    fn progress(&mut self, p: crate::pipeline::jobs::Progress) {
        use crate::pipeline::jobs::{Progress, Step};
        match p {
            Progress::Step(s, f) => self.panels.pipeline.progress(s, f),
            Progress::Fit {
                step,
                epoch,
                epochs,
                loss,
            } => {
                self.panels
                    .pipeline
                    .progress(step, epoch as f32 / epochs.max(1) as f32);
                self.x.status = crate::pipeline::jobs::fit_message(step, epoch, epochs, loss);
            }
            Progress::Embed(e) => {
                let f = e.done as f32 / e.total.max(1) as f32;
                self.panels.pipeline.progress(Step::Embed, f);
            }
            Progress::Download { name, done, total } => {
                let mb = |t: u64| t as f64 / 1e6;
                self.x.status = match total {
                    Some(t) => format!(
                        "downloading {name}: {}% of {:.1} MB …",
                        done * 100 / t.max(1),
                        mb(t)
                    ),
                    // Nothing received yet: a freshness check or the request's wait.
                    None if done == 0 => format!("asking the hub for {name} …"),
                    None => format!("downloading {name} …"),
                };
            }
            Progress::Train(e) => {
                self.x.status = format!(
                    "training: epoch {}/{}, loss {:.4}",
                    e.epoch + 1,
                    e.epochs,
                    e.train_loss
                );
                self.panels.training.push(e);
            }
        }
    }

    /// A dataset opened: everything computed for the previous one is dropped.
    fn opened(&mut self, a: Arc<AnnData>, summary: String) {
        self.settings.remember(a.source.clone());
        let x = &mut self.x;
        x.summary = summary;
        x.underlay = None;
        x.outlines = None;
        x.images.clear();
        x.prediction = None;
        x.embedding = None;
        x.analysis = None;
        x.status = format!(
            "{}: {} cells x {} genes",
            a.source.display(),
            a.n_obs(),
            a.n_vars()
        );
        x.selection = vec![false; a.n_obs()];
        x.n_selected = 0;
        x.truth_key = (TRUTH_KEYS.iter())
            .find(|k| a.obs.column(k).is_some())
            .map(|k| k.to_string());
        x.data = Some(a);
        x.build_views();
        let by = match &x.truth_key {
            Some(k) => ColorBy::Obs(k.clone()),
            None => ColorBy::Leiden,
        };
        x.set_color_by(by);
        self.panels.compare.state = None;
        self.panels.compare.show = false;
        if self.auto_analyze && !self.embed_when_ready {
            self.run_pipeline();
        }
    }
}
