//! The `cellscope` binary: no arguments opens the window, subcommands run headless.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    quiet_vulkan_device_select();
    let cli = cellscope::cli::Cli::parse();
    match cellscope::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", cellscope::cli::message(&e));
            ExitCode::from(cellscope::cli::exit_code(&e))
        }
    }
}

/// Without a valid `XDG_RUNTIME_DIR` (an ssh session, cron, a container), Mesa's implicit
/// Vulkan device-select layer tries Wayland while the adapters are listed and libwayland prints
/// "error: XDG_RUNTIME_DIR is invalid or not set in the environment." twice on every run that
/// succeeds. The layer only orders GPUs for a display server that cannot be reached then, and
/// cellscope picks its adapter itself, so it is turned off (`NODEVICE_SELECT=1`, Mesa's switch)
/// unless the user set that variable.
#[allow(unsafe_code)]
fn quiet_vulkan_device_select() {
    let valid =
        std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|d| std::path::Path::new(&d).is_dir());
    if !valid && std::env::var_os("NODEVICE_SELECT").is_none() {
        // SAFETY: the first statement of `main`, before any thread exists: nothing reads the
        // environment concurrently.
        unsafe { std::env::set_var("NODEVICE_SELECT", "1") };
    }
}
