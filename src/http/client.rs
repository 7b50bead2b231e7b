//! One short HTTP/1.1 client connection for the node's own calls out (authorization
//! backends, event webhooks): connected, handshaken, its connection task spawned on the
//! node's runtime (it ends with the response, or when the caller drops the sender).
//! Deadlines are the caller's.

use flotilla_otp::rt::Runtime;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// A connection to `authority` (`host:port`) ready for one request; the error says what
/// failed, for the caller's log.
pub async fn connect<B>(
    authority: &str,
    runtime: &Runtime,
    task: &'static str,
) -> Result<SendRequest<B>, String>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = TcpStream::connect(authority)
        .await
        .map_err(|error| format!("cannot connect: {error}"))?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|error| error.to_string())?;
    runtime.spawn(task, async move {
        let _ = connection.await;
    });
    Ok(sender)
}
