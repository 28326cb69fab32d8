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
//! - [`bus`]: the in-process router: channels, offsets, epochs, history, presence.
//! - [`cmd`]: built-in commands, one file each.
//! - [`safety`]: the redaction layer applied to every publish, and its operator.
//! - [`auth`]: tokens, JWTs, roles and permissions, per-session rate limits.
//! - [`server`]: the WebSocket transport, port selection, HTTP health and metrics.
//! - [`client`]: the Rust SDK used by the CLI, examples, load generator and tests.

pub mod address;
pub mod auth;
pub mod bus;
pub mod client;
pub mod cmd;
pub mod config;
pub mod error;
pub mod frame;
pub mod ops;
pub mod safety;
pub mod server;

pub use address::{Address, Pattern};
pub use bus::{Bus, Delivery, Inbox, Member, PeerInfo};
pub use config::Config;
pub use error::{ErrorCode, WireError};
pub use frame::{Envelope, FrameType};
