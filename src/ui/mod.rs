//! The explorer window (eframe/egui): the app (layout, event drain, settings), what it shows
//! at run time ([`explorer`]), one module per panel ([`panels`]) and the linked point views
//! ([`view`]). Only this layer uses egui widgets; it computes nothing itself (the worker does).

pub mod app;
pub mod explorer;
pub mod panels;
pub mod view;

use std::path::PathBuf;

/// The dataset `cargo run --release` opens when no path is given (see assets/README.md).
pub fn default_dataset() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/cscc_p10_rep2_hvg.h5ad")
}

/// The model shipped with the default dataset: a Barlow Twins backbone cellscope trained on it
/// (see assets/README.md).
pub fn default_model() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/default_model")
}

/// Opens the explorer window on `path` (or on the embedded default dataset with its model). `screenshot` saves a PNG of the
/// window once the pipeline has finished and then closes it.
///
/// # Errors
/// When no window can be created (no display, no GPU adapter and no software fallback).
pub fn run(path: Option<PathBuf>, screenshot: Option<PathBuf>) -> anyhow::Result<()> {
    let use_default = path.is_none() && default_dataset().exists();
    let path = path.or_else(|| Some(default_dataset()).filter(|p| p.exists()));
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_inner_size([1400.0, 820.0])
            .with_title("cellscope"),
        renderer: eframe::Renderer::Wgpu,
        ..Default::default()
    };
    eframe::run_native(
        "cellscope",
        options,
        Box::new(move |cc| {
            let mut app = app::CellscopeApp::new(&cc.egui_ctx, path);
            if let Some(s) = cc.storage {
                app.settings = eframe::get_value(s, app::Settings::KEY).unwrap_or_default();
            }
            app.screenshot_to = screenshot;
            if use_default && default_model().exists() {
                app.open_with_model(default_model());
            }
            Ok(Box::new(app))
        }),
    )
    .map_err(|e| anyhow::anyhow!("cannot open the window: {e}"))
}
