//! Integration tests of the bus and broker: one binary, modules by concept. Every test
//! runs a real server on 127.0.0.1:0 and talks to it over real WebSockets.

// Test modules share helpers through `pub` items of a private module.
#![allow(unreachable_pub)]

mod bad_input;
mod closing;
mod commands;
mod conformance;
mod harness;
mod http;
mod layers;
mod messaging;
mod recovery;
mod telemetry;
mod transport;
