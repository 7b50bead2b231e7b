//! The server side of a TLS handshake, under a deadline.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// Time a client has from accept to a finished TLS handshake. Real clients need one or
/// two round trips; this bounds half-open handshakes and clients that send nothing.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a TLS connection ended before it carried anything. The client's doing (garbage,
/// a certificate it refused, silence); nothing to retry on the node's side.
#[derive(Debug, thiserror::Error)]
pub enum TlsAcceptError {
    #[error("tls handshake not finished within {} s", TLS_HANDSHAKE_TIMEOUT.as_secs())]
    Timeout,
    #[error("tls handshake failed: {0}")]
    Failed(std::io::Error),
}

/// Runs the handshake of `stream` with `config`, within [`TLS_HANDSHAKE_TIMEOUT`].
pub async fn handshake<S>(
    config: Arc<rustls::ServerConfig>,
    stream: S,
) -> Result<TlsStream<S>, TlsAcceptError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    tokio::time::timeout(
        TLS_HANDSHAKE_TIMEOUT,
        TlsAcceptor::from(config).accept(stream),
    )
    .await
    .map_err(|_| TlsAcceptError::Timeout)?
    .map_err(TlsAcceptError::Failed)
}
