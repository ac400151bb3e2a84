//! The long-lived daemon: protocol, framing, server, client, lifecycle, watched fingerprints.

pub mod client;
pub mod compiles;
pub mod fingerprints;
pub mod frame;
pub mod handler;
pub mod index;
pub mod lifecycle;
pub mod protocol;
pub mod server;
pub mod sessions;
pub mod watcher;
