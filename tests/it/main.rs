//! The integration tests, in one test crate so that the suite links burn, wgpu, eframe and hdf5
//! once (one module per former test binary, as rust-analyzer's `tests/it` layout). Each module
//! reads the real datasets in `../shared/data` and the fixtures in `tests/fixtures`.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

mod analysis_benchmark;
mod analysis_cli;
mod analysis_domains;
mod analysis_gmm;
mod analysis_impute;
mod analysis_real;
mod analysis_reference;
mod analysis_scib;
mod analysis_split;
mod data_bad_inputs;
mod data_chunkindex;
mod data_homologs;
mod data_morphology;
mod data_preprocess;
mod data_reference;
mod data_stream;
mod data_vendor;
mod data_vendor_cli;
mod data_write;
mod explorer_ui;
mod explorer_window;
mod exports;
mod fuzz;
mod hostile;
mod hostile_corpus;
mod hostile_data;
mod hostile_models;
mod hostile_outputs;
mod model_embed;
mod model_evaluate;
mod model_generic;
mod model_graphst;
mod model_hub;
mod model_import;
mod model_mclstexp;
mod model_objectives;
mod model_stagate;
mod model_train;
mod model_vision;
