//! Static assets served at `/`: the place the dashboard's files go (embedded in the
//! binary with `include_bytes!`, no build step, nothing fetched from elsewhere).
//!
//! Until the dashboard lands, `/` is a small page naming the endpoints. Invariant:
//! only paths listed in [`ASSETS`] are served, byte for byte as compiled in; nothing
//! is read from the file system, so no request path can reach a file.

/// One embedded file.
pub(super) struct Asset {
    /// The request path (`/`, `/app.js`).
    pub(super) path: &'static str,
    /// Its `Content-Type`.
    pub(super) content_type: &'static str,
    /// Its bytes.
    pub(super) body: &'static [u8],
}

/// Every asset, by path.
const ASSETS: &[Asset] = &[Asset {
    path: "/",
    content_type: "text/html; charset=utf-8",
    body: INDEX.as_bytes(),
}];

const INDEX: &str = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<title>hivebus</title></head><body>\n<h1>hivebus broker</h1>\n\
<p>WebSocket protocol v1 on this port (<code>ws://</code> this host, any path).</p>\n<ul>\n\
<li><a href=\"/healthz\">/healthz</a>: liveness</li>\n\
<li><a href=\"/readyz\">/readyz</a>: readiness</li>\n\
<li><a href=\"/version\">/version</a>: version</li>\n\
<li><a href=\"/metrics\">/metrics</a>: Prometheus metrics</li>\n</ul>\n</body></html>\n";

/// The asset at `path`, if there is one.
pub(super) fn find(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}
