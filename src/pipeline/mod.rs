//! The pipeline: the steps from a loaded dataset to analysed results, shared by the headless
//! command line and the explorer's background worker.

pub mod analyze;
pub mod compare;
pub mod train;
pub mod transfer;
pub mod worker;
