//! Frames → MPEG-TS, once per stream for every viewer.
//!
//! Each frame becomes one chunk of whole transport packets. A video keyframe's chunk
//! starts with PAT and PMT, so any keyframe chunk is a valid place to start reading: HLS
//! segments (cut on keyframes) and HTTP-MPEG-TS viewers (who join on a keyframe) both
//! begin with the tables. PCR rides on the video PES starts (on audio for audio-only).

use bytes::Bytes;
use mpeg2ts::es::{StreamId, StreamType};
use mpeg2ts::pes::PesHeader;
use mpeg2ts::time::{ClockReference, Timestamp};
use mpeg2ts::ts::payload::{Bytes as TsBytes, Pat, Pes, Pmt};
use mpeg2ts::ts::{
    AdaptationField, ContinuityCounter, Descriptor, EsInfo, Pid, ProgramAssociation,
    TransportScramblingControl, TsHeader, TsPacket, TsPacketWriter, TsPayload, VersionNumber,
    WriteTsPacket,
};

use super::{ELEMENTARY_PID_BASE, PMT_PID, stream_type};
use crate::media::frame::{Codec, Frame};
use crate::media::program::{MAX_TRACKS, Tracks};
use crate::media::timeline::WRAP_TICKS;

/// The muxer state of one stream (continuity counters per PID).
#[derive(Debug)]
pub struct Muxer {
    tracks: Tracks,
    pat: ContinuityCounter,
    pmt: ContinuityCounter,
    /// One per track number.
    elementary: [ContinuityCounter; MAX_TRACKS],
    /// The PMT's version: bumped when the tracks change.
    version: VersionNumber,
    /// When the tables last went out (audio-only streams repeat them on a period).
    last_tables_dts: Option<u64>,
}

/// Everything the muxer carries from one frame to the next. Two muxers in the same state
/// given the same frames write the same bytes: a relaying node takes the origin's state
/// at each segment start (`crate::relay`) and so writes the origin's segments byte for
/// byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct MuxState {
    pub tracks: Tracks,
    /// Continuity counters of the PAT, the PMT and each track's PID (0..=15).
    pub counters: [u8; 2 + MAX_TRACKS],
    /// The PMT's version (0..=31).
    pub version: u8,
    /// When the tables last went out, 90 kHz.
    pub last_tables_dts: Option<u64>,
}

/// A [`MuxState`] with a counter or version out of range: the peer that sent it is at
/// fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("muxer state out of range (continuity counter > 15 or PMT version > 31)")]
pub struct BadMuxState;

/// One frame's packets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Muxed {
    pub bytes: Bytes,
    /// The packets start with PAT and PMT followed by a decodable frame: a reader (an HLS
    /// segment, a joining viewer) can start here.
    pub random_access: bool,
}

/// Audio-only programs repeat PAT/PMT this often (90 kHz), so segments can be cut there.
pub const AUDIO_ONLY_TABLE_PERIOD_TICKS: u64 = 90_000;

/// PES header bytes after the 6-byte start: flags (3) + PTS (5) + optional DTS (5).
fn optional_header_len(has_dts: bool) -> usize {
    3 + 5 + if has_dts { 5 } else { 0 }
}

/// Bytes an adaptation field carrying a PCR takes (length, flags, 6-byte PCR).
const PCR_FIELD_BYTES: usize = 8;

impl Muxer {
    pub fn new(tracks: Tracks) -> Muxer {
        Muxer {
            tracks,
            pat: ContinuityCounter::new(),
            pmt: ContinuityCounter::new(),
            elementary: [ContinuityCounter::new(); MAX_TRACKS],
            version: VersionNumber::new(),
            last_tables_dts: None,
        }
    }

    /// Changes the program's tracks (a new PMT version goes out with the next keyframe).
    pub fn set_tracks(&mut self, tracks: Tracks) {
        if tracks != self.tracks {
            self.tracks = tracks;
            self.version.increment();
        }
    }

    pub fn tracks(&self) -> Tracks {
        self.tracks
    }

    /// The state the next frame is muxed from.
    pub fn state(&self) -> MuxState {
        let mut counters = [0; 2 + MAX_TRACKS];
        counters[0] = self.pat.as_u8();
        counters[1] = self.pmt.as_u8();
        for (slot, counter) in counters[2..].iter_mut().zip(&self.elementary) {
            *slot = counter.as_u8();
        }
        MuxState {
            tracks: self.tracks,
            counters,
            version: self.version.as_u8(),
            last_tables_dts: self.last_tables_dts,
        }
    }

