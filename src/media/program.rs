//! A stream's program: which tracks it carries, with their codecs and languages.
//!
//! A program has at most one video track ([`VIDEO_TRACK`]) and up to [`MAX_TRACKS`] − 1
//! audio tracks, numbered in the order the source lists them (a TV channel's languages,
//! an audio description). Track numbers are the stream's own, not the source's PIDs: a
//! frame says which track it belongs to, the TS muxer gives track `n` the PID
//! `0x100 + n`, and a relaying node writes the same program from the same numbers.
//!
//! [`Tracks`] is small and `Copy`: it travels in the muxer's state (`ts::mux::MuxState`),
//! between nodes, and is compared on every source switch.

use serde::{Deserialize, Serialize};

use super::frame::{Codec, FIRST_AUDIO_TRACK, Frame, VIDEO_TRACK};

/// Most tracks a program carries: one video and seven audio tracks covers multilingual
/// broadcast channels (two to four languages, audio description, a Dolby and a stereo
/// mix); a source that lists more keeps its first ones.
pub const MAX_TRACKS: usize = 8;

/// An ISO 639-2 language code (`eng`, `fra`, `deu`), as MPEG-TS's language descriptor
/// and RTMP's metadata carry it: three lowercase ASCII letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Language([u8; 3]);

impl Language {
    /// The code, if `bytes` is three ASCII letters (lowercased); anything else is not a
    /// language a player could show.
    pub fn new(bytes: [u8; 3]) -> Option<Language> {
        bytes
            .iter()
            .all(u8::is_ascii_alphabetic)
            .then(|| Language(bytes.map(|b| b.to_ascii_lowercase())))
    }

    pub fn bytes(self) -> [u8; 3] {
        self.0
    }

    pub fn as_str(&self) -> &str {
        // Three ASCII letters by construction.
        std::str::from_utf8(&self.0).unwrap_or("und")
    }
}

/// One track: its codec and, for audio, its language when the source names one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Track {
    pub codec: Codec,
    pub language: Option<Language>,
}

impl Track {
    pub fn of(codec: Codec) -> Track {
        Track {
            codec,
            language: None,
        }
    }
}

/// The tracks of a program, by track number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash, Serialize, Deserialize)]
pub struct Tracks {
    slots: [Option<Track>; MAX_TRACKS],
}

impl Tracks {
    /// No tracks.
    pub const EMPTY: Tracks = Tracks {
        slots: [None; MAX_TRACKS],
    };
    /// H.264 video alone.
    pub const SIMPLE_H264: Tracks = Tracks::EMPTY.with(VIDEO_TRACK, Codec::H264);
    /// H.264 video and AAC audio on the first audio track: the common program.
    pub const SIMPLE_H264_AAC: Tracks = Tracks::SIMPLE_H264.with(FIRST_AUDIO_TRACK, Codec::Aac);

    /// This program with track `number` of `codec` (no language).
    pub const fn with(mut self, number: u8, codec: Codec) -> Tracks {
        if (number as usize) < MAX_TRACKS {
            self.slots[number as usize] = Some(Track {
                codec,
                language: None,
            });
        }
        self
    }

    /// A program of the tracks given as (number, track); numbers out of range are left
    /// out.
    pub fn from_slots(tracks: impl IntoIterator<Item = (u8, Track)>) -> Tracks {
        let mut out = Tracks::default();
        for (number, track) in tracks {
            out.set(number, track);
        }
        out
    }

    /// A program of one track per kind: `video` on [`VIDEO_TRACK`], `audio` on
    /// [`FIRST_AUDIO_TRACK`] (RTMP publishers, cameras).
    pub fn simple(video: Option<Codec>, audio: Option<Codec>) -> Tracks {
        let mut out = Tracks::default();
        if let Some(codec) = video {
            out.set(VIDEO_TRACK, Track::of(codec));
        }
        if let Some(codec) = audio {
            out.set(FIRST_AUDIO_TRACK, Track::of(codec));
        }
        out
    }

    /// Sets track `number` (ignored when out of range).
    pub fn set(&mut self, number: u8, track: Track) {
        if let Some(slot) = self.slots.get_mut(usize::from(number)) {
            *slot = Some(track);
        }
    }

    pub fn get(&self, number: u8) -> Option<Track> {
        self.slots.get(usize::from(number)).copied().flatten()
    }

