//! The side and right panels of the window, one module each. A panel is a function over its
//! own state (the fields of its struct) that reads what the window shows
//! ([`crate::ui::explorer::Explorer`], read only) and returns the [`Action`]s it wants done; the
//! app carries them out (sends the worker a command, changes the colouring or the selection). File dialogs run on their own threads
//! ([`pick_file`], [`save_file`]) and land in a slot the panel polls.

pub mod benchmark;
pub mod color;
pub mod compare;
pub mod data;
pub mod export;
pub mod legend;
pub mod metrics;
pub mod model;
pub mod pipeline;
pub mod training;
pub mod transfer;

use std::path::PathBuf;
use std::sync::Arc;

use crate::pipeline::jobs::coloring::ColorBy;
use crate::pipeline::jobs::compare::SideSource;
use crate::pipeline::jobs::train::{FinetuneJob, PretrainJob};

/// What a panel asks the app to do.
#[derive(Debug)]
pub enum Action {
    /// Open a dataset.
    Open(PathBuf),
    /// Load an image under the spatial view (in the pixel frame of `obsm['spatial']`).
    LoadImage(PathBuf),
    /// Load an image placed in the data's coordinates (one of a run's mosaics).
    LoadPlacedImage(PathBuf, crate::pipeline::jobs::open::Placement),
    /// Decode the shown image again with these contrast limits.
    SetContrast(crate::pipeline::jobs::open::Contrast),
    /// Load a model (file, folder or `hf://` name).
    LoadModel(PathBuf),
    /// Embed the open dataset with the loaded model.
    Embed,
    /// Transfer labels from a reference file's obs column.
    Transfer(PathBuf, String),
    /// Run the pipeline with the pipeline panel's parameters.
    RunPipeline,
    /// Cancel the running job.
    Cancel,
    /// Pre-train a model on the open dataset.
    Pretrain(PretrainJob),
    /// Fine-tune on the open dataset (on the loaded model when the flag is set).
    Finetune(FinetuneJob, bool),
    /// Save the loaded model into a new folder.
    SaveModel(PathBuf),
    /// Compare side A and side B (their spatial domains, each by its method, when given).
    Compare(
        SideSource,
        SideSource,
        Option<[crate::pipeline::jobs::compare::SideDomains; 2]>,
    ),
    /// Show or hide the A-vs-B views.
    ShowComparison(bool),
    /// Colour the cells by something else.
    SetColor(ColorBy),
    /// Hide or show a legend category; `None` shows every category.
    ToggleHidden(Option<String>),
    /// Select exactly these cells.
    Select(Vec<usize>),
    /// Name the current selection.
    Annotate(String),
    /// Choose the ground-truth column of the metrics.
    SetTruth(Option<String>),
    /// Save the session (what the window shows) to a file.
    SaveSession(PathBuf),
    /// Reopen a saved session.
    OpenSession(PathBuf),
    /// Run the scSSL-Bench comparison on the open dataset.
    Benchmark(Box<crate::pipeline::jobs::benchmark::BenchmarkJob>),
    /// Show row `i` of the benchmark's results as the embedding view.
    ShowBenchmarkUmap(usize),
    /// Show a message in the status line.
    Status(String),
    /// Show an error at the bottom of the window.
    Error(String),
}

/// A file chosen in a dialog running on its own thread, taken by the next frame.
pub type Picked = Arc<std::sync::Mutex<Option<PathBuf>>>;

/// Opens a file dialog (rfd) on its own named thread so the UI never blocks; the choice lands in
/// `slot` and the UI is woken.
pub fn pick_file(
    ctx: &egui::Context,
    slot: &Picked,
    filter: &'static str,
    extensions: &'static [&'static str],
) {
    let (slot, ctx) = (slot.clone(), ctx.clone());
    let _ = std::thread::Builder::new()
        .name("cellscope-file-dialog".into())
        .spawn(move || {
            let picked = rfd::FileDialog::new()
                .add_filter(filter, extensions)
                .pick_file();
            if let Ok(mut s) = slot.lock() {
                *s = picked;
            }
            ctx.request_repaint();
        });
}

/// Opens a folder dialog (rfd) on its own thread, as [`pick_file`] does.
pub fn pick_folder(ctx: &egui::Context, slot: &Picked) {
    let (slot, ctx) = (slot.clone(), ctx.clone());
    let _ = std::thread::Builder::new()
        .name("cellscope-file-dialog".into())
        .spawn(move || {
            let picked = rfd::FileDialog::new().pick_folder();
            if let Ok(mut s) = slot.lock() {
                *s = picked;
            }
            ctx.request_repaint();
        });
}

/// Asks (rfd, own thread) for a file to save to (`open`: an existing file to open); the path
/// lands in `slot` and the UI is woken.
pub fn save_file(ctx: &egui::Context, slot: &Picked, name: &str, open: bool) {
    let (slot, ctx, name) = (slot.clone(), ctx.clone(), name.to_string());
    let _ = std::thread::Builder::new()
        .name("cellscope-file-dialog".into())
        .spawn(move || {
            let d = rfd::FileDialog::new();
            let picked = if open {
                d.pick_file()
            } else {
                d.set_file_name(name).save_file()
            };
            if let Ok(mut s) = slot.lock() {
                *s = picked;
            }
            ctx.request_repaint();
        });
}

/// Takes the file a dialog left in `slot`, if any.
pub fn take(slot: &Picked) -> Option<PathBuf> {
    slot.lock().ok().and_then(|mut g| g.take())
}

/// The model a picked file stands for: a cellscope model folder is chosen through its
/// `config.json`; any other file is the model itself.
pub fn model_path_of(p: PathBuf) -> PathBuf {
    match p.parent() {
        Some(dir) if p.file_name().is_some_and(|n| n == "config.json") => dir.to_path_buf(),
        _ => p,
    }
}

/// File extensions offered by the model dialogs.
pub const MODEL_FILES: &[&str] = &["ckpt", "pt", "pth", "safetensors", "json"];

/// A coloured dot and a label, as the legends draw their entries.
pub fn swatch(ui: &mut egui::Ui, color: egui::Color32, text: String) -> egui::Response {
    ui.horizontal(|ui| {
        let (r, _) = ui.allocate_exact_size(egui::vec2(12.0, 12.0), egui::Sense::hover());
        ui.painter().circle_filled(r.center(), 5.0, color);
        ui.label(text)
    })
    .inner
}
