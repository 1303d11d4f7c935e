//! Outputs under hostile conditions (issue #21): created with the user's umask, never left
//! half-written when the run is terminated during the write, and part files of dead runs
//! removed by the next run in that folder.

use crate::common::{fixture, shared_data};

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// `cellscope embed` of kang_pbmc_ctrl (39 MB written) into `out`, under `umask`.
fn embed(out: &Path, umask: &str) -> Child {
    let exe = env!("CARGO_BIN_EXE_cellscope");
    let cmd = format!(
        "umask {umask}; exec '{exe}' embed '{}' --model '{}' --genes '{}' --out '{}'",
        shared_data().join("kang_pbmc_ctrl.h5ad").display(),
        fixture("models/classifier.pt").display(),
        fixture("models/genes.csv").display(),
        out.display()
    );
    Command::new("sh")
        .args(["-c", &cmd])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn parts(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".part"))
        .collect()
}

#[test]
fn outputs_get_the_users_umask_and_stale_parts_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A part file and a part folder of a process that cannot exist (beyond pid_max), and one
    // of this (running) test process.
    let pid_max: u64 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let dead_file = d.join(format!(".cellscope-{}-AbCdEfGh.h5ad.part", pid_max + 1));
    let dead_dir = d.join(format!(".cellscope-{}-AbCdEfGh.model.part", pid_max + 2));
    let live = d.join(format!(
        ".cellscope-{}-AbCdEfGh.h5ad.part",
        std::process::id()
    ));
    std::fs::write(&dead_file, vec![0u8; 1 << 20]).unwrap();
    std::fs::create_dir(&dead_dir).unwrap();
    std::fs::write(dead_dir.join("weights.safetensors"), b"x").unwrap();
    std::fs::write(&live, b"being written").unwrap();
    let out = d.join("embedded.h5ad");
    let o = embed(&out, "027").wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640, "0o666 under umask 027");
    assert!(
        !dead_file.exists() && !dead_dir.exists(),
        "stale parts removed"
    );
    assert!(live.exists(), "a running process's part file is left alone");
}

#[test]
fn terminating_during_the_write_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("embedded.h5ad");
    // The write lasts about 0.1 s of a 0.4 s run: watch for the part file and send SIGTERM
    // then (a run that ends before it is seen is tried again).
    for _ in 0..10 {
        let mut child = embed(&out, "022");
        let mut sent = false;
        while child.try_wait().unwrap().is_none() {
            if !parts(dir.path()).is_empty() {
                let pid = child.id().to_string();
                Command::new("kill").args(["-TERM", &pid]).status().unwrap();
                sent = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        let o = child.wait_with_output().unwrap();
        if !sent {
            std::fs::remove_file(&out).unwrap();
            continue;
        }
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(130), "{err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(!out.exists(), "no output after SIGTERM during the write");
        assert!(parts(dir.path()).is_empty(), "{:?}", parts(dir.path()));
        return;
    }
    panic!("the write was never seen in 10 runs");
}
