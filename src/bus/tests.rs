//! Unit tests of the bus registry: sweeping and the publish/sweep race.

use super::*;
use crate::frame::FrameType;

fn bus(idle_secs: u64) -> Bus {
    Bus::new(BusConfig {
        channel_idle_secs: idle_secs,
        ..Default::default()
    })
    .unwrap()
}

#[test]
fn a_publish_racing_a_sweep_lands_on_the_recreated_channel() {
    let bus = bus(0);
    let addr = Address::parse("r:c").unwrap();
    let held = bus.channel_for_publish(&addr).unwrap();
    let old_epoch = held.snapshot().position.epoch;
    assert_eq!(bus.sweep(), 1, "empty, idle, no history: swept");
    let env = Envelope::new(FrameType::Message, serde_json::json!({"n": 1}));
    let d = bus.publish_on(&held, env, None, false, None).unwrap();
    assert_eq!(d.envelope().offset, Some(1));
    assert_ne!(d.envelope().epoch.as_deref(), Some(old_epoch.as_str()));
    assert_eq!(bus.history(&addr, None, 10).unwrap().messages.len(), 1);
}

#[test]
fn sweep_keeps_channels_with_history_subscribers_or_persistence() {
    let bus = bus(0);
    let (m, _inbox) = bus.connect(PeerInfo::default());
    m.join(&Pattern::parse("r:joined").unwrap(), &Default::default())
        .unwrap();
    bus.publish(
        &Address::parse("r:history").unwrap(),
        Envelope::new(FrameType::Message, serde_json::Value::Null),
    )
    .unwrap();
    bus.create_channel(&Address::parse("p:kept").unwrap(), None)
        .unwrap();
    bus.channel_for_publish(&Address::parse("r:empty").unwrap())
        .unwrap();
    assert_eq!(bus.sweep(), 1);
    let left: Vec<String> = bus
        .list_channels(None)
        .into_iter()
        .map(|c| c.address)
        .collect();
    assert_eq!(left, vec!["p:kept", "r:history", "r:joined"]);
    drop(m);
    assert_eq!(bus.sweep(), 1, "r:joined goes once its subscriber does");
    assert_eq!(bus.list_rooms(), vec!["p", "r"]);
}
