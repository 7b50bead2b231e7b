//! A stream's frames to one WHEP viewer: H.264 video and, when the stream has one, its
//! first Opus track (browsers do not decode AAC over WebRTC: AAC-only audio is left out,
//! and the viewer gets the video).
//!
//! A viewer starts at once, on the current GOP: its pictures are sent first with RTP
//! times 1 ms apart, so the browser decodes from the keyframe and catches up to the live
//! frame in a blink instead of waiting up to a GOP for the next keyframe or playing a
//! GOP behind. Live frames follow at their own spacing. A viewer too slow for the
//! stream's frame queue skips to the next keyframe (WebRTC viewers are never queued
//! without bound: the broadcast queue's length is the bound).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use str0m::format::Codec as RtpCodec;
use str0m::media::{Frequency, MediaKind, MediaTime, Mid, Pt};
use str0m::{Event, Rtc};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

use super::peer::Ended;
use crate::media::frame::{CLOCK_HZ, Codec, Frame, VIDEO_TRACK};
use crate::media::live::LiveStream;
use crate::media::program::Tracks;
use crate::sessions::{Session, SessionTable};

/// RTP time between two pictures of the starting GOP: 1 ms.
const BURST_SPACING_TICKS: u64 = CLOCK_HZ / 1000;

/// What WHEP sends of a program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WhepTracks {
    /// The Opus track sent, by number (none: video only).
    pub audio: Option<u8>,
}

/// Why WHEP cannot carry a stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotCarried {
    #[error("WebRTC play carries H.264 video; this stream's video is {0} (play it over HLS)")]
    Video(Codec),
    #[error("WebRTC play needs video; this stream has none")]
    NoVideo,
}

impl WhepTracks {
    /// What a viewer of `program` gets, or why it gets nothing. A program not settled
    /// yet plays its H.264 and first Opus track when they come.
    pub fn of(program: &Tracks) -> Result<WhepTracks, NotCarried> {
        if program.is_empty() {
            return Ok(WhepTracks {
                audio: Some(crate::media::frame::FIRST_AUDIO_TRACK),
            });
        }
        match program.video() {
            Some(video) if video.codec == Codec::H264 => {}
            Some(video) => return Err(NotCarried::Video(video.codec)),
            None => return Err(NotCarried::NoVideo),
        }
        let audio = program
            .audio()
            .find(|(_, track)| track.codec == Codec::Opus)
            .map(|(number, _)| number);
        Ok(WhepTracks { audio })
    }
}

/// The sending side of one WHEP peer connection.
pub struct Outlet {
    pub live: Arc<LiveStream>,
    pub session: Arc<Session>,
    pub sessions: SessionTable,
    carried: WhepTracks,
    frames: broadcast::Receiver<crate::rtmp::shared::SharedFrame>,
    /// The starting GOP's pictures, sent first.
    burst: VecDeque<Frame>,
    video: Option<(Mid, Pt)>,
    audio: Option<(Mid, Pt)>,
    /// Output RTP time (90 kHz) = dts − `shift`; set by the first picture sent.
    shift: Option<i128>,
    /// Pictures sent of the starting GOP.
    burst_sent: u64,
    /// Video waits for a keyframe (at the start without a GOP, and after a lag).
    awaiting_keyframe: bool,
}

impl Outlet {
    /// An outlet of `live` starting on its current GOP.
    pub fn new(
        live: Arc<LiveStream>,
        session: Arc<Session>,
        sessions: SessionTable,
        carried: WhepTracks,
    ) -> Outlet {
        let (gop, _, frames) = live.subscribe_frames();
        let burst: VecDeque<Frame> = gop
            .into_iter()
            .filter(|frame| frame.track == VIDEO_TRACK)
            .skip_while(|frame| !frame.starts_gop())
            .map(|shared| shared.frame.clone())
            .collect();
        Outlet {
            live,
            session,
            sessions,
            carried,
            frames,
            awaiting_keyframe: burst.is_empty(),
            burst,
            video: None,
            audio: None,
            shift: None,
            burst_sent: 0,
        }
    }

