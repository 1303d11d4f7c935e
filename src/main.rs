//! The `cellscope` binary: no arguments opens the window, subcommands run headless.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cellscope::cli::Cli::parse();
    match cellscope::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(cellscope::cli::exit_code(&e))
        }
    }
}
