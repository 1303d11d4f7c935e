//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// `../shared/data` beside the repository (CI has the same layout).
pub fn shared_data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data")
}

/// Whether `python3` with `anndata` is there for the checks that read our output back in
/// Python. Outside CI a missing one skips the check (README: it is optional for a developer,
/// installed by `scripts/setup.sh`); in CI (`CI` set) its absence fails the test.
pub fn python_anndata(check: &str) -> bool {
    let found = std::process::Command::new("python3")
        .args(["-c", "import anndata"])
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have Python anndata for {check} (installed by scripts/setup.sh)"
        );
        eprintln!("python3 with anndata not found: skipping {check}");
    }
    found
}

/// A committed fixture under `tests/fixtures`.
pub fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// A committed JSON fixture under `tests/fixtures`, parsed.
pub fn fixture_json(rel: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(fixture(rel)).expect(rel);
    serde_json::from_str(&text).expect("valid JSON")
}

/// The reference values written by `tests/fixtures/make_reference.py`.
pub fn reference() -> serde_json::Value {
    let text = std::fs::read_to_string(fixture("reference.json")).expect("reference.json");
    serde_json::from_str(&text).expect("valid JSON")
}

/// SHA-256 of the strings joined by newlines (as the Python script computes it).
pub fn sha_join<S: AsRef<str>>(items: &[S]) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            h.update(b"\n");
        }
        h.update(s.as_ref().as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// `|a - b| <= rel * max(1, |b|)`.
pub fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs().max(1.0)
}

/// Asserts that rows `cells` of an embedding of `kang_pbmc_ctrl.h5ad` equal the PyTorch forward
/// pass of the fixture random-mask model (`models/reference.json`, written by
/// `tests/fixtures/models/make_models.py`) within 1e-4 relative error.
pub fn assert_random_mask_reference(e: &ndarray::Array2<f64>, cells: &[usize]) {
    let text = std::fs::read_to_string(fixture("models/reference.json")).expect("ref");
    let r: serde_json::Value = serde_json::from_str(&text).expect("json");
    for &i in cells {
        for j in 0..64 {
            let w = r["random_mask"][i][j].as_f64().expect("f64");
            assert!(close(e[[i, j]], w, 1e-4), "cell {i} dim {j}");
        }
    }
}

/// Runs `cellscope embed kang_pbmc_ctrl.h5ad --model MODEL --backend cpu ARGS --out OUT` with
/// the environment variables `envs`; asserts that it succeeds and reports all 256 genes of the
/// fixture models matched, and returns the written AnnData.
pub fn embed_kang(
    model: impl AsRef<std::ffi::OsStr>,
    args: &[&str],
    envs: &[(&str, &std::path::Path)],
    out: &std::path::Path,
) -> cellscope::data::anndata::AnnData {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_cellscope"))
        .arg("embed")
        .arg(shared_data().join("kang_pbmc_ctrl.h5ad"))
        .arg("--model")
        .arg(model)
        .args(["--backend", "cpu"])
        .args(args)
        .arg("--out")
        .arg(out)
        .envs(envs.iter().copied())
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("256 of 256 model genes matched"), "{err}");
    cellscope::data::open(out).expect("reread")
}

/// One request the stand-in hub saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubRequest {
    /// `GET` or `HEAD`.
    pub method: String,
    /// The path asked, percent-encoded.
    pub path: String,
    /// Whether `Authorization: Bearer secret` came with it.
    pub auth: bool,
}

/// Requests the stand-in hub saw, in order.
pub type HubLog = Arc<Mutex<Vec<HubRequest>>>;

