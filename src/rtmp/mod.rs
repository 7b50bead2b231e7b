//! RTMP: publishing into streams and playing them (`rtmp://HOST/static/NAME`).

pub mod carriage;
pub mod client;
mod ephemeral;
pub mod error;
pub mod flv;
pub mod guard;
pub mod handshake;
pub mod names;
mod play;
mod publish;
pub mod redirect;
pub mod server;
pub mod shared;
