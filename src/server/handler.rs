//! What a session does with each inbound frame once handshaken: validation, duplicate
//! detection, then dispatch to the bus, a built-in command or an operator.
//!
//! Every refusal is an ERROR frame naming the frame's `id` in `re`; the session stays
//! open. Channel traffic with an `id` is acknowledged with a REPLY carrying the offset
//! it was given; without an `id` it is fire-and-forget.

use super::session::{Closing, Session};
use crate::address::{Address, Pattern};
use crate::bus::Delivery;
use crate::cmd::{Command, Ctx};
use crate::error::{close, ErrorCode, WireError};
use crate::frame::{Envelope, FrameType};
use serde::ser::{SerializeStruct, Serializer};
use serde::Serialize;
use serde_json::{json, Value};

/// What an applied frame is acknowledged with: the `result` of its REPLY.
#[derive(Serialize)]
#[serde(untagged)]
enum Answer {
    /// A command's or operator's result.
    Value(Value),
    /// A publish: `{address, epoch, offset}`, written without a `Value` map.
    Published(Published),
}

/// Where a publish landed.
struct Published {
    addr: Address,
    delivery: Delivery,
}

impl Serialize for Published {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Keys in the sorted order serde_json gives the `Value` map this replaced.
        let mut m = s.serialize_struct("Published", 3)?;
        m.serialize_field("address", &AddressText(&self.addr))?;
        m.serialize_field("epoch", &self.delivery.epoch())?;
        m.serialize_field("offset", &self.delivery.offset())?;
        m.end()
    }
}

/// An address as a JSON string, formatted straight into the output.
struct AddressText<'a>(&'a Address);

impl Serialize for AddressText<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self.0)
    }
}

