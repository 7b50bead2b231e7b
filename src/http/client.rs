//! The node's own HTTP calls out (authorization backends, event webhooks): one short
//! HTTP/1.1 connection per call, over TLS for `https://` URLs, its connection task
//! spawned on the node's runtime (it ends with the response, or when the caller drops
//! the sender). Deadlines are the caller's.
//!
//! `https://` servers are verified against the host's trusted roots (the system store,
//! as `rustls-native-certs` finds it: `/etc/ssl/certs`, or `SSL_CERT_FILE` /
//! `SSL_CERT_DIR`), loaded at the first https call of a client and kept.

use std::sync::{Arc, OnceLock};

use flotilla_otp::rt::Runtime;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// An `http://` or `https://` URL the node calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundUrl {
    /// `https`.
    pub tls: bool,
    /// The host, for the TLS server name (brackets off an IPv6 address).
    pub host: String,
    /// `host:port`, as dialled and sent in Host.
    pub authority: String,
    /// Path and the URL's own query.
    pub path_and_query: String,
    /// The URL as configured, for logs.
    pub text: String,
}

/// Why a URL is not usable (the operator's config).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundUrlError {
    #[error("`{0}` is not a URL")]
    NotAUrl(String),
    #[error("`{0}`: only http:// and https:// URLs are supported")]
    Scheme(String),
}

impl OutboundUrl {
    pub fn parse(text: &str) -> Result<OutboundUrl, OutboundUrlError> {
        let url = url::Url::parse(text).map_err(|_| OutboundUrlError::NotAUrl(text.into()))?;
        let tls = match url.scheme() {
            "http" => false,
            "https" => true,
            _ => return Err(OutboundUrlError::Scheme(text.into())),
        };
        let (host, dialled) = match url.host() {
            Some(url::Host::Ipv6(ip)) => (ip.to_string(), format!("[{ip}]")),
            Some(host) => (host.to_string(), host.to_string()),
            None => return Err(OutboundUrlError::NotAUrl(text.into())),
        };
        let port = url.port_or_known_default().unwrap_or(80);
        let mut path_and_query = url.path().to_string();
        if let Some(query) = url.query() {
            path_and_query.push('?');
            path_and_query.push_str(query);
        }
        Ok(OutboundUrl {
            tls,
            host,
            authority: format!("{dialled}:{port}"),
            path_and_query,
            text: text.into(),
        })
    }
}

/// Makes the node's outgoing connections. Cheap to clone.
#[derive(Clone)]
pub struct Outbound {
    runtime: Runtime,
    /// The TLS client of https calls, built at the first one.
    tls: Arc<OnceLock<Result<TlsConnector, String>>>,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Outbound")
    }
}

impl Outbound {
    pub fn new(runtime: Runtime) -> Outbound {
        Outbound {
            runtime,
            tls: Arc::default(),
        }
    }

    /// A connection to `url`'s server ready for one request; the error says what
    /// failed, for the caller's log. `task` names the connection's task.
    pub async fn connect<B>(
        &self,
        url: &OutboundUrl,
        task: &'static str,
    ) -> Result<SendRequest<B>, String>
    where
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let stream = TcpStream::connect(&url.authority)
            .await
            .map_err(|error| format!("cannot connect: {error}"))?;
        let _ = stream.set_nodelay(true);
        if !url.tls {
            return self.handshake(TokioIo::new(stream), task).await;
        }
        let connector = self
            .tls
            .get_or_init(tls_connector)
            .as_ref()
            .map_err(Clone::clone)?;
        let name = ServerName::try_from(url.host.clone())
            .map_err(|_| format!("`{}` is not a TLS server name", url.host))?;
        let stream = connector
            .connect(name, stream)
            .await
            .map_err(|error| format!("TLS: {error}"))?;
        self.handshake(TokioIo::new(stream), task).await
    }

    async fn handshake<B, I>(&self, io: I, task: &'static str) -> Result<SendRequest<B>, String>
    where
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let (sender, connection) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|error| error.to_string())?;
        self.runtime.spawn(task, async move {
            let _ = connection.await;
        });
        Ok(sender)
    }
}

/// The TLS client: the host's trusted roots, ring, TLS 1.2 and 1.3.
fn tls_connector() -> Result<TlsConnector, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(format!(
            "no trusted root certificates found on this host ({} errors): install ca-certificates",
            found.errors.len()
        ));
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|error| error.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_their_query_and_default_port() {
        let url = OutboundUrl::parse("http://auth.local/check?site=a").expect("parses");
        assert_eq!(url.authority, "auth.local:80");
        assert_eq!(url.path_and_query, "/check?site=a");
        assert!(!url.tls);
        let url = OutboundUrl::parse("https://hooks.example.com/e").expect("parses");
        assert_eq!(
            (url.authority.as_str(), url.tls),
            ("hooks.example.com:443", true)
        );
        let url = OutboundUrl::parse("https://[::1]:8443/").expect("parses");
        assert_eq!(
            (url.authority.as_str(), url.host.as_str()),
            ("[::1]:8443", "::1")
        );
        assert!(matches!(
            OutboundUrl::parse("ftp://auth.local/"),
            Err(OutboundUrlError::Scheme(_))
        ));
        assert!(OutboundUrl::parse("auth.local").is_err());
    }
}
