//! Part files: every output (h5ad, figure, CSV, JSON, model folder, download) is written to a
//! hidden `.cellscope-<pid>-<random><suffix>` file or folder beside it, then renamed over the
//! output, so that a reader never sees half a file and an input is never truncated.
//!
//! - Part files are created with mode 0o666 (folders 0o777) *before* the user's umask, as the
//!   shell or any editor creates files: the output ends up with the user's usual permissions,
//!   not the 0o600 of a private temporary file.
//! - The live part files of this process are registered, so that a signal handler can remove
//!   them before the process exits ([`remove_live`]).
//! - A part file left by a process that no longer runs (killed with SIGKILL, a crash, a power
//!   cut) is removed the next time cellscope writes in that folder ([`remove_stale`]); only the
//!   current user's, and only where `/proc` tells which processes run (Linux).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tempfile::{NamedTempFile, TempDir};

/// The prefix of every part file's name.
const PREFIX: &str = ".cellscope-";

/// The part files this process is writing.
static LIVE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// The folder `out` is written in (`.` for a bare file name).
pub fn folder_of(out: &Path) -> PathBuf {
    match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// This process's part-file name prefix.
fn prefix() -> String {
    format!("{PREFIX}{}-", std::process::id())
}

/// A new part file for `out` (name ending in `suffix`, e.g. `.h5ad.part`), registered as live;
/// stale part files in the same folder are removed first.
///
/// # Errors
/// The folder cannot be written.
pub fn file(out: &Path, suffix: &str) -> std::io::Result<NamedTempFile> {
    let dir = folder_of(out);
    remove_stale(&dir);
    let f = tempfile::Builder::new()
        .prefix(&prefix())
        .suffix(suffix)
        .permissions(std::fs::Permissions::from_mode(0o666))
        .tempfile_in(&dir)?;
    register(f.path());
    Ok(f)
}

/// A new part folder for the folder `out` (e.g. a model), as [`file`].
///
/// # Errors
/// The parent folder cannot be written.
pub fn dir(out: &Path, suffix: &str) -> std::io::Result<TempDir> {
    let parent = folder_of(out);
    remove_stale(&parent);
    let d = tempfile::Builder::new()
        .prefix(&prefix())
        .suffix(suffix)
        .permissions(std::fs::Permissions::from_mode(0o777))
        .tempdir_in(&parent)?;
    register(d.path());
    Ok(d)
}

/// Renames the part file over `out`; the part file is no longer live.
///
/// # Errors
/// The rename fails (the part file is then removed).
pub fn persist(part: NamedTempFile, out: &Path) -> std::io::Result<()> {
    let path = part.path().to_path_buf();
    let r = part.persist(out).map(|_| ()).map_err(|e| e.error);
    unregister(&path);
    r
}

/// Renames the part folder over `out` (which must not exist); no longer live.
///
/// # Errors
/// The rename fails (the part folder is then removed).
pub fn persist_dir(part: TempDir, out: &Path) -> std::io::Result<()> {
    let path = part.keep();
    let r = std::fs::rename(&path, out);
    if r.is_err() {
        let _ = std::fs::remove_dir_all(&path);
    }
    unregister(&path);
    r
}

fn register(p: &Path) {
    if let Ok(mut live) = LIVE.lock() {
        live.push(p.to_path_buf());
    }
}

fn unregister(p: &Path) {
    if let Ok(mut live) = LIVE.lock() {
        live.retain(|q| q != p);
    }
}

/// Whether this process is writing a part file now.
pub fn any_live() -> bool {
    LIVE.lock().map(|l| !l.is_empty()).unwrap_or(false)
}

/// Removes every live part file of this process (for a signal handler, before exiting).
pub fn remove_live() {
    let live = match LIVE.lock() {
        Ok(mut l) => std::mem::take(&mut *l),
        Err(_) => return,
    };
    for p in live {
        let _ = std::fs::remove_file(&p).or_else(|_| std::fs::remove_dir_all(&p));
    }
}

/// Removes the part files in `dir` left by processes of the current user that no longer run.
/// Does nothing where `/proc` is absent (it cannot tell which processes run).
pub fn remove_stale(dir: &Path) {
    let Ok(me) = std::fs::metadata("/proc/self") else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(part_pid) else {
            continue;
        };
        let Ok(meta) = e.metadata() else { continue };
        let running = Path::new("/proc").join(pid.to_string()).exists();
        if meta.uid() == me.uid() && !running {
            let p = e.path();
            let _ = if meta.is_dir() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
        }
    }
}

/// The process id in a part file's name (`.cellscope-<pid>-<random>...part`).
fn part_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    if !name.ends_with(".part") {
        return None;
    }
    rest.split_once('-')?.0.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_names_carry_the_pid() {
        assert_eq!(part_pid(".cellscope-1234-abcdEFGH.h5ad.part"), Some(1234));
        assert_eq!(part_pid(".cellscope-model-abc.part"), None);
        assert_eq!(part_pid(".cellscope-1234-abc.h5ad"), None);
        assert_eq!(part_pid("cellscope-1234-abc.part"), None);
    }
}
