//! Where a webhook may post: the URL rules and the SSRF guard.
//!
//! A target is an `http` or `https` URL of bounded length, with a host, without
//! credentials in it. Unless `[webhook] allow_private` says otherwise, no address a
//! delivery connects to may be loopback, private, link-local, shared (CGNAT),
//! unspecified, broadcast, multicast or documentation space, in IPv4 or IPv6 (IPv4
//! mapped or NAT64-embedded in IPv6 is judged as the IPv4 it carries).
//!
//! Invariant (no DNS-rebinding gap): the HTTP client resolves names only through
//! [`Guard`], which drops refused addresses before the client sees them, so the
//! address checked is the address connected to. A URL naming an IP literal never
//! reaches a resolver: [`check_url`] judges it, at registration and before each
//! delivery. Registration also resolves a name once, so that a target that can only
//! be private is refused at once rather than dead-lettered later.

use crate::error::{ErrorCode, WireError};
use serde_json::json;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The error a refused target carries through the HTTP client, found again by the
/// worker (`source()` chain) to dead-letter without retrying.
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves only to refused addresses (private, loopback, link-local or unspecified)")]
pub struct Refused {
    /// The host as the URL names it.
    pub host: String,
}

/// Whether `ip` is an address a webhook may not reach unless private targets are
/// allowed.
pub fn is_refused(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => refused_v4(v4),
        IpAddr::V6(v6) => refused_v6(v6),
    }
}

fn refused_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        // 0.0.0.0/8 "this network": Linux connects 0.x to the local host.
        || a == 0
        // 100.64.0.0/10, shared address space (carrier-grade NAT).
        || a == 100 && (b & 0xc0) == 64
        // 192.0.0.0/24, protocol assignments; 198.18.0.0/15, benchmarking.
        || a == 192 && b == 0 && c == 0
        || a == 198 && (b & 0xfe) == 18
        // 240.0.0.0/4, reserved.
        || a >= 240
}

fn refused_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return refused_v4(v4);
    }
    let s = ip.segments();
    // 64:ff9b::/96, NAT64: the last 32 bits are the IPv4 address reached.
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [a, b] = s[6].to_be_bytes();
        let [c, d] = s[7].to_be_bytes();
        return refused_v4(Ipv4Addr::new(a, b, c, d));
    }
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        // fc00::/7 unique local, fe80::/10 link-local, 2001:db8::/32 documentation.
        || (s[0] & 0xfe00) == 0xfc00
        || (s[0] & 0xffc0) == 0xfe80
        || s[0] == 0x2001 && s[1] == 0x0db8
}

fn bad_url(reason: &str, message: String) -> WireError {
    WireError::new(ErrorCode::InvalidField, message)
        .with_details(json!({"field": "url", "reason": reason}))
}

/// The refusal of a target on a private address: `forbidden`, `details.reason =
/// "private_target"`.
pub fn private_refusal(host: &str) -> WireError {
    WireError::new(
        ErrorCode::Forbidden,
        format!(
            "{host} is a private, loopback, link-local or unspecified address; webhooks may \
             not post there unless `[webhook] allow_private = true`"
        ),
    )
    .with_details(json!({"field": "url", "reason": "private_target", "host": host}))
}

