//! Posting one envelope: the HTTP client, one attempt, and the retry loop that ends in
//! success or a dead letter.
//!
//! The client: rustls with the ring provider and the webpki roots, no proxy, no
//! redirect followed (a 3xx is a failure: following one would let a receiver bounce
//! the broker onto an address it could not name), a timeout on connecting and on the
//! whole request, and names resolved only through the SSRF [`Guard`].
//!
//! The retry rule: a 5xx, a 429, a timeout or a network error is retried after an
//! exponential backoff with full jitter (a 429's or 503's `Retry-After` in seconds is
//! honoured up to `retry_max_ms`); any other status, a redirect, or a target refused
//! by the guard is final at once. After `max_attempts` the envelope is dead-lettered.

use super::config::WebhookConfig;
use super::outbox::Pending;
use super::sign;
use super::target::{self, Guard};
use std::sync::Arc;
use std::time::Duration;

/// The HTTP client every target shares.
///
/// # Errors
/// When the TLS backend cannot be set up.
pub(crate) fn client(cfg: &WebhookConfig) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_millis(cfg.timeout_ms.max(1)))
        .connect_timeout(Duration::from_millis(cfg.connect_timeout_ms.max(1)))
        .dns_resolver(Arc::new(Guard {
            allow_private: cfg.allow_private,
        }))
        .user_agent(concat!("hivebus-webhook/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// How one attempt went.
#[derive(Debug)]
pub(crate) enum Attempt {
    /// A 2xx.
    Delivered,
    /// Worth another try (after `after`, when the receiver said).
    Retry {
        reason: &'static str,
        error: String,
        status: Option<u16>,
        after: Option<Duration>,
    },
    /// Not worth another try.
    Final {
        reason: &'static str,
        error: String,
        status: Option<u16>,
    },
}

/// What a registration's deliveries need to know about it.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// Registration id, sent as `X-Hive-Webhook`.
    pub(crate) id: String,
    /// Where.
    pub(crate) url: reqwest::Url,
    /// The HMAC key.
    pub(crate) secret: String,
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// One POST of `p` to `t`.
pub(crate) async fn attempt(
    client: &reqwest::Client,
    cfg: &WebhookConfig,
    t: &Target,
    p: &Pending,
) -> Attempt {
    // An IP literal never meets the resolver: judged here, under today's config.
    if let Err(e) = target::check_url(t.url.as_str(), usize::MAX, cfg.allow_private) {
        return Attempt::Final {
            reason: "private_target",
            error: e.message,
            status: None,
        };
    }
    let sig = sign::signature(&t.secret, unix_secs(), p.body.as_bytes());
    let sent = client
        .post(t.url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("X-Hive-Webhook", &t.id)
        .header("X-Hive-Delivery", &p.delivery)
        .header(sign::HEADER, sig)
        .body(p.body.clone())
        .send()
        .await;
    let resp = match sent {
        Ok(r) => r,
        Err(e) => {
            let error = chain(&e);
            if target::refused_in(&e) {
                return Attempt::Final {
                    reason: "private_target",
                    error,
                    status: None,
                };
            }
            let reason = if e.is_timeout() { "timeout" } else { "network" };
            return Attempt::Retry {
                reason,
                error,
                status: None,
                after: None,
            };
        }
    };
    let status = resp.status();
    let code = status.as_u16();
    if status.is_success() {
        return Attempt::Delivered;
    }
    if status.is_redirection() {
        return Attempt::Final {
            reason: "redirect",
            error: format!("HTTP {code}: redirects are not followed"),
            status: Some(code),
        };
    }
    if status.is_server_error() || code == 429 {
        let after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        return Attempt::Retry {
            reason: "http_status",
            error: format!("HTTP {code}"),
            status: Some(code),
            after,
        };
    }
    Attempt::Final {
        reason: "http_status",
        error: format!("HTTP {code}"),
        status: Some(code),
    }
}

/// The error and its causes in one line (reqwest's own `Display` hides the cause).
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// The wait before attempt `next` (2 for the first retry): full jitter over
/// `base * 2^(next-2)`, capped at `max`; `after` (a `Retry-After`) when the receiver
/// said, capped too.
pub(crate) fn backoff(cfg: &WebhookConfig, next: u32, after: Option<Duration>) -> Duration {
    let max = cfg.retry_max_ms.max(1);
    if let Some(a) = after {
        return a.min(Duration::from_millis(max));
    }
    let exp = next.saturating_sub(2).min(32);
    let ceiling = cfg
        .retry_base_ms
        .max(1)
        .saturating_mul(1u64 << exp)
        .min(max);
    Duration::from_millis(fastrand::u64(0..=ceiling))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_its_ceiling_and_honours_retry_after_up_to_the_max() {
        let cfg = WebhookConfig {
            retry_base_ms: 100,
            retry_max_ms: 1000,
            ..WebhookConfig::default()
        };
        for _ in 0..200 {
            assert!(backoff(&cfg, 2, None) <= Duration::from_millis(100));
            assert!(backoff(&cfg, 4, None) <= Duration::from_millis(400));
            assert!(backoff(&cfg, 40, None) <= Duration::from_millis(1000));
        }
        let said = Some(Duration::from_secs(3600));
        assert_eq!(backoff(&cfg, 2, said), Duration::from_millis(1000));
    }
}
