//! Optional TLS for remote mode: a broker with `[server.tls]` speaks WebSocket over
//! TLS, and a plain connection to it gets no WebSocket.

use super::harness::start_on;
use futures_util::{SinkExt, StreamExt};
use hivebus::server::TlsConfig;
use hivebus::Config;
use serde_json::{json, Value};
use std::sync::Arc;
use tokio_rustls::rustls;
use tokio_tungstenite::tungstenite::Message;

const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/safety/keys");

fn tls_config() -> Config {
    let mut c = Config {
        auth: serde_json::from_value(json!({"tokens": [
            {"token": "tls-client-token-0123456789", "subject": "tls", "role": "client"}
        ]}))
        .unwrap(),
        ..Default::default()
    };
    c.server.tls = Some(TlsConfig {
        cert: format!("{KEYS}/tls_cert.pem").into(),
        key: format!("{KEYS}/tls_key.pem").into(),
    });
    c
}

fn connector() -> tokio_rustls::TlsConnector {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in
        rustls_pki_types::CertificateDer::pem_file_iter(format!("{KEYS}/tls_ca.pem")).unwrap()
    {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

#[tokio::test]
async fn remote_mode_with_tls_serves_websocket_over_tls_only() {
    let srv = start_on("0.0.0.0:0", tls_config()).await;
    let tcp = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector().connect(name, tcp).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async("ws://localhost/", tls)
        .await
        .unwrap();
    let hello = json!({"id": "h", "type": "HELLO",
                       "payload": {"role": "client", "auth": "tls-client-token-0123456789"}});
    ws.send(Message::text(hello.to_string())).await.unwrap();
    let w: Value = loop {
        match ws.next().await.unwrap().unwrap() {
            Message::Text(t) => break serde_json::from_str(t.as_str()).unwrap(),
            _ => continue,
        }
    };
    assert_eq!(w["type"], "WELCOME", "{w}");
    assert_eq!(w["payload"]["identity"]["subject"], "tls");
    // Plain WebSocket to the TLS port: the upgrade never succeeds.
    let plain = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        tokio_tungstenite::connect_async(srv.url()),
    )
    .await;
    assert!(
        !matches!(plain, Ok(Ok(_))),
        "a plain WebSocket must not be served"
    );
    srv.stop().await;
}

#[tokio::test]
async fn a_missing_certificate_file_refuses_to_start() {
    let mut c = tls_config();
    c.server.tls = Some(TlsConfig {
        cert: "/nonexistent/cert.pem".into(),
        key: format!("{KEYS}/tls_key.pem").into(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bus = hivebus::Bus::new(Default::default()).unwrap();
    let security = hivebus::server::Security::from_config(&c);
    let r = hivebus::server::serve(
        listener,
        bus,
        c.server,
        Default::default(),
        security,
        async {},
    )
    .await;
    let err = r.unwrap_err();
    assert!(err.to_string().contains("server.tls.cert"), "{err}");
}
