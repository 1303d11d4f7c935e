//! The Pipeline panel: kNN, Leiden and spatial-domain parameters, Run and Cancel, and one
//! progress bar per step of the current or last run.

use crate::pipeline::jobs::Step;
use crate::pipeline::jobs::analyze::AnalyzeParams;
use crate::pipeline::jobs::domains::{DomainInput, DomainMethod, GraphDomainParams};

use super::Action;

/// The pipeline's steps in order, one progress bar each.
pub const STEPS: [Step; 5] = Step::PIPELINE;

/// A step's label in the panel.
fn step_name(s: Step) -> &'static str {
    match s {
        Step::Embed => "embed",
        Step::Neighbors => "neighbours",
        s => s.name(),
    }
}

/// The Pipeline panel's state.
pub struct PipelinePanel {
    /// kNN, Leiden, UMAP parameters.
    pub params: AnalyzeParams,
    /// Spatial domains to find (when the dataset has coordinates).
    pub n_domains: usize,
    /// How they are found, and what a graph method is fed.
    pub domains: DomainChoice,
    /// Fraction done of each step ([`STEPS`] order) in the current or last run.
    pub step_fraction: [f32; STEPS.len()],
    /// Whether a step has reported since the last run started.
    pub running: bool,
}

impl Default for PipelinePanel {
    fn default() -> Self {
        PipelinePanel {
            params: AnalyzeParams::default(),
            n_domains: 7,
            domains: DomainChoice::default(),
            step_fraction: [0.0; STEPS.len()],
            running: false,
        }
    }
}

impl PipelinePanel {
    /// The parameters of a run on a dataset with (or without) coordinates.
    pub fn params_for(&self, spatial: bool) -> AnalyzeParams {
        let mut p = self.params.clone();
        p.spatial_domains = spatial.then_some(self.n_domains);
        p
    }

    /// The graph method's parameters, when one is chosen.
    pub fn graph_domains(&self) -> Option<GraphDomainParams> {
        self.domains.params()
    }

    /// Resets the bars when a job starts: all of them for an embedding, the analysis steps for
    /// a pipeline run.
    pub fn started(&mut self, embedding: bool) {
        let from = usize::from(!embedding);
        self.step_fraction[from..].iter_mut().for_each(|v| *v = 0.0);
    }

    /// A step's progress; the pipeline steps before it are done (embedding is a job of its
    /// own). Other steps are not shown here.
    pub fn progress(&mut self, s: Step, f: f32) {
        let Some(k) = STEPS.iter().position(|x| *x == s) else {
            return;
        };
        if k > 0 {
            self.step_fraction[1..k].iter_mut().for_each(|v| *v = 1.0);
        }
        self.step_fraction[k] = f;
        self.running = true;
    }

    /// The pipeline finished (with or without spatial domains).
    pub fn finished(&mut self, domains: bool) {
        self.step_fraction[1..4].iter_mut().for_each(|v| *v = 1.0);
        if domains {
            self.step_fraction[4] = 1.0;
        }
        self.running = false;
    }

    /// Draws the panel; `can_run`: a dataset is open; `busy`: the worker runs a job.
    pub fn show(&mut self, ui: &mut egui::Ui, can_run: bool, busy: bool) -> Option<Action> {
        let mut action = None;
        ui.add(egui::Slider::new(&mut self.params.n_neighbors, 5..=50).text("neighbours"));
        ui.add(egui::Slider::new(&mut self.params.resolution, 0.1..=3.0).text("resolution"));
        ui.add(egui::Slider::new(&mut self.n_domains, 2..=20).text("spatial domains"));
        self.domains.show(ui, "domains");
        ui.horizontal(|ui| {
            if ui
                .add_enabled(!busy && can_run, egui::Button::new("Run"))
                .clicked()
            {
                action = Some(Action::RunPipeline);
            }
            if ui.add_enabled(busy, egui::Button::new("Cancel")).clicked() {
                action = Some(Action::Cancel);
            }
        });
        if self.running || self.step_fraction.iter().any(|&v| v > 0.0) {
            egui::Grid::new("step_progress").show(ui, |ui| {
                for (k, s) in STEPS.iter().enumerate() {
                    let f = self.step_fraction[k];
                    ui.label(step_name(*s));
                    ui.add(
                        egui::ProgressBar::new(f)
                            .desired_width(110.0)
                            .desired_height(8.0),
                    );
                    ui.label(format!("{:.0} %", f * 100.0));
                    ui.end_row();
                }
            });
        }
        action
    }
}

/// A spatial-domain method and, for the graph methods, its input and epochs (the pipeline
/// panel's choice, and each side's in the A-vs-B panel).
#[derive(Debug, Clone, PartialEq)]
pub struct DomainChoice {
    /// BANKSY, STAGATE or GraphST.
    pub method: DomainMethod,
    /// The graph method's input.
    pub input: DomainInput,
    /// Its epochs.
    pub epochs: usize,
}

impl Default for DomainChoice {
    /// BANKSY; for the graph methods the model's embedding (else genes) and the study's 100
    /// epochs.
    fn default() -> Self {
        DomainChoice {
            method: DomainMethod::Banksy,
            input: DomainInput::Auto,
            epochs: 100,
        }
    }
}

impl DomainChoice {
    /// The job's parameters (`None` for BANKSY).
    pub fn params(&self) -> Option<GraphDomainParams> {
        (self.method != DomainMethod::Banksy).then(|| GraphDomainParams {
            method: self.method,
            input: self.input.clone(),
            epochs: Some(self.epochs),
            ..GraphDomainParams::default()
        })
    }

    /// A short description ("STAGATE on genes").
    pub fn describe(&self) -> String {
        match self.method {
            DomainMethod::Banksy => "BANKSY".into(),
            m => format!("{} on {}", m.name(), input_name(&self.input)),
        }
    }

    /// The method, input and epochs controls; `id` keeps two of them apart.
    pub fn show(&mut self, ui: &mut egui::Ui, id: &str) {
        egui::ComboBox::from_label(format!("{id} method"))
            .selected_text(self.method.name())
            .show_ui(ui, |ui| {
                for m in [
                    DomainMethod::Banksy,
                    DomainMethod::Stagate,
                    DomainMethod::Graphst,
                ] {
                    ui.selectable_value(&mut self.method, m, m.name());
                }
            });
        if self.method == DomainMethod::Banksy {
            return;
        }
        egui::ComboBox::from_label(format!("{id} input"))
            .selected_text(input_name(&self.input))
            .show_ui(ui, |ui| {
                for i in [DomainInput::Auto, DomainInput::Hvg, DomainInput::Pca] {
                    let name = input_name(&i);
                    ui.selectable_value(&mut self.input, i, name);
                }
            });
        ui.add(egui::Slider::new(&mut self.epochs, 10..=1000).text(format!("{id} epochs")));
    }
}

/// An input in words.
fn input_name(i: &DomainInput) -> String {
    match i {
        DomainInput::Auto => "embedding (else genes)".into(),
        DomainInput::Hvg => "genes (3,000 HVGs)".into(),
        DomainInput::Pca => "PCA".into(),
        DomainInput::Obsm(k) => format!("obsm['{k}']"),
    }
}
