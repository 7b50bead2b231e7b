//! `rtsp://` inputs: IP cameras, through retina.
//!
//! retina is the Rust RTSP client cameras have been tested against (Hikvision, Dahua,
//! Reolink, Uniview and others in its test data). It covers what a camera session needs:
//! DESCRIBE/SETUP/PLAY, Basic and Digest authentication, RTP over the RTSP connection
//! (interleaved TCP, the default here) or UDP, keepalives while playing, RTP sequence and
//! timestamp tracking (wraps included), RTCP, and depacketization of H.264, H.265, AAC
//! and G.711. Its `FrameFormat::SIMPLE` hands over what the media plane works on: Annex-B
//! access units with the parameter sets before every keyframe, and ADTS AAC.
//!
//! What flotilla adds: the choice of tracks (the first H.264 or H.265 video and the first
//! AAC audio; other codecs, G.711 among them, which MPEG-TS has no place for, are named in
//! the log and the stream goes on without them, never silently), RTP timestamps onto the stream's continuous timeline, bounded deadlines for
//! connecting and for each step, and the credentials taken out of the URL so that they
//! never reach a log line. A camera that reboots or drops the session fails the input,
//! and the stream's supervisor reconnects with its backoff.

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use retina::client::{
    Credentials, Demuxed, InitialSequenceNumberPolicy, InitialTimestampPolicy, PlayOptions,
    Session, SessionOptions, SetupOptions, TcpTransportOptions, Transport, UdpTransportOptions,
};
use retina::codec::{CodecItem, FrameFormat};

use super::frame::{CLOCK_HZ, Codec, Frame};
use super::program::Tracks;
use super::timeline::Timeline;

/// Time DESCRIBE, SETUP and PLAY may take together.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

pub use crate::config::model::RtpTransport;

/// Why a camera session failed. The camera (or the network to it) is at fault for all
/// of them except `Url`, the config's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtspError {
    #[error("not an rtsp:// URL: {0}")]
    Url(String),
    #[error("{0}")]
    Session(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("no track flotilla carries: {0}")]
    NoTrack(String),
    #[error("the camera ended the session")]
    Ended,
}

/// `url` without its credentials, and the credentials.
fn split_credentials(url: &str) -> Result<(url::Url, Option<Credentials>), RtspError> {
    let mut parsed = url::Url::parse(url).map_err(|e| RtspError::Url(e.to_string()))?;
    if parsed.scheme() != "rtsp" || parsed.host_str().is_none() {
        return Err(RtspError::Url("rtsp://HOST[:PORT]/PATH".into()));
    }
    let username = super::input::percent_decoded(parsed.username());
    let password = parsed.password().map(super::input::percent_decoded);
    let credentials = (!username.is_empty() || password.is_some()).then(|| Credentials {
        username,
        password: password.unwrap_or_default(),
    });
    // Infallible for an rtsp:// URL with a host.
    let _ = parsed.set_username("");
    let _ = parsed.set_password(None);
    Ok((parsed, credentials))
}

/// A playing camera session.
pub struct RtspPull {
    session: Demuxed,
    /// The video stream's index and codec.
    video: Option<(usize, Codec)>,
    audio: Option<usize>,
    timeline: Timeline,
    /// The H.265 parameter sets of the last picture retina flagged as a random-access
    /// point (it prepends them to IDR pictures only): put before CRA pictures, so that a
    /// segment starting at one decodes.
    hevc_parameter_sets: Bytes,
    /// The last video dts on the timeline: RTP carries presentation times only, and a
    /// decode time never goes back.
    last_video_dts: Option<u64>,
}

impl std::fmt::Debug for RtspPull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RtspPull(video {:?}, audio {:?})",
            self.video, self.audio
        )
    }
}

impl RtspPull {
    /// Opens a session with the camera at `url` and starts playing; the stream's
    /// timeline continues at `start_dts`. `stream` names the stream in log lines.
    pub async fn open(
        url: &str,
        transport: RtpTransport,
        start_dts: u64,
        stream: &str,
    ) -> Result<RtspPull, RtspError> {
        tokio::time::timeout(OPEN_TIMEOUT, Self::start(url, transport, start_dts, stream))
            .await
            .map_err(|_| RtspError::Timeout(OPEN_TIMEOUT))?
    }

    async fn start(
        url: &str,
        transport: RtpTransport,
        start_dts: u64,
        stream: &str,
    ) -> Result<RtspPull, RtspError> {
        let session_error = |e: retina::Error| RtspError::Session(e.to_string());
        let (url, credentials) = split_credentials(url)?;
        let options = SessionOptions::default()
            .creds(credentials)
            .user_agent(concat!("flotilla/", env!("CARGO_PKG_VERSION")).to_string());
        let mut session = Session::describe(url, options)
            .await
            .map_err(session_error)?;
        let mut video = None;
        let mut audio = None;
        let mut skipped = Vec::new();
        for (index, track) in session.streams().iter().enumerate() {
            let name = track.encoding_name().to_ascii_lowercase();
            match (track.media(), name.as_str()) {
                ("video", "h264") if video.is_none() => video = Some((index, Codec::H264)),
                ("video", "h265") if video.is_none() => video = Some((index, Codec::H265)),
                ("audio", "mpeg4-generic") if audio.is_none() => audio = Some(index),
                (media, _) => skipped.push(format!("{media} {name}")),
            }
        }
        for track in &skipped {
            tracing::warn!(%stream, %track, "camera track not carried: flotilla passes H.264 or H.265 video and AAC audio from RTSP; the stream goes on without it");
        }
        if video.is_none() && audio.is_none() {
            return Err(RtspError::NoTrack(skipped.join(", ")));
        }
        let transport = match transport {
            RtpTransport::Tcp => Transport::Tcp(TcpTransportOptions::default()),
            RtpTransport::Udp => Transport::Udp(UdpTransportOptions::default()),
        };
        for index in video.iter().map(|(index, _)| index).chain(audio.iter()) {
            session
                .setup(
                    *index,
                    SetupOptions::default()
                        .transport(transport.clone())
                        .frame_format(FrameFormat::SIMPLE),
                )
                .await
                .map_err(session_error)?;
        }
        // Lenient with what PLAY says: cameras (and servers sharing one media between
        // clients) send RTP-Info sequence numbers and times that the first packets do not
        // match; the packets themselves are what counts.
        let play = PlayOptions::default()
            .initial_seq(InitialSequenceNumberPolicy::Ignore)
            .initial_timestamp(InitialTimestampPolicy::Permissive);
        let playing = session.play(play).await.map_err(session_error)?;
        Ok(RtspPull {
            session: playing.demuxed().map_err(session_error)?,
            video,
            audio,
            timeline: Timeline::starting_at(start_dts),
            hevc_parameter_sets: Bytes::new(),
            last_video_dts: None,
        })
    }