/// Parses and checks a target URL: scheme, length, host, no credentials, and an IP
/// literal's address unless `allow_private`.
///
/// # Errors
/// `invalid_field` (`details.reason`: `url_too_long`, `bad_url`, `scheme`,
/// `credentials`); `forbidden` with `details.reason = "private_target"`.
pub fn check_url(
    raw: &str,
    max_len: usize,
    allow_private: bool,
) -> Result<reqwest::Url, WireError> {
    if raw.len() > max_len {
        return Err(bad_url(
            "url_too_long",
            format!("`url` is {} bytes; at most {max_len}", raw.len()),
        ));
    }
    let url = reqwest::Url::parse(raw)
        .map_err(|e| bad_url("bad_url", format!("`url` is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad_url(
            "scheme",
            format!("`url` must be http or https, not {}", url.scheme()),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad_url(
            "credentials",
            "`url` may not carry credentials; receivers verify the signature header instead".into(),
        ));
    }
    let host = match url.host_str() {
        Some(h) if !h.is_empty() => h,
        _ => return Err(bad_url("bad_url", "`url` has no host".into())),
    };
    if !allow_private {
        // The URL parser normalised the host: an IPv4 in any spelling (`2130706433`,
        // `0x7f.1`) is dotted here, an IPv6 literal is bracketed.
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        if let Some(ip) = literal.parse::<IpAddr>().ok().filter(|ip| is_refused(*ip)) {
            return Err(private_refusal(&ip.to_string()));
        }
    }
    Ok(url)
}

/// Resolves `host` and keeps the addresses a webhook may reach (all of them with
/// `allow_private`).
///
/// # Errors
/// The resolver's error, or [`Refused`] when every address was refused.
pub async fn resolve(
    host: &str,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, Box<dyn std::error::Error + Send + Sync>> {
    let all: Vec<SocketAddr> = tokio::net::lookup_host((host, 0)).await?.collect();
    let kept: Vec<SocketAddr> = all
        .into_iter()
        .filter(|a| allow_private || !is_refused(a.ip()))
        .collect();
    if kept.is_empty() {
        return Err(Box::new(Refused {
            host: host.to_owned(),
        }));
    }
    Ok(kept)
}

/// The HTTP client's resolver: names resolve through [`resolve`], so a refused address
/// is never connected to, whatever DNS answers at delivery time.
#[derive(Debug, Clone, Copy)]
pub struct Guard {
    /// `[webhook] allow_private`.
    pub allow_private: bool,
}

impl reqwest::dns::Resolve for Guard {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow = self.allow_private;
        Box::pin(async move {
            let addrs = resolve(name.as_str(), allow).await?;
            let it: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(it)
        })
    }
}

/// Whether `err` (a delivery's error) is, somewhere in its chain, a [`Refused`].
pub fn refused_in(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if e.is::<Refused>() {
            return true;
        }
        cur = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_loopback_link_local_and_unspecified_are_refused() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "0.1.2.3",
            "100.64.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
        ] {
            assert!(is_refused(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "93.184.215.14",
            "1.1.1.1",
            "2606:4700::1111",
            "64:ff9b::101:101",
        ] {
            assert!(!is_refused(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn urls_are_checked_for_scheme_length_credentials_and_literal_addresses() {
        let reason = |r: Result<reqwest::Url, WireError>| {
            r.unwrap_err().details.unwrap()["reason"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(
            reason(check_url("ftp://example.com/", 100, false)),
            "scheme"
        );
        assert_eq!(
            reason(check_url("file:///etc/passwd", 100, false)),
            "scheme"
        );
        assert_eq!(
            reason(check_url("http://u:p@example.com/", 100, false)),
            "credentials"
        );
        assert_eq!(
            reason(check_url(
                &format!("http://e.com/{}", "a".repeat(200)),
                100,
                false
            )),
            "url_too_long"
        );
        assert_eq!(
            reason(check_url("http://127.0.0.1:9/", 100, false)),
            "private_target"
        );
        assert_eq!(
            reason(check_url("http://[::1]:9/", 100, false)),
            "private_target"
        );
        assert_eq!(
            reason(check_url("http://2130706433/", 100, false)),
            "private_target"
        );
        assert_eq!(reason(check_url("not a url", 100, false)), "bad_url");
        assert!(check_url("http://127.0.0.1:9/", 100, true).is_ok());
        assert!(check_url("https://example.com/hook", 100, false).is_ok());
    }

    #[tokio::test]
    async fn a_name_that_resolves_only_to_loopback_is_refused() {
        let e = resolve("localhost", false).await.unwrap_err();
        assert!(refused_in(e.as_ref()));
        assert!(resolve("localhost", true).await.is_ok());
    }
}
