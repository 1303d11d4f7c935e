//! Where models run: the ssl_in_scg MLP family (masked autoencoders, Barlow Twins, BYOL,
//! classifiers), weight import from PyTorch / Lightning / safetensors files, and inference on
//! the GPU (burn wgpu) or the CPU.
//!
//! Depends on `data` only for its matrix type, preprocessing and gene alignment.

pub mod checkpoint;
pub mod dense;
pub mod embed;
pub mod engine;
pub mod format;
pub mod hub;
pub mod nets;
pub mod sparse;
pub mod torch_pickle;
pub mod train;

pub use checkpoint::{Activation, Dense, ModelError, ModelKind, ModelWeights, load_checkpoint};
pub use engine::{BackendChoice, Engine, EngineKind};
pub use format::{Model, load_model, save_model};
