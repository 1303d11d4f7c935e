//! Histology jobs: image features of a slide's patches ([`features`]), mclSTExp's
//! expression-from-H&E model ([`mclstexp`]: train, save, load, predict) and the small SimCLR
//! encoder pre-trained on the slides' own tiles ([`encoder`]).

pub mod encoder;
pub mod features;
pub mod mclstexp;
pub mod store;

pub use features::{FeatureParams, Features, Positions, features, features_anndata};
