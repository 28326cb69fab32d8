//! The [`Operator`] glue: `op.queue.*` commands and the frames the queue claims
//! (TASK, EVENT, APPROVAL, RESULT, ERROR, HEARTBEAT), parsed here and handed to the
//! core under its lock.
//!
//! A TASK or RESULT *frame* is answered asynchronously: the handler returns at once
//! (so the session reads its next frame: a client can pipeline submits and a
//! consumer its results) and the REPLY / ERROR naming the frame's `id` is sent
//! privately once the change is durable. The `op.queue.submit` *command* answers the
//! same way but in line.

use super::access::{bip_of_room, Cmd};
use super::commit::{Answer, Committed};
use super::control::ControlCmd;
use super::core::SubmitOutcome;
use super::lifecycle::LeaseRef;
use super::model::{TaskSpec, TaskState};
use super::Queue;
use crate::auth::authority::{Need, Resource};
use crate::error::{ErrorCode, WireError};
use crate::frame::{Envelope, FrameType};
use crate::ops::{BoxFuture, Caller, Operator};
use crate::store::Ticket;
use serde_json::{json, Value};

/// Most frames one `stream` page returns.
const MAX_PAGE: usize = 1000;

fn arg_str<'a>(args: &'a Value, k: &str) -> Result<&'a str, WireError> {
    match args.get(k) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(_) => Err(WireError::new(
            ErrorCode::InvalidField,
            format!("`{k}` must be a non-empty string"),
        )
        .with_details(json!({"field": k}))),
        None => Err(
            WireError::new(ErrorCode::MissingField, format!("`{k}` is required"))
                .with_details(json!({"field": k})),
        ),
    }
}

/// A store failure as the `internal` error a client gets.
pub(super) fn internal(e: impl std::fmt::Display) -> WireError {
    WireError::new(ErrorCode::Internal, format!("queue store: {e}"))
}

impl Queue {
    /// Validates and submits; resolves once the task is durable.
    async fn submit(
        &self,
        spec: TaskSpec,
        trace: Option<String>,
        owner: &str,
    ) -> Result<Value, WireError> {
        let (outcome, ticket) = {
            let mut core = self.lock();
            let outcome = core.submit(spec, trace, owner)?;
            (outcome, core.store.ack())
        };
        self.submit_committed(outcome, ticket).await
    }

    /// The rest of a submit once `ticket` (enqueued after its writes) completes.
    async fn submit_committed(
        &self,
        outcome: SubmitOutcome,
        ticket: Ticket,
    ) -> Result<Value, WireError> {
        let SubmitOutcome { mut reply, created } = outcome;
        let committed = ticket.wait().await;
        match (committed, created) {
            (Ok(()), Some(id)) => {
                self.lock().submitted_durable(&id);
                Ok(reply)
            }
            (Ok(()), None) => {
                if reply.get("evicted").is_some() {
                    let id = reply["task"].as_str().unwrap_or_default().to_owned();
                    if let Some(v) = self.load(&id).await? {
                        reply = json!({"task": id, "traceId": v["trace_id"], "state": v["state"],
                                       "duplicate": true, "result": v["result"]});
                    }
                }
                Ok(reply)
            }
            (Err(e), created) => {
                if let Some(id) = created {
                    self.lock().submit_failed(&id);
                }
                Err(internal(e))
            }
        }
    }

    /// A stored record, read from SQLite, by task id or trace id. A trace id names the
    /// first task that took it (later submits naming it are refused while it is in
    /// memory; this keeps a later one from shadowing it once it left).
    pub(super) async fn load(&self, id: &str) -> Result<Option<Value>, WireError> {
        let id = id.to_owned();
        let body: Option<String> = self
            .inner
            .store
            .read(move |c| {
                use rusqlite::OptionalExtension;
                c.query_row(
                    &format!(
                        "SELECT body FROM tasks WHERE id = {}",
                        super::schema::TASK_OF
                    ),
                    [id],
                    |r| r.get(0),
                )
                .optional()
            })
            .wait()
            .await
            .map_err(internal)?;
        Ok(body.and_then(|b| serde_json::from_str(&b).ok()))
    }

    /// A task's full record (memory first, then SQLite), camelCase (see `views`).
    async fn show(&self, key: &str) -> Result<Value, WireError> {
        {
            let core = self.lock();
            let id = core.traces.get(key).map_or(key, String::as_str);
            if let Some(live) = core.tasks.get(id) {
                let mut v = super::views::record(&live.rec, super::core::Core::visible_state(live));
                // Who holds it, never its id: a lease id is what `op.queue.resume`
                // takes back an orphaned lease with, so only its consumer knows it.
                v["lease"] = json!(live.lease.as_ref().map(|l| json!({"consumer": l.consumer})));
                v["streamLen"] = json!(live.stream_next - 1);
                return Ok(v);
            }
        }
        let stored = self
            .load(key)
            .await?
            .ok_or_else(|| WireError::new(ErrorCode::NotFound, format!("no task {key}")))?;
        let rec: super::model::TaskRecord = serde_json::from_value(stored).map_err(internal)?;
        let mut v = super::views::record(&rec, rec.state);
        v["lease"] = Value::Null;
        Ok(v)
    }

