//! The compile cache: the artifact store (also a key-value face: `Lookup`/`Store`,
//! `zccache kv`) and C/C++ compiles served from it — argument classification, compiler
//! identity, direct-mode header manifests, preprocessor mode where those cannot be trusted,
//! compile-once, and running the real compiler.

pub mod args;
pub mod artifact;
mod blob_codec;
mod blob_memo;
pub mod colour;
pub mod compile;
pub mod compile_link;
pub mod compiler;
pub mod depfile;
mod headers;
pub mod inflight;
pub mod invoke;
mod keying;
pub mod limits;
pub mod link;
pub mod link_args;
mod manifest;
pub mod miss_reason;
mod modes;
mod preprocessed;
pub mod profile;
mod regular;
pub mod remote;
mod remote_backends;
pub mod request;
pub mod rust;
pub mod space;
pub mod store;
pub mod system_dirs;
pub mod user_config;
