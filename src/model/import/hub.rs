//! Models from the HuggingFace hub: `hf://OWNER/NAME[@REVISION]/PATH` names a file of a hub
//! repository (the pretrained ssl_in_scg weights of Richter et al. 2024 are in
//! `TillR/sc_pretrained`, e.g. `hf://TillR/sc_pretrained/Pretrained Models/RandomMask.ckpt`,
//! gene order in `var.parquet` at the repository root; see `SSL_MODELS.md`).
//!
//! A file is downloaded into the cache (`$CELLSCOPE_CACHE`, else `$XDG_CACHE_HOME/cellscope`,
//! else `~/.cache/cellscope`, under `hub/OWNER/NAME/REVISION/PATH`). As with
//! `huggingface_hub`, a cached file of a branch or tag is checked against the hub's current
//! ETag (one `HEAD` request; it is downloaded again when the revision moved), a cached file of
//! a commit is used without a request, and the cached copy is used when the hub cannot be
//! reached, does not answer within 10 s, or `$HF_HUB_OFFLINE` is set. Every wait for the hub
//! can be cancelled through the progress callback. The download goes to a `.part` file beside
//! the target and is renamed into place only when complete: its length must equal the
//! announced one and, for files stored with Git LFS (the checkpoints), its SHA-256 must equal
//! the hub's `X-Linked-Etag`. The hub address follows
//! `huggingface_hub`'s conventions: `$HF_ENDPOINT` (default `https://huggingface.co`), files at
//! `{endpoint}/{repo}/resolve/{revision}/{path}`, a token in `$HF_TOKEN` for gated
//! repositories (sent to the hub only, not to the storage it redirects to).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::Digest;

/// URL scheme of hub files.
pub const SCHEME: &str = "hf://";

/// Bytes percent-encoded in a path segment: all but RFC 3986's unreserved characters.
const PATH_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A download or cache failure, naming the file and the address.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The `hf://` name is malformed.
    #[error("{spec}: {message} (expected hf://OWNER/NAME[@REVISION]/PATH)")]
    Spec {
        /// The name as given.
        spec: String,
        /// What is wrong.
        message: String,
    },
    /// The hub answered with an error status (404: no such repository, revision or file).
    #[error("{url}: the hub answered HTTP {status}{hint}")]
    Status {
        /// The address asked.
        url: String,
        /// HTTP status.
        status: u16,
        /// What it probably means.
        hint: &'static str,
    },
    /// The connection failed or broke off.
    #[error("{url}: {message}")]
    Network {
        /// The address asked.
        url: String,
        /// The transport's message.
        message: String,
    },
    /// The downloaded bytes are not the announced file.
    #[error("{url}: {message}; the download was discarded")]
    Corrupt {
        /// The address asked.
        url: String,
        /// Length or SHA-256 mismatch.
        message: String,
    },
    /// The cache could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The cache file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The caller cancelled; nothing was kept.
    #[error("download cancelled")]
    Cancelled,
}

/// One file of a hub repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubFile {
    /// `OWNER/NAME`.
    pub repo: String,
    /// Branch, tag or commit (default `main`).
    pub revision: String,
    /// Path inside the repository, `/`-separated.
    pub path: String,
}

impl HubFile {
    /// Parses `hf://OWNER/NAME[@REVISION]/PATH`. `None` when `spec` does not start with
    /// [`SCHEME`] (a local path).
    ///
    /// # Errors
    /// [`HubError::Spec`] for a missing owner, name or path, or a path component that is empty,
    /// `.` or `..` (the path becomes a folder in the cache).
    pub fn parse(spec: &str) -> Option<Result<Self, HubError>> {
        let rest = spec.strip_prefix(SCHEME)?;
        let err = |message: &str| HubError::Spec {
            spec: spec.to_string(),
            message: message.to_string(),
        };
        let mut parts = rest.splitn(3, '/');
        let (Some(owner), Some(name), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            return Some(Err(err("owner, repository name and file path are needed")));
        };
        let (name, revision) = name.split_once('@').unwrap_or((name, "main"));
        let safe = |s: &str| !s.is_empty() && s != "." && s != ".." && !s.contains('\\');
        if !safe(owner) || !safe(name) || !safe(revision) || revision.contains('/') {
            return Some(Err(err("empty or invalid owner, name or revision")));
        }
        if !path.split('/').all(safe) {
            return Some(Err(err(
                "the file path has an empty, '.' or '..' component",
            )));
        }
        Some(Ok(Self {
            repo: format!("{owner}/{name}"),
            revision: revision.to_string(),
            path: path.to_string(),
        }))
    }

