//! RTMP: publishing into streams and playing them (`rtmp://HOST/static/NAME`).

pub mod client;
pub mod flv;
pub mod guard;
pub mod handshake;
pub mod server;
