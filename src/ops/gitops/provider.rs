//! Opening a pull request once a BIP's implementation is approved and pushed, through
//! a [`PrProvider`]: GitHub's REST API ([`super::GithubProvider`]) or
//! [`LocalProvider`], which records the request as a JSON file (a local bare remote
//! has no pull requests; the record is what a test, or a person, reads).
//!
//! Invariant: a provider is handed a request whose fields were validated
//! (`validate`) and whose head branch was pushed; opening the same head twice is not
//! an error for the local provider (the first record is returned), and is GitHub's
//! own `422` for the GitHub provider.

use super::GitopsError;
use crate::ops::BoxFuture;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// What a pull request asks: merge `head` into `base`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrRequest {
    /// The BIP.
    pub bip: String,
    /// The title.
    pub title: String,
    /// The description.
    pub body: String,
    /// The branch to merge (pushed).
    pub head: String,
    /// The branch to merge into.
    pub base: String,
    /// The remote `head` was pushed to.
    pub remote: String,
    /// The commit `head` pointed at when it was pushed.
    pub head_sha: String,
}

/// An opened pull request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrOpened {
    /// The provider (`local`, `github`).
    pub provider: String,
    /// Its number, when the provider numbers them.
    pub number: Option<u64>,
    /// Where to see it (a web page, or the record's `file://` path).
    pub url: String,
}

/// Opens pull requests.
pub trait PrProvider: Send + Sync + std::fmt::Debug + 'static {
    /// The provider's name (`local`, `github`).
    fn name(&self) -> &'static str;

    /// Opens a pull request for `req`.
    ///
    /// # Errors
    /// `provider_failed` with what the provider said.
    fn open<'a>(&'a self, req: &'a PrRequest) -> BoxFuture<'a, Result<PrOpened, GitopsError>>;
}

/// Records each request as `<dir>/<bip>--<head with / as _>.json`: the request plus
/// `recorded_ms`, written to a temporary file and renamed, so a reader never sees
/// half a record.
#[derive(Debug, Clone)]
pub struct LocalProvider {
    dir: PathBuf,
}

/// A record of the local provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalRecord {
    /// The request.
    pub request: PrRequest,
    /// When it was recorded, in milliseconds since the Unix epoch.
    pub recorded_ms: u64,
}

impl LocalProvider {
    /// Records into `dir` (created when needed).
    pub fn new(dir: impl Into<PathBuf>) -> LocalProvider {
        LocalProvider { dir: dir.into() }
    }

    /// The file a request for `bip` and `head` is recorded in.
    pub fn path(&self, bip: &str, head: &str) -> PathBuf {
        // Both were validated: no `..`, no `\`, printable ASCII; `/` is the only
        // separator to flatten.
        self.dir
            .join(format!("{bip}--{}.json", head.replace('/', "_")))
    }
}

impl PrProvider for LocalProvider {
    fn name(&self) -> &'static str {
        "local"
    }

    fn open<'a>(&'a self, req: &'a PrRequest) -> BoxFuture<'a, Result<PrOpened, GitopsError>> {
        Box::pin(async move {
            let fail = |what: &str, e: std::io::Error| {
                GitopsError::Provider(format!("local: {what} {}: {e}", self.dir.display()))
            };
            let path = self.path(&req.bip, &req.head);
            let opened = PrOpened {
                provider: "local".into(),
                number: None,
                url: format!("file://{}", path.display()),
            };
            if tokio::fs::try_exists(&path).await.unwrap_or(false) {
                return Ok(opened);
            }
            tokio::fs::create_dir_all(&self.dir)
                .await
                .map_err(|e| fail("creating", e))?;
            let rec = LocalRecord {
                request: req.clone(),
                recorded_ms: crate::ops::queue::model::now_ms(),
            };
            let text = serde_json::to_vec_pretty(&rec)
                .map_err(|e| GitopsError::Provider(format!("local: {e}")))?;
            let tmp = path.with_extension(format!("json.tmp{}", fastrand::u32(..)));
            tokio::fs::write(&tmp, text)
                .await
                .map_err(|e| fail("writing into", e))?;
            tokio::fs::rename(&tmp, &path)
                .await
                .map_err(|e| fail("renaming into", e))?;
            Ok(opened)
        })
    }
}
