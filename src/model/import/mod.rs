//! Where models come from: PyTorch / Lightning checkpoints and `state_dict` files (read by our
//! own pickle interpreter, which never executes anything), safetensors, cellscope's own model
//! folder, and the HuggingFace hub.

pub mod checkpoint;
pub mod format;
pub mod hub;
pub mod torch_pickle;
