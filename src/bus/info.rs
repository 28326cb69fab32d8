//! What the bus reports about itself and its sessions: HELLO identity, presence rows,
//! counters and channel summaries. Plain serializable data, filled by [`super::Bus`].

use serde::Serialize;

/// Who a session says it is, from its HELLO.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PeerInfo {
    /// `client`, `consumer`, `admin`, `observer`, or another role of the deployment.
    pub role: String,
    /// What it can do (for consumers: the task kinds it executes).
    pub capabilities: Vec<String>,
    /// A display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// How many tasks it runs at once (consumers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slots: Option<u32>,
    /// Its roles in the deployment, for routed publishes and `roles.<role>` rooms
    /// (`bus::route`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Its areas of expertise, for `required_expertise` and `expertise.<x>` rooms.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub expertise: Vec<String>,
    /// Who it reports to (a role or a session name), shown in presence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reports_to: Option<String>,
}

/// One row of presence: a connected session.
#[derive(Debug, Clone, Serialize)]
pub struct Presence {
    /// Session id.
    pub session: String,
    /// Its HELLO.
    #[serde(flatten)]
    pub info: PeerInfo,
    /// When it connected.
    pub connected_at: String,
}

/// Server-wide counters, as the `status` command reports them.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    /// Sessions now attached.
    pub connections: usize,
    /// Sessions attached since start.
    pub connections_total: u64,
    /// Rooms now.
    pub rooms: usize,
    /// Channels now.
    pub channels: usize,
    /// Publishes accepted since start.
    pub messages: u64,
    /// Frames queued to subscribers since start.
    pub deliveries: u64,
    /// Frames dropped or refused by slow-consumer policy since start.
    pub dropped: u64,
    /// Seconds since the bus was made.
    pub uptime_secs: u64,
    /// Bytes of history all channels retain (bounded by `history_bytes_total`).
    pub history_bytes: usize,
}

/// A channel as `list_channels` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct ChannelSummary {
    /// `room:channel`.
    pub address: String,
    /// Sessions receiving from it.
    pub subscribers: usize,
    /// Its position.
    pub offset: u64,
    /// Its epoch.
    pub epoch: String,
    /// Bootstrap or admin-created.
    pub persistent: bool,
}

/// A channel as `channel_info` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct ChannelInfo {
    /// `room:channel`.
    pub address: String,
    /// Its position.
    pub offset: u64,
    /// Its epoch.
    pub epoch: String,
    /// Publishes retained.
    pub history: usize,
    /// When it was created.
    pub created_at: String,
    /// Session that created it, if any.
    pub created_by: Option<String>,
    /// Bootstrap or admin-created.
    pub persistent: bool,
    /// Who is subscribed, with role and capabilities.
    pub participants: Vec<Presence>,
}
