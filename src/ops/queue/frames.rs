//! Frames the queue writes for one session, serialized straight to text.
//!
//! The lease (a private TASK frame) and the answers to TASK and RESULT frames are sent
//! for every task. Built as `json!` trees inside an [`Envelope`](crate::frame::Envelope)
//! they cost a map of owned keys and cloned values each, a serialization and a drop;
//! here they are small structs of borrowed fields written once. The text is the same,
//! byte for byte, as the envelope the queue built before (keys in serde_json's sorted
//! order; a test compares the two), and the bus parses it back only for an in-process
//! consumer that asks for the envelope.

use super::model::{Priority, TaskRecord};
use crate::bus::Stamp;
use crate::frame::{with_now_ts, FrameType};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;

/// The envelope around a payload, in [`Envelope`](crate::frame::Envelope)'s field order.
#[derive(Serialize)]
struct Frame<'a, P> {
    #[serde(rename = "type")]
    kind: FrameType,
    #[serde(rename = "traceId")]
    trace_id: &'a str,
    ts: &'a str,
    room: &'a str,
    channel: &'a str,
    from: &'a str,
    /// Only on frames published on a channel.
    #[serde(skip_serializing_if = "Option::is_none")]
    offset: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    epoch: Option<&'a str>,
    payload: P,
}

/// A lease's payload; fields in sorted order, as a `Value` map serializes them.
#[derive(Serialize)]
struct LeasePayload<'a> {
    args: &'a Value,
    attempt: u32,
    #[serde(rename = "bipId")]
    bip_id: u64,
    branch: Option<&'a str>,
    #[serde(rename = "idempotencyKey")]
    idempotency_key: &'a str,
    idempotent: bool,
    kind: &'a str,
    lease: &'a str,
    /// The lease length; `lease_ms` is its old name, sent too for one release.
    #[serde(rename = "leaseMs")]
    lease_ms_camel: u64,
    lease_ms: u64,
    priority: Priority,
    repo: &'a str,
    task: &'a str,
}

/// A frame of a task's stream, as [`Bus::publish_text`](crate::bus::Bus) stamps it:
/// the envelope's fields in their order, and `payload`.
pub(crate) fn stream_text<P: Serialize>(
    kind: FrameType,
    trace_id: &str,
    stamp: &Stamp<'_>,
    payload: &P,
) -> String {
    let frame = Frame {
        kind,
        trace_id,
        ts: stamp.ts,
        room: stamp.room,
        channel: stamp.channel,
        from: "queue",
        offset: Some(stamp.offset),
        epoch: Some(stamp.epoch),
        payload,
    };
    serde_json::to_string(&frame).unwrap_or_default()
}

/// The payload of the TASK frame announcing a durable task on its channel, written
/// once as JSON text (it is then copied verbatim into the frame).
pub(crate) fn announce(rec: &TaskRecord) -> Box<RawValue> {
    #[derive(Serialize)]
    struct Announce<'a> {
        args: &'a Value,
        #[serde(rename = "bipId")]
        bip_id: u64,
        branch: Option<&'a str>,
        #[serde(rename = "idempotencyKey")]
        idempotency_key: &'a str,
        idempotent: bool,
        kind: &'a str,
        priority: Priority,
        repo: &'a str,
        state: &'a str,
        task: &'a str,
    }
    let spec = &rec.spec;
    let a = Announce {
        args: &spec.args,
        bip_id: spec.bip_id,
        branch: spec.branch.as_deref(),
        idempotency_key: &spec.idempotency_key,
        idempotent: spec.idempotent,
        kind: &spec.kind,
        priority: spec.priority,
        repo: &spec.repo,
        state: "queued",
        task: &rec.id,
    };
    // Strings, numbers and `Value`s always serialize, to valid JSON.
    serde_json::value::to_raw_value(&a).unwrap_or_default()
}

/// A progress EVENT the queue itself publishes (`stage` `leased`, ...).
#[derive(Serialize)]
pub(crate) struct Progress<'a> {
    pub(crate) attempt: u32,
    pub(crate) message: String,
    pub(crate) stage: &'a str,
    pub(crate) task: &'a str,
}

