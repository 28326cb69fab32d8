//! The GitHub provider against a local HTTP server on 127.0.0.1:0 that checks the
//! request as GitHub would receive it and answers as GitHub does.

use super::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One request as the server saw it.
#[derive(Debug)]
struct Seen {
    line: String,
    headers: Vec<(String, String)>,
    body: serde_json::Value,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Serves one request with `status` and `answer`; the request comes back on the handle.
async fn serve_once(
    status: &'static str,
    answer: serde_json::Value,
) -> (String, tokio::task::JoinHandle<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let handle = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            let n = sock.read(&mut chunk).await.unwrap();
            assert!(n > 0, "connection closed mid-request");
            buf.extend_from_slice(&chunk[..n]);
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
        };
        let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
        let mut lines = head.split("\r\n");
        let line = lines.next().unwrap().to_owned();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        let len: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.parse().unwrap())
            .unwrap();
        let mut body = buf[head_end + 4..].to_vec();
        while body.len() < len {
            let n = sock.read(&mut chunk).await.unwrap();
            body.extend_from_slice(&chunk[..n]);
        }
        let text = answer.to_string();
        let resp = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
            text.len()
        );
        sock.write_all(resp.as_bytes()).await.unwrap();
        Seen {
            line,
            headers,
            body: serde_json::from_slice(&body).unwrap(),
        }
    });
    (base, handle)
}

fn token_env(token: &str) -> String {
    let name = format!("HIVE_GITOPS_TEST_TOKEN_{}", fastrand::u64(..));
    std::env::set_var(&name, token);
    name
}

#[tokio::test]
async fn final_approval_opens_the_pr_through_the_github_rest_api() {
    let f = fixture();
    let (base, seen) = serve_once(
        "201 Created",
        serde_json::json!({"number": 17, "html_url": "https://github.example/acme/gov/pull/17"}),
    )
    .await;
    let env = token_env("ghp_test_token");
    let gh = GithubProvider::new(&format!("{base}/"), "acme", "gov", &env).unwrap();
    assert_eq!(gh.url(), format!("{base}/repos/acme/gov/pulls"));
    let cfg = config(&f);
    let g = Gitops::new(
        cfg.clone(),
        git_for(&f, &cfg),
        policy(""),
        locks(&f),
        Arc::new(gh),
    )
    .unwrap();
    let s = g.start("43", "impl").await.unwrap();
    g.review_commit("43", "impl", "claude", "round 1")
        .await
        .unwrap();
    let consent = Consent::Approved { by: "alice".into() };
    let done = g
        .finalize("43", "impl", "BIP-43", "Implements BIP-43.", &consent)
        .await
        .unwrap();
    assert_eq!(
        done.pr,
        PrOpened {
            provider: "github".into(),
            number: Some(17),
            url: "https://github.example/acme/gov/pull/17".into(),
        }
    );
    let seen = seen.await.unwrap();
    assert_eq!(seen.line, "POST /repos/acme/gov/pulls HTTP/1.1");
    assert_eq!(seen.header("authorization"), Some("Bearer ghp_test_token"));
    assert_eq!(seen.header("accept"), Some("application/vnd.github+json"));
    assert_eq!(seen.header("x-github-api-version"), Some("2022-11-28"));
    assert!(seen
        .header("user-agent")
        .is_some_and(|u| u.starts_with("hivebus/")));
    assert_eq!(
        seen.body,
        serde_json::json!({"title": "BIP-43", "head": s.branch, "base": "main", "body": "Implements BIP-43."})
    );
}

#[tokio::test]
async fn github_refusals_and_a_missing_token_are_provider_failed() {
    let (base, seen) = serve_once(
        "422 Unprocessable Entity",
        serde_json::json!({"message": "Validation Failed: A pull request already exists"}),
    )
    .await;
    let env = token_env("t");
    let gh = GithubProvider::new(&base, "acme", "gov", &env).unwrap();
    let req = PrRequest {
        bip: "1".into(),
        title: "t".into(),
        body: "b".into(),
        head: "bip/1/impl/x".into(),
        base: "main".into(),
        remote: "origin".into(),
        head_sha: "0".repeat(40),
    };
    let e = gh.open(&req).await.unwrap_err();
    assert_eq!(e.code(), "provider_failed");
    assert!(
        e.to_string().contains("422") && e.to_string().contains("already exists"),
        "{e}"
    );
    seen.await.unwrap();
    let unset = format!("HIVE_GITOPS_TEST_UNSET_{}", fastrand::u64(..));
    let gh = GithubProvider::new(&base, "acme", "gov", &unset).unwrap();
    let e = gh.open(&req).await.unwrap_err();
    assert!(e.to_string().contains(&unset), "{e}");
    // Owner, repository and base URL are checked when the provider is built.
    assert!(GithubProvider::new(&base, "../x", "gov", &env).is_err());
    assert!(GithubProvider::new(&base, "acme", "a/b", &env).is_err());
    assert!(GithubProvider::new("file:///etc", "acme", "gov", &env).is_err());
}
