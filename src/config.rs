//! The configuration types under their former paths, for code written before each
//! layer took its own section. New code names the owning module: [`crate::broker`]
//! for the aggregate [`Config`] and its `from_file`, [`crate::bus`] for `[bus]`,
//! [`crate::server`] for `[server]` and `[limits]`, [`crate::auth`] for `[auth]`,
//! [`crate::ops::queue`] and [`crate::safety`] for their operators' sections.
//!
//! This module sits with the edges (it re-exports the broker's aggregate): no layer of
//! the crate imports it, and `.ci/layers.py` fails if one does.

pub use crate::broker::Config;
pub use crate::bus::{BusConfig, RoomConfig, SlowConsumer};
pub use crate::server::{ServerConfig, TlsConfig};
