//! `input srt://HOST:PORT?streamid=…&passphrase=…&latency=MS`: the node calls an SRT
//! listener (an encoder or a gateway in listener mode) and takes its MPEG-TS.
//!
//! The URL's query keys are libsrt's URI keys (what srt-live-transmit and ffmpeg take):
//! `streamid`, `passphrase` (10 to 79 bytes; never shown in logs or the API), `latency`
//! in milliseconds (the receiver's TSBPD delay; libsrt's default 120 ms otherwise).

use std::net::SocketAddr;

use tokio::sync::{mpsc, oneshot};

use super::ffi::{self, Socket, SrtError};
use std::sync::Arc;

use super::{
    CONNECT_TIMEOUT, PASSPHRASE_BYTES, PEER_IDLE_TIMEOUT, RECEIVE_QUEUE_MESSAGES, Received,
    receive_loop,
};

/// Longest `latency` accepted: a minute of buffer is a misconfiguration.
pub const MAX_LATENCY_MS: u32 = 60_000;

/// A parsed `srt://` input URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrtUrl {
    /// `host:port`.
    pub address: String,
    pub stream_id: Option<String>,
    pub passphrase: Option<String>,
    pub latency_ms: Option<u32>,
}

impl SrtUrl {
    /// Parses `srt://HOST:PORT[?KEY=VALUE&…]`; the error says what is wrong (the
    /// config's author is at fault).
    pub fn parse(url: &str) -> Result<SrtUrl, String> {
        let rest = url
            .strip_prefix("srt://")
            .ok_or("an SRT input is srt://HOST:PORT")?;
        let (address, query) = rest.split_once('?').unwrap_or((rest, ""));
        let address = address.trim_end_matches('/');
        let (host, port) = address
            .rsplit_once(':')
            .ok_or("an SRT input needs a port: srt://HOST:PORT")?;
        if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(format!("`{address}` is not HOST:PORT"));
        }
        let mut parsed = SrtUrl {
            address: address.to_string(),
            stream_id: None,
            passphrase: None,
            latency_ms: None,
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = crate::media::input::percent_decoded(value);
            match key {
                "streamid" => parsed.stream_id = Some(value),
                "passphrase" => {
                    if !PASSPHRASE_BYTES.contains(&value.len()) {
                        return Err("an SRT passphrase is 10 to 79 bytes".into());
                    }
                    parsed.passphrase = Some(value);
                }
                "latency" => {
                    let latency = value
                        .parse::<u32>()
                        .ok()
                        .filter(|ms| *ms <= MAX_LATENCY_MS)
                        .ok_or(format!("latency is 0 to {MAX_LATENCY_MS} ms"))?;
                    parsed.latency_ms = Some(latency);
                }
                other => {
                    return Err(format!(
                        "SRT URL key `{other}` is not supported (streamid, passphrase, latency are)"
                    ));
                }
            }
        }
        Ok(parsed)
    }
}

/// A connected SRT caller: the listener's TS bytes as they arrive. Dropping it closes the
/// connection (and so ends its receiving thread).
#[derive(Debug)]
pub struct SrtCaller {
    receiver: mpsc::Receiver<Received>,
    socket: Arc<Socket>,
}

impl Drop for SrtCaller {
    fn drop(&mut self) {
        self.socket.close_now();
    }
}

impl SrtCaller {
    /// Resolves and connects (within [`CONNECT_TIMEOUT`]); then a thread receives.
    pub async fn open(url: &SrtUrl) -> Result<SrtCaller, SrtError> {
        ffi::available()?;
        let address: SocketAddr = tokio::net::lookup_host(&url.address)
            .await
            .map_err(|e| SrtError::Call(format!("{}: {e}", url.address)))?
            .next()
            .ok_or_else(|| SrtError::Call(format!("{} resolves to no address", url.address)))?;
        let (sender, receiver) = mpsc::channel(RECEIVE_QUEUE_MESSAGES);
        let (connected, outcome) = oneshot::channel();
        let url = url.clone();
        std::thread::Builder::new()
            .name("srt-caller".into())
            .spawn(move || match connect(&url, address) {
                Ok(socket) => {
                    let socket = Arc::new(socket);
                    if connected.send(Ok(socket.clone())).is_ok() {
                        receive_loop(&socket, sender);
                    }
                }
                Err(error) => {
                    let _ = connected.send(Err(error));
                }
            })
            .map_err(|e| SrtError::Call(format!("no thread for the SRT input: {e}")))?;
        match tokio::time::timeout(CONNECT_TIMEOUT * 2, outcome).await {
            Ok(Ok(Ok(socket))) => Ok(SrtCaller { receiver, socket }),
            Ok(Ok(Err(error))) => Err(error),
            Ok(Err(_)) => Err(SrtError::Call("the SRT input's thread ended".into())),
            Err(_) => Err(SrtError::Call(format!(
                "no connection within {:?}",
                CONNECT_TIMEOUT * 2
            ))),
        }
    }

    /// The next TS bytes; an error once the connection ended (why).
    pub async fn next(&mut self) -> Result<bytes::Bytes, String> {
        match self.receiver.recv().await {
            Some(Received::Bytes(bytes)) => Ok(bytes),
            Some(Received::Ended(why)) => Err(why),
            None => Err("the SRT connection ended".into()),
        }
    }
}

fn connect(url: &SrtUrl, address: SocketAddr) -> Result<Socket, SrtError> {
    let socket = Socket::new()?;
    socket.set_i32(ffi::SRTO_CONNTIMEO, ffi::millis(CONNECT_TIMEOUT))?;
    socket.set_i32(ffi::SRTO_PEERIDLETIMEO, ffi::millis(PEER_IDLE_TIMEOUT))?;
    if let Some(latency) = url.latency_ms {
        socket.set_i32(ffi::SRTO_LATENCY, latency as i32)?;
    }
    if let Some(stream_id) = &url.stream_id {
        socket.set_bytes(ffi::SRTO_STREAMID, stream_id.as_bytes())?;
    }
    if let Some(passphrase) = &url.passphrase {
        socket.set_bytes(ffi::SRTO_PASSPHRASE, passphrase.as_bytes())?;
    }
    socket.connect(address)?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_libsrt_uri_keys_and_refuses_others() {
        let url = SrtUrl::parse(
            "srt://enc.example:9000?streamid=%23!%3A%3Ar%3Dcam&passphrase=0123456789&latency=200",
        )
        .unwrap();
        assert_eq!(url.address, "enc.example:9000");
        assert_eq!(url.stream_id.as_deref(), Some("#!::r=cam"));
        assert_eq!(url.passphrase.as_deref(), Some("0123456789"));
        assert_eq!(url.latency_ms, Some(200));
        assert!(SrtUrl::parse("srt://enc.example").is_err());
        assert!(SrtUrl::parse("srt://:9000").is_err());
        assert!(SrtUrl::parse("srt://enc:9000?passphrase=short").is_err());
        assert!(SrtUrl::parse("srt://enc:9000?mode=listener").is_err());
        assert!(SrtUrl::parse("srt://enc:9000?latency=999999").is_err());
    }
}
