//! Expression from histology: mclSTExp's contrastive spot-image model ([`mclstexp`]), its
//! PyTorch-named weights ([`weights`]), training on frozen image features and prediction by
//! neighbours in the joint space ([`train`]). The image encoders are in [`super::vision`].

pub mod mclstexp;
pub mod train;
pub mod weights;
