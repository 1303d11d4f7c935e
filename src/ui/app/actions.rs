//! Carrying out what the panels ask for ([`Action`]), and polling the dialogs and exports
//! that answer between frames.

use super::{CellscopeApp, provenance};
use crate::pipeline::jobs::open::{ImageRequest, Placement};
use crate::pipeline::worker::{Command, Worker};
use crate::ui::panels::Action;

impl CellscopeApp {
    pub(super) fn apply_all(&mut self, actions: impl IntoIterator<Item = Action>) {
        for a in actions {
            self.apply(a);
        }
    }

    /// Carries out what a panel asked for.
    pub(super) fn apply(&mut self, a: Action) {
        let data = self.x.data.clone();
        let send = |w: &Worker, c| {
            w.send(c);
        };
        match a {
            Action::Open(p) => self.open(p),
            // An image chosen by hand is taken to be in the pixel frame of obsm['spatial'].
            // Another of the run's images keeps the contrast limits the user set.
            Action::LoadPlacedImage(p, placement) => {
                let mut r = ImageRequest::new(p, placement);
                if let Some(u) = &self.x.underlay {
                    r.contrast = u.request.contrast;
                }
                send(&self.worker, Command::LoadImage(r));
            }
            Action::LoadImage(p) => send(
                &self.worker,
                Command::LoadImage(ImageRequest::new(p, Placement::scale(1.0))),
            ),
            Action::SetContrast(contrast) => {
                if let Some(u) = &self.x.underlay {
                    let r = ImageRequest {
                        contrast,
                        ..u.request.clone()
                    };
                    send(&self.worker, Command::LoadImage(r));
                }
            }
            Action::LoadModel(p) => self.load_model(p),
            Action::Embed => self.embed(),
            Action::Transfer(reference, label_key) => {
                if let Some(query) = data {
                    let c = Command::Transfer {
                        reference,
                        label_key,
                        query,
                    };
                    send(&self.worker, c);
                }
            }
            Action::RunPipeline => self.run_pipeline(),
            Action::Cancel => self.worker.cancel(),
            Action::Pretrain(mut job) => {
                job.backend = self.settings.backend;
                self.panels.training.reset();
                if let Some(d) = data {
                    send(&self.worker, Command::Pretrain(d, job));
                }
            }
            Action::Finetune(mut job, loaded) => {
                job.backend = self.settings.backend;
                self.panels.training.reset();
                if let Some(d) = data {
                    send(&self.worker, Command::Finetune(d, job, loaded));
                }
            }
            Action::SaveModel(p) => send(&self.worker, Command::SaveModel(p)),
            Action::Compare(a, b, domains) => {
                if let Some(d) = data {
                    let params = self
                        .panels
                        .pipeline
                        .params_for(d.default_spatial().is_some());
                    let sides = [a, b];
                    send(
                        &self.worker,
                        Command::Compare {
                            data: d,
                            sides,
                            params,
                            domains,
                        },
                    );
                }
            }
            Action::ShowComparison(show) => {
                self.panels.compare.show = show;
                self.x.dirty = true;
            }
            Action::SetColor(c) => self.x.set_color_by(c),
            Action::ToggleHidden(name) => self.x.toggle_hidden(name),
            Action::Select(cells) => self.x.select(&cells),
            Action::Annotate(name) => self.annotate_selection(&name),
            Action::SetTruth(t) => self.x.truth_key = t,
            Action::SaveSession(p) => match self.save_session(&p) {
                Ok(()) => self.x.status = format!("saved the session to {}", p.display()),
                Err(e) => self.x.errors.push(e.to_string()),
            },
            Action::OpenSession(p) => {
                if let Err(e) = self.open_session(&p) {
                    self.x.errors.push(e.to_string());
                }
            }
            Action::Benchmark(mut job) => {
                job.backend = self.settings.backend;
                if let Some((e, _)) = &self.x.embedding {
                    job.given.push(("loaded model".into(), e.clone()));
                }
                if let Some(d) = data {
                    send(&self.worker, Command::Benchmark(d, job));
                }
            }
            Action::ShowBenchmarkUmap(i) => {
                if let Some(row) = self
                    .panels
                    .benchmark
                    .result
                    .as_ref()
                    .and_then(|r| r.rows.get(i))
                {
                    let title = format!(
                        "UMAP of {} (benchmark, total {:.3})",
                        row.name, row.scores.total
                    );
                    self.x.show_embedding(&row.umap, &title);
                }
            }
            Action::Status(s) => self.x.status = s,
            Action::Error(e) => self.x.errors.push(e),
        }
    }

    /// Files chosen in dialogs, dropped files, finished exports.
    pub(super) fn poll(&mut self, ctx: &egui::Context) {
        let mut actions = self.panels.data.poll();
        actions.extend(self.panels.model.poll());
        self.panels.transfer.poll();
        self.panels.compare.poll();
        actions.extend(self.panels.training.poll());
        let (x, t, p) = (&self.x, &self.panels.transfer, &self.panels.pipeline);
        let prov = || provenance(x, t, p);
        actions.extend(self.panels.export.poll(ctx, x, &prov));
        if let Some(f) = ctx.input(|i| i.raw.dropped_files.first().map(|f| f.path().to_path_buf()))
        {
            actions.push(Action::Open(f));
        }
        self.apply_all(actions);
    }
}
