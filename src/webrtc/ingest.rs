//! A WHIP publisher's media into its stream: H.264 access units and Opus packets become
//! frames on one 90 kHz clock ([`super::clock`]), sent to the stream's publish point like
//! an RTMP publisher's.
//!
//! Video after a loss (RTP not contiguous) is dropped until the next keyframe, which is
//! asked for at once (PLI, at most once per [`KEYFRAME_REQUEST_INTERVAL`]): viewers of
//! every output get whole GOPs, never pictures that reference a missing one. WebRTC
//! encoders send keyframes only when asked (a browser's may go minutes without one), and
//! segments are cut at keyframes: a keyframe is asked for whenever the last one is a
//! segment duration old, so HLS and DASH get segments of the configured length. Keyframes
//! that come without their parameter sets get the last ones seen put before them, as
//! every output expects.

use std::time::{Duration, Instant};

use bytes::Bytes;
use str0m::format::Codec as RtpCodec;
use str0m::media::{KeyframeRequestKind, MediaData, MediaKind, Mid};
use str0m::{Event, Rtc};

use super::clock::TrackClock;
use super::peer::Ended;
use crate::media::directory::{Published, Publisher};
use crate::media::frame::{
    CLOCK_HZ, Codec, FIRST_AUDIO_TRACK, Frame, MAX_FRAME_BYTES, VIDEO_TRACK,
};
use crate::media::h264::{self, NAL_IDR, NAL_PPS, NAL_SPS};
use crate::media::program::Tracks;

/// Least time between two keyframe requests to the publisher.
pub const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_secs(1);

/// The publishing side of one WHIP peer connection.
pub struct Ingest {
    pub name: String,
    pub publisher: Publisher,
    video_mid: Option<Mid>,
    tracks: Tracks,
    video_clock: TrackClock,
    audio_clock: TrackClock,
    /// When the connection's first frame arrived: the clocks' zero.
    first_arrival: Option<Instant>,
    /// Video is dropped until a keyframe (at the start and after a loss).
    awaiting_keyframe: bool,
    last_keyframe_request: Option<Instant>,
    /// When the last keyframe came, and how old it may get before another is asked for
    /// (the stream's segment duration).
    last_keyframe: Option<Instant>,
    keyframe_interval: Duration,
    /// The last SPS and PPS seen, as Annex B.
    parameter_sets: Bytes,
    /// Frames dropped because the stream's queue was full.
    pub dropped_frames: u64,
}

impl Ingest {
    pub fn new(name: String, publisher: Publisher, keyframe_interval: Duration) -> Ingest {
        Ingest {
            name,
            publisher,
            video_mid: None,
            tracks: Tracks::EMPTY,
            video_clock: TrackClock::default(),
            audio_clock: TrackClock::default(),
            first_arrival: None,
            awaiting_keyframe: true,
            last_keyframe_request: None,
            last_keyframe: None,
            keyframe_interval,
            parameter_sets: Bytes::new(),
            dropped_frames: 0,
        }
    }

    pub fn on_event(&mut self, rtc: &mut Rtc, event: Event, now: Instant) -> Result<(), Ended> {
        match event {
            Event::MediaAdded(added) => {
                match added.kind {
                    MediaKind::Video => {
                        self.video_mid = Some(added.mid);
                        self.tracks = self.tracks.with(VIDEO_TRACK, Codec::H264);
                    }
                    MediaKind::Audio => {
                        self.tracks = self.tracks.with(FIRST_AUDIO_TRACK, Codec::Opus);
                    }
                }
                self.send(Published::Tracks(self.tracks))
            }
            Event::Connected => {
                self.request_keyframe(rtc, now);
                Ok(())
            }
            Event::MediaData(data) => self.on_media(rtc, data, now),
            _ => Ok(()),
        }
    }

