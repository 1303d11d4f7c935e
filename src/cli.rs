//! Command-line interface: no arguments opens the window (once the explorer exists);
//! subcommands run the headless pipeline.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::data::summary::Summary;

/// cellscope: self-supervised embeddings of single-cell and spatial transcriptomics data.
#[derive(Debug, Parser)]
#[command(name = "cellscope", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Headless subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print a summary of an .h5ad file, a 10x .h5 matrix or a Visium folder: shape, X
    /// encoding and dtype, sparsity, obs columns with category counts, obsm, layers, raw, uns
    /// colours.
    Inspect {
        /// The input (.h5ad, 10x .h5, or Visium Space Ranger folder).
        path: PathBuf,
    },
}

/// Runs a parsed command line.
///
/// # Errors
/// The command's error, for printing by `main` (one message, no backtrace).
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Some(Command::Inspect { path }) => {
            let s = Summary::of_path(&path)?;
            println!("{s}");
            Ok(())
        }
        None => {
            // The explorer window lands with the UI layer; until then, say what there is.
            use clap::CommandFactory;
            println!("cellscope: the explorer window is not part of this build yet.\n");
            Cli::command().print_help()?;
            Ok(())
        }
    }
}
