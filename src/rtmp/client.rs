//! flotilla's own RTMP client (rml_rtmp's client session over tokio): publishes frames or
//! plays a stream. Used by the self-contained tests (no ffmpeg needed) and the benchmark.

use std::time::Duration;

use rml_rtmp::handshake::PeerType;
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult, PublishRequestType,
};
use rml_rtmp::time::RtmpTimestamp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::flv::{self, Depacketizer, Inbound};
use crate::media::frame::Frame;

/// Deadline of each step of connecting (handshake, connect, publish/play).
pub const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// A connected RTMP client.
pub struct RtmpClient {
    socket: TcpStream,
    session: ClientSession,
    buffer: Vec<u8>,
    events: Vec<ClientSessionEvent>,
}

fn describe<E: std::fmt::Debug>(error: E) -> String {
    format!("{error:?}")
}

impl RtmpClient {
    /// Connects to `address` and the application `app` (`static`, `live`, …).
    pub async fn connect(address: &str, app: &str) -> Result<RtmpClient, String> {
        let mut socket = tokio::time::timeout(STEP_TIMEOUT, TcpStream::connect(address))
            .await
            .map_err(|_| "connect timed out".to_string())?
            .map_err(|e| e.to_string())?;
        let _ = socket.set_nodelay(true);
        let remaining = tokio::time::timeout(
            STEP_TIMEOUT,
            super::handshake::run(&mut socket, PeerType::Client),
        )
        .await
        .map_err(|_| "handshake timed out".to_string())??;
        let (session, initial) =
            ClientSession::new(ClientSessionConfig::new()).map_err(describe)?;
        let mut client = RtmpClient {
            socket,
            session,
            buffer: vec![0; 64 * 1024],
            events: Vec::new(),
        };
        client.send_results(initial).await?;
        client.feed(&remaining).await?;
        let request = client
            .session
            .request_connection(app.to_string())
            .map_err(describe)?;
        client.send_results(vec![request]).await?;
        client
            .wait_for(|event| matches!(event, ClientSessionEvent::ConnectionRequestAccepted))
            .await?;
        Ok(client)
    }

    async fn send_results(&mut self, results: Vec<ClientSessionResult>) -> Result<(), String> {
        for result in results {
            match result {
                ClientSessionResult::OutboundResponse(packet) => {
                    self.socket
                        .write_all(&packet.bytes)
                        .await
                        .map_err(|e| e.to_string())?;
                }
                ClientSessionResult::RaisedEvent(event) => self.events.push(event),
                ClientSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
        Ok(())
    }

    async fn feed(&mut self, bytes: &[u8]) -> Result<(), String> {
        if bytes.is_empty() {
            return Ok(());
        }
        let results = self.session.handle_input(bytes).map_err(describe)?;
        self.send_results(results).await
    }

    async fn read_some(&mut self) -> Result<(), String> {
        let length = self
            .socket
            .read(&mut self.buffer)
            .await
            .map_err(|e| e.to_string())?;
        if length == 0 {
            return Err("the server closed the connection".into());
        }
        let bytes = self.buffer[..length].to_vec();
        self.feed(&bytes).await
    }

    /// Reads until an event matching `wanted` arrives (or a rejection, an error, a timeout).
    async fn wait_for(
        &mut self,
        wanted: impl Fn(&ClientSessionEvent) -> bool,
    ) -> Result<ClientSessionEvent, String> {
        tokio::time::timeout(STEP_TIMEOUT, async {
            loop {
                if let Some(index) = self.events.iter().position(&wanted) {
                    return Ok(self.events.remove(index));
                }
                if let Some(rejection) = self.events.iter().find_map(rejection_of) {
                    return Err(format!("rejected: {rejection}"));
                }
                self.events.clear();
                self.read_some().await?;
            }
        })
        .await
        .map_err(|_| "timed out waiting for the server".to_string())?
    }

    /// Asks to publish `key`; returns once the server accepted.
    pub async fn publish(&mut self, key: &str) -> Result<(), String> {
        let request = self
            .session
            .request_publishing(key.to_string(), PublishRequestType::Live)
            .map_err(describe)?;
        self.send_results(vec![request]).await?;
        self.wait_for(|event| matches!(event, ClientSessionEvent::PublishRequestAccepted))
            .await
            .map(|_| ())
    }

    /// Publishes the codec configuration taken from a keyframe and an audio frame.
    pub async fn publish_headers(
        &mut self,
        keyframe: &Frame,
        audio: Option<&Frame>,
    ) -> Result<(), String> {
        let (video, audio) = flv::sequence_headers(Some(keyframe), audio);
        if let Some(video) = video {
            let result = self
                .session
                .publish_video_data(video, RtmpTimestamp::new(0), false)
                .map_err(describe)?;
            self.send_results(vec![result]).await?;
        }
        if let Some(audio) = audio {
            let result = self
                .session
                .publish_audio_data(audio, RtmpTimestamp::new(0), false)
                .map_err(describe)?;
            self.send_results(vec![result]).await?;
        }
        Ok(())
    }

    /// Publishes one frame (timestamps in ms from its dts).
    pub async fn publish_frame(&mut self, frame: &Frame) -> Result<(), String> {
        for (body, offset_ms) in flv::packetize(frame) {
            let timestamp = RtmpTimestamp::new((frame.dts / 90) as u32 + offset_ms);
            let result = if frame.codec.is_video() {
                self.session.publish_video_data(body, timestamp, false)
            } else {
                self.session.publish_audio_data(body, timestamp, false)
            }
            .map_err(describe)?;
            self.send_results(vec![result]).await?;
        }
        Ok(())
    }

    /// Asks to play `key`; returns once the server accepted.
    pub async fn play(&mut self, key: &str) -> Result<(), String> {
        let request = self
            .session
            .request_playback(key.to_string())
            .map_err(describe)?;
        self.send_results(vec![request]).await?;
        self.wait_for(|event| matches!(event, ClientSessionEvent::PlaybackRequestAccepted))
            .await
            .map(|_| ())
    }

    /// The next frame a playing client receives.
    pub async fn next_frame(&mut self, depacketizer: &mut Depacketizer) -> Result<Frame, String> {
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
                }
                .map_err(|e| e.to_string())?;
                if let Inbound::Frame(frame) = inbound {
                    return Ok(frame);
                }
            }
            tokio::time::timeout(STEP_TIMEOUT, self.read_some())
                .await
                .map_err(|_| "no media from the server".to_string())??;
        }
    }

    /// Sends raw bytes, bypassing the session (for tests of the server's limits).
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.socket
            .write_all(bytes)
            .await
            .map_err(|e| e.to_string())
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
