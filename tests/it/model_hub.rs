//! Models from the HuggingFace hub, against a local server on 127.0.0.1 that answers as the hub
//! does (`/{repo}/resolve/{revision}/{path}`; LFS files as a redirect carrying `X-Linked-Etag`,
//! the SHA-256, then the bytes from another address; small files directly): download into the
//! cache with the gene list, reuse after one `HEAD` per file, a branch that moved downloaded
//! again (a commit, `HF_HUB_OFFLINE` and an unreachable hub: the cached copy), the token sent
//! to the hub only, corrupt, truncated, missing and cancelled downloads leaving nothing behind,
//! a silent hub cancelled or given up on,
//! and `cellscope embed --model hf://...` end to end.

use crate::common;

use std::path::Path;

use cellscope::model::hub::{Hub, HubError, HubFile};
use cellscope::model::load_model;
use common::{fixture, serve_hub as serve};

fn hub(endpoint: &str, cache: &Path) -> Hub {
    Hub {
        endpoint: endpoint.to_string(),
        cache: cache.to_path_buf(),
        token: Some("secret".into()),
        offline: false,
    }
}

/// Files under `dir`, recursively.
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn hub_model_downloads_once_with_its_gene_list() {
    let (endpoint, log, _) = serve();
    let cache = tempfile::tempdir().expect("tmp");
    let hub = hub(&endpoint, cache.path());
    let spec = Path::new("hf://TillR/sc_pretrained/Pretrained Models/RandomMask.ckpt");
    let mut reports = Vec::new();
    let (model, genes) = hub
        .resolve_model(spec, None, &mut |name, done, total| {
            reports.push((name.to_string(), done, total));
            true
        })
        .expect("resolve");
    assert_eq!(
        std::fs::read(&model).expect("model"),
        std::fs::read(fixture("models/random_mask.ckpt")).expect("fixture")
    );
    let genes = genes.expect("var.parquet fetched as the gene list");
    assert_eq!(
        std::fs::read(&genes).expect("genes"),
        std::fs::read(fixture("models/var.parquet")).expect("fixture")
    );
    assert!(model.starts_with(cache.path().join("hub/TillR/sc_pretrained/main")));
    // Progress ends at the announced total for both files.
    let ckpt_len = std::fs::metadata(&model).expect("meta").len();
    assert!(
        reports
            .iter()
            .any(|(n, d, t)| n.ends_with("RandomMask.ckpt")
                && *d == ckpt_len
                && *t == Some(ckpt_len))
    );
    assert!(reports.iter().any(|(n, _, _)| n.ends_with("var.parquet")));
    // The token went to the hub, not to the address it redirected to.
    let seen = log.lock().expect("log").clone();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(seen.iter().all(|r| r.method == "GET"), "{seen:?}");
    assert!(
        seen[0].auth && seen[0].path.contains("RandomMask"),
        "{seen:?}"
    );
    assert_eq!((seen[1].path.as_str(), seen[1].auth), ("/cdn/good", false));
    // The downloaded model loads and runs like the local file.
    let a = load_model(&model, Some(&genes)).expect("hub model");
    let b = load_model(
        &fixture("models/random_mask.ckpt"),
        Some(&fixture("models/var.parquet")),
    )
    .expect("fixture model");
    assert!(a.weights.backbone == b.weights.backbone);
    assert_eq!(a.genes.len(), b.genes.len());
    // Second time: from the cache after one HEAD per file (both ETags unchanged).
    let again = hub
        .resolve_model(spec, None, &mut |_, _, _| true)
        .expect("cached");
    assert_eq!(again, (model, Some(genes)));
    let seen = log.lock().expect("log").clone();
    let methods: Vec<&str> = seen[3..].iter().map(|r| r.method.as_str()).collect();
    assert_eq!(methods, ["HEAD", "HEAD"], "{seen:?}");
    assert!(seen[3].auth, "the token goes with the check too");
}

/// A branch that moved on the hub is downloaded again; a commit, `HF_HUB_OFFLINE` and a hub
/// that cannot be reached use the cached copy without a download; offline without a cached
/// copy is an error that says so.
#[test]
fn cached_files_follow_the_branch_unless_offline() {
    let (endpoint, log, moving) = serve();
    let cache = tempfile::tempdir().expect("tmp");
    let hub = hub(&endpoint, cache.path());
    let file = HubFile::parse("hf://TillR/sc_pretrained/Pretrained Models/Moving.ckpt")
        .expect("hub name")
        .expect("valid");
    let first = hub.fetch(&file, &mut |_, _| true).expect("first");
    assert_eq!(
        std::fs::read(&first).expect("read"),
        std::fs::read(fixture("models/random_mask.ckpt")).expect("fixture")
    );
    let newer = b"a newer checkpoint on the same branch".repeat(1000);
    *moving.lock().expect("moving") = newer.clone();
    let second = hub.fetch(&file, &mut |_, _| true).expect("second");
    assert_eq!(second, first, "same cache path");
    assert_eq!(
        std::fs::read(&second).expect("read"),
        newer,
        "the new version"
    );
    let n = log.lock().expect("log").len();
    // Offline: the cached copy, no request, although the branch moved again.
    *moving.lock().expect("moving") = b"yet another".to_vec();
    let offline = Hub {
        offline: true,
        ..hub.clone()
    };
    let p = offline.fetch(&file, &mut |_, _| true).expect("offline");
    assert_eq!(std::fs::read(&p).expect("read"), newer);
    assert_eq!(log.lock().expect("log").len(), n, "no request offline");
    let missing = offline
        .fetch(&file.sibling("var.parquet"), &mut |_, _| true)
        .expect_err("not cached");
    assert!(missing.to_string().contains("HF_HUB_OFFLINE"), "{missing}");
    // A hub that cannot be reached (nothing listens on port 1): the cached copy.
    let unreachable = Hub {
        endpoint: "http://127.0.0.1:1".into(),
        ..hub.clone()
    };
    let p = unreachable
        .fetch(&file, &mut |_, _| true)
        .expect("unreachable");
    assert_eq!(std::fs::read(&p).expect("read"), newer);
    // A commit never changes: its cached files are used without a request.
    let commit = HubFile {
        revision: "0123456789abcdef0123456789abcdef01234567".into(),
        ..file.clone()
    };
    let at_commit = hub.cached_path(&commit);
    std::fs::create_dir_all(at_commit.parent().expect("parent")).expect("mkdir");
    std::fs::write(&at_commit, b"pinned").expect("write");
    assert_eq!(
        hub.fetch(&commit, &mut |_, _| true).expect("commit"),
        at_commit
    );
    assert_eq!(log.lock().expect("log").len(), n, "no request for a commit");
}

