//! hivebus: a rooms-and-channels message bus over WebSocket, with a task queue,
//! approvals and governance for AI-agent automation built on top as operators.
//!
//! The bus core knows nothing of tasks. Clients join `room:channel` addresses, publish,
//! receive, read history and recover what they missed by offset and epoch. The same
//! [`Bus`] API serves a WebSocket session and an agent embedded in the process.
//!
//! # Layout
//! - [`address`]: the `room:channel` grammar and wildcard patterns.
//! - [`error`]: stable wire error codes and close codes.
//! - [`frame`]: the envelope, frame types, parsing at the edge.
//! - [`config`]: every limit and policy, from TOML.
//! - [`broker`]: the assembled broker (bus, queue, server, port file).
//! - [`bus`]: the in-process router: channels, offsets, epochs, history, presence.
//! - [`cmd`]: built-in commands, one file each.
//! - [`dispatch`]: the one path of every frame: role, authority, inspection, routing.
//! - [`safety`]: the redaction layer applied to every publish, and its operator.
//! - [`auth`]: tokens, JWTs, roles and permissions, per-session rate limits.
//! - [`server`]: the WebSocket transport, port selection and discovery, the state
//!   directory's lock (one broker per `.hive/`), HTTP health and metrics.
//! - [`client`]: the Rust SDK used by the CLI, examples, load generator and tests.
//! - [`ops`]: operators; [`ops::queue`] is the BIP-43 task queue.
//! - [`store`]: SQLite durable state for operators (WAL, group commit).
//! - [`consumer`]: the consumer SDK on top of [`client`].

pub mod address;
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
