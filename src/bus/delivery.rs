//! [`Delivery`]: one published frame, serialized once and shared by every subscriber.
//!
//! A publish to 1000 subscribers costs one serialization and 1000 reference-count
//! increments: the text is held as `Utf8Bytes` (a `Bytes` underneath), which the socket
//! writer hands to tungstenite without copying.
//!
//! A channel publish keeps only the text (plus its offset and epoch): sockets send the
//! text and never look at the envelope, and a history entry that holds a `Value` tree
//! costs a dozen frees when it is evicted (13 % of the broker's CPU at one subscriber,
//! profiled). The envelope is parsed back from the text the first time an in-process
//! subscriber asks for it, once per delivery.

use crate::frame::{Envelope, FrameType};
use serde_json::Value;
use std::sync::{Arc, OnceLock};
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// A frame ready to send: the envelope and its JSON text. Cloning is one atomic increment.
#[derive(Clone, Debug)]
pub struct Delivery(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    text: Utf8Bytes,
    offset: Option<u64>,
    epoch: Option<String>,
    /// Set at once by [`Delivery::new`]; parsed from `text` on first use otherwise.
    envelope: OnceLock<Envelope>,
}

impl Delivery {
    /// Serializes `envelope` once and keeps it.
    pub fn new(envelope: Envelope) -> Self {
        let text = Utf8Bytes::from(envelope.to_text());
        Delivery(Arc::new(Inner {
            text,
            offset: envelope.offset,
            epoch: envelope.epoch.clone(),
            envelope: OnceLock::from(envelope),
        }))
    }

    /// Serializes `envelope` once and drops it: [`Delivery::envelope`] parses the text
    /// back when asked. For the fan-out, where sockets need only the text.
    pub(crate) fn text_only(mut envelope: Envelope) -> Self {
        let text = Utf8Bytes::from(envelope.to_text());
        Delivery(Arc::new(Inner {
            text,
            offset: envelope.offset,
            epoch: envelope.epoch.take(),
            envelope: OnceLock::new(),
        }))
    }

    /// A frame already serialized by its maker, with the offset and epoch it carries
    /// when published on a channel: the text is sent as it is, the envelope parsed
    /// only on demand.
    pub(crate) fn from_text(text: String, offset: Option<u64>, epoch: Option<String>) -> Self {
        Delivery(Arc::new(Inner {
            text: Utf8Bytes::from(text),
            offset,
            epoch,
            envelope: OnceLock::new(),
        }))
    }

    /// The envelope, for in-process subscribers.
    pub fn envelope(&self) -> &Envelope {
        self.0.envelope.get_or_init(|| {
            // The text is this crate's own serialization of an `Envelope`, so it parses
            // back to an equal one; the fallback only keeps a bug from becoming a panic.
            serde_json::from_str(self.0.text.as_str())
                .unwrap_or_else(|_| Envelope::new(FrameType::System, Value::Null))
        })
    }

    /// The channel offset the frame was given (`None` off a channel).
    pub fn offset(&self) -> Option<u64> {
        self.0.offset
    }

    /// The channel epoch the offset belongs to (`None` off a channel).
    pub fn epoch(&self) -> Option<&str> {
        self.0.epoch.as_deref()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_only_delivery_parses_back_to_the_same_envelope() {
        let mut env = Envelope::new(
            FrameType::Message,
            serde_json::json!({"p": "é\"\n", "n": -3, "f": 0.1, "big": u64::MAX, "a": [null]}),
        );
        env.room = Some("r".into());
        env.channel = Some("c".into());
        env.offset = Some(7);
        env.epoch = Some("e-1".into());
        env.ts = Some(crate::frame::now_ts());
        let lazy = Delivery::text_only(env.clone());
        let eager = Delivery::new(env.clone());
        assert_eq!(lazy.text(), eager.text());
        assert_eq!((lazy.offset(), lazy.epoch()), (Some(7), Some("e-1")));
        assert_eq!(lazy.envelope(), &env);
        assert_eq!(eager.envelope(), &env);
    }
}