    /// Another file of the same repository and revision.
    pub fn sibling(&self, path: &str) -> Self {
        Self {
            path: path.to_string(),
            ..self.clone()
        }
    }
}

impl std::fmt::Display for HubFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{SCHEME}{}@{}/{}", self.repo, self.revision, self.path)
    }
}

/// Where hub files come from and where they are kept.
#[derive(Debug, Clone)]
pub struct Hub {
    /// Hub address without a trailing `/`, e.g. `https://huggingface.co`.
    pub endpoint: String,
    /// Cache root; files go to `hub/OWNER/NAME/REVISION/PATH` under it.
    pub cache: PathBuf,
    /// Bearer token for gated or private repositories.
    pub token: Option<String>,
    /// Never ask the hub; cached files only (`$HF_HUB_OFFLINE`).
    pub offline: bool,
}

/// A commit id (40 hex digits): its files never change.
fn is_commit(revision: &str) -> bool {
    revision.len() == 40 && revision.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Where the ETag of a cached file is kept: `.NAME.etag` beside it.
fn etag_path(target: &Path) -> PathBuf {
    let name = target.file_name().unwrap_or_default().to_string_lossy();
    target.with_file_name(format!(".{name}.etag"))
}

/// A response header without surrounding quotes.
fn header(r: &ureq::http::Response<ureq::Body>, k: &str) -> Option<String> {
    r.headers()
        .get(k)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim_matches('"').to_string())
}

/// The identity of the hub's current version of a file: for Git LFS files (the checkpoints)
/// the SHA-256 in `X-Linked-Etag`, else the `ETag` (as `huggingface_hub` takes it).
fn etag_of(r: &ureq::http::Response<ureq::Body>) -> Option<String> {
    header(r, "x-linked-etag")
        .or_else(|| header(r, "etag"))
        .map(|e| e.trim_start_matches("W/").trim_matches('"').to_string())
}

/// A transport error as a [`HubError`] naming `url`.
fn net_error(e: ureq::Error, url: &str) -> HubError {
    match e {
        ureq::Error::StatusCode(status) => HubError::Status {
            url: url.to_string(),
            status,
            hint: match status {
                401 | 403 => " (a gated or private repository: set HF_TOKEN)",
                404 => " (no such repository, revision or file)",
                _ => "",
            },
        },
        e => HubError::Network {
            url: url.to_string(),
            message: e.to_string(),
        },
    }
}

/// How long a request may wait for the hub's answer (status and headers) before it counts as
/// unreachable: `huggingface_hub`'s 10 s for the freshness check (`etag_timeout`), longer for
/// downloads.
const ETAG_TIMEOUT: Duration = Duration::from_secs(10);
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(30);

/// An HTTP client that follows at most `redirects` redirects and does not treat the last one
/// as an error; `wait` bounds connecting and waiting for the answer's headers.
fn agent(redirects: u32, wait: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_connect(Some(wait))
        .timeout_recv_response(Some(wait))
        .timeout_recv_body(Some(Duration::from_secs(60)))
        .max_redirects(redirects)
        .max_redirects_will_error(false)
        .build()
        .into()
}

/// Sends a `HEAD` (or `GET`) request to `url` on a thread of its own and waits for the answer's
/// headers, asking `progress(0, None)` every 100 ms whether to go on, so that a slow or silent
/// hub can be cancelled at once (the abandoned request ends at its timeout). The token goes
/// only where `token` is given; errors name `name` (the hub address, also after a redirect).
fn request(
    url: &str,
    name: &str,
    head: bool,
    redirects: u32,
    wait: Duration,
    token: Option<&str>,
    progress: &mut dyn FnMut(u64, Option<u64>) -> bool,
) -> Result<ureq::http::Response<ureq::Body>, HubError> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    let (u, n, auth) = (
        url.to_string(),
        name.to_string(),
        token.map(|t| format!("Bearer {t}")),
    );
    std::thread::Builder::new()
        .name("cellscope-hub-request".into())
        .spawn(move || {
            let a = agent(redirects, wait);
            let mut req = if head { a.head(&u) } else { a.get(&u) };
            if let Some(t) = auth {
                req = req.header("Authorization", t);
            }
            let _ = tx.send(req.call().map_err(|e| net_error(e, &n)));
        })
        .map_err(|e| HubError::Network {
            url: name.to_string(),
            message: format!("cannot start the request: {e}"),
        })?;
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(r) => return r,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                if !progress(0, None) {
                    return Err(HubError::Cancelled);
                }
            }
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                return Err(HubError::Network {
                    url: name.to_string(),
                    message: "the request ended without an answer".into(),
                });
            }
        }
    }
}

