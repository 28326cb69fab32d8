//! What a session does with each inbound frame once handshaken: size and rate limits,
//! parsing, duplicate ids, then the [`Dispatcher`](crate::dispatch::Dispatcher), which
//! does every check and the routing; and the REPLY or ERROR it answers with.
//!
//! Every refusal is an ERROR frame naming the frame's `id` in `re`; the session stays
//! open. Channel traffic with an `id` is acknowledged with a REPLY carrying the offset
//! it was given; without an `id` it is fire-and-forget.

use super::session::{Closing, Session};
use crate::error::{close, ErrorCode, WireError};
use crate::frame::Envelope;
use serde_json::{json, Value};

/// Best effort at the `id` of a frame that failed validation, for `re`.
pub(super) fn id_of(text: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct IdOnly {
        id: Option<Value>,
    }
    // An id over the limit is not echoed: the refusal would cost as much as the frame.
    match serde_json::from_str::<IdOnly>(text).ok()?.id? {
        Value::String(s) if s.len() <= crate::frame::MAX_ID_BYTES => Some(s),
        _ => None,
    }
}

impl Session {
    /// Takes a token from the rate limit bucket. `Some(error)` when the frame must be
    /// refused; a closing when the session kept sending into an empty bucket for
    /// `max_refusals` frames in a row.
    pub(super) fn over_rate(&mut self) -> Result<Option<WireError>, Closing> {
        let Some(bucket) = &mut self.bucket else {
            return Ok(None);
        };
        let wait = match bucket.take() {
            Ok(()) => {
                self.refusals = 0;
                return Ok(None);
            }
            Err(wait) => wait,
        };
        self.refusals += 1;
        if self.refusals >= self.ctx.limits.max_refusals.max(1) {
            return Err(Closing::new(close::RATE_LIMITED, "rate limit exceeded"));
        }
        let ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1);
        Ok(Some(
            WireError::new(
                ErrorCode::RateLimited,
                format!(
                    "more than {} frames per second; frame not applied",
                    self.ctx.limits.frames_per_sec
                ),
            )
            .with_details(json!({"retry_after_ms": ms})),
        ))
    }

    pub(super) async fn on_text(&mut self, text: &str) -> Result<(), Closing> {
        super::Counters::inc(&self.ctx.counters.frames_in);
        if text.len() > self.ctx.config.max_frame {
            let err = WireError::new(
                ErrorCode::FrameTooLarge,
                format!(
                    "frame of {} bytes; max_frame is {}",
                    text.len(),
                    self.ctx.config.max_frame
                ),
            )
            .with_details(json!({"max_frame": self.ctx.config.max_frame}));
            return self.send_error(id_of(text), &err).await;
        }
        let env = match Envelope::parse_peer(text) {
            Ok(env) => env,
            Err(err) => return self.send_error(id_of(text), &err).await,
        };
        if let Some(id) = &env.id {
            if self.dedup.contains(id) {
                let err = WireError::new(
                    ErrorCode::DuplicateId,
                    format!("id `{id}` was already used"),
                );
                return self.send_error(env.id.clone(), &err).await;
            }
        }
        let re = env.id.clone();
        let answer = self
            .ctx
            .dispatch
            .dispatch(&self.member, &self.caller, env)
            .await;
        // Only applied frames use up their id: a refused one may be sent again.
        if let (Ok(_), Some(id)) = (&answer, &re) {
            self.dedup.insert(id);
        }
        match (answer, re) {
            (Ok(Some(result)), Some(re)) => self.reply(&re, &result).await,
            (Ok(_), _) => Ok(()),
            (Err(err), re) => self.send_error(re, &err).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_is_recovered_from_frames_that_fail_validation() {
        assert_eq!(id_of(r#"{"id":"7","type":"NOPE"}"#), Some("7".into()));
        assert_eq!(id_of("{nope"), None);
    }
}