/// A hub that accepts connections and never answers: waiting for it can be cancelled at once,
/// with and without a cached copy, and without cancelling the freshness check gives up after
/// its 10 s and the cached copy is used (before, both waits were unbounded).
#[test]
fn a_silent_hub_can_be_cancelled_and_gives_up() {
    let cache = tempfile::tempdir().expect("tmp");
    let hub = hub(&common::serve_silent_hub(), cache.path());
    let file = HubFile::parse("hf://TillR/sc_pretrained/Pretrained Models/RandomMask.ckpt")
        .expect("hub name")
        .expect("valid");
    let cancel_after = |calls: &mut usize, n: usize| {
        *calls += 1;
        *calls < n
    };
    for cached in [false, true] {
        if cached {
            let p = hub.cached_path(&file);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(&p, b"cached").expect("write");
        }
        let (t, mut calls) = (std::time::Instant::now(), 0);
        let e = hub
            .fetch(&file, &mut |_, _| cancel_after(&mut calls, 3))
            .expect_err("cancelled");
        assert!(matches!(e, HubError::Cancelled), "cached {cached}: {e}");
        assert_eq!(calls, 3, "asked while waiting");
        assert!(
            t.elapsed().as_secs_f64() < 5.0,
            "cancelled at once: {:?}",
            t.elapsed()
        );
    }
    let t = std::time::Instant::now();
    let p = hub.fetch(&file, &mut |_, _| true).expect("cached copy");
    assert_eq!(std::fs::read(&p).expect("read"), b"cached");
    assert!(
        t.elapsed().as_secs_f64() < 20.0,
        "gave up: {:?}",
        t.elapsed()
    );
}

#[test]
fn bad_downloads_leave_nothing_behind() {
    let (endpoint, _, _) = serve();
    let cache = tempfile::tempdir().expect("tmp");
    let hub = hub(&endpoint, cache.path());
    let file = |p: &str| {
        HubFile::parse(&format!("hf://TillR/sc_pretrained/{p}"))
            .expect("hf name")
            .expect("valid")
    };
    let e = hub
        .fetch(&file("Pretrained Models/Corrupt.ckpt"), &mut |_, _| true)
        .expect_err("corrupt");
    assert!(
        matches!(&e, HubError::Corrupt { message, .. } if message.contains("SHA-256")),
        "{e}"
    );
    let e = hub
        .fetch(&file("Pretrained Models/Short.ckpt"), &mut |_, _| true)
        .expect_err("truncated");
    assert!(
        matches!(e, HubError::Corrupt { .. } | HubError::Network { .. }),
        "{e}"
    );
    let e = hub
        .fetch(&file("Pretrained Models/Missing.ckpt"), &mut |_, _| true)
        .expect_err("missing");
    assert!(
        matches!(&e, HubError::Status { status: 404, url, .. }
            if url.ends_with("/TillR/sc_pretrained/resolve/main/Pretrained%20Models/Missing.ckpt")),
        "{e}"
    );
    let e = hub
        .fetch(
            &file("Pretrained Models/RandomMask.ckpt"),
            &mut |done, _| done == 0,
        )
        .expect_err("cancelled");
    assert!(matches!(e, HubError::Cancelled), "{e}");
    assert_eq!(files(cache.path()), Vec::<std::path::PathBuf>::new());
    // Malformed names are refused before any request.
    for bad in [
        "hf://TillR",
        "hf://TillR/sc_pretrained",
        "hf://TillR/sc_pretrained/../../etc/passwd",
        "hf://TillR/sc_pretrained@/x.ckpt",
        "hf:///sc_pretrained/x.ckpt",
        "hf://TillR/sc_pretrained/models//x.ckpt",
    ] {
        assert!(
            matches!(HubFile::parse(bad), Some(Err(HubError::Spec { .. }))),
            "{bad}"
        );
    }
    assert!(HubFile::parse("models/local.ckpt").is_none());
    let pinned = HubFile::parse("hf://TillR/sc_pretrained@v1.0/a b/c.ckpt")
        .expect("hf")
        .expect("valid");
    assert_eq!(
        hub.url(&pinned),
        format!("{endpoint}/TillR/sc_pretrained/resolve/v1.0/a%20b/c.ckpt")
    );
}

#[test]
fn embed_command_takes_a_hub_model() {
    let (endpoint, _, _) = serve();
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("embedded.h5ad");
    let cache = dir.path().join("cache");
    let a = common::embed_kang(
        "hf://TillR/sc_pretrained/Pretrained Models/RandomMask.ckpt",
        &[],
        &[
            ("HF_ENDPOINT", Path::new(&endpoint)),
            ("CELLSCOPE_CACHE", &cache),
        ],
        &out,
    );
    common::assert_random_mask_reference(&a.obsm["X_cellscope"], &[57]);
}
