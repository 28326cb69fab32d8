//! A WebSocket bot: tails channels, publishes, reads history. Finds the broker through
//! `HIVE_WS_PORT` or `.hive/port`.
//!
//! ```text
//! cargo run --example bot -- tail 'bip-43:*'
//! cargo run --example bot -- publish bip-43:general '{"text":"hello"}'
//! cargo run --example bot -- history bip-43:general
//! cargo run --example bot -- recover bip-43:general 1 [e-...]   # what was published after offset 1
//! ```
//!
//! `recover` joins with `{"recover": {"offset", "epoch"}}` (docs/PROTOCOL.md, section 9),
//! as a client does after a reconnect; without an epoch it uses the channel's current
//! one (read with `history`), which is right unless the channel was recreated.

use hivebus::client::{Client, Hello};
use serde_json::{json, Value};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let port = hivebus::server::port::discover(std::path::Path::new("."))?;
    let url = format!("ws://127.0.0.1:{port}/");
    let mut hello = Hello::role("client");
    hello.name = Some("example-bot".into());
    let mut client = Client::connect(&url, hello).await?;
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["tail", address] => {
            let joined = client.join(address).await?;
            eprintln!("joined {} as {}", joined["subscription"], client.session());
            while let Some(frame) = client.next_event().await {
                println!("{}", frame.to_text());
            }
        }
        ["publish", address, payload] => {
            let payload: Value =
                serde_json::from_str(payload).unwrap_or_else(|_| json!({"text": payload}));
            client.join(address).await?;
            let pos = client.publish(address, payload).await?;
            println!("published at offset {} (epoch {})", pos.offset, pos.epoch);
        }
        ["history", address] => {
            let page = client
                .command("history", json!({"address": address}))
                .await?;
            for m in page["messages"].as_array().into_iter().flatten() {
                println!("{m}");
            }
            eprintln!(
                "offset {} epoch {} complete {}",
                page["offset"], page["epoch"], page["complete"]
            );
        }
        ["recover", address, offset, rest @ ..] => {
            let offset: u64 = offset.parse()?;
            let epoch = match rest {
                [e] => e.to_string(),
                _ => {
                    let page = client
                        .command("history", json!({"address": address, "limit": 1}))
                        .await?;
                    page["epoch"].as_str().unwrap_or_default().to_owned()
                }
            };
            let r = client
                .command(
                    "join",
                    json!({"address": address, "recover": {"offset": offset, "epoch": epoch}}),
                )
                .await?;
            for m in r["messages"].as_array().into_iter().flatten() {
                println!("{m}");
            }
            eprintln!(
                "recovered: {} ({} message(s) after offset {offset}, epoch {epoch})",
                r["recovered"],
                r["messages"].as_array().map_or(0, Vec::len)
            );
        }
        _ => {
            eprintln!("usage: bot tail <pattern> | publish <room:channel> <json> | history <room:channel> | recover <room:channel> <offset> [epoch]");
            std::process::exit(2);
        }
    }
    client.close().await;
    Ok(())
}
