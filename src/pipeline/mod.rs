//! The pipeline: every capability as a job ([`jobs`]: typed parameters, progress, cancel,
//! typed result), called by the CLI's subcommands and, through the background [`worker`], by
//! the window. Nothing above this layer computes.

pub mod jobs;
pub mod worker;
