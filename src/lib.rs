//! cellscope: explore self-supervised embeddings of single-cell and spatial transcriptomics data.
//!
//! Layout (dependencies point one way): `data` (files, matrices, preprocessing, genes) <-
//! `model` (checkpoints, inference) and `analysis` (neighbours, UMAP, Leiden, domains, transfer,
//! metrics) <- `pipeline` (the steps and the background worker) <- `ui` (the window), which
//! draws through `render` (wgpu point clouds, colourings) and writes through `export` (figures,
//! write-back, CSV, sessions); `cli` drives `pipeline` and `export` headless.

pub mod analysis;
pub mod cli;
pub mod data;
pub mod export;
pub mod model;
pub mod pipeline;
pub mod render;
pub mod ui;
