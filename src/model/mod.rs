//! Where networks live and run, in three rooms:
//! - [`import`]: checkpoints (PyTorch, Lightning, safetensors), cellscope's model folder, the
//!   HuggingFace hub;
//! - [`infer`]: the compute engine (sparse CPU path, burn wgpu / CPU) and streaming embedding;
//! - [`train`]: objectives, augmentations and the training loops;
//!
//! and the network family itself in [`nets`] (the ssl_in_scg MLPs: masked autoencoders,
//! Barlow Twins, BYOL, classifiers), whose forward pass serves training and the burn inference
//! paths alike, and scSSL-Bench's generic networks in [`bench`] (its BatchNorm encoder,
//! SimCLR / VICReg projection heads), STAGATE and GraphST in [`graph`], and the image encoders
//! for histology (ResNet, DenseNet) in [`vision`], with mclSTExp in [`histology`].
//!
//! Depends on `data` only, for its matrix type, preprocessing and gene alignment.

pub mod bench;
pub mod graph;
pub mod histology;
pub mod import;
pub mod infer;
pub mod nets;
pub mod train;
pub mod vision;

pub use import::{checkpoint, format, hub, torch_pickle};
pub use infer::{dense, embed, engine, sparse};

pub use checkpoint::{Activation, Dense, ModelError, ModelKind, ModelWeights, load_checkpoint};
pub use engine::{BackendChoice, Engine, EngineError, EngineKind};
pub use format::{Model, load_model, save_model};
