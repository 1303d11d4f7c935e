//! Histology jobs: image features of a slide's patches ([`features`]) and mclSTExp's
//! expression-from-H&E model ([`mclstexp`]: train, save, load, predict).

pub mod features;
pub mod mclstexp;

pub use features::{FeatureParams, Features, Positions, features, features_anndata};
