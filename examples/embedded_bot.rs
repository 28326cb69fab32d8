//! An agent embedded in the broker's process: it uses the [`hivebus::Bus`] API directly,
//! the same API a WebSocket session uses, with no socket in between. It joins
//! `bip-43:*` and logs every frame published in the room, while the broker serves remote
//! sessions on a high port as usual.
//!
//! ```text
//! cargo run --example embedded_bot
//! cargo run --example bot -- publish bip-43:general '{"text":"hi"}'   # in another shell
//! ```

use hivebus::{Bus, Pattern, PeerInfo};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().init();
    let bus = Bus::new(Default::default())?;
    let info = PeerInfo {
        role: "observer".into(),
        name: Some("embedded-logger".into()),
        ..Default::default()
    };
    let (member, mut inbox) = bus.connect(info);
    member.join(&Pattern::parse("bip-43:*")?, &Default::default())?;
    tokio::spawn(async move {
        while let Some(d) = inbox.recv().await {
            let e = d.envelope();
            tracing::info!(
                channel = ?e.channel, offset = ?e.offset, from = ?e.from, kind = e.kind.as_str(),
                "{}", e.payload
            );
        }
    });
    let (listener, _) =
        hivebus::server::port::bind("127.0.0.1".parse()?, hivebus::server::port::Want::Any).await?;
    let addr = listener.local_addr()?;
    let port_file = hivebus::server::port::port_file(std::path::Path::new("."));
    hivebus::server::port::write_port_file(&port_file, addr.port())?;
    tracing::info!("broker with embedded bot on ws://{addr}/");
    hivebus::server::run(
        listener,
        bus,
        Default::default(),
        Default::default(),
        tokio::signal::ctrl_c(),
    )
    .await?;
    let _ = std::fs::remove_file(port_file);
    Ok(())
}