/// The private TASK frame that leases attempt `rec.attempt` of `rec` as `lease`.
pub(crate) fn lease_text(rec: &TaskRecord, room: &str, lease: &str, lease_ms: u64) -> String {
    let spec = &rec.spec;
    with_now_ts(|ts| {
        let frame = Frame {
            kind: FrameType::Task,
            trace_id: &rec.trace_id,
            ts,
            room,
            channel: &spec.kind,
            from: "queue",
            offset: None,
            epoch: None,
            payload: LeasePayload {
                args: &spec.args,
                attempt: rec.attempt,
                bip_id: spec.bip_id,
                branch: spec.branch.as_deref(),
                idempotency_key: &spec.idempotency_key,
                idempotent: spec.idempotent,
                kind: &spec.kind,
                lease,
                lease_ms_camel: lease_ms,
                lease_ms,
                priority: spec.priority,
                repo: &spec.repo,
                task: &rec.id,
            },
        };
        // Strings, numbers and `Value`s always serialize.
        serde_json::to_string(&frame).unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Envelope;
    use serde_json::json;

    fn record() -> TaskRecord {
        let spec = super::super::model::TaskSpec::parse(
            &json!({"kind": "verify", "bipId": 43, "idempotencyKey": "k-1",
                    "priority": "core", "args": {"b": [1, 2], "a": "é\n"}, "branch": "feat/x"}),
            None,
            None,
        )
        .unwrap();
        serde_json::from_value(json!({
            "id": "t-1", "trace_id": "tr-9", "spec": spec, "state": "leased", "attempt": 2,
            "seq": 1, "created_ms": 0, "updated_ms": 0, "history": [],
        }))
        .unwrap()
    }

    #[test]
    fn stream_frames_are_the_envelopes_the_bus_stamped_before() {
        let r = record();
        let stamp = Stamp {
            ts: "2026-11-22T04:00:00.000Z",
            room: "bip-43",
            channel: "verify",
            offset: 7,
            epoch: "e-00c0ffee",
        };
        let old = |kind, payload: Value| {
            let mut e = Envelope::new(kind, payload);
            e.trace_id = Some("tr-9".into());
            e.ts = Some(stamp.ts.into());
            e.room = Some("bip-43".into());
            e.channel = Some("verify".into());
            e.from = Some("queue".into());
            e.offset = Some(7);
            e.epoch = Some("e-00c0ffee".into());
            e.to_text()
        };
        let announced = json!({
            "task": r.id, "state": "queued", "kind": r.spec.kind, "args": r.spec.args,
            "repo": r.spec.repo, "branch": r.spec.branch,
            "idempotencyKey": r.spec.idempotency_key, "priority": r.spec.priority,
            "bipId": r.spec.bip_id, "idempotent": r.spec.idempotent,
        });
        assert_eq!(
            stream_text(FrameType::Task, "tr-9", &stamp, &announce(&r)),
            old(FrameType::Task, announced)
        );
        let progress = Progress {
            attempt: 2,
            message: "attempt 2 leased to s-1".into(),
            stage: "leased",
            task: "t-1",
        };
        assert_eq!(
            stream_text(FrameType::Event, "tr-9", &stamp, &progress),
            old(
                FrameType::Event,
                json!({"task": "t-1", "stage": "leased", "message": "attempt 2 leased to s-1", "attempt": 2})
            )
        );
        let result = json!({"status": "ok", "summary": "done", "attempt": 2, "state": "succeeded"});
        assert_eq!(
            stream_text(FrameType::Result, "tr-9", &stamp, &result),
            old(FrameType::Result, result)
        );
    }

    #[test]
    fn the_lease_text_is_the_envelope_the_queue_built_before() {
        let rec = record();
        let text = lease_text(&rec, "bip-43", "l-x-1", 30_000);
        let mut env: Envelope = serde_json::from_str(&text).unwrap();
        let r = &rec;
        let mut old = Envelope::new(
            FrameType::Task,
            json!({
                "task": r.id, "lease": "l-x-1", "attempt": r.attempt, "kind": r.spec.kind,
                "args": r.spec.args, "repo": r.spec.repo, "branch": r.spec.branch,
                "priority": r.spec.priority, "bipId": r.spec.bip_id,
                "idempotencyKey": r.spec.idempotency_key, "idempotent": r.spec.idempotent,
                "leaseMs": 30_000, "lease_ms": 30_000,
            }),
        );
        old.trace_id = Some(r.trace_id.clone());
        old.room = Some("bip-43".into());
        old.channel = Some(r.spec.kind.clone());
        old.from = Some("queue".into());
        old.ts = env.ts.take();
        assert!(old.ts.is_some());
        assert_eq!(text, old.to_text());
    }
}