    fn on_media(&mut self, rtc: &mut Rtc, data: MediaData, now: Instant) -> Result<(), Ended> {
        if data.data.is_empty() {
            // Opus DTX and padding-only packets carry nothing to play.
            return Ok(());
        }
        if data.data.len() > MAX_FRAME_BYTES {
            tracing::info!(stream = %self.name, bytes = data.data.len(), "oversized WebRTC frame dropped");
            return Ok(());
        }
        let codec = match data.params.spec().codec {
            RtpCodec::H264 => Codec::H264,
            RtpCodec::Opus => Codec::Opus,
            // Only H.264 and Opus are negotiated.
            _ => return Ok(()),
        };
        let first = *self.first_arrival.get_or_insert(data.network_time);
        let arrival = data.network_time.saturating_duration_since(first);
        let arrival_ticks = (arrival.as_micros() * u128::from(CLOCK_HZ) / 1_000_000) as u64;
        let numer = data.time.numer();
        let rate = data.time.denom();
        let frame = if codec == Codec::H264 {
            if !data.contiguous {
                self.awaiting_keyframe = true;
            }
            // One scan of the access unit's NAL units for all three questions.
            let nals: Vec<&[u8]> = h264::nal_units(&data.data).collect();
            let keyframe = nals.iter().any(|nal| h264::nal_type(nal) == NAL_IDR);
            let has_sps = self.remember_parameter_sets(&nals);
            if self.awaiting_keyframe && !keyframe {
                self.request_keyframe(rtc, now);
                return Ok(());
            }
            self.awaiting_keyframe = false;
            if keyframe {
                self.last_keyframe = Some(now);
            } else if self
                .last_keyframe
                .is_none_or(|last| now.saturating_duration_since(last) >= self.keyframe_interval)
            {
                self.request_keyframe(rtc, now);
            }
            let dts = self.video_clock.ticks(numer, rate, arrival_ticks);
            Frame {
                codec,
                track: VIDEO_TRACK,
                dts,
                pts: dts,
                keyframe,
                data: self.with_parameter_sets(&data.data, keyframe && !has_sps),
            }
        } else {
            let dts = self.audio_clock.ticks(numer, rate, arrival_ticks);
            Frame {
                codec,
                track: FIRST_AUDIO_TRACK,
                dts,
                pts: dts,
                keyframe: true,
                data: Bytes::copy_from_slice(&data.data),
            }
        };
        self.send(Published::Frame(frame))
    }

    /// Keeps the SPS and PPS of an access unit (its NAL units) that has both; whether it
    /// has an SPS.
    fn remember_parameter_sets(&mut self, nals: &[&[u8]]) -> bool {
        let has = |kind| nals.iter().any(|nal| h264::nal_type(nal) == kind);
        let has_sps = has(NAL_SPS);
        if has_sps && has(NAL_PPS) {
            let mut joined = Vec::new();
            for nal in nals
                .iter()
                .filter(|nal| matches!(h264::nal_type(nal), NAL_SPS | NAL_PPS))
            {
                joined.extend_from_slice(&[0, 0, 0, 1]);
                joined.extend_from_slice(nal);
            }
            self.parameter_sets = Bytes::from(joined);
        }
        has_sps
    }

    /// The access unit, with the last parameter sets before it when `lacks_sets` (a
    /// keyframe without them).
    fn with_parameter_sets(&self, access_unit: &[u8], lacks_sets: bool) -> Bytes {
        if !lacks_sets || self.parameter_sets.is_empty() {
            return Bytes::copy_from_slice(access_unit);
        }
        let mut joined = Vec::with_capacity(self.parameter_sets.len() + access_unit.len());
        joined.extend_from_slice(&self.parameter_sets);
        joined.extend_from_slice(access_unit);
        Bytes::from(joined)
    }

    fn request_keyframe(&mut self, rtc: &mut Rtc, now: Instant) {
        if self
            .last_keyframe_request
            .is_some_and(|last| now.saturating_duration_since(last) < KEYFRAME_REQUEST_INTERVAL)
        {
            return;
        }
        let Some(mid) = self.video_mid else {
            return;
        };
        if let Some(mut writer) = rtc.writer(mid) {
            // Fails only before the publisher's video stream is known; asked again later.
            if writer
                .request_keyframe(None, KeyframeRequestKind::Pli)
                .is_ok()
            {
                self.last_keyframe_request = Some(now);
            }
        }
    }

    fn send(&mut self, published: Published) -> Result<(), Ended> {
        match self.publisher.sender.try_send(published) {
            Ok(()) => Ok(()),
            Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => {
                self.dropped_frames += 1;
                if self.dropped_frames.is_power_of_two() {
                    tracing::warn!(stream = %self.name, dropped = self.dropped_frames, "WHIP publisher outruns its stream; frames dropped");
                }
                Ok(())
            }
            Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => {
                Err(Ended::Media(format!("stream `{}` stopped", self.name)))
            }
        }
    }
}