    /// Continues from `state` (another muxer's, see [`MuxState`]).
    pub fn restore(&mut self, state: MuxState) -> Result<(), BadMuxState> {
        let counter = |n: u8| ContinuityCounter::from_u8(n).map_err(|_| BadMuxState);
        let mut elementary = [ContinuityCounter::new(); MAX_TRACKS];
        for (slot, value) in elementary.iter_mut().zip(&state.counters[2..]) {
            *slot = counter(*value)?;
        }
        let version = VersionNumber::from_u8(state.version).map_err(|_| BadMuxState)?;
        self.pat = counter(state.counters[0])?;
        self.pmt = counter(state.counters[1])?;
        self.elementary = elementary;
        self.version = version;
        self.tracks = state.tracks;
        self.last_tables_dts = state.last_tables_dts;
        Ok(())
    }

    /// The track PCR rides on: the video track, or the first audio track.
    fn pcr_track(&self) -> u8 {
        self.tracks.iter().next().map_or(0, |(number, _)| number)
    }

    fn header(pid: u16, counter: &mut ContinuityCounter) -> TsHeader {
        let header = TsHeader {
            transport_error_indicator: false,
            transport_priority: false,
            pid: Pid::new(pid).expect("flotilla's PIDs are valid"),
            transport_scrambling_control: TransportScramblingControl::NotScrambled,
            continuity_counter: *counter,
        };
        counter.increment();
        header
    }

    fn write_tables(&mut self, out: &mut TsPacketWriter<Vec<u8>>) -> mpeg2ts::Result<()> {
        out.write_ts_packet(&TsPacket {
            header: Self::header(0, &mut self.pat),
            adaptation_field: None,
            payload: Some(TsPayload::Pat(Pat {
                transport_stream_id: 1,
                version_number: VersionNumber::new(),
                table: vec![ProgramAssociation {
                    program_num: 1,
                    program_map_pid: Pid::new(PMT_PID)?,
                }],
            })),
        })?;
        let mut es_info = Vec::new();
        for (number, track) in self.tracks.iter() {
            let mut descriptors = Vec::new();
            match track.codec {
                // ATSC A/52 Annex A: the registration descriptor names Dolby streams.
                Codec::Ac3 => descriptors.push(Descriptor {
                    tag: 0x05,
                    data: b"AC-3".to_vec(),
                }),
                Codec::Eac3 => descriptors.push(Descriptor {
                    tag: 0x05,
                    data: b"EAC3".to_vec(),
                }),
                // Opus in MPEG-TS: the registration descriptor, then the extension
                // descriptor (tag extension 0x80) with the channel configuration; a
                // WebRTC Opus track is stereo.
                Codec::Opus => {
                    descriptors.push(Descriptor {
                        tag: 0x05,
                        data: b"Opus".to_vec(),
                    });
                    descriptors.push(Descriptor {
                        tag: 0x7f,
                        data: vec![0x80, 2],
                    });
                }
                _ => {}
            }
            if let Some(language) = track.language {
                // ISO 639 language descriptor: the code and audio type 0 (undefined).
                let mut data = language.bytes().to_vec();
                data.push(0);
                descriptors.push(Descriptor { tag: 0x0a, data });
            }
            es_info.push(EsInfo {
                stream_type: StreamType::from_u8(stream_type(track.codec))?,
                elementary_pid: Pid::new(ELEMENTARY_PID_BASE + u16::from(number))?,
                descriptors,
            });
        }
        let pcr_pid = ELEMENTARY_PID_BASE + u16::from(self.pcr_track());
        out.write_ts_packet(&TsPacket {
            header: Self::header(PMT_PID, &mut self.pmt),
            adaptation_field: None,
            payload: Some(TsPayload::Pmt(Pmt {
                program_num: 1,
                pcr_pid: Some(Pid::new(pcr_pid)?),
                version_number: self.version,
                program_info: vec![],
                es_info,
            })),
        })
    }

    /// Whether `frame` opens a random-access point: video keyframes, or for audio-only
    /// programs the first frame after [`AUDIO_ONLY_TABLE_PERIOD_TICKS`].
    fn opens_random_access(&self, frame: &Frame) -> bool {
        if self.tracks.has_video() {
            return frame.starts_gop();
        }
        frame.track == self.pcr_track()
            && self
                .last_tables_dts
                .is_none_or(|last| frame.dts.saturating_sub(last) >= AUDIO_ONLY_TABLE_PERIOD_TICKS)
    }

    /// Muxes one frame into whole transport packets.
    pub fn mux(&mut self, frame: &Frame) -> Muxed {
        let packets = (frame.data.len() / 184 + 4) * 188;
        let mut out = TsPacketWriter::new(Vec::with_capacity(packets));
        if !self.tracks.carries(frame) {
            // The packager admits only frames of the program's tracks.
            tracing::warn!(codec = %frame.codec, track = frame.track, "frame of a track outside the program dropped by the TS muxer");
            return Muxed {
                bytes: Bytes::new(),
                random_access: false,
            };
        }
        let random_access = self.opens_random_access(frame);
        match self.mux_into(frame, random_access, &mut out) {
            Ok(()) => Muxed {
                bytes: Bytes::from(out.into_stream()),
                random_access,
            },
            Err(error) => {
                // Only out-of-range values can fail, and the timeline keeps them in range;
                // a frame that still fails is dropped rather than corrupting the stream.
                tracing::warn!(reason = %error.reason, "frame dropped by the TS muxer");
                Muxed {
                    bytes: Bytes::new(),
                    random_access: false,
                }
            }
        }
    }

