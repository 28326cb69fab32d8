//! A task's stream: every step of a task is published as a frame on its channel
//! `bip-<n>:<kind>` with its trace id, stored for replay (up to `max_stream` frames),
//! appended to its trace log, and handed to the observers of task events (see
//! `hooks`). One function, so that the four can never disagree about what happened.
//!
//! The frame is written from typed fields, without an envelope (`frames`), and is not
//! inspected again: every payload the queue publishes was built from frames and
//! command arguments the safety layer inspected when they arrived.

use super::core::Core;
use crate::address::Address;
use crate::frame::FrameType;
use serde::Serialize;

impl Core {
    /// Publishes a frame of the task's stream on its channel, stores and logs it.
    pub(crate) fn publish<P: Serialize>(&mut self, id: &str, kind: FrameType, payload: P) {
        let Some(live) = self.tasks.get_mut(id) else {
            return;
        };
        let addr = match Address::new(
            &format!("bip-{}", live.rec.spec.bip_id),
            &live.rec.spec.kind,
        ) {
            Ok(a) => a,
            Err(e) => return tracing::warn!(task = %id, error = %e, "task address invalid"),
        };
        // Every payload the queue publishes was built from frames and command
        // arguments the safety layer inspected when they arrived. The frame is
        // written from typed fields, without an envelope (see `frames`).
        let trace = live.rec.trace_id.as_str();
        let made = self.bus.publish_text(&addr, &|stamp| {
            super::frames::stream_text(kind, trace, stamp, &payload)
        });
        let delivery = match made {
            Ok(d) => d,
            Err(e) => {
                // Only when the bus may not create the channel (`auto_create` off and
                // no such channel): the frame is neither published nor stored.
                return tracing::warn!(task = %id, error = %e, "publishing the task stream failed");
            }
        };
        let seq = live.stream_next;
        live.stream_next += 1;
        if let Some(log) = &self.log {
            // Named from the task id, which the queue made: a trace id is the
            // submitter's text and never becomes a path.
            log.append(&live.rec.id, delivery.text().to_owned());
        }
        if (seq as usize) <= self.cfg.max_stream {
            // The stored row is the published text itself, shared, not copied.
            self.store.stream_delivery(id, seq, delivery);
        } else {
            live.stream_dropped += 1;
        }
        if self.hooks.observed(kind) {
            // Built only for observers: the payload as a tree is a cost the queue's
            // own path does not pay.
            let rec = &live.rec;
            let payload = serde_json::to_value(&payload).unwrap_or_default();
            self.hooks.emit(kind, |seq| super::hooks::TaskEvent {
                seq,
                task: rec.id.clone(),
                trace_id: rec.trace_id.clone(),
                owner: rec.owner.clone(),
                bip_id: rec.spec.bip_id,
                kind: rec.spec.kind.clone(),
                state: rec.state,
                attempt: rec.attempt,
                frame: kind,
                payload,
            });
        }
    }
}
