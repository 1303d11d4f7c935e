//! Starts the real binary under Xvfb on the embedded dataset, waits for the default pipeline,
//! and checks the screenshot it saves: right size, not blank, both views drawn.
#![allow(clippy::unwrap_used)] // test and benchmark code: a panic is the failure report

use std::process::Command;

#[test]
fn real_window_under_xvfb_shows_the_default_pipeline() {
    if Command::new("xvfb-run").arg("--help").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have xvfb-run (see .ci/run)"
        );
        eprintln!("skipping: xvfb-run not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let shot = dir.path().join("window.png");
    let out = Command::new("timeout")
        .args(["180", "xvfb-run", "-a", "-s", "-screen 0 1400x900x24"])
        .arg(env!("CARGO_BIN_EXE_cellscope"))
        .arg("--screenshot")
        .arg(&shot)
        .env("XDG_RUNTIME_DIR", dir.path())
        .output()
        .expect("run xvfb-run");
    assert!(
        out.status.success(),
        "window exited with {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("representation: model embedding"),
        "the default model was not used: {stdout}"
    );
    let img = image::open(&shot).expect("screenshot written").to_rgba8();
    assert!(
        img.width() >= 1000 && img.height() >= 600,
        "size {}x{}",
        img.width(),
        img.height()
    );
    let mut colours = std::collections::HashSet::new();
    for p in img.pixels().step_by(7) {
        colours.insert([p[0] / 8, p[1] / 8, p[2] / 8]);
    }
    println!(
        "screenshot {}x{}, {} distinct colours",
        img.width(),
        img.height(),
        colours.len()
    );
    assert!(colours.len() > 50, "window looks blank");
    // scanpy's first palette colour (#1f77b4) is drawn in both halves of the view area.
    let blue = |x0: u32, x1: u32| {
        (0..img.height())
            .flat_map(|y| (x0..x1).map(move |x| (x, y)))
            .filter(|&(x, y)| {
                let p = img.get_pixel(x, y).0;
                (p[0] as i32 - 0x1f).abs() + (p[1] as i32 - 0x77).abs() + (p[2] as i32 - 0xb4).abs()
                    < 12
            })
            .count()
    };
    let w = img.width();
    assert!(
        blue(w / 5, w / 2) > 100 && blue(w / 2, w * 9 / 10) > 100,
        "both views drawn"
    );
}
