//! [`Delivery`]: one published frame, serialized once and shared by every subscriber.
//!
//! A publish to 1000 subscribers costs one serialization and 1000 reference-count
//! increments: the text is held as `Utf8Bytes` (a `Bytes` underneath), which the socket
//! writer hands to tungstenite without copying.

use crate::frame::Envelope;
use std::sync::Arc;
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// A frame ready to send: the envelope and its JSON text. Cloning is one atomic increment.
#[derive(Clone, Debug)]
pub struct Delivery(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    envelope: Envelope,
    text: Utf8Bytes,
}

impl Delivery {
    /// Serializes `envelope` once.
    pub fn new(envelope: Envelope) -> Self {
        let text = Utf8Bytes::from(envelope.to_text());
        Delivery(Arc::new(Inner { envelope, text }))
    }

    /// The envelope, for in-process subscribers.
    pub fn envelope(&self) -> &Envelope {
        &self.0.envelope
    }

    /// The JSON text as sent on the wire.
    pub fn text(&self) -> &str {
        self.0.text.as_str()
    }

    /// The shared bytes, for the socket writer.
    pub(crate) fn utf8(&self) -> Utf8Bytes {
        self.0.text.clone()
    }
}
