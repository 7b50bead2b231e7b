//! flotilla: a clustered live-media server with Flussonic-compatible configuration, built
//! like an Erlang/OTP system.
//!
//! This crate is the node: configuration, the CLI, the IO edges (HTTP, RTMP, the QUIC
//! mesh, media) and the composition root. The supervision layer is `flotilla-otp`; the
//! cluster's sans-IO decisions and the actors hosting them are `flotilla-cluster`. See
//! docs/ARCHITECTURE.md for the map.

// Unsafe code is denied everywhere but the SRT binding (`srt::ffi`, `srt::listener`'s
// handshake hook), which calls libsrt and says why each call is sound.
#![deny(unsafe_code)]

pub mod accept;
pub mod auth;
pub mod balancer;
pub mod bench;
pub mod build_info;
pub mod config;
pub mod console;
pub mod defaults;
pub mod error;
pub mod events;
pub mod format;
pub mod geoip;
pub mod http;
pub mod ingest;
pub mod live;
pub mod log_limit;
pub mod logfile;
pub mod logging;
pub mod media;
pub mod mesh;
pub mod metrics;
pub mod node;
pub mod node_core;
pub mod plan;
pub mod proxy_protocol;
pub mod relay;
pub mod reload;
pub mod rtmp;
pub mod sessions;
pub mod shell;
pub mod source;
pub mod srt;
pub mod stats;
pub mod tls;
pub mod webrtc;