    /// The stored stream of a task after `after`, read in order with publishes.
    async fn stream(&self, args: &Value) -> Result<Value, WireError> {
        let key = arg_str(args, "task")
            .or_else(|_| arg_str(args, "trace"))?
            .to_owned();
        let after = args.get("after").and_then(Value::as_u64).unwrap_or(0) as i64;
        let limit = args
            .get("limit")
            .and_then(Value::as_u64)
            .unwrap_or(MAX_PAGE as u64)
            .min(MAX_PAGE as u64) as i64;
        let ticket = {
            // Enqueued under the lock: every frame published before this point is
            // already enqueued to the store, so the read sees it (see `core`).
            let core = self.lock();
            let id = core.traces.get(&key).cloned().unwrap_or(key.clone());
            self.inner.store.read(move |c| {
                let mut q = c.prepare_cached(&format!(
                    "SELECT seq, frame FROM stream WHERE task = {}
                     AND seq > ?2 ORDER BY seq LIMIT ?3",
                    super::schema::TASK_OF
                ))?;
                let rows = q.query_map(rusqlite::params![id, after, limit], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
                })?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })
        };
        let rows = ticket.wait().await.map_err(internal)?;
        let frames: Vec<Value> = rows
            .into_iter()
            .map(|(seq, f)| json!({"seq": seq, "frame": serde_json::from_str::<Value>(&f).unwrap_or(Value::Null)}))
            .collect();
        Ok(json!({"frames": frames}))
    }

    async fn run_command(
        &self,
        caller: &Caller,
        name: &str,
        args: Value,
    ) -> Result<Value, WireError> {
        // Who did it, as history notes and stream frames show it.
        let by = caller.identity.subject.as_str();
        match ControlCmd::parse(name) {
            Some(ControlCmd::Control) => return self.control(caller, &args).await,
            Some(ControlCmd::Ack) => return self.control_ack(caller, &args),
            None => {}
        }
        match Cmd::parse(name)? {
            Cmd::Submit => {
                let spec = TaskSpec::parse(&args, None, None)?;
                let trace = args
                    .get("traceId")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                self.submit(spec, trace, by).await
            }
            Cmd::Consume => {
                let kinds = match args.get("kinds") {
                    Some(v) => serde_json::from_value(v.clone()).map_err(|_| {
                        WireError::new(
                            ErrorCode::InvalidField,
                            "`kinds` must be an array of strings",
                        )
                    })?,
                    None => caller.info.capabilities.clone(),
                };
                let slots = match args.get("slots") {
                    None | Some(Value::Null) => caller.info.slots,
                    // Saturates rather than wraps; `register` clamps to `max_slots`.
                    Some(v) => Some(
                        v.as_u64()
                            .map(|s| u32::try_from(s).unwrap_or(u32::MAX))
                            .ok_or_else(|| {
                                WireError::new(
                                    ErrorCode::InvalidField,
                                    "`slots` must be a positive integer",
                                )
                                .with_details(json!({"field": "slots"}))
                            })?,
                    ),
                };
                if caller.info.role != "consumer" {
                    return Err(WireError::new(
                        ErrorCode::Forbidden,
                        "only sessions with role `consumer` take leases",
                    ));
                }
                Ok(self
                    .lock()
                    .register(&caller.session, kinds, slots, consumer_scope(caller)))
            }
            Cmd::List => self.list(caller, &args, None),
            Cmd::Show => {
                self.show(arg_str(&args, "task").or_else(|_| arg_str(&args, "trace"))?)
                    .await
            }
            Cmd::Stream => self.stream(&args).await,
            Cmd::Cancel => self.lock().cancel(arg_str(&args, "task")?, by),
            Cmd::Retry => self.lock().requeue(
                arg_str(&args, "task")?,
                TaskState::Failed,
                args.get("args").cloned().filter(|a| !a.is_null()),
                by,
            ),
            Cmd::Approve => {
                let task = arg_str(&args, "task")?.to_owned();
                self.lock().approval_decision(&task, caller, &args)
            }
            Cmd::Stats => Ok(self.stats(caller)),
            Cmd::Approvals => Ok(self.approvals(caller)),
            Cmd::Resume => {
                let (task, lease) = (arg_str(&args, "task")?, arg_str(&args, "lease")?);
                let mut core = self.lock();
                if caller.info.role == "consumer" && !core.consumers.contains_key(&caller.session) {
                    core.register(
                        &caller.session,
                        caller.info.capabilities.clone(),
                        caller.info.slots,
                        consumer_scope(caller),
                    );
                }
                core.resume(&caller.session, by, task, lease)
            }
            Cmd::DlqList => self.list(caller, &args, Some(TaskState::Dead)),
            Cmd::DlqShow => {
                let v = self.show(arg_str(&args, "task")?).await?;
                if v["state"] != "dead" {
                    return Err(WireError::new(
                        ErrorCode::Conflict,
                        "task is not in the dead-letter store",
                    ));
                }
                Ok(v)
            }
            Cmd::DlqRequeue => self.lock().requeue(
                arg_str(&args, "task")?,
                TaskState::Dead,
                args.get("args").cloned().filter(|a| !a.is_null()),
                by,
            ),
            Cmd::DlqPurge => {
                let mut core = self.lock();
                let ids: Vec<String> = if args.get("all").and_then(Value::as_bool) == Some(true) {
                    core.tasks
                        .values()
                        .filter(|l| l.rec.state == TaskState::Dead)
                        .map(|l| l.rec.id.clone())
                        .collect()
                } else {
                    vec![arg_str(&args, "task")?.to_owned()]
                };
                let gone = core.purge(&ids);
                Ok(json!({"purged": gone}))
            }
        }
    }

    /// Sends a late REPLY or ERROR naming `re` to `session`.
    pub(crate) fn answer(&self, session: &str, re: Option<String>, r: Result<Value, WireError>) {
        let Some(re) = re else { return };
        let to = [session.to_owned()];
        let env = match r {
            Ok(result) => {
                // Built from the frame the session sent, which was inspected then.
                let text = crate::frame::reply_text(&re, &result);
                self.inner.bus.send_private_text(&to, text);
                return;
            }
            Err(e) => {
                let mut p = json!({"re": re, "code": e.code, "message": e.message});
                if let Some(d) = e.details {
                    p["details"] = d;
                }
                Envelope::new(FrameType::Error, p)
            }
        };
        self.inner.bus.send_private_inspected(&to, env);
    }

    async fn run_frame(&self, caller: &Caller, env: Envelope) -> Result<Option<Value>, WireError> {
        let session = caller.session.as_str();
        match env.kind {
            FrameType::Heartbeat => {
                if caller.info.role == "consumer" && !self.lock().consumers.contains_key(session) {
                    self.lock().register(
                        session,
                        caller.info.capabilities.clone(),
                        caller.info.slots,
                        consumer_scope(caller),
                    );
                }
                let n = self.lock().heartbeat(session);
                Ok(Some(json!({"alive": true, "renewed": n})))
            }
            FrameType::Task => {
                let room = env.room.as_deref().unwrap_or_default();
                let spec = TaskSpec::parse(
                    &env.payload,
                    Some(bip_of_room(room)?),
                    env.channel.as_deref(),
                )?;
                let to = Answer {
                    session: session.to_owned(),
                    re: env.id,
                };
                let mut core = self.lock();
                match core.submit(spec, env.trace_id, &caller.identity.subject)? {
                    SubmitOutcome {
                        reply,
                        created: Some(id),
                    } => {
                        // Answered by the commit task, with the rest of its commit.
                        let done = self.inner.done.clone();
                        core.store.then(move |r| {
                            let failed = r.err().map(str::to_owned);
                            let _ = done.send(Committed::Submit {
                                id,
                                reply,
                                to,
                                failed,
                            });
                        });
                    }
                    duplicate => {
                        // Rare; may read the original back from SQLite.
                        let ticket = core.store.ack();
                        drop(core);
                        let q = self.clone();
                        tokio::spawn(async move {
                            let r = q.submit_committed(duplicate, ticket).await;
                            q.answer(&to.session, to.re, r);
                        });
                    }
                }
                Ok(None)
            }
            FrameType::Approval if env.payload.get("lease").is_none() => {
                let task = arg_str(&env.payload, "task")?.to_owned();
                self.lock()
                    .approval_decision(&task, caller, &env.payload)
                    .map(Some)
            }
            FrameType::Event | FrameType::Approval | FrameType::Result | FrameType::Error => {
                let task = arg_str(&env.payload, "task")?.to_owned();
                let lease = arg_str(&env.payload, "lease")?.to_owned();
                let r = LeaseRef {
                    session,
                    task: &task,
                    lease: &lease,
                };
                if env.kind == FrameType::Approval {
                    return self
                        .action_request(&r, env.payload, &caller.identity.subject)
                        .await
                        .map(Some);
                }
                let mut core = self.lock();
                match env.kind {
                    FrameType::Event => core.event(&r, env.payload).map(Some),
                    kind => {
                        // Refused: nothing changed, so nothing to wait for; the
                        // refusal is the dispatcher's to answer (and observers of
                        // the frame type never see it).
                        let out = if kind == FrameType::Result {
                            core.result(&r, env.payload)?
                        } else {
                            core.consumer_error(&r, env.payload)?
                        };
                        if env.id.is_some() {
                            // Answered once durable, without holding up the session.
                            let done = self.inner.done.clone();
                            let to = Answer {
                                session: session.to_owned(),
                                re: env.id,
                            };
                            core.store.then(move |r| {
                                let failed = r.err().map(str::to_owned);
                                let _ = done.send(Committed::Answer { out, to, failed });
                            });
                        }
                        Ok(None)
                    }
                }
            }
            other => Err(WireError::new(
                ErrorCode::UnexpectedType,
                format!("the queue does not take {} frames", other.as_str()),
            )),
        }
    }
}

