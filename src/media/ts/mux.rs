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
    AdaptationField, ContinuityCounter, EsInfo, Pid, ProgramAssociation,
    TransportScramblingControl, TsHeader, TsPacket, TsPacketWriter, TsPayload, VersionNumber,
    WriteTsPacket,
};

use super::{AUDIO_PID, PMT_PID, VIDEO_PID};
use crate::media::frame::{Codec, Frame};
use crate::media::timeline::WRAP_TICKS;

/// Which elementary streams the program carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tracks {
    pub video: bool,
    pub audio: bool,
}

/// The muxer state of one stream (continuity counters per PID).
#[derive(Debug)]
pub struct Muxer {
    tracks: Tracks,
    pat: ContinuityCounter,
    pmt: ContinuityCounter,
    video: ContinuityCounter,
    audio: ContinuityCounter,
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
    pub video: bool,
    pub audio: bool,
    /// Continuity counters of the PAT, PMT, video and audio PIDs (0..=15).
    pub counters: [u8; 4],
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
            video: ContinuityCounter::new(),
            audio: ContinuityCounter::new(),
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
        MuxState {
            video: self.tracks.video,
            audio: self.tracks.audio,
            counters: [
                self.pat.as_u8(),
                self.pmt.as_u8(),
                self.video.as_u8(),
                self.audio.as_u8(),
            ],
            version: self.version.as_u8(),
            last_tables_dts: self.last_tables_dts,
        }
    }

    /// Continues from `state` (another muxer's, see [`MuxState`]).
    pub fn restore(&mut self, state: MuxState) -> Result<(), BadMuxState> {
        let counter = |n: u8| ContinuityCounter::from_u8(n).map_err(|_| BadMuxState);
        let [pat, pmt, video, audio] = state.counters;
        let restored = (
            counter(pat)?,
            counter(pmt)?,
            counter(video)?,
            counter(audio)?,
            VersionNumber::from_u8(state.version).map_err(|_| BadMuxState)?,
        );
        (self.pat, self.pmt, self.video, self.audio, self.version) = restored;
        self.tracks = Tracks {
            video: state.video,
            audio: state.audio,
        };
        self.last_tables_dts = state.last_tables_dts;
        Ok(())
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
        if self.tracks.video {
            es_info.push(EsInfo {
                stream_type: StreamType::H264,
                elementary_pid: Pid::new(VIDEO_PID)?,
                descriptors: vec![],
            });
        }
        if self.tracks.audio {
            es_info.push(EsInfo {
                stream_type: StreamType::AdtsAac,
                elementary_pid: Pid::new(AUDIO_PID)?,
                descriptors: vec![],
            });
        }
        let pcr_pid = if self.tracks.video || !self.tracks.audio {
            VIDEO_PID
        } else {
            AUDIO_PID
        };
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
        if self.tracks.video {
            return frame.starts_gop();
        }
        self.last_tables_dts
            .is_none_or(|last| frame.dts.saturating_sub(last) >= AUDIO_ONLY_TABLE_PERIOD_TICKS)
    }

    /// Muxes one frame into whole transport packets.
    pub fn mux(&mut self, frame: &Frame) -> Muxed {
        let packets = (frame.data.len() / 184 + 4) * 188;
        let mut out = TsPacketWriter::new(Vec::with_capacity(packets));
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
        let (pid, stream_id) = match frame.codec {
            Codec::H264 => (VIDEO_PID, StreamId::new(StreamId::VIDEO_MIN)),
            Codec::Aac => (AUDIO_PID, StreamId::new(StreamId::AUDIO_MIN)),
        };
        let carries_pcr = is_video || !self.tracks.video;
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
        let total = optional + frame.data.len();
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
        let first = frame.data.len().min(room);
        let counter = if is_video {
            &mut self.video
        } else {
            &mut self.audio
        };
        out.write_ts_packet(&TsPacket {
            header: Self::header(pid, counter),
            adaptation_field,
            payload: Some(TsPayload::PesStart(Pes {
                header,
                pes_packet_len,
                data: TsBytes::new(&frame.data[..first])?,
            })),
        })?;
        for piece in frame.data[first..].chunks(TsBytes::MAX_SIZE) {
            out.write_ts_packet(&TsPacket {
                header: Self::header(pid, counter),
                adaptation_field: None,
                payload: Some(TsPayload::PesContinuation(TsBytes::new(piece)?)),
            })?;
        }
        Ok(())
    }
}
