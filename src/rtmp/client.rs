//! flotilla's own RTMP client (rml_rtmp's client session over tokio): publishes frames or
//! plays a stream. Used by the self-contained tests (no ffmpeg needed) and the benchmark.
//!
//! A player follows the de-facto RTMP 302 (an error `onStatus` whose `ex.redirect` names
//! another tcUrl; see `redirect::redirect_status`) once: rml_rtmp's session reports only the
//! status code, so until playing starts the same bytes also pass a second chunk decoder
//! that reads the `ex` object.

use std::time::Duration;

use rml_rtmp::chunk_io::ChunkDeserializer;
use rml_rtmp::handshake::PeerType;
use rml_rtmp::messages::RtmpMessage;
use rml_rtmp::rml_amf0::Amf0Value;
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult, PublishRequestType,
};
use rml_rtmp::time::RtmpTimestamp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::error::ClientError;
use super::flv::{self, Depacketizer, Inbound};
use crate::media::frame::Frame;

/// Deadline of each step of connecting (handshake, connect, publish/play).
pub const STEP_TIMEOUT: Duration = Duration::from_secs(10);
/// Redirects a player follows: one, so that a viewer is never bounced between servers.
pub const MAX_REDIRECTS: usize = 1;
/// Longest redirect URL accepted from a server.
const MAX_REDIRECT_URL_BYTES: usize = 1024;

/// A connected RTMP client.
pub struct RtmpClient {
    socket: TcpStream,
    session: ClientSession,
    buffer: Vec<u8>,
    events: Vec<ClientSessionEvent>,
    /// `host:port` this client is connected to.
    server: String,
    /// Reads the server's commands for a redirect, until playing or publishing starts.
    watch: Option<ChunkDeserializer>,
    /// The tcUrl a server redirected this client to.
    redirected_to: Option<String>,
}

impl RtmpClient {
    /// Connects to `address` and the application `app` (`static`, `live`, …).
    pub async fn connect(address: &str, app: &str) -> Result<RtmpClient, ClientError> {
        let mut socket = tokio::time::timeout(STEP_TIMEOUT, TcpStream::connect(address))
            .await
            .map_err(|_| ClientError::ConnectTimeout)??;
        let _ = socket.set_nodelay(true);
        let remaining = tokio::time::timeout(
            STEP_TIMEOUT,
            super::handshake::run(&mut socket, PeerType::Client),
        )
        .await
        .map_err(|_| ClientError::HandshakeTimeout)??;
        let (session, initial) =
            ClientSession::new(ClientSessionConfig::new()).map_err(ClientError::Request)?;
        let mut client = RtmpClient {
            socket,
            session,
            buffer: vec![0; 64 * 1024],
            events: Vec::new(),
            server: address.to_string(),
            watch: Some(ChunkDeserializer::new()),
            redirected_to: None,
        };
        client.send_results(initial).await?;
        client.feed(&remaining).await?;
        let request = client
            .session
            .request_connection(app.to_string())
            .map_err(ClientError::Request)?;
        client.send_results(vec![request]).await?;
        client
            .wait_for(|event| matches!(event, ClientSessionEvent::ConnectionRequestAccepted))
            .await?;
        Ok(client)
    }

