//! Integration tests of the task queue: one binary, modules by concept. Every test runs
//! the real server with the queue operator on 127.0.0.1:0 and talks to it over real
//! WebSockets; time-dependent behaviour runs on a paused tokio clock.

// Test helpers are shared between modules of this one binary.
#![allow(unreachable_pub)]

mod approval_durable;
mod approvals;
mod authority;
mod backpressure;
mod cli;
mod consume;
mod consume_steer;
mod consumer_example;
mod crash;
mod cronkv;
mod discovery;
mod gitops;
mod gov;
mod harness;
mod hooks;
mod idempotency;
mod leases;
mod mcp;
mod ordering;
mod policy;
mod python;
mod retries;
mod sdk;
mod store;
mod streaming;
mod visibility;
mod webhook;
