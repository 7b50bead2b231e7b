//! HTTP edge: listeners, the connection loop, and the routers they serve.
//!
//! Each `http` and `https` directive becomes one listener (`transport`: TLS, PROXY
//! headers, the https redirect). A listener with `api false` serves media
//! only; the others serve the API too. Connections are handled by hyper directly (not
//! `axum::serve`) so that the header deadline and size limits below can be set.

pub mod access;
pub mod access_log;
pub mod actors;
pub mod api;
pub mod balancer_lane;
pub mod client;
pub mod client_ip;
pub mod cluster;
pub mod cmaf;
pub mod cors;
pub mod fast_path;
pub mod media;
pub mod metrics;
pub mod opening;
pub mod rewind;
pub mod sendfile;
pub mod server;
pub mod shed;
pub mod sources;
pub mod streams;
pub mod token_urls;
pub mod trace;
pub mod transport;
pub mod webrtc;

pub use server::{HttpLimits, serve};
