//! hivebus: a rooms-and-channels message bus over WebSocket, with a task queue,
//! approvals and governance for AI-agent automation built on top as operators.
//!
//! The bus core knows nothing of tasks. Clients join `room:channel` addresses, publish,
//! receive, read history and recover what they missed by offset and epoch. The same
//! [`Bus`] API serves a WebSocket session and an agent embedded in the process.
//!
//! # Layout
//! In layer order (`docs/ARCHITECTURE.md`, "Layers"): a module uses only the ones
//! listed before it, never one after; `.ci/layers.py` reads that table and checks it.
//! Each layer owns its own config section; only [`broker`] assembles them.
//! - [`frame`], [`address`], [`error`]: the wire types: the envelope, frame types and
//!   parsing at the edge, the `room:channel` grammar, stable error and close codes.
//! - [`bus`]: the in-process router: channels, offsets, epochs, history, presence,
//!   bounded per-session outboxes; its `[bus]` config.
//! - [`auth`]: tokens, JWTs, roles, permissions, rate buckets, and
//!   [`auth::authority`], the one check of who may do what.
//! - [`safety`]: the redaction layer applied to every publish, and its operator.
//! - [`store`]: SQLite durable state for operators (WAL, group commit).
//! - [`ops`]: operators; [`ops::queue`] is the BIP-43 task queue.
//! - [`cmd`]: built-in commands, one file each.
//! - [`dispatch`]: the one path of every frame: role, authority, inspection, routing.
//! - [`server`]: the WebSocket transport, port selection and discovery, the state
//!   directory's lock (one broker per `.hive/`), HTTP health and metrics.
//! - [`broker`]: the assembled broker (bus, safety, queue, server, port file) and the
//!   aggregate [`Config`] read from one TOML file.
//! - [`config`]: the config types under their former paths.
//! - [`client`]: the Rust SDK used by the CLI, examples, load generator and tests.
//! - [`consumer`]: the consumer SDK on top of [`client`].

pub mod address;
pub mod audit;
pub mod auth;
pub mod broker;
pub mod bus;
pub mod client;
pub mod cmd;
pub mod config;
pub mod consumer;
pub mod dispatch;
pub mod error;
pub mod frame;
pub mod ops;
pub mod safety;
pub mod server;
pub mod store;

pub use address::{Address, Pattern};
pub use broker::Config;
pub use bus::{Bus, Delivery, Inbox, Member, PeerInfo};
pub use error::{ErrorCode, WireError};
pub use frame::{Envelope, FrameType};
