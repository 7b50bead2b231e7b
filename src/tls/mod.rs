//! TLS for the `https` and `rtmps` listeners: rustls over ring, the same crypto provider
//! as the cluster mesh (no second TLS stack in the binary).
//!
//! One certificate identity per node (`tls_certificate`, `tls_key`: PEM files, the chain
//! leaf first). The files are read at start — a missing or broken file stops the node with
//! the path and the reason — and read again when they change on disk (polled every
//! [`store::CERTIFICATE_POLL_INTERVAL`]) or on SIGHUP, which is how certbot and
//! cert-manager hand over a renewed certificate. A reload swaps the identity for the next
//! handshakes only: connections already open keep their session and are never dropped. A
//! renewed pair that does not load (half-written file, key of another certificate) is
//! refused with a warning and the previous identity stays in service.
//!
//! `https` offers ALPN `h2` and `http/1.1` (hyper serves both, as on plain `http`);
//! `rtmps` is RTMP inside TLS (what `rtmps://` URLs of ffmpeg and OBS speak). A client has
//! [`accept::TLS_HANDSHAKE_TIMEOUT`] to finish its handshake; garbage ends the connection
//! at the first record.

pub mod accept;
pub mod dev_cert;
pub mod identity;
pub mod store;

pub use accept::{TLS_HANDSHAKE_TIMEOUT, TlsAcceptError, handshake};
pub use identity::{TlsFileError, load_identity};
pub use store::CertificateStore;
