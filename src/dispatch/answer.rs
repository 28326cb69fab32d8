//! What an applied frame is acknowledged with: the `result` of its REPLY, either a
//! command's value or where a publish landed.
//!
//! A publish's answer is written straight from the address and the delivery, without
//! building a `Value` map: it is on the publisher's hot path.

use crate::address::Address;
use crate::bus::Delivery;
use serde::ser::{SerializeStruct, Serializer};
use serde::Serialize;
use serde_json::Value;

/// The `result` of the REPLY to an applied frame.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Answer {
    /// A command's or operator's result.
    Value(Value),
    /// A publish: `{address, epoch, offset}`.
    Published(Published),
}

/// Where a publish landed.
#[derive(Debug)]
pub struct Published {
    /// The address published to.
    pub addr: Address,
    /// The stamped frame.
    pub delivery: Delivery,
}

impl Serialize for Published {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Keys in the sorted order serde_json gives the `Value` map this replaced.
        let mut m = s.serialize_struct("Published", 3)?;
        m.serialize_field("address", &AddressText(&self.addr))?;
        m.serialize_field("epoch", &self.delivery.epoch())?;
        m.serialize_field("offset", &self.delivery.offset())?;
        m.end()
    }
}

/// An address as a JSON string, formatted straight into the output.
struct AddressText<'a>(&'a Address);

impl Serialize for AddressText<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Envelope, FrameType};
    use serde_json::json;

    #[test]
    fn a_publish_is_acknowledged_with_address_epoch_and_offset() {
        let mut env = Envelope::new(FrameType::Message, json!({"x": 1}));
        env.offset = Some(5);
        env.epoch = Some("e-1".into());
        let p = Published {
            addr: Address::new("r", "c").unwrap(),
            delivery: Delivery::new(env),
        };
        let want = json!({"address": "r:c", "offset": 5, "epoch": "e-1"});
        assert_eq!(
            serde_json::to_string(&Answer::Published(p)).unwrap(),
            want.to_string()
        );
    }
}
