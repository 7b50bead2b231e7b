//! What of a stream's program RTMP carries: FLV as nginx-rtmp, Flussonic and every RTMP
//! player speak it has one H.264 video track and one AAC audio track.
//!
//! A player of a stream RTMP cannot carry is refused at `play` with the reason
//! (`NetStream.Play.Failed`), never served a stream with its video or its only audio
//! silently left out; a stream that changes to such a program under a playing player
//! ends that player with the reason. Of several audio tracks, the player gets the first
//! AAC one (RTMP has no second audio track): the others are there for HLS and
//! HTTP-MPEG-TS viewers. Enhanced RTMP (HEVC in FLV) is not spoken: players of HEVC
//! streams use HLS or HTTP-MPEG-TS. Opus (a WebRTC publisher's audio) has no place in
//! FLV either, and no transcoder makes AAC of it: an RTMP player of an H.264 + Opus
//! stream gets its video, as browsers' WHIP streams are mostly watched for.

use crate::media::frame::{Codec, Frame, VIDEO_TRACK};
use crate::media::program::Tracks;

/// The tracks an RTMP player of a program gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtmpTracks {
    pub video: bool,
    /// The AAC track played, by number.
    pub audio: Option<u8>,
}

/// Why RTMP cannot carry a stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotCarried {
    #[error(
        "RTMP carries H.264 video; this stream's video is {0} (play it over HLS or HTTP-MPEG-TS)"
    )]
    Video(Codec),
    #[error(
        "RTMP carries AAC audio; this stream's audio is {0} (play it over HLS or HTTP-MPEG-TS)"
    )]
    Audio(String),
}

impl RtmpTracks {
    /// What a player of `program` gets, or why it gets nothing. An empty program (tracks
    /// not settled yet) plays whatever H.264 and first AAC track come.
    pub fn of(program: &Tracks) -> Result<RtmpTracks, NotCarried> {
        if program.is_empty() {
            return Ok(RtmpTracks {
                video: true,
                audio: Some(crate::media::frame::FIRST_AUDIO_TRACK),
            });
        }
        if let Some(video) = program.video()
            && video.codec != Codec::H264
        {
            return Err(NotCarried::Video(video.codec));
        }
        let audio = program
            .audio()
            .find(|(_, track)| track.codec == Codec::Aac)
            .map(|(number, _)| number);
        let opus_only = program.audio().all(|(_, track)| track.codec == Codec::Opus);
        if audio.is_none() && program.has_audio() && !(opus_only && program.has_video()) {
            let mut audio_only = Tracks::EMPTY;
            for (number, track) in program.audio() {
                audio_only.set(number, track);
            }
            return Err(NotCarried::Audio(audio_only.describe()));
        }
        Ok(RtmpTracks {
            video: program.has_video(),
            audio,
        })
    }

    /// Whether the player gets `frame`: `Ok(false)` for a frame of another audio track,
    /// an error when the stream changed to a codec RTMP cannot carry.
    pub fn plays(&self, frame: &Frame) -> Result<bool, NotCarried> {
        if frame.track == VIDEO_TRACK {
            return match frame.codec {
                Codec::H264 => Ok(true),
                other => Err(NotCarried::Video(other)),
            };
        }
        if Some(frame.track) != self.audio {
            return Ok(false);
        }
        match frame.codec {
            Codec::Aac => Ok(true),
            other => Err(NotCarried::Audio(other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::program::{Language, Track};

    #[test]
    fn an_opus_stream_plays_its_video() {
        let whip = Tracks::simple(Some(Codec::H264), Some(Codec::Opus));
        let carried = RtmpTracks::of(&whip).unwrap();
        assert_eq!(
            carried,
            RtmpTracks {
                video: true,
                audio: None
            }
        );
        let opus = Frame {
            codec: Codec::Opus,
            track: crate::media::frame::FIRST_AUDIO_TRACK,
            dts: 0,
            pts: 0,
            keyframe: true,
            data: bytes::Bytes::from_static(&[0x78]),
        };
        assert_eq!(carried.plays(&opus), Ok(false));
        let opus_alone = Tracks::simple(None, Some(Codec::Opus));
        assert!(RtmpTracks::of(&opus_alone).is_err());
    }

    #[test]
    fn hevc_is_refused_and_the_first_aac_track_is_played() {
        let hevc = Tracks::simple(Some(Codec::H265), Some(Codec::Aac));
        assert_eq!(RtmpTracks::of(&hevc), Err(NotCarried::Video(Codec::H265)));
        let mut bilingual = Tracks::simple(Some(Codec::H264), Some(Codec::Ac3));
        bilingual.set(
            2,
            Track {
                codec: Codec::Aac,
                language: Language::new(*b"eng"),
            },
        );
        let played = RtmpTracks::of(&bilingual).unwrap();
        assert_eq!(played.audio, Some(2));
        let dolby_only = Tracks::simple(Some(Codec::H264), Some(Codec::Ac3));
        let refused = RtmpTracks::of(&dolby_only).unwrap_err();
        assert!(refused.to_string().contains("AC-3"), "{refused}");
        let frame = |codec, track| Frame {
            codec,
            track,
            dts: 0,
            pts: 0,
            keyframe: true,
            data: bytes::Bytes::new(),
        };
        assert_eq!(played.plays(&frame(Codec::Ac3, 1)), Ok(false));
        assert_eq!(played.plays(&frame(Codec::Aac, 2)), Ok(true));
        assert!(played.plays(&frame(Codec::H265, 0)).is_err());
    }
}