    pub fn on_event(&mut self, rtc: &mut Rtc, event: Event, _now: Instant) -> Result<(), Ended> {
        if let Event::MediaAdded(added) = event {
            let Some(writer) = rtc.writer(added.mid) else {
                return Ok(());
            };
            let wanted = match added.kind {
                MediaKind::Video => RtpCodec::H264,
                MediaKind::Audio => RtpCodec::Opus,
            };
            // H.264 in packetization mode 1 (FU-A): what every browser takes.
            let pt = writer
                .payload_params()
                .filter(|params| params.spec().codec == wanted)
                .max_by_key(|params| params.spec().format.packetization_mode == Some(1))
                .map(|params| params.pt());
            match (added.kind, pt) {
                (MediaKind::Video, Some(pt)) => self.video = Some((added.mid, pt)),
                (MediaKind::Audio, Some(pt)) => self.audio = Some((added.mid, pt)),
                _ => {}
            }
        }
        Ok(())
    }

    /// The next frame to send: the starting GOP's, then live ones.
    pub async fn next_frame(&mut self) -> Result<Next, Ended> {
        if let Some(frame) = self.burst.pop_front() {
            return Ok(Next { frame, burst: true });
        }
        loop {
            match self.frames.recv().await {
                Ok(shared) => {
                    return Ok(Next {
                        frame: shared.frame.clone(),
                        burst: false,
                    });
                }
                Err(RecvError::Lagged(missed)) => {
                    tracing::info!(stream = %self.live.name, missed, "slow WHEP viewer skips to the next keyframe");
                    self.awaiting_keyframe = true;
                }
                Err(RecvError::Closed) => {
                    return Err(Ended::Media(format!("stream `{}` stopped", self.live.name)));
                }
            }
        }
    }

    /// Sends a frame when the viewer gets it.
    pub fn send(&mut self, rtc: &mut Rtc, next: Next, now: Instant) -> Result<(), Ended> {
        let Next { frame, burst } = next;
        let target = if frame.track == VIDEO_TRACK {
            if frame.codec != Codec::H264 {
                return Err(Ended::Media(NotCarried::Video(frame.codec).to_string()));
            }
            if self.awaiting_keyframe && !burst {
                if !frame.starts_gop() {
                    return Ok(());
                }
                self.awaiting_keyframe = false;
            }
            self.video
        } else if Some(frame.track) == self.carried.audio && frame.codec == Codec::Opus {
            self.audio
        } else {
            None
        };
        let Some((mid, pt)) = target else {
            return Ok(());
        };
        let Some(ticks) = self.rtp_ticks(&frame, burst) else {
            return Ok(());
        };
        let time = if frame.codec == Codec::Opus {
            MediaTime::new(
                ticks * u64::from(crate::media::audio::OPUS_SAMPLE_RATE) / CLOCK_HZ,
                Frequency::FORTY_EIGHT_KHZ,
            )
        } else {
            MediaTime::new(ticks, Frequency::NINETY_KHZ)
        };
        let Some(writer) = rtc.writer(mid) else {
            return Ok(());
        };
        let length = frame.data.len() as u64;
        writer
            .write(pt, now, time, frame.data.as_ref())
            .map_err(|error| Ended::Failed(error.to_string()))?;
        self.live
            .counters
            .bytes_out
            .fetch_add(length, Ordering::Relaxed);
        self.session.bytes.fetch_add(length, Ordering::Relaxed);
        Ok(())
    }

    /// The RTP time (90 kHz) `frame` is sent at, or `None` to leave it out (audio from
    /// before the first picture). The starting GOP's pictures are
    /// [`BURST_SPACING_TICKS`] apart; live frames keep their spacing after the last one.
    fn rtp_ticks(&mut self, frame: &Frame, burst: bool) -> Option<u64> {
        if burst {
            let ticks = self.burst_sent * BURST_SPACING_TICKS;
            self.burst_sent += 1;
            self.shift = Some(i128::from(frame.dts) - i128::from(ticks));
            return Some(ticks);
        }
        let shift = match self.shift {
            Some(shift) => shift,
            None if frame.track == VIDEO_TRACK => *self.shift.insert(i128::from(frame.dts)),
            None => return None,
        };
        u64::try_from(i128::from(frame.dts) - shift).ok()
    }
}

/// A frame to send and whether it is one of the starting GOP's.
pub struct Next {
    pub frame: Frame,
    pub burst: bool,
}

impl Drop for Outlet {
    fn drop(&mut self) {
        self.sessions.close(&self.session);
    }
}
