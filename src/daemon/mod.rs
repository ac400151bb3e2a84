//! The long-lived daemon: protocol, framing, server, client, lifecycle, watched fingerprints.

pub mod background;
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
pub mod shared;
pub mod watch_sets;
pub mod watch_stream;
#[cfg(target_os = "linux")]
pub mod watcher;
#[cfg(not(target_os = "linux"))]
#[path = "watcher_elsewhere.rs"]
pub mod watcher;
pub mod watches;
