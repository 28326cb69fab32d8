//! A WebSocket bot: tails channels, publishes, reads history. Finds the broker through
//! `HIVE_WS_PORT` or `.hive/port`.
//!
//! ```text
//! cargo run --example bot -- tail 'bip-43:*'
//! cargo run --example bot -- publish bip-43:general '{"text":"hello"}'
//! cargo run --example bot -- history bip-43:general
//! ```

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
        _ => {
            eprintln!("usage: bot tail <pattern> | publish <room:channel> <json> | history <room:channel>");
            std::process::exit(2);
        }
    }
    client.close().await;
    Ok(())
}