/// The address permissions a consumer's leases are limited to: a consumer is leased
/// only tasks whose channel its credential may read (their args are its to see).
fn consumer_scope(caller: &Caller) -> crate::auth::Permissions {
    caller.identity.permissions.clone()
}

impl Operator for Queue {
    fn namespace(&self) -> &str {
        "queue"
    }

    fn command<'a>(
        &'a self,
        caller: &'a Caller,
        name: &'a str,
        args: Value,
    ) -> BoxFuture<'a, Result<Value, WireError>> {
        Box::pin(self.run_command(caller, name, args))
    }

    fn command_need(&self, _: &Caller, name: &str, args: &Value) -> Result<Need, WireError> {
        if let Some(c) = ControlCmd::parse(name) {
            return Ok(c.need());
        }
        self.need_of_command(name, args)
    }

    fn frame_need(&self, _: &Caller, env: &Envelope) -> Result<Need, WireError> {
        self.need_of_frame(env)
    }

    fn resource<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Resource, WireError>> {
        Box::pin(self.resource_of(key))
    }

    fn claims(&self, kind: FrameType) -> bool {
        matches!(
            kind,
            FrameType::Task
                | FrameType::Event
                | FrameType::Approval
                | FrameType::Result
                | FrameType::Error
                | FrameType::Heartbeat
        )
    }

    fn frame<'a>(
        &'a self,
        caller: &'a Caller,
        env: Envelope,
    ) -> BoxFuture<'a, Result<Option<Value>, WireError>> {
        Box::pin(self.run_frame(caller, env))
    }

    fn disconnected(&self, session: &str) {
        self.lock().consumer_gone(session);
        self.inner.controls.gone(session);
    }

    fn stop(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.shutdown())
    }
}

