//! The redactor's cost per publish, on clean and dirty payloads.
//!
//! `inspect/*` measures `Redactor::inspect` alone (a clone of the payload included, as
//! a publish owns its payload; `clone_only` is that clone by itself). `publish/*`
//! measures `Bus::publish` on a channel with no subscribers, without the safety layer
//! and with it in enforce mode, so the difference is what the layer adds to a publish.
//!
//! ```text
//! cargo bench --bench redactor
//! ```

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hivebus::frame::{Envelope, FrameType};
use hivebus::safety::{Mode, Redactor, Safety, SafetyConfig};
use hivebus::{Address, Bus};
use serde_json::{json, Value};
use std::hint::black_box;

fn clean() -> Value {
    json!({
        "kind": "review_bip",
        "args": {"bipId": 43, "round": 2, "reviewers": ["gen-1", "gen-4", "gen-9"]},
        "repo": "hive/bips",
        "branch": "bip/43/impl/20261122T010000Z",
        "idempotencyKey": "0b7e4c1a-92f3-4d6b-8a15-c3e2f1d0a9b8",
        "message": "Review round two: the queue semantics section was rewritten after the first round; check the retry policy and the dead-letter thresholds.",
        "stage": "reviewing", "pct": 40
    })
}

fn dirty() -> Value {
    let mut v = clean();
    v["message"] = json!(
        "retry with OPENAI_API_KEY=sk-proj-Xy7Qe2LmN4pR8sT0uV3wZ6aB9cD1eF5gH and password=hunter2!"
    );
    v["env"] = json!({"DATABASE_URL": "postgres://hive:Sup3rS3cret!@db:5432/hive"});
    v
}

fn large_clean() -> Value {
    let mut v = clean();
    v["log"] = json!((0..40)
        .map(|i| format!("step {i}: compiled crate {i} in 1.{i}s; 0 warnings, tests queued"))
        .collect::<Vec<_>>());
    v
}

fn inspect(c: &mut Criterion) {
    let r = Redactor::compile(SafetyConfig::with_mode(Mode::Enforce)).expect("default policy");
    let mut g = c.benchmark_group("inspect");
    for (name, payload) in [
        ("clean", clean()),
        ("dirty", dirty()),
        ("clean_4k", large_clean()),
    ] {
        g.throughput(Throughput::Bytes(payload.to_string().len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut p = payload.clone();
                black_box(r.inspect(None, &mut p));
                p
            })
        });
    }
    // Hostile text (issue #9): 3 000 `password=` assignments in 57 KB, with the match
    // budget (the default, 256) and without it (`max_matches = 0`).
    let hostile = json!({"text": "password=hunter2x! ".repeat(3_000)});
    let mut unbounded = SafetyConfig::with_mode(Mode::Enforce);
    unbounded.max_matches = 0;
    let unbounded = Redactor::compile(unbounded).expect("policy");
    g.throughput(Throughput::Bytes(hostile.to_string().len() as u64));
    for (name, red) in [("hostile_57k", &r), ("hostile_57k_no_budget", &unbounded)] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut p = hostile.clone();
                black_box(red.inspect(None, &mut p));
                p
            })
        });
    }
    let p = clean();
    g.bench_function("clone_only", |b| b.iter(|| black_box(p.clone())));
    g.finish();
}

fn publish(c: &mut Criterion) {
    let addr = Address::parse("bip-43:review_bip").expect("valid address");
    let plain = Bus::new(Default::default()).expect("bus");
    let guarded = Bus::new(Default::default()).expect("bus");
    Safety::new(SafetyConfig::with_mode(Mode::Enforce))
        .and_then(|s| s.attach(&guarded))
        .expect("safety");
    // The same without decision events, to tell the inspection from the reporting.
    let quiet = Bus::new(Default::default()).expect("bus");
    let mut no_events = SafetyConfig::with_mode(Mode::Enforce);
    no_events.events = String::new();
    Safety::new(no_events)
        .and_then(|s| s.attach(&quiet))
        .expect("safety");
    let mut g = c.benchmark_group("publish");
    for (name, payload) in [("clean", clean()), ("dirty", dirty())] {
        for (layer, bus) in [
            ("no_safety", &plain),
            ("enforce", &guarded),
            ("enforce_no_events", &quiet),
        ] {
            g.bench_function(format!("{name}/{layer}"), |b| {
                b.iter(|| {
                    let env = Envelope::new(FrameType::Event, payload.clone());
                    black_box(bus.publish(&addr, env).expect("publish"))
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, inspect, publish);
criterion_main!(benches);
