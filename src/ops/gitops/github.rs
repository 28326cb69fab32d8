//! The GitHub pull-request provider: `POST {api_base}/repos/{owner}/{repo}/pulls`
//! with `{title, head, base, body}`, a bearer token read from the environment at
//! each request (never from the config file, never logged), GitHub's JSON media type
//! and API version headers. `201 Created` answers `{number, html_url}`; anything else
//! is `provider_failed` with the status and GitHub's `message`.
//!
//! Invariants: redirects are not followed (a token is never sent to another place
//! than `api_base`); the answer is read up to [`MAX_ANSWER`] bytes; each request has
//! a timeout. The base URL is configurable (GitHub Enterprise, or a local test server
//! on `127.0.0.1`).

use super::provider::{PrOpened, PrProvider, PrRequest};
use super::GitopsError;
use crate::ops::BoxFuture;
use serde_json::{json, Value};
use std::time::Duration;

/// Most bytes of GitHub's answer read.
pub const MAX_ANSWER: usize = 1 << 20;

/// The GitHub REST provider.
#[derive(Debug, Clone)]
pub struct GithubProvider {
    client: reqwest::Client,
    url: String,
    token_env: String,
}

impl GithubProvider {
    /// A provider for `owner/repo` at `api_base`, its token in `token_env`.
    ///
    /// # Errors
    /// `invalid_input` for an owner or repository name outside GitHub's grammar
    /// (letters, digits, `-`, `_`, `.`), or an API base that is not `http(s)://`;
    /// `provider_failed` when the HTTP client cannot be built.
    pub fn new(
        api_base: &str,
        owner: &str,
        repo: &str,
        token_env: &str,
    ) -> Result<GithubProvider, GitopsError> {
        super::validate::remote(owner)
            .map_err(|_| GitopsError::invalid("owner", "letters, digits, `-`, `_`, `.`"))?;
        super::validate::remote(repo)
            .map_err(|_| GitopsError::invalid("repo", "letters, digits, `-`, `_`, `.`"))?;
        let base = api_base.trim_end_matches('/');
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(GitopsError::invalid(
                "api_base",
                "must be an http:// or https:// URL",
            ));
        }
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("hivebus/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| GitopsError::Provider(format!("github: {e}")))?;
        Ok(GithubProvider {
            client,
            url: format!("{base}/repos/{owner}/{repo}/pulls"),
            token_env: token_env.to_owned(),
        })
    }

    /// The endpoint requests go to.
    pub fn url(&self) -> &str {
        &self.url
    }
}

/// Reads at most [`MAX_ANSWER`] bytes of `resp`.
async fn bounded(mut resp: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        let room = MAX_ANSWER.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if room <= chunk.len() {
            break;
        }
    }
    Ok(body)
}

impl PrProvider for GithubProvider {
    fn name(&self) -> &'static str {
        "github"
    }

    fn open<'a>(&'a self, req: &'a PrRequest) -> BoxFuture<'a, Result<PrOpened, GitopsError>> {
        Box::pin(async move {
            let fail = |m: String| GitopsError::Provider(format!("github: {m}"));
            let token = std::env::var(&self.token_env)
                .ok()
                .filter(|t| !t.trim().is_empty())
                .ok_or_else(|| fail(format!("no token: set {}", self.token_env)))?;
            let resp = self
                .client
                .post(&self.url)
                .bearer_auth(token.trim())
                .header("Accept", "application/vnd.github+json")
                .header("X-GitHub-Api-Version", "2022-11-28")
                .json(&json!({
                    "title": req.title,
                    "head": req.head,
                    "base": req.base,
                    "body": req.body,
                }))
                .send()
                .await
                // Without the URL: reqwest's message carries it, never the token.
                .map_err(|e| fail(format!("request failed: {}", e.without_url())))?;
            let status = resp.status();
            let body = bounded(resp)
                .await
                .map_err(|e| fail(format!("reading the answer: {}", e.without_url())))?;
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            if status != reqwest::StatusCode::CREATED {
                let msg = v["message"].as_str().unwrap_or("no message");
                return Err(fail(format!("{status}: {}", super::validate::shown(msg))));
            }
            let url = v["html_url"]
                .as_str()
                .ok_or_else(|| fail("201 without html_url".into()))?;
            Ok(PrOpened {
                provider: "github".into(),
                number: v["number"].as_u64(),
                url: url.to_owned(),
            })
        })
    }
}
