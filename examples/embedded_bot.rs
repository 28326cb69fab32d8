//! An agent embedded in the broker's process: it uses the [`hivebus::Bus`] API directly,
//! the same API a WebSocket session uses, with no socket in between. It joins
//! `bip-43:*` and logs every frame published in the room, while the broker serves remote
//! sessions on a high port as usual.
//!
//! By default it writes no port file: `.hive/port` belongs to the broker that holds
//! `.hive/broker.lock` (`hive broker`), and an embedded broker must not take it over.
//! With `--dir D` it claims `D/.hive/` like any broker (refused while another broker
//! holds it) and writes `D/.hive/port`, removed on exit.
//!
//! ```text
//! cargo run --example embedded_bot -- --dir /tmp/embedded
//! HIVE_WS_PORT=$(cat /tmp/embedded/.hive/port) cargo run --example bot -- publish bip-43:general '{"text":"hi"}'
//! ```

use clap::Parser;
use hivebus::server::state_dir::Claim;
use hivebus::{Bus, Pattern, PeerInfo};
use std::io::IsTerminal;

#[derive(Parser)]
#[command(about = "a broker with an agent embedded in the same process")]
struct Args {
    /// Claim `<DIR>/.hive/` and write its port file there (default: no port file).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_ansi(std::io::stdout().is_terminal())
        .init();
    let args = Args::parse();
    // Claimed before anything listens: a second broker on the directory stops here.
    let mut claim = match &args.dir {
        Some(d) => match Claim::acquire(d) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::error!("{e}");
                std::process::exit(2);
            }
        },
        None => None,
    };
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
    if let Some(c) = claim.as_mut() {
        c.publish(addr.port())?;
    }
    // Ctrl-C handlers first, then the line that says we are up: a signal sent as soon
    // as the line appears stops us cleanly instead of killing the process.
    let stop = hivebus::broker::shutdown_signal();
    tracing::info!("broker with embedded bot on ws://{addr}/");
    hivebus::server::run(listener, bus, Default::default(), Default::default(), stop).await?;
    // Dropping the claim removes our port file (and only ours).
    drop(claim);
    Ok(())
}
