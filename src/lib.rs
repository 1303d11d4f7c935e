//! cellscope: explore self-supervised embeddings of single-cell and spatial transcriptomics data.
//!
//! Layout (dependencies point one way): `data` (files, matrices, preprocessing, genes) <-
//! `cli` (headless commands). Later layers (model, analysis, pipeline, render, ui, export) build
//! on `data`.

pub mod analysis;
pub mod cli;
pub mod data;
pub mod model;
pub mod pipeline;
pub mod render;
pub mod ui;