impl Queue {
    /// An APPROVAL request from the lease holder: the task waits, the gates decide
    /// (outside the lock), and unless they say "ask", their verdict is applied as a
    /// decision by `policy:<rule>` at once. Without gates, a person decides.
    async fn action_request(
        &self,
        r: &LeaseRef<'_>,
        payload: Value,
        subject: &str,
    ) -> Result<Value, WireError> {
        let gates = self.inner.gates.clone();
        let gated = !gates.read().unwrap_or_else(|p| p.into_inner()).is_empty();
        let (asked, request) = {
            let mut core = self.lock();
            let request = gated.then(|| core.action_of(r, &payload)).transpose()?;
            (core.approval_request(r, payload, subject)?, request)
        };
        let Some(request) = request else {
            return Ok(asked);
        };
        let (decision, by, reason) = match super::hooks::decide(&gates, &request).await {
            super::hooks::Verdict::Ask => {
                // A rule of its own may give the request another timeout.
                let list = gates.read().unwrap_or_else(|p| p.into_inner()).clone();
                if let Some(t) = list.iter().filter_map(|g| g.ask_timeout(&request)).min() {
                    self.lock().approval_timeout(r.task, t);
                }
                return Ok(asked);
            }
            super::hooks::Verdict::Allow { by, reason } => ("approve", by, reason),
            super::hooks::Verdict::Deny { by, reason } => ("deny", by, reason),
        };
        let by = format!("policy:{by}");
        let decided = self.lock().decide(&super::approvals::Decision {
            task: r.task,
            approval: None,
            decision,
            scope: Some("once"),
            reason: Some(&reason),
            by: &by,
            session: None,
        });
        // A person may have decided while the gates thought, or the lease may have
        // gone: the request itself was taken either way.
        Ok(decided.unwrap_or(asked))
    }
}
