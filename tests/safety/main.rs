//! Integration tests of the safety layer and access control: one binary, modules by
//! concept. Every test runs a real server on 127.0.0.1:0 (or 0.0.0.0:0 for remote
//! mode, reached over loopback) and talks to it over real WebSockets.

mod audit;
mod auth;
mod corpus;
mod docs;
mod harness;
mod hostile;
mod limits;
mod monitor;
mod policy;
mod regressions;
mod roles;
mod routing;
mod signatures;
mod tls;
mod tracelog;
