//! What a running stream's tracks are, as learnt from its frames: codec strings, picture
//! size, sample rate and channels, language. Read by the streams API (`media_info`) and
//! the master playlist (RESOLUTION, CODECS); written by the packager, on keyframes and
//! when an audio track's configuration changes, never per viewer.

use super::audio;
use super::frame::Frame;
use super::program::{Language, MAX_TRACKS, Tracks};
use super::video;

/// One track's facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackFacts {
    pub codec: super::frame::Codec,
    pub language: Option<Language>,
    /// RFC 6381 codec string, when the codec has one and a frame told it.
    pub codec_string: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub sample_rate: Option<u32>,
    pub channels: Option<u8>,
}

/// The facts of every track, by track number.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrackTable {
    slots: [Option<TrackFacts>; MAX_TRACKS],
}

impl TrackTable {
    /// What `frame` tells about its track, if it changes what is known: video keyframes
    /// carry their parameter sets, audio frames their configuration. `program` gives the
    /// track's language.
    pub fn learnt_from(&self, frame: &Frame, program: &Tracks) -> Option<TrackFacts> {
        let known = self.get(frame.track);
        let language = program
            .get(frame.track)
            .filter(|track| track.codec == frame.codec)
            .and_then(|track| track.language);
        let audio = (!frame.codec.is_video())
            .then(|| audio::info(frame.codec, &frame.data))
            .flatten();
        // An audio frame like the last ones (nearly every one): nothing to copy.
        if let (Some(known), Some(info)) = (known, &audio)
            && known.codec == frame.codec
            && known.language == language.or(known.language)
            && known.sample_rate == Some(info.sample_rate)
            && known.channels == Some(info.channels)
            && known.codec_string.as_deref() == Some(info.codec)
        {
            return None;
        }
        let mut facts = match known {
            Some(known) if known.codec == frame.codec => known.clone(),
            _ => TrackFacts {
                codec: frame.codec,
                language,
                codec_string: None,
                width: None,
                height: None,
                sample_rate: None,
                channels: None,
            },
        };
        facts.language = language.or(facts.language);
        if frame.codec.is_video() {
            if frame.keyframe
                && let Some(info) = video::info(frame.codec, &frame.data)
            {
                facts.width = Some(info.width);
                facts.height = Some(info.height);
                facts.codec_string = info.codec;
            }
        } else if let Some(info) = audio {
            facts.sample_rate = Some(info.sample_rate);
            facts.channels = Some(info.channels);
            facts.codec_string = Some(info.codec.to_string());
        }
        (known != Some(&facts)).then_some(facts)
    }

    pub fn set(&mut self, track: u8, facts: TrackFacts) {
        if let Some(slot) = self.slots.get_mut(usize::from(track)) {
            *slot = Some(facts);
        }
    }

    pub fn get(&self, track: u8) -> Option<&TrackFacts> {
        self.slots.get(usize::from(track)).and_then(Option::as_ref)
    }

    /// The tracks known, by number.
    pub fn iter(&self) -> impl Iterator<Item = (u8, &TrackFacts)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(number, slot)| slot.as_ref().map(|facts| (number as u8, facts)))
    }

    /// Forgets tracks that are not in `program` any more.
    pub fn keep_only(&mut self, program: &Tracks) {
        for (number, slot) in self.slots.iter_mut().enumerate() {
            let kept = program
                .get(number as u8)
                .zip(slot.as_ref())
                .is_some_and(|(track, facts)| track.codec == facts.codec);
            if !kept {
                *slot = None;
            }
        }
    }

    /// The CODECS attribute's codec strings (video first, each audio codec once), or
    /// none at all when a track's is unknown: a wrong or partial CODECS makes players
    /// refuse a stream they could play, an absent one does not. Opus is left out: HLS
    /// has no Opus in MPEG-TS, and players (hls.js, Safari) play the video of a segment
    /// and skip the Opus stream they do not know, but refuse a variant that names it.
    pub fn codec_strings(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (_, facts) in self.iter() {
            if facts.codec == super::frame::Codec::Opus {
                continue;
            }
            let Some(codec) = &facts.codec_string else {
                return Vec::new();
            };
            if !out.contains(codec) {
                out.push(codec.clone());
            }
        }
        out
    }

    /// The video track's picture size.
    pub fn resolution(&self) -> Option<(u32, u32)> {
        let video = self.get(super::frame::VIDEO_TRACK)?;
        video.width.zip(video.height)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::frame::{Codec, FIRST_AUDIO_TRACK};
    use bytes::Bytes;

    #[test]
    fn the_test_clip_tells_its_tracks_and_codecs() {
        let mut clip = crate::media::source::ClipFrames::new(crate::media::TEST_CLIP_TS).unwrap();
        let program = clip.tracks();
        let mut table = TrackTable::default();
        for _ in 0..200 {
            let (frame, _) = clip.next_frame();
            if let Some(facts) = table.learnt_from(&frame, &program) {
                table.set(frame.track, facts);
            }
        }
        assert_eq!(table.resolution(), Some((640, 360)));
        let codecs = table.codec_strings();
        assert_eq!(codecs.len(), 2, "{codecs:?}");
        assert!(
            codecs[0].starts_with("avc1.") && codecs[1] == "mp4a.40.2",
            "{codecs:?}"
        );
        let audio = table.get(FIRST_AUDIO_TRACK).unwrap();
        assert!(audio.sample_rate.is_some() && audio.channels.is_some());
    }

    #[test]
    fn an_unknown_codec_string_leaves_codecs_out() {
        let mut table = TrackTable::default();
        let program = Tracks::simple(Some(Codec::Mpeg2Video), None);
        let frame = Frame {
            codec: Codec::Mpeg2Video,
            track: 0,
            dts: 0,
            pts: 0,
            keyframe: true,
            data: Bytes::from_static(&[0, 0, 1, 0xb3, 0x2d, 0x02, 0x40, 0x33]),
        };
        let facts = table.learnt_from(&frame, &program).unwrap();
        assert_eq!((facts.width, facts.height), (Some(720), Some(576)));
        table.set(0, facts);
        assert!(table.learnt_from(&frame, &program).is_none(), "nothing new");
        assert!(table.codec_strings().is_empty());
        table.keep_only(&Tracks::EMPTY);
        assert!(table.get(0).is_none());
    }
}
