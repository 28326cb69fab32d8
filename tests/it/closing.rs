//! How sessions close (issue 9): close reasons are short fixed phrases, and WebSocket
//! protocol faults close with the RFC 6455 codes (1002, 1007) rather than 1000.

use crate::harness::*;
use crate::transport::http_get;
use hivebus::Config;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::MaybeTlsStream;

/// Writes `bytes` as they are on the raw TCP socket under a handshaken session.
async fn write_raw(r: &mut Raw, bytes: &[u8]) {
    match r.ws.get_mut() {
        MaybeTlsStream::Plain(tcp) => tcp.write_all(bytes).await.unwrap(),
        _ => panic!("plain TCP expected"),
    }
}

#[tokio::test]
async fn a_long_unknown_role_closes_with_4002_and_a_short_reason() {
    let srv = start(Config::default()).await;
    let mut r = srv.raw().await;
    let role = "x".repeat(200);
    r.send(json!({"id": "h", "type": "HELLO", "payload": {"role": role}}))
        .await;
    let e = r.recv().await;
    assert_eq!(e["type"], "ERROR", "{e}");
    assert_eq!(r.closed_with().await, 4002);
    srv.stop().await;
}

#[tokio::test]
async fn invalid_utf8_in_a_text_frame_closes_with_1007() {
    let srv = start(Config::default()).await;
    let mut r = srv.raw_hello("client").await;
    // FIN + text, masked, 1 byte, mask key 0, payload 0xff (never valid UTF-8).
    write_raw(&mut r, &[0x81, 0x81, 0, 0, 0, 0, 0xff]).await;
    assert_eq!(r.closed_with().await, 1007);
    srv.stop().await;
}

#[tokio::test]
async fn an_unmasked_client_frame_closes_with_1002() {
    let srv = start(Config::default()).await;
    let mut r = srv.raw_hello("client").await;
    // FIN + text, unmasked, 1 byte "a": clients must mask.
    write_raw(&mut r, &[0x81, 0x01, b'a']).await;
    assert_eq!(r.closed_with().await, 1002);
    srv.stop().await;
}

#[tokio::test]
async fn an_unknown_key_inside_recover_is_refused() {
    let srv = start(Config::default()).await;
    let mut r = srv.raw_hello("client").await;
    let f = r
        .command(
            "j",
            "join",
            json!({"address": "r:c", "recover": {"offset": 1, "epoch": "e-1", "bogus": 1}}),
        )
        .await;
    assert_error(&f, "invalid_field", Some("j"));
    assert!(
        f["payload"]["message"].as_str().unwrap().contains("bogus"),
        "{f}"
    );
    srv.stop().await;
}

#[tokio::test]
async fn a_stalled_reader_of_large_frames_is_cut_by_the_byte_bound_and_sees_4008_when_it_resumes() {
    let mut config = Config::default();
    // Far more frames allowed than bytes: only the byte bound can trip.
    config.bus.outbound_queue = 100_000;
    config.bus.outbound_queue_bytes = 256 << 10;
    let srv = start(config).await;
    let mut slow = srv.raw_hello("client").await;
    let j = slow.command("j", "join", json!({"address": "r:big"})).await;
    reply_of(&j, "j");
    let p = srv.client("client").await;
    p.join("r:big").await.unwrap();
    let big = "x".repeat(60 * 1024);
    // The slow socket does not read. Paced, so that the writer keeps up until the
    // kernel buffers are full: then it blocks in a write, and the 256 KiB queue
    // overflows while that write is pending, with the socket full.
    for _ in 0..4000 {
        p.publish_nowait("r:big", json!({"pad": big}))
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        if srv.bus.stats().dropped > 0 {
            break;
        }
    }
    assert!(srv.bus.stats().dropped > 0, "the byte bound should trip");
    // Longer than the close frame's old 2 s allowance: the reader still gets 4008.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(slow.closed_with().await, 4008);
    // Counted once, although the kick landed while a write was pending.
    let m = http_get(srv.addr, "/metrics").await;
    assert!(m.contains("\nhivebus_slow_consumers_total 1\n"), "{m}");
    srv.stop().await;
}
