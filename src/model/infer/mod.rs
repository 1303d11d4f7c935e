//! Where models run for inference: the compute engine (the sparse CPU path or burn on wgpu /
//! CPU), its sparse first layer and dense layers, and streaming embedding of whole datasets.

pub mod dense;
pub mod embed;
pub mod engine;
pub mod sparse;