    fn mux_into(
        &mut self,
        frame: &Frame,
        random_access: bool,
        out: &mut TsPacketWriter<Vec<u8>>,
    ) -> mpeg2ts::Result<()> {
        let is_video = frame.codec.is_video();
        if random_access {
            self.write_tables(out)?;
            self.last_tables_dts = Some(frame.dts);
        }
        let pid = ELEMENTARY_PID_BASE + u16::from(frame.track);
        let stream_id = match frame.codec {
            codec if codec.is_video() => StreamId::new(StreamId::VIDEO_MIN),
            // Dolby audio goes in private_stream_1; MPEG audio ids count up per track.
            Codec::Ac3 | Codec::Eac3 | Codec::Opus => StreamId::new(0xbd),
            _ => StreamId::new(StreamId::AUDIO_MIN + frame.track.saturating_sub(1) % 32),
        };
        let opus_framed;
        let data: &[u8] = if frame.codec == Codec::Opus {
            opus_framed = opus_access_unit(&frame.data);
            &opus_framed
        } else {
            &frame.data
        };
        let carries_pcr = frame.track == self.pcr_track();
        let pts = frame.pts % WRAP_TICKS;
        let dts = frame.dts % WRAP_TICKS;
        let has_dts = is_video && pts != dts;
        let header = PesHeader {
            stream_id,
            priority: false,
            data_alignment_indicator: true,
            copyright: false,
            original_or_copy: false,
            pts: Some(Timestamp::new(pts)?),
            dts: if has_dts {
                Some(Timestamp::new(dts)?)
            } else {
                None
            },
            escr: None,
        };
        let optional = optional_header_len(has_dts);
        let total = optional + data.len();
        // 0 means "unbounded", allowed for video only; audio frames are far below 64 KiB.
        let pes_packet_len = if total > 0xFFFF { 0 } else { total as u16 };
        let adaptation_field = carries_pcr.then(|| AdaptationField {
            discontinuity_indicator: false,
            random_access_indicator: frame.keyframe,
            es_priority_indicator: false,
            // PCR slightly before the DTS gives decoders their buffering headroom.
            pcr: Some(
                ClockReference::new(dts.saturating_sub(9_000) * 300)
                    .unwrap_or(ClockReference::from(0u32)),
            ),
            opcr: None,
            splice_countdown: None,
            transport_private_data: vec![],
            extension: None,
        });
        let room = 184 - if carries_pcr { PCR_FIELD_BYTES } else { 0 } - (6 + optional);
        let first = data.len().min(room);
        let counter = &mut self.elementary[usize::from(frame.track) % MAX_TRACKS];
        out.write_ts_packet(&TsPacket {
            header: Self::header(pid, counter),
            adaptation_field,
            payload: Some(TsPayload::PesStart(Pes {
                header,
                pes_packet_len,
                data: TsBytes::new(&data[..first])?,
            })),
        })?;
        for piece in data[first..].chunks(TsBytes::MAX_SIZE) {
            out.write_ts_packet(&TsPacket {
                header: Self::header(pid, counter),
                adaptation_field: None,
                payload: Some(TsPayload::PesContinuation(TsBytes::new(piece)?)),
            })?;
        }
        Ok(())
    }
}

/// An Opus packet as MPEG-TS carries it: the control header (prefix 0x3ff, no trim or
/// extension flags) and the packet's size in 255-steps before the packet.
fn opus_access_unit(packet: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(packet.len() + 3 + packet.len() / 255);
    out.extend_from_slice(&[0x7f, 0xe0]);
    let mut size = packet.len();
    while size >= 255 {
        out.push(0xff);
        size -= 255;
    }
    out.push(size as u8);
    out.extend_from_slice(packet);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opus_packets_get_the_control_header_and_their_size_in_255_steps() {
        assert_eq!(opus_access_unit(&[1, 2, 3]), vec![0x7f, 0xe0, 3, 1, 2, 3]);
        let long = vec![9u8; 600];
        let framed = opus_access_unit(&long);
        assert_eq!(&framed[..5], &[0x7f, 0xe0, 0xff, 0xff, 90]);
        assert_eq!(framed.len(), 5 + 600);
        assert_eq!(
            opus_access_unit(&vec![0u8; 255])[..4],
            [0x7f, 0xe0, 0xff, 0]
        );
    }
}
