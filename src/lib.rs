//! cellscope: explore self-supervised embeddings of single-cell and spatial transcriptomics data.
//!
//! Layers, dependencies pointing one way (see `ARCHITECTURE.md`): `data` (files, matrices,
//! preprocessing, genes) <- `model` (import, inference, training) and `analysis` (neighbours,
//! UMAP, Leiden, domains, transfer, metrics) <- `pipeline` (one job per capability, and the
//! background worker that runs them for the window) <- `ui` (the window) and `cli` (the
//! subcommands), both calling the same jobs; `render` (points, colours, cameras) is used by
//! `ui`, `export` (figures, write-back, CSV, sessions) by the jobs and the window.

pub mod analysis;
pub mod cli;
pub mod data;
pub mod export;
pub mod model;
pub mod pipeline;
pub mod render;
pub mod ui;