    async fn send_results(&mut self, results: Vec<ClientSessionResult>) -> Result<(), ClientError> {
        for result in results {
            match result {
                ClientSessionResult::OutboundResponse(packet) => {
                    self.socket.write_all(&packet.bytes).await?;
                }
                ClientSessionResult::RaisedEvent(event) => self.events.push(event),
                ClientSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
        Ok(())
    }

    async fn feed(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.watch_for_redirect(bytes)?;
        let results = self
            .session
            .handle_input(bytes)
            .map_err(ClientError::Protocol)?;
        self.send_results(results).await
    }

    /// Passes `bytes` through the second decoder while it runs, noting a redirect.
    fn watch_for_redirect(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        let Some(watch) = self.watch.as_mut() else {
            return Ok(());
        };
        let mut input = bytes;
        while let Some(payload) = watch.get_next_message(input).map_err(ClientError::Chunks)? {
            input = &[];
            match payload.to_rtmp_message() {
                Ok(RtmpMessage::SetChunkSize { size }) => {
                    watch
                        .set_max_chunk_size(size as usize)
                        .map_err(ClientError::Chunks)?;
                }
                Ok(RtmpMessage::Amf0Command {
                    command_name,
                    additional_arguments,
                    ..
                }) if command_name == "onStatus" => {
                    if let Some(url) = additional_arguments.iter().find_map(redirect_of) {
                        self.redirected_to = Some(url);
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    async fn read_some(&mut self) -> Result<(), ClientError> {
        let length = self.socket.read(&mut self.buffer).await?;
        if length == 0 {
            return Err(ClientError::Closed);
        }
        let bytes = self.buffer[..length].to_vec();
        self.feed(&bytes).await
    }

    /// Reads until an event matching `wanted` arrives (or a rejection, an error, a timeout).
    async fn wait_for(
        &mut self,
        wanted: impl Fn(&ClientSessionEvent) -> bool,
    ) -> Result<ClientSessionEvent, ClientError> {
        tokio::time::timeout(STEP_TIMEOUT, async {
            loop {
                if let Some(index) = self.events.iter().position(&wanted) {
                    return Ok(self.events.remove(index));
                }
                if let Some(url) = &self.redirected_to {
                    return Err(ClientError::Redirected(url.clone()));
                }
                if let Some(rejection) = self.events.iter().find_map(rejection_of) {
                    return Err(ClientError::Rejected(rejection));
                }
                self.events.clear();
                self.read_some().await?;
            }
        })
        .await
        .map_err(|_| ClientError::Timeout)?
    }

    /// Asks to publish `key`; returns once the server accepted.
    pub async fn publish(&mut self, key: &str) -> Result<(), ClientError> {
        let request = self
            .session
            .request_publishing(key.to_string(), PublishRequestType::Live)
            .map_err(ClientError::Request)?;
        self.send_results(vec![request]).await?;
        self.wait_for(|event| matches!(event, ClientSessionEvent::PublishRequestAccepted))
            .await?;
        self.watch = None;
        Ok(())
    }

    /// Publishes the codec configuration taken from a keyframe and an audio frame.
    pub async fn publish_headers(
        &mut self,
        keyframe: &Frame,
        audio: Option<&Frame>,
    ) -> Result<(), ClientError> {
        let (video, audio) = flv::sequence_headers(Some(keyframe), audio);
        if let Some(video) = video {
            let result = self
                .session
                .publish_video_data(video, RtmpTimestamp::new(0), false)
                .map_err(ClientError::Request)?;
            self.send_results(vec![result]).await?;
        }
        if let Some(audio) = audio {
            let result = self
                .session
                .publish_audio_data(audio, RtmpTimestamp::new(0), false)
                .map_err(ClientError::Request)?;
            self.send_results(vec![result]).await?;
        }
        Ok(())
    }

    /// Publishes one frame (timestamps in ms from its dts).
    pub async fn publish_frame(&mut self, frame: &Frame) -> Result<(), ClientError> {
        for (body, offset_ms) in flv::packetize(frame) {
            let timestamp = RtmpTimestamp::new((frame.dts / 90) as u32 + offset_ms);
            let result = if frame.codec.is_video() {
                self.session.publish_video_data(body, timestamp, false)
            } else {
                self.session.publish_audio_data(body, timestamp, false)
            }
            .map_err(ClientError::Request)?;
            self.send_results(vec![result]).await?;
        }
        Ok(())
    }

    /// Asks to play `key`; returns once a server accepted, following at most
    /// [`MAX_REDIRECTS`] redirects (the same key is played at the new tcUrl).
    pub async fn play(&mut self, key: &str) -> Result<(), ClientError> {
        let mut redirects = 0;
        loop {
            let request = self
                .session
                .request_playback(key.to_string())
                .map_err(ClientError::Request)?;
            self.send_results(vec![request]).await?;
            let refused = match self
                .wait_for(|event| matches!(event, ClientSessionEvent::PlaybackRequestAccepted))
                .await
            {
                Ok(_) => {
                    self.watch = None;
                    return Ok(());
                }
                Err(refused) => refused,
            };
            let Some(tc_url) = self.redirected_to.take() else {
                return Err(refused);
            };
            if redirects == MAX_REDIRECTS {
                return Err(ClientError::TooManyRedirects(Box::new(refused)));
            }
            redirects += 1;
            let (address, app) = split_tc_url(&tc_url)?;
            *self = RtmpClient::connect(&address, &app).await?;
        }
    }

    /// The `host:port` this client is connected to (after any redirect).
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The next frame a playing client receives.
    pub async fn next_frame(
        &mut self,
        depacketizer: &mut Depacketizer,
    ) -> Result<Frame, ClientError> {
        loop {
            while let Some(event) = (!self.events.is_empty()).then(|| self.events.remove(0)) {
                let inbound = match event {
                    ClientSessionEvent::VideoDataReceived { data, timestamp } => {
                        depacketizer.video(&data, timestamp.value)
                    }
                    ClientSessionEvent::AudioDataReceived { data, timestamp } => {
                        depacketizer.audio(&data, timestamp.value)
                    }
                    _ => continue,
                }?;
                if let Inbound::Frame(frame) = inbound {
                    return Ok(frame);
                }
            }
            tokio::time::timeout(STEP_TIMEOUT, self.read_some())
                .await
                .map_err(|_| ClientError::NoMedia)??;
        }
    }

    /// Sends raw bytes, bypassing the session (for tests of the server's limits).
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        Ok(self.socket.write_all(bytes).await?)
    }

    /// Whether the server has closed the connection (reads until EOF or `within`).
    pub async fn closed_within(&mut self, within: Duration) -> bool {
        let mut sink = vec![0u8; 4096];
        tokio::time::timeout(within, async {
            loop {
                match self.socket.read(&mut sink).await {
                    Ok(0) | Err(_) => return true,
                    Ok(_) => {}
                }
            }
        })
        .await
        .unwrap_or(false)
    }
}

/// The tcUrl of an RTMP 302 status object (`ex.code` 302 with a string `ex.redirect`).
fn redirect_of(status: &Amf0Value) -> Option<String> {
    let Amf0Value::Object(properties) = status else {
        return None;
    };
    let Some(Amf0Value::Object(ex)) = properties.get("ex") else {
        return None;
    };
    match (ex.get("code"), ex.get("redirect")) {
        (Some(Amf0Value::Number(code)), Some(Amf0Value::Utf8String(url)))
            if *code == 302.0 && url.len() <= MAX_REDIRECT_URL_BYTES =>
        {
            Some(url.clone())
        }
        _ => None,
    }
}

/// `rtmp://host[:port]/app[?query]` → (`host:port`, `app[?query]`); port 1935 by default.
pub fn split_tc_url(tc_url: &str) -> Result<(String, String), ClientError> {
    let rest = tc_url
        .strip_prefix("rtmp://")
        .ok_or_else(|| ClientError::NotRtmp(tc_url.to_string()))?;
    let (authority, app) = rest.split_once('/').unwrap_or((rest, ""));
    if authority.is_empty() {
        return Err(ClientError::NoHost(tc_url.to_string()));
    }
    let has_port = match authority.rsplit_once(':') {
        Some((host, port)) => {
            port.parse::<u16>().is_ok() && (!host.contains(':') || host.ends_with(']'))
        }
        None => false,
    };
    let address = if has_port {
        authority.to_string()
    } else {
        format!("{authority}:1935")
    };
    Ok((address, app.to_string()))
}

/// The rejection an event carries, if any: a refused connect, an error status, or an
/// `_error` answer (how rml_rtmp's server refuses publish and play requests).
fn rejection_of(event: &ClientSessionEvent) -> Option<String> {
    use rml_rtmp::rml_amf0::Amf0Value;
    match event {
        ClientSessionEvent::ConnectionRequestRejected { description } => Some(description.clone()),
        ClientSessionEvent::UnhandleableOnStatusCode { code }
            if code.contains("Failed") || code.contains("BadName") || code.contains("NotFound") =>
        {
            Some(code.clone())
        }
        ClientSessionEvent::UnknownTransactionResultReceived {
            additional_values, ..
        } => additional_values.iter().find_map(|value| match value {
            Amf0Value::Object(properties) => match properties.get("code") {
                Some(Amf0Value::Utf8String(code)) => Some(code.clone()),
                _ => None,
            },
            _ => None,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_redirect_the_server_sends() {
        let status = super::super::redirect::redirect_status(
            "rtmp://127.0.0.2:1935/live?flotilla_hop=1",
            "news",
        );
        assert_eq!(
            redirect_of(&status).as_deref(),
            Some("rtmp://127.0.0.2:1935/live?flotilla_hop=1")
        );
        assert_eq!(redirect_of(&Amf0Value::Null), None);
    }

    #[test]
    fn splits_tc_urls() {
        assert_eq!(
            split_tc_url("rtmp://127.0.0.2:1936/live?flotilla_hop=1").unwrap(),
            ("127.0.0.2:1936".into(), "live?flotilla_hop=1".into())
        );
        assert_eq!(
            split_tc_url("rtmp://b.example/static").unwrap(),
            ("b.example:1935".into(), "static".into())
        );
        assert_eq!(
            split_tc_url("rtmp://[::1]:1940/live").unwrap(),
            ("[::1]:1940".into(), "live".into())
        );
        assert_eq!(
            split_tc_url("rtmp://[::1]/live").unwrap(),
            ("[::1]:1935".into(), "live".into())
        );
        assert!(split_tc_url("http://b/live").is_err());
        assert!(split_tc_url("rtmp:///live").is_err());
    }
}
