//! The `[kv]` section: where the key-value store keeps its rows and every bound it
//! enforces. Each bound is counted in entries AND bytes, per namespace and in total,
//! so that no identity or room can fill the broker's disk (`docs/OPERATORS.md`).

use serde::Deserialize;
use std::path::PathBuf;

/// Configuration of the `op.store.*` operator.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KvConfig {
    /// The SQLite file; the broker defaults it to `.hive/kv.db`. `None` here (and in
    /// tests) is an in-memory database.
    pub db_path: Option<PathBuf>,
    /// Longest key, in bytes.
    pub max_key_bytes: usize,
    /// Largest value, in bytes of its JSON text.
    pub max_value_bytes: usize,
    /// Most live keys in one namespace.
    pub max_keys_per_namespace: u64,
    /// Most bytes (keys plus values) in one namespace.
    pub max_bytes_per_namespace: u64,
    /// Most keys in the whole store.
    pub max_keys_total: u64,
    /// Most bytes (keys plus values) in the whole store.
    pub max_bytes_total: u64,
    /// Longest `ttl_ms` a value may carry (a value without one lives until deleted).
    pub max_ttl_ms: u64,
    /// `list`: the `limit` when none is given.
    pub list_default: usize,
    /// `list`: the largest `limit`.
    pub list_max: usize,
    /// `list`: a page stops before its values pass this many bytes (a cursor follows).
    pub list_max_bytes: usize,
    /// How often expired values are swept from the disk, in ms (they are invisible
    /// from their expiry on, swept or not).
    pub sweep_ms: u64,
}

impl Default for KvConfig {
    fn default() -> Self {
        KvConfig {
            db_path: None,
            max_key_bytes: 256,
            max_value_bytes: 64 * 1024,
            max_keys_per_namespace: 1_000,
            max_bytes_per_namespace: 4 * 1024 * 1024,
            max_keys_total: 100_000,
            max_bytes_total: 256 * 1024 * 1024,
            max_ttl_ms: 30 * 24 * 3600 * 1000,
            list_default: 100,
            list_max: 1_000,
            list_max_bytes: 1024 * 1024,
            sweep_ms: 1_000,
        }
    }
}