    /// The tracks the session carries.
    pub fn tracks(&self) -> Tracks {
        Tracks::simple(
            self.video.map(|(_, codec)| codec),
            self.audio.map(|_| Codec::Aac),
        )
    }

    /// A frame's RTP time on the 90 kHz clock (retina unwraps the 32-bit RTP clock).
    fn ticks(timestamp: retina::Timestamp) -> u64 {
        let clock = i128::from(timestamp.clock_rate().get());
        let ticks = i128::from(timestamp.elapsed()) * i128::from(CLOCK_HZ) / clock;
        // The timeline takes 33-bit times; elapsed time from the session's start fits.
        (ticks.max(0) as u64) % super::timeline::WRAP_TICKS
    }

    /// An H.265 keyframe with the parameter sets before it: as it is when retina put
    /// them there (noted for the next ones), with the last ones noted when it did not.
    fn with_parameter_sets(
        &mut self,
        codec: Codec,
        flagged: bool,
        keyframe: bool,
        data: Bytes,
    ) -> Bytes {
        if codec != Codec::H265 || !keyframe {
            return data;
        }
        if flagged {
            let sets = super::h265::parameter_sets(&data);
            if !sets.is_empty() {
                self.hevc_parameter_sets = Bytes::from(sets);
            }
            return data;
        }
        if self.hevc_parameter_sets.is_empty() {
            return data;
        }
        let mut joined = Vec::with_capacity(self.hevc_parameter_sets.len() + data.len());
        joined.extend_from_slice(&self.hevc_parameter_sets);
        joined.extend_from_slice(&data);
        Bytes::from(joined)
    }

    /// The next frame and whether it follows a discontinuity.
    pub async fn next(&mut self) -> Result<(Frame, bool), RtspError> {
        loop {
            let item = match self.session.next().await {
                Some(Ok(item)) => item,
                Some(Err(error)) => return Err(RtspError::Session(error.to_string())),
                None => return Err(RtspError::Ended),
            };
            let (codec, source_ticks, keyframe, data) = match item {
                CodecItem::VideoFrame(frame)
                    if Some(frame.stream_id()) == self.video.map(|(index, _)| index) =>
                {
                    let codec = self.video.map_or(Codec::H264, |(_, codec)| codec);
                    let ticks = Self::ticks(frame.timestamp());
                    let flagged = frame.is_random_access_point();
                    let data = Bytes::from(frame.into_data());
                    // retina flags IDR pictures; HEVC encoders (x265) also start GOPs
                    // with CRA pictures, which are random-access points as well.
                    let keyframe = flagged || super::video::is_keyframe(codec, &data);
                    let data = self.with_parameter_sets(codec, flagged, keyframe, data);
                    (codec, ticks, keyframe, data)
                }
                CodecItem::AudioFrame(frame) if Some(frame.stream_id()) == self.audio => {
                    let ticks = Self::ticks(frame.timestamp());
                    (
                        Codec::Aac,
                        ticks,
                        true,
                        Bytes::copy_from_slice(frame.data()),
                    )
                }
                _ => continue,
            };
            let mapped = self.timeline.map(source_ticks);
            let mut dts = mapped.dts;
            if codec.is_video() {
                if let Some(last) = self.last_video_dts
                    && dts <= last
                    && !mapped.discontinuity
                {
                    dts = last + 1;
                }
                self.last_video_dts = Some(dts);
            }
            let frame = Frame {
                codec,
                track: Frame::default_track(codec),
                dts,
                pts: mapped.dts.max(dts),
                keyframe,
                data,
            };
            return Ok((frame, mapped.discontinuity));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_leave_the_url_and_never_reach_a_log_line() {
        let (url, credentials) =
            split_credentials("rtsp://admin:p%40ss@10.0.0.11:554/Streaming/101").unwrap();
        assert_eq!(url.as_str(), "rtsp://10.0.0.11:554/Streaming/101");
        let credentials = credentials.unwrap();
        assert_eq!(credentials.username, "admin");
        assert_eq!(credentials.password, "p@ss");
        let (_, none) = split_credentials("rtsp://10.0.0.11/h264").unwrap();
        assert!(none.is_none());
        assert_eq!(
            crate::media::input::redacted("rtsp://admin:secret@cam/h264"),
            "rtsp://admin:***@cam/h264"
        );
        assert!(split_credentials("http://cam/h264").is_err());
        assert!(split_credentials("rtsp:///h264").is_err());
    }
}
