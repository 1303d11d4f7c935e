//! Sessions: what the window shows (data, model and reference with their SHA-256, pipeline
//! parameters, colouring, hidden categories, cameras, selection, annotations) saved as
//! versioned JSON and reopened to the same view.

use std::path::Path;

use super::CellscopeApp;
use crate::export::ExportError;
use crate::export::session::{FileRef, Session, SessionParams, VERSION};
use crate::pipeline::jobs::coloring::ColorBy;

impl CellscopeApp {
    /// The session describing what the window shows now.
    pub fn session(&self) -> Option<Session> {
        let x = &self.x;
        let d = x.data.as_ref()?;
        let (t, p) = (&self.panels.transfer, &self.panels.pipeline);
        let camera = |id: u64| x.views.iter().find(|v| v.id == id).and_then(|v| v.camera);
        Some(Session {
            format: crate::export::session::FORMAT.into(),
            version: VERSION,
            data: FileRef::of(&d.source),
            model: x.model_path.as_deref().map(FileRef::of),
            reference: (t.reference.as_deref()).map(|r| (FileRef::of(r), t.label_key.clone())),
            params: SessionParams {
                n_neighbors: p.params.n_neighbors,
                resolution: p.params.resolution,
                n_domains: p.n_domains,
                seed: p.params.seed,
            },
            color_by: serde_json::to_value(&x.color_by).unwrap_or_default(),
            hidden: x.hidden.iter().cloned().collect(),
            truth_key: x.truth_key.clone(),
            cameras: [1, 2].into_iter().map(camera).collect(),
            selection: x.selected(),
            annotations: x.annotations.clone(),
            provenance: self.provenance(),
        })
    }

    /// Reopens a session: opens its data (and model, then embeds), runs the pipeline with its
    /// parameters, and restores colours, hidden categories, cameras, selection and annotations
    /// once the pipeline has finished.
    ///
    /// # Errors
    /// [`ExportError::Read`]: an unreadable or invalid session file.
    pub fn open_session(&mut self, path: &Path) -> Result<(), ExportError> {
        let s = Session::load(path)?;
        for f in std::iter::once(&s.data).chain(s.model.as_ref()) {
            if !f.unchanged() {
                self.x.errors.push(format!(
                    "{}: the file changed since the session was saved (SHA-256 differs)",
                    f.path.display()
                ));
            }
        }
        let p = &mut self.panels.pipeline;
        p.params.n_neighbors = s.params.n_neighbors;
        p.params.resolution = s.params.resolution;
        p.params.seed = s.params.seed;
        p.n_domains = s.params.n_domains;
        if let Some((r, key)) = &s.reference {
            self.set_reference(r.path.clone(), key);
        }
        self.open(s.data.path.clone());
        if let Some(m) = &s.model {
            self.open_with_model(m.path.clone());
        }
        self.pending_session = Some(s);
        Ok(())
    }

    /// Applies a reopened session's view state (after its pipeline has run).
    pub(super) fn apply_session(&mut self) {
        let Some(s) = self.pending_session.take() else {
            return;
        };
        let x = &mut self.x;
        if let Ok(c) = serde_json::from_value::<ColorBy>(s.color_by.clone()) {
            x.set_color_by(c);
        }
        x.hidden = s.hidden.iter().cloned().collect();
        x.truth_key = s.truth_key.clone();
        for (id, cam) in [1u64, 2].iter().zip(&s.cameras) {
            if let (Some(v), Some(c)) = (x.views.iter_mut().find(|v| v.id == *id), cam) {
                v.camera = Some(*c);
            }
        }
        x.annotations = s.annotations.clone();
        x.select(&s.selection);
    }
}