impl Hub {
    /// The hub and cache named by the environment (see the module docs).
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let cache = var("CELLSCOPE_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                var("XDG_CACHE_HOME")
                    .map(PathBuf::from)
                    .or_else(|| var("HOME").map(|h| Path::new(&h).join(".cache")))
                    .unwrap_or_else(std::env::temp_dir)
                    .join("cellscope")
            });
        let offline = var("HF_HUB_OFFLINE")
            .is_some_and(|v| ["1", "true", "yes", "on"].contains(&v.to_ascii_lowercase().as_str()));
        Self {
            offline,
            endpoint: var("HF_ENDPOINT")
                .unwrap_or_else(|| "https://huggingface.co".into())
                .trim_end_matches('/')
                .to_string(),
            cache,
            token: var("HF_TOKEN"),
        }
    }

    /// The cache path of `file` (present or not).
    pub fn cached_path(&self, file: &HubFile) -> PathBuf {
        let mut p = self.cache.join("hub").join(&file.repo).join(&file.revision);
        p.extend(file.path.split('/'));
        p
    }

    /// The download address of `file`: `{endpoint}/{repo}/resolve/{revision}/{path}`, each
    /// path component percent-encoded (the ssl_in_scg folders have spaces).
    pub fn url(&self, file: &HubFile) -> String {
        let enc = |s: &str| percent_encoding::utf8_percent_encode(s, PATH_SEGMENT).to_string();
        let path: Vec<String> = file.path.split('/').map(enc).collect();
        format!(
            "{}/{}/resolve/{}/{}",
            self.endpoint,
            file.repo,
            enc(&file.revision),
            path.join("/")
        )
    }

    /// The local path of `file`, downloading it first when it is not cached or when the hub's
    /// version of a branch or tag differs from the cached one (see the module docs). `progress`
    /// receives (bytes done, total when announced) and returns `false` to cancel.
    ///
    /// # Errors
    /// [`HubError`]: an error status (404 names the address), a broken connection, a length or
    /// SHA-256 mismatch (nothing is kept), a cache that cannot be written, or cancellation.
    /// With a cached copy, a hub that cannot be reached is not an error.
    pub fn fetch(
        &self,
        file: &HubFile,
        progress: &mut dyn FnMut(u64, Option<u64>) -> bool,
    ) -> Result<PathBuf, HubError> {
        let target = self.cached_path(file);
        let url = self.url(file);
        if target.is_file() {
            if self.offline || is_commit(&file.revision) {
                return Ok(target);
            }
            let cached = std::fs::read_to_string(etag_path(&target)).ok();
            match self.current_etag(&url, progress) {
                Ok(Some(now)) if cached.as_deref() != Some(now.as_str()) => {}
                // Unreachable or failing (5xx): the cached copy. A refusal (401, 403) or a
                // file that is gone (404) is reported.
                Ok(_) | Err(HubError::Network { .. }) => return Ok(target),
                Err(HubError::Status { status, .. }) if status >= 500 => return Ok(target),
                Err(e) => return Err(e),
            }
        } else if self.offline {
            return Err(HubError::Network {
                url,
                message: "HF_HUB_OFFLINE is set and the file is not in the cache".into(),
            });
        }
        self.download(&url, &target, progress)
    }

    /// The hub's current ETag of the file at `url` ([`etag_of`]), from one `HEAD` request
    /// that does not follow the redirect ([`ETAG_TIMEOUT`]; cancellable through `progress`).
    fn current_etag(
        &self,
        url: &str,
        progress: &mut dyn FnMut(u64, Option<u64>) -> bool,
    ) -> Result<Option<String>, HubError> {
        let r = request(
            url,
            url,
            true,
            0,
            ETAG_TIMEOUT,
            self.token.as_deref(),
            progress,
        )?;
        Ok(etag_of(&r))
    }

    /// Downloads `url` into `target` (see [`Hub::fetch`]) and keeps its ETag beside it.
    fn download(
        &self,
        url: &str,
        target: &Path,
        progress: &mut dyn FnMut(u64, Option<u64>) -> bool,
    ) -> Result<PathBuf, HubError> {
        let url = url.to_string();
        // First ask the hub without following its redirect: for LFS files the answer carries
        // the SHA-256 and size, and the location of the bytes.
        let token = self.token.as_deref();
        let first = request(&url, &url, false, 0, DOWNLOAD_TIMEOUT, token, progress)?;
        let etag = etag_of(&first);
        let sha256 = header(&first, "x-linked-etag")
            .filter(|e| e.len() == 64 && e.bytes().all(|b| b.is_ascii_hexdigit()));
        let mut resp = if first.status().is_redirection() {
            let loc = header(&first, "location").ok_or_else(|| HubError::Network {
                url: url.clone(),
                message: "redirect without a location".into(),
            })?;
            let next = if loc.starts_with('/') {
                // Relative to the endpoint's origin.
                let origin_end = self
                    .endpoint
                    .find("://")
                    .and_then(|i| self.endpoint[i + 3..].find('/').map(|j| i + 3 + j))
                    .unwrap_or(self.endpoint.len());
                format!("{}{loc}", &self.endpoint[..origin_end])
            } else {
                loc
            };
            request(&next, &url, false, 5, DOWNLOAD_TIMEOUT, None, progress)?
        } else {
            first
        };
        let total = header(&resp, "content-length").and_then(|v| v.parse::<u64>().ok());
        let parent = target.parent().unwrap_or(&self.cache).to_path_buf();
        std::fs::create_dir_all(&parent).map_err(|source| HubError::Io {
            path: parent.clone(),
            source,
        })?;
        let mut part =
            crate::data::part::file(target, ".download.part").map_err(|source| HubError::Io {
                path: parent.clone(),
                source,
            })?;
        let mut hasher = sha2::Sha256::new();
        let mut reader = resp.body_mut().as_reader();
        let mut buf = vec![0u8; 1 << 20];
        let mut done = 0u64;
        if !progress(0, total) {
            return Err(HubError::Cancelled);
        }
        loop {
            let n = reader.read(&mut buf).map_err(|e| HubError::Network {
                url: url.clone(),
                message: format!("download broke off after {done} bytes: {e}"),
            })?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            part.write_all(&buf[..n]).map_err(|source| HubError::Io {
                path: part.path().to_path_buf(),
                source,
            })?;
            done += n as u64;
            if !progress(done, total) {
                return Err(HubError::Cancelled);
            }
        }
        let corrupt = |message: String| HubError::Corrupt {
            url: url.clone(),
            message,
        };
        if let Some(t) = total
            && t != done
        {
            return Err(corrupt(format!("received {done} of {t} bytes")));
        }
        if let Some(want) = sha256 {
            let got = crate::model::format::hex(&hasher.finalize());
            if !got.eq_ignore_ascii_case(&want) {
                return Err(corrupt(format!("SHA-256 {got}, the hub announced {want}")));
            }
        }
        part.as_file().sync_all().map_err(|source| HubError::Io {
            path: part.path().to_path_buf(),
            source,
        })?;
        crate::data::part::persist(part, target).map_err(|source| HubError::Io {
            path: target.to_path_buf(),
            source,
        })?;
        // Without an ETag the next fetch cannot tell whether the hub's version moved and
        // keeps this copy.
        let tag = etag_path(target);
        let kept = match etag {
            Some(e) => std::fs::write(&tag, e),
            None if tag.exists() => std::fs::remove_file(&tag),
            None => Ok(()),
        };
        kept.map_err(|source| HubError::Io { path: tag, source })?;
        Ok(target.to_path_buf())
    }

    /// A model named by `model` and its gene list, as local paths: `hf://` names are fetched
    /// (see [`Hub::fetch`]), local paths pass through. For a hub model without `genes`, the
    /// repository's `var.parquet` (where ssl_in_scg keeps the gene order) is fetched when it
    /// exists.
    ///
    /// # Errors
    /// [`HubError`] from the model's or the gene list's download; a missing `var.parquet` is
    /// not an error (loading the model then asks for `--genes`).
    pub fn resolve_model(
        &self,
        model: &Path,
        genes: Option<&Path>,
        progress: &mut dyn FnMut(&str, u64, Option<u64>) -> bool,
    ) -> Result<(PathBuf, Option<PathBuf>), HubError> {
        let mut fetch = |p: &Path| -> Result<(PathBuf, Option<HubFile>), HubError> {
            match HubFile::parse(&p.to_string_lossy()) {
                None => Ok((p.to_path_buf(), None)),
                Some(file) => {
                    let file = file?;
                    let name = file.to_string();
                    let local = self.fetch(&file, &mut |d, t| progress(&name, d, t))?;
                    Ok((local, Some(file)))
                }
            }
        };
        let (model_path, hub_model) = fetch(model)?;
        let genes = genes.map(|g| fetch(g).map(|(p, _)| p)).transpose()?;
        let (None, Some(file)) = (&genes, hub_model) else {
            return Ok((model_path, genes));
        };
        let var = file.sibling("var.parquet");
        let name = var.to_string();
        match self.fetch(&var, &mut |d, t| progress(&name, d, t)) {
            Ok(p) => Ok((model_path, Some(p))),
            Err(HubError::Status { status: 404, .. }) => Ok((model_path, None)),
            Err(e) => Err(e),
        }
    }
}