/// Best effort at the `id` of a frame that failed validation, for `re`.
pub(super) fn id_of(text: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct IdOnly {
        id: Option<Value>,
    }
    match serde_json::from_str::<IdOnly>(text).ok()?.id? {
        Value::String(s) => Some(s),
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
        let answer = self.dispatch(env).await;
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

    /// Checks the role table and the publish permission for a frame a peer may send.
    fn admit(&self, env: &Envelope) -> Result<(), WireError> {
        let role = self.identity.role;
        if !role.may_send(env.kind) {
            return Err(role.refuse_frame(env.kind));
        }
        if env.kind.is_channel_traffic() {
            let room = env.room.as_deref().unwrap_or_default();
            // A bad address is reported by the publish path with its own code.
            if let Ok(addr) = Address::from_parts(room, env.channel.as_deref()) {
                if !self.identity.permissions.may_publish(&addr) {
                    return Err(WireError::new(
                        ErrorCode::Forbidden,
                        format!("this credential may not publish to {addr}"),
                    )
                    .with_details(json!({"address": addr.to_string(), "permission": "publish"})));
                }
            }
        }
        Ok(())
    }

    /// Checks the subscribe permission for commands that read an address.
    fn admit_read(&self, name: &str, args: &Value) -> Result<(), WireError> {
        let reads = ["join", "join_channel", "history", "channel_info"];
        if !reads.contains(&name) {
            return Ok(());
        }
        let Some(Ok(p)) = args
            .get("address")
            .and_then(Value::as_str)
            .map(Pattern::parse)
        else {
            return Ok(()); // The command reports its own missing or bad address.
        };
        if self.identity.permissions.may_subscribe(&p) {
            return Ok(());
        }
        Err(WireError::new(
            ErrorCode::Forbidden,
            format!("this credential may not subscribe to {p}"),
        )
        .with_details(json!({"address": p.to_string(), "permission": "subscribe"})))
    }

    /// Runs one valid frame; `Some(result)` is acknowledged with a REPLY.
    async fn dispatch(&mut self, env: Envelope) -> Result<Option<Answer>, WireError> {
        if !matches!(
            env.kind,
            FrameType::Hello | FrameType::Welcome | FrameType::System | FrameType::Reply
        ) {
            self.admit(&env)?;
        }
        match env.kind {
            FrameType::Hello => Err(WireError::new(
                ErrorCode::AlreadyHandshaken,
                "HELLO was already sent",
            )),
            FrameType::Welcome | FrameType::System => Err(WireError::new(
                ErrorCode::UnexpectedType,
                format!("{} frames are sent by the server only", env.kind.as_str()),
            )),
            FrameType::Reply => Err(WireError::new(
                ErrorCode::UnknownRequest,
                format!(
                    "no request {} is waiting for a reply",
                    env.payload.get("re").unwrap_or(&Value::Null)
                ),
            )),
            FrameType::Command => self.command(env).await.map(|v| Some(Answer::Value(v))),
            FrameType::Private => self.private(env).map(|v| Some(Answer::Value(v))),
            FrameType::Heartbeat => {
                let r = match self.ctx.ops.for_frame(FrameType::Heartbeat).cloned() {
                    Some(op) => op.frame(&self.caller, env).await?,
                    None => None,
                };
                Ok(Some(Answer::Value(
                    r.unwrap_or_else(|| json!({"alive": true})),
                )))
            }
            kind => {
                if let Some(op) = self.ctx.ops.for_frame(kind).cloned() {
                    // The operator may store the frame before publishing it: the safety
                    // layer sees it first (publishing it later is a no-op for the
                    // redactor, whose output is a fixpoint).
                    let mut env = env;
                    let room = env.room.as_deref().unwrap_or_default();
                    let addr = Address::from_parts(room, env.channel.as_deref()).ok();
                    self.ctx.bus.inspect(addr.as_ref(), &mut env)?;
                    return Ok(op.frame(&self.caller, env).await?.map(Answer::Value));
                }
                self.publish(env).map(|p| Some(Answer::Published(p)))
            }
        }
    }

    fn publish(&mut self, mut env: Envelope) -> Result<Published, WireError> {
        let room = env.room.take().unwrap_or_default();
        let addr = Address::from_parts(&room, env.channel.take().as_deref())?;
        let echo = env.echo.unwrap_or(false);
        let delivery = self.member.publish(&addr, env, echo)?;
        Ok(Published { addr, delivery })
    }

    fn private(&mut self, mut env: Envelope) -> Result<Value, WireError> {
        let to: Vec<String> = match env.payload.get("to").and_then(Value::as_array) {
            Some(list) if list.iter().all(Value::is_string) => list
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => {
                return Err(WireError::new(
                    ErrorCode::InvalidField,
                    "`payload.to` must be an array of session ids",
                ))
            }
        };
        env.room = None;
        env.channel = None;
        let missing = self.member.send_private(&to, env)?;
        if missing.len() == to.len() && !to.is_empty() {
            return Err(
                WireError::new(ErrorCode::UnknownSession, "no recipient is connected")
                    .with_details(json!({"missing": missing})),
            );
        }
        Ok(json!({"delivered": to.len() - missing.len(), "missing": missing}))
    }

    async fn command(&mut self, env: Envelope) -> Result<Value, WireError> {
        let name = env
            .payload
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let args = env.payload.get("args").cloned().unwrap_or(Value::Null);
        if !self.identity.role.may_run(&name) {
            return Err(self.identity.role.refuse_command(&name));
        }
        self.admit_read(&name, &args)?;
        if name.starts_with("op.") {
            let (op, rest) = self.ctx.ops.for_command(&name)?;
            let op = op.clone();
            // Operator commands may carry content an operator stores (a task's args):
            // the safety layer sees it first, except the policy commands themselves.
            let mut args = args;
            if op.namespace() != "safety" {
                let mut probe = Envelope::new(FrameType::Command, args);
                probe.from = Some(self.member.id().to_owned());
                probe.id = env.id.clone();
                self.ctx.bus.inspect(None, &mut probe)?;
                args = probe.payload;
            }
            return op.command(&self.caller, rest, args).await;
        }
        let cmd = Command::parse(&name, args)?.ok_or_else(|| {
            WireError::new(
                ErrorCode::UnknownCommand,
                format!("unknown command `{name}`"),
            )
        })?;
        let ctx = Ctx {
            member: &self.member,
            admin: self.caller.admin,
            server: &self.ctx.info,
            ops: &self.ctx.ops,
        };
        cmd.apply(&ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_publish_is_acknowledged_with_address_epoch_and_offset() {
        let mut env = Envelope::new(FrameType::Message, json!({"x": 1}));
        env.offset = Some(5);
        env.epoch = Some("e-1".into());
        let p = Published {
            addr: Address::new("r", "c").unwrap(),
            delivery: Delivery::new(env),
        };
        let want = json!({"address": "r:c", "offset": 5, "epoch": "e-1"});
        assert_eq!(
            serde_json::to_string(&Answer::Published(p)).unwrap(),
            want.to_string()
        );
    }

    #[test]
    fn id_is_recovered_from_frames_that_fail_validation() {
        assert_eq!(id_of(r#"{"id":"7","type":"NOPE"}"#), Some("7".into()));
        assert_eq!(id_of("{nope"), None);
    }
}