    /// The tracks present, by number.
    pub fn iter(&self) -> impl Iterator<Item = (u8, Track)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(number, slot)| slot.map(|track| (number as u8, track)))
    }

    pub fn video(&self) -> Option<Track> {
        self.get(VIDEO_TRACK)
    }

    pub fn has_video(&self) -> bool {
        self.video().is_some()
    }

    /// The audio tracks, by number.
    pub fn audio(&self) -> impl Iterator<Item = (u8, Track)> + '_ {
        self.iter().filter(|(_, track)| !track.codec.is_video())
    }

    pub fn has_audio(&self) -> bool {
        self.audio().next().is_some()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.iter().all(Option::is_none)
    }

    pub fn len(&self) -> usize {
        self.slots.iter().flatten().count()
    }

    /// Whether `frame` belongs to a track of this program (same number, same codec).
    pub fn carries(&self, frame: &Frame) -> bool {
        self.get(frame.track)
            .is_some_and(|track| track.codec == frame.codec)
    }

    /// This program with `other`'s tracks added where this one has none (its own tracks
    /// win where both have one).
    pub fn union(&self, other: &Tracks) -> Tracks {
        let mut out = *self;
        for (number, track) in other.iter() {
            if out.get(number).is_none() {
                out.set(number, track);
            }
        }
        out
    }

    /// Whether every track of `other` is in this program.
    pub fn covers(&self, other: &Tracks) -> bool {
        other
            .iter()
            .all(|(number, track)| self.get(number).is_some_and(|t| t.codec == track.codec))
    }

    /// This program with the languages `declared` gives its tracks (same number, same
    /// codec): frames tell a track's codec, only the source's declaration its language.
    pub fn described_by(&self, declared: &Tracks) -> Tracks {
        let mut out = *self;
        for (number, track) in self.iter() {
            if let Some(described) = declared.get(number).filter(|d| d.codec == track.codec) {
                out.set(number, described);
            }
        }
        out
    }

    /// The one track `frame` belongs to.
    pub fn of_frame(frame: &Frame) -> Tracks {
        Tracks::from_slots([(frame.track, Track::of(frame.codec))])
    }

    /// A short description for logs and errors: `H.264, AAC (eng), AC-3 (fra)`.
    pub fn describe(&self) -> String {
        let names: Vec<String> = self
            .iter()
            .map(|(_, track)| match track.language {
                Some(language) => format!("{} ({})", track.codec, language.as_str()),
                None => track.codec.to_string(),
            })
            .collect();
        if names.is_empty() {
            "no tracks".into()
        } else {
            names.join(", ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn codec(index: u8) -> Codec {
        Codec::ALL[usize::from(index) % Codec::ALL.len()]
    }

    #[test]
    fn languages_are_three_letters() {
        assert_eq!(Language::new(*b"ENG").unwrap().as_str(), "eng");
        assert!(Language::new(*b"e1g").is_none());
        assert!(Language::new([0, 0, 0]).is_none());
    }

    #[test]
    fn a_simple_program_and_its_description() {
        let tracks = Tracks::simple(Some(Codec::H264), Some(Codec::Aac));
        assert!(tracks.has_video() && tracks.has_audio());
        assert_eq!(tracks.len(), 2);
        assert_eq!(tracks.describe(), "H.264, AAC");
        let mut french = tracks;
        french.set(
            2,
            Track {
                codec: Codec::Ac3,
                language: Language::new(*b"fra"),
            },
        );
        assert_eq!(french.describe(), "H.264, AAC, AC-3 (fra)");
        assert!(french.covers(&tracks) && !tracks.covers(&french));
        set_out_of_range_is_ignored();
    }

    fn set_out_of_range_is_ignored() {
        let mut tracks = Tracks::default();
        tracks.set(MAX_TRACKS as u8, Track::of(Codec::Aac));
        assert!(tracks.is_empty());
    }

    proptest! {
        #[test]
        fn union_covers_both_and_keeps_its_own(
            a in proptest::collection::vec((0u8..8, 0u8..7), 0..8),
            b in proptest::collection::vec((0u8..8, 0u8..7), 0..8),
        ) {
            let left = Tracks::from_slots(a.iter().map(|(n, c)| (*n, Track::of(codec(*c)))));
            let right = Tracks::from_slots(b.iter().map(|(n, c)| (*n, Track::of(codec(*c)))));
            let union = left.union(&right);
            prop_assert!(union.covers(&left));
            for (number, _) in right.iter() {
                prop_assert!(union.get(number).is_some());
            }
            prop_assert_eq!(union.len(), left.len() + right.iter().filter(|(n, _)| left.get(*n).is_none()).count());
        }
    }
}