/// A local stand-in for the HuggingFace hub on 127.0.0.1, answering `GET` and `HEAD` the way
/// the hub does. Serves `TillR/sc_pretrained` at revision `main`:
/// - `Pretrained Models/RandomMask.ckpt`: the fixture checkpoint, LFS-style (a redirect
///   carrying `X-Linked-Etag`, the SHA-256, then the bytes from `/cdn/...`);
/// - `Pretrained Models/Moving.ckpt`: LFS-style, whatever `moving` holds at the time (a branch
///   that moves);
/// - `var.parquet`: the fixture gene list, directly, with an `ETag`;
/// - `Pretrained Models/Corrupt.ckpt`: a flipped byte under the true SHA-256;
/// - `Pretrained Models/Short.ckpt`: half the announced length, then the connection closes.
///
/// Returns the endpoint, the request log and `moving` (initially the fixture checkpoint).
pub fn serve_hub() -> (String, HubLog, Arc<Mutex<Vec<u8>>>) {
    use sha2::Digest;
    let ckpt = std::fs::read(fixture("models/random_mask.ckpt")).expect("ckpt");
    let var = std::fs::read(fixture("models/var.parquet")).expect("parquet");
    let sha256 = |b: &[u8]| -> String {
        sha2::Sha256::digest(b)
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect()
    };
    let sha = sha256(&ckpt);
    let mut corrupt = ckpt.clone();
    corrupt[1000] ^= 0x55;
    let moving = Arc::new(Mutex::new(ckpt.clone()));
    let current = moving.clone();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
    let log: HubLog = Arc::default();
    let seen = log.clone();
    let server = std::thread::Builder::new().name("hub-test-server".into());
    server
        .spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let mut words = line.split_whitespace();
                let method = words.next().unwrap_or("").to_string();
                let path = words.next().unwrap_or("").to_string();
                let mut auth = false;
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                    auth |= h
                        .to_ascii_lowercase()
                        .starts_with("authorization: bearer secret");
                }
                let head = method == "HEAD";
                seen.lock().expect("log").push(HubRequest {
                    method,
                    path: path.clone(),
                    auth,
                });
                let moving = current.lock().expect("moving").clone();
                let repo = "/TillR/sc_pretrained/resolve/main/";
                let redirect = |to: &str, sha: &str, len: usize| {
                    format!(
                        "HTTP/1.1 302 Found\r\nLocation: {to}\r\nX-Linked-Etag: \"{sha}\"\r\n\
                         X-Linked-Size: {len}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    )
                    .into_bytes()
                };
                let ok = |body: &[u8], len: usize, etag: &str| {
                    let mut r = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n{etag}Connection: close\r\n\r\n"
                    )
                    .into_bytes();
                    if !head {
                        r.extend_from_slice(body);
                    }
                    r
                };
                let response = match path.strip_prefix(repo) {
                    Some("Pretrained%20Models/RandomMask.ckpt") => {
                        redirect("/cdn/good", &sha, ckpt.len())
                    }
                    Some("Pretrained%20Models/Moving.ckpt") => {
                        redirect("/cdn/moving", &sha256(&moving), moving.len())
                    }
                    Some("Pretrained%20Models/Corrupt.ckpt") => {
                        redirect("/cdn/corrupt", &sha, ckpt.len())
                    }
                    Some("Pretrained%20Models/Short.ckpt") => {
                        ok(&ckpt[..ckpt.len() / 2], ckpt.len(), "")
                    }
                    Some("var.parquet") => ok(&var, var.len(), "ETag: \"var-1\"\r\n"),
                    _ => match path.as_str() {
                        "/cdn/good" => ok(&ckpt, ckpt.len(), ""),
                        "/cdn/moving" => ok(&moving, moving.len(), ""),
                        "/cdn/corrupt" => ok(&corrupt, corrupt.len(), ""),
                        _ => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            .to_vec(),
                    },
                };
                let _ = stream.write_all(&response);
                let _ = stream.shutdown(std::net::Shutdown::Both);
            }
        })
        .expect("server thread");
    (endpoint, log, moving)
}

/// A stand-in hub on 127.0.0.1 that accepts connections and never answers; returns its
/// endpoint.
pub fn serve_silent_hub() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::Builder::new()
        .name("silent-hub".into())
        .spawn(move || {
            // Held, never read or answered.
            let held: Vec<_> = listener.incoming().collect();
            drop(held);
        })
        .expect("thread");
    endpoint
}
