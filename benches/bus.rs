//! Criterion micro-benchmarks of the hot path, without sockets: envelope parse and
//! serialize, routing one publish to N in-process subscribers, history append and read.
//! (Redaction is `benches/redactor.rs`; queue scheduling comes with the task queue.)
//!
//! ```text
//! cargo bench --bench bus              # all; add a filter such as `route` to pick
//! ```

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hivebus::{Address, Bus, Envelope, FrameType, Pattern, PeerInfo};
use serde_json::json;
use std::hint::black_box;

/// A publish as a peer sends it, with a payload of about `size` bytes.
fn peer_frame(size: usize) -> String {
    let pad = "x".repeat(size.saturating_sub(28));
    format!(
        r#"{{"id":"42","type":"MESSAGE","room":"bench","channel":"c0","payload":{{"p":"{pad}","t":100000000000001}}}}"#
    )
}

fn envelope(c: &mut Criterion) {
    let mut g = c.benchmark_group("envelope");
    for size in [100usize, 1024] {
        let text = peer_frame(size);
        g.throughput(Throughput::Bytes(text.len() as u64));
        g.bench_with_input(BenchmarkId::new("parse_peer", size), &text, |b, t| {
            b.iter(|| Envelope::parse_peer(black_box(t)).expect("valid"))
        });
        let mut env = Envelope::parse_peer(&text).expect("valid");
        env.ts = Some(hivebus::frame::now_ts());
        env.offset = Some(123_456);
        env.epoch = Some("e-1234abcd".into());
        env.from = Some("s-0123456789ab".into());
        g.bench_with_input(BenchmarkId::new("to_text", size), &env, |b, e| {
            b.iter(|| black_box(e).to_text())
        });
    }
    g.finish();
}

/// One publish routed to `n` subscribers, each of which then takes its frame off its
/// inbox (so that queues never fill): the bus's share of the fan-out cost.
fn route(c: &mut Criterion) {
    let mut g = c.benchmark_group("route_publish");
    let addr = Address::new("bench", "c0").expect("valid");
    let pattern = Pattern::parse("bench:c0").expect("valid");
    for n in [1usize, 10, 100, 1000] {
        let bus = Bus::new(Default::default()).expect("default config");
        let mut inboxes = Vec::with_capacity(n);
        let mut members = Vec::with_capacity(n);
        for _ in 0..n {
            let (m, i) = bus.connect(PeerInfo::default());
            m.join(&pattern, &Default::default()).expect("join");
            members.push(m);
            inboxes.push(i);
        }
        let payload = json!({"p": "x".repeat(72), "t": 100_000_000_000_001u64});
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| {
                let env = Envelope::new(FrameType::Message, payload.clone());
                bus.publish(&addr, env).expect("publish");
                for i in inboxes.iter_mut() {
                    black_box(i.try_recv());
                }
            })
        });
    }
    g.finish();
}

/// Role routing (`bus::route`): one publish from a member to 100 subscribers that all
/// declared role `reviewer`, plain and routed `to_roles: [reviewer]`: the same 100
/// deliveries, so the difference is the filter's cost per subscriber; and routed to
/// half of them (`half`: 50 of 100 declared it).
fn routed(c: &mut Criterion) {
    use hivebus::bus::route::Route;
    let mut g = c.benchmark_group("routed_fanout");
    let addr = Address::new("bench", "c0").expect("valid");
    let pattern = Pattern::parse("bench:c0").expect("valid");
    let route = Route {
        to_roles: vec!["reviewer".into()],
        required_expertise: Vec::new(),
    };
    for (name, every) in [("plain", 1usize), ("all_match", 1), ("half", 2)] {
        let bus = Bus::new(Default::default()).expect("default config");
        let mut inboxes = Vec::with_capacity(100);
        let mut members = Vec::with_capacity(100);
        for i in 0..100 {
            let roles = if i % every == 0 {
                vec!["reviewer".to_owned()]
            } else {
                vec!["implementer".to_owned()]
            };
            let (m, inbox) = bus.connect(PeerInfo {
                roles,
                ..PeerInfo::default()
            });
            m.join(&pattern, &Default::default()).expect("join");
            members.push(m);
            inboxes.push(inbox);
        }
        let (publisher, _own) = bus.connect(PeerInfo::default());
        publisher.join(&pattern, &Default::default()).expect("join");
        let route = (name != "plain").then_some(&route);
        let payload = json!({"p": "x".repeat(72), "t": 100_000_000_000_001u64});
        g.throughput(Throughput::Elements(100));
        g.bench_function(name, |b| {
            b.iter(|| {
                let env = Envelope::new(FrameType::Message, payload.clone());
                publisher
                    .publish_routed(&addr, env, false, route)
                    .expect("publish");
                for i in inboxes.iter_mut() {
                    black_box(i.try_recv());
                }
            })
        });
    }
    g.finish();
}

/// History: append (a publish to a channel with no subscriber, history full so that
/// each append also evicts) and read a page of 100 after an offset.
fn history(c: &mut Criterion) {
    let mut g = c.benchmark_group("history");
    let bus = Bus::new(Default::default()).expect("default config");
    let addr = Address::new("bench", "h").expect("valid");
    let payload = json!({"p": "x".repeat(72), "t": 100_000_000_000_001u64});
    let cap = bus.config().history_size as u64;
    for _ in 0..cap + 10 {
        let env = Envelope::new(FrameType::Message, payload.clone());
        bus.publish(&addr, env).expect("publish");
    }
    g.bench_function("append", |b| {
        b.iter(|| {
            let env = Envelope::new(FrameType::Message, payload.clone());
            bus.publish(&addr, env).expect("publish")
        })
    });
    g.throughput(Throughput::Elements(100));
    g.bench_function("read_100", |b| {
        b.iter(|| {
            let pos = bus.history(&addr, None, 1).expect("exists").position;
            bus.history(&addr, Some(pos.offset - 100), 100)
                .expect("exists")
        })
    });
    g.finish();
}

criterion_group!(benches, envelope, route, routed, history);
criterion_main!(benches);
