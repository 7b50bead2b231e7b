//! MPEG-TS → PES packets, for inputs we do not control (HTTP and UDP sources, files).
//!
//! Our own rather than the mpeg2ts crate's reader, because sources are hostile or just
//! broken in ways that reader does not survive: it fails on packets of PIDs not yet
//! announced (every stream joined mid-way), on PMT stream types it does not know (teletext,
//! SCTE-35: common in IPTV), and it loses sync for good after one bad packet. Here:
//! - sync is found and re-found on the 0x47 byte, one packet at a time;
//! - unknown PIDs and stream types are skipped, PSI with a bad CRC is ignored;
//! - a continuity-counter gap drops the PES being assembled (it would be corrupt);
//! - every buffer is bounded ([`MAX_PES_BYTES`], [`MAX_ELEMENTARY_STREAMS`]);
//! - one program only: a multi-program stream (MPTS, what headends send) gives the program
//!   asked for ([`Program::Number`]) or its first one, never a mix of two; the elementary
//!   streams are the ones its latest PMT lists;
//! - the PMT decides each elementary stream's codec (stream type and descriptors: DVB
//!   carries AC-3 as private data with an AC-3 descriptor) and language, and numbers the
//!   carried ones as the stream's tracks (see `media::program`): the first video stream,
//!   then the audio streams in the PMT's order. A stream that is not carried (a second
//!   video, teletext, subtitles, SCTE-35, a codec flotilla does not pass) is listed in
//!   [`Demuxer::skipped`] for the operator and its packets are not assembled.
//!
//! The demuxer is a push parser: feed any byte slices, in order, and collect PES packets.

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};

use super::{PACKET_BYTES, SYNC_BYTE};
use crate::media::frame::{Codec, FIRST_AUDIO_TRACK, MAX_FRAME_BYTES, VIDEO_TRACK};
use crate::media::program::{Language, MAX_TRACKS, Track, Tracks};

/// Largest PES packet assembled; a larger one is dropped (see [`MAX_FRAME_BYTES`]).
pub const MAX_PES_BYTES: usize = MAX_FRAME_BYTES;

/// Most elementary streams tracked: a multi-program transport stream carries dozens; a
/// PMT announcing more is broken or hostile.
pub const MAX_ELEMENTARY_STREAMS: usize = 64;

/// One reassembled PES packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pes {
    pub pid: u16,
    /// The stream type the PMT gave this PID.
    pub stream_type: u8,
    /// What the PMT says it carries, and its track number.
    pub codec: Codec,
    pub track: u8,
    /// 33-bit source timestamps, 90 kHz.
    pub pts: Option<u64>,
    pub dts: Option<u64>,
    /// The first packet carried the random-access indicator.
    pub random_access: bool,
    pub data: Bytes,
}

/// What went wrong in the input so far (for stream statistics and logs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DemuxStats {
    pub packets: u64,
    /// Times the sync byte was lost and searched for.
    pub resyncs: u64,
    /// PES packets dropped for a continuity gap, oversize or a malformed header.
    pub dropped_pes: u64,
    /// PSI sections ignored (bad CRC, malformed).
    pub bad_tables: u64,
}

#[derive(Debug)]
struct Assembly {
    pts: Option<u64>,
    dts: Option<u64>,
    random_access: bool,
    /// Expected payload size when the PES header gave one.
    expected: Option<usize>,
    data: BytesMut,
}

#[derive(Debug)]
struct Elementary {
    stream_type: u8,
    codec: Codec,
    track: u8,
    language: Option<Language>,
    last_counter: Option<u8>,
    assembly: Option<Assembly>,
}

/// Which program of a transport stream is demuxed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Program {
    /// The PAT's first program (a single-program stream's only one).
    #[default]
    First,
    /// The program of this number (`program=N`).
    Number(u16),
}

/// The demuxer state of one input.
#[derive(Debug, Default)]
pub struct Demuxer {
    /// Bytes of an incomplete packet carried to the next push (< 188).
    carry: Vec<u8>,
    program: Program,
    /// The chosen program's (number, PMT PID), once a PAT named it.
    pmt: Option<(u16, u16)>,
    /// The program numbers the last PAT listed (for the operator, when the chosen one is
    /// not among them).
    pub programs: Vec<u16>,
    streams: BTreeMap<u16, Elementary>,
    /// The chosen program's elementary streams that are not carried, described for the
    /// operator (`PID 0x0102: teletext or subtitles (stream type 0x06)`).
    skipped: Vec<String>,
    /// Only these PIDs of the program (`pids=`); empty: every carried stream.
    selected: Vec<u16>,
    pub stats: DemuxStats,
}

/// Descriptor tags read from a PMT's elementary stream loop.
const DESCRIPTOR_REGISTRATION: u8 = 0x05;
const DESCRIPTOR_LANGUAGE: u8 = 0x0a;
const DESCRIPTOR_DVB_AC3: u8 = 0x6a;
const DESCRIPTOR_DVB_EAC3: u8 = 0x7a;

/// What a PMT entry's descriptors say.
#[derive(Debug, Default)]
struct Described {
    language: Option<Language>,
    /// A DVB AC-3/E-AC-3 descriptor or a registration naming one.
    dolby: Option<Codec>,
}

fn describe(mut descriptors: &[u8]) -> Described {
    let mut out = Described::default();
    while let [tag, length, rest @ ..] = descriptors {
        let Some(body) = rest.get(..usize::from(*length)) else {
            break;
        };
        match (*tag, body) {
            (DESCRIPTOR_LANGUAGE, [a, b, c, ..]) => out.language = Language::new([*a, *b, *c]),
            (DESCRIPTOR_DVB_AC3, _) | (DESCRIPTOR_REGISTRATION, b"AC-3") => {
                out.dolby = Some(Codec::Ac3)
            }
            (DESCRIPTOR_DVB_EAC3, _) | (DESCRIPTOR_REGISTRATION, b"EAC3") => {
                out.dolby = Some(Codec::Eac3)
            }
            _ => {}
        }
        descriptors = &rest[usize::from(*length)..];
    }
    out
}

/// The codec of a PMT entry, if flotilla carries it (ISO 13818-1 Table 2-34, ATSC A/52
/// for 0x81/0x87, DVB EN 300 468 for private data with a Dolby descriptor).
fn codec_of(stream_type: u8, described: &Described) -> Option<Codec> {
    match stream_type {
        0x1b => Some(Codec::H264),
        0x24 => Some(Codec::H265),
        0x01 | 0x02 => Some(Codec::Mpeg2Video),
        0x0f => Some(Codec::Aac),
        0x03 | 0x04 => Some(Codec::MpegAudio),
        0x81 => Some(Codec::Ac3),
        0x84 | 0x87 => Some(Codec::Eac3),
        0x06 => described.dolby,
        _ => None,
    }
}

/// Why a PMT entry of `stream_type` is not carried, for the operator.
fn not_carried(stream_type: u8) -> &'static str {
    match stream_type {
        0x06 => "teletext, subtitles or other private data",
        0x11 => "AAC in LATM (only ADTS AAC is carried)",
        0x15 | 0x1c..=0x23 | 0x25..=0x2f => "metadata or a codec flotilla does not carry",
        0x86 | 0xc0 | 0xfc => "SCTE-35 cues or other data",
        0x82 | 0x85 | 0x8a => "DTS audio",
        _ => "a stream type flotilla does not carry",
    }
}

fn timestamp(bytes: &[u8]) -> u64 {
    (u64::from(bytes[0] >> 1) & 0x07) << 30
        | u64::from(bytes[1]) << 22
        | u64::from(bytes[2] >> 1) << 15
        | u64::from(bytes[3]) << 7
        | u64::from(bytes[4] >> 1)
}

/// CRC-32/MPEG-2 of a PSI section (polynomial 0x04C11DB7, no reflection).
fn crc32_mpeg2(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for byte in bytes {
        crc ^= u32::from(*byte) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04c1_1db7
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The section of a PSI payload (after the pointer field), CRC-checked: its table id
/// extension (a PMT's program number) and its entries; `None` if invalid.
fn psi_section(payload: &[u8], table_id: u8) -> Option<(u16, &[u8])> {
    let pointer = *payload.first()? as usize;
    let section = payload.get(1 + pointer..)?;
    if *section.first()? != table_id || section.len() < 3 {
        return None;
    }
    let length = (usize::from(section[1] & 0x0f) << 8) | usize::from(section[2]);
    let whole = section.get(..3 + length)?;
    if length < 9 || crc32_mpeg2(whole) != 0 {
        return None;
    }
    // Header (8 bytes from table_id) … entries … CRC (4 bytes).
    let extension = u16::from_be_bytes([whole[3], whole[4]]);
    Some((extension, &whole[8..whole.len() - 4]))
}

impl Demuxer {
    pub fn new() -> Demuxer {
        Demuxer::default()
    }

    /// The program asked for and the programs the stream has, when the stream's PAT
    /// does not list the one asked for.
    pub fn missing_program(&self) -> Option<(u16, Vec<u16>)> {
        match self.program {
            Program::Number(wanted) if self.pmt.is_none() && !self.programs.is_empty() => {
                Some((wanted, self.programs.clone()))
            }
            _ => None,
        }
    }

    /// A demuxer of `program` only.
    pub fn for_program(program: Program) -> Demuxer {
        Demuxer {
            program,
            ..Demuxer::default()
        }
    }

    /// This demuxer, taking only the elementary streams of `pids` (all when empty).
    pub fn with_pids(mut self, pids: Vec<u16>) -> Demuxer {
        self.selected = pids;
        self
    }

    /// The tracks the source's PMT names, whether or not they carried anything yet.
    pub fn announced_tracks(&self) -> Tracks {
        Tracks::from_slots(self.streams.values().map(|stream| {
            let track = Track {
                codec: stream.codec,
                language: stream.language,
            };
            (stream.track, track)
        }))
    }

    /// The chosen program's elementary streams that are not carried, described.
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }

    /// Feeds bytes; complete PES packets are appended to `out`.
    pub fn push(&mut self, mut bytes: &[u8], out: &mut Vec<Pes>) {
        if !self.carry.is_empty() {
            let need = PACKET_BYTES - self.carry.len();
            if bytes.len() < need {
                self.carry.extend_from_slice(bytes);
                return;
            }
            let mut packet = std::mem::take(&mut self.carry);
            packet.extend_from_slice(&bytes[..need]);
            bytes = &bytes[need..];
            if packet[0] == SYNC_BYTE {
                self.packet(&packet, out);
            } else {
                // The carried bytes were garbage: look for sync in them and the rest.
                self.stats.resyncs += 1;
                let mut joined = packet[1..].to_vec();
                joined.extend_from_slice(bytes);
                return self.push_aligned(&joined, out);
            }
        }
        self.push_aligned(bytes, out);
    }

    fn push_aligned(&mut self, mut bytes: &[u8], out: &mut Vec<Pes>) {
        loop {
            match bytes.iter().position(|b| *b == SYNC_BYTE) {
                None => return,
                Some(0) => {}
                Some(skip) => {
                    self.stats.resyncs += 1;
                    bytes = &bytes[skip..];
                }
            }
            if bytes.len() < PACKET_BYTES {
                self.carry.extend_from_slice(bytes);
                return;
            }
            // A sync byte that is not followed by another one a packet later (when we can
            // see it) is a 0x47 inside payload: skip it.
            if bytes.len() > PACKET_BYTES && bytes[PACKET_BYTES] != SYNC_BYTE {
                self.stats.resyncs += 1;
                bytes = &bytes[1..];
                continue;
            }
            self.packet(&bytes[..PACKET_BYTES], out);
            bytes = &bytes[PACKET_BYTES..];
        }
    }

    /// Ends the input: PES packets still being assembled are emitted if complete enough.
    pub fn flush(&mut self, out: &mut Vec<Pes>) {
        let pids: Vec<u16> = self.streams.keys().copied().collect();
        for pid in pids {
            self.finish(pid, out);
        }
        self.carry.clear();
    }

    fn packet(&mut self, packet: &[u8], out: &mut Vec<Pes>) {
        debug_assert_eq!(packet.len(), PACKET_BYTES);
        self.stats.packets += 1;
        let transport_error = packet[1] & 0x80 != 0;
        let unit_start = packet[1] & 0x40 != 0;
        let pid = (u16::from(packet[1] & 0x1f) << 8) | u16::from(packet[2]);
        let scrambled = packet[3] >> 6 != 0;
        let adaptation = (packet[3] >> 4) & 0x03;
        let counter = packet[3] & 0x0f;
        if transport_error || scrambled || pid == 0x1fff {
            return;
        }
        let mut payload_start = 4;
        let mut random_access = false;
        if adaptation & 0x02 != 0 {
            let length = usize::from(packet[4]);
            if length > 183 {
                return;
            }
            if length > 0 {
                random_access = packet[5] & 0x40 != 0;
            }
            payload_start = 5 + length;
        }
        if adaptation & 0x01 == 0 || payload_start >= PACKET_BYTES {
            return;
        }
        let payload = &packet[payload_start..];
        if pid == 0 {
            if unit_start {
                self.pat(payload);
            }
        } else if self.pmt.is_some_and(|(_, pmt_pid)| pmt_pid == pid) {
            if unit_start {
                self.pmt(payload);
            }
        } else if self.streams.contains_key(&pid) {
            self.elementary(pid, unit_start, counter, random_access, payload, out);
        }
    }

    fn pat(&mut self, payload: &[u8]) {
        let Some((_, entries)) = psi_section(payload, 0x00) else {
            self.stats.bad_tables += 1;
            return;
        };
        // (program number, PMT PID); program 0 is the NIT.
        let listed: Vec<(u16, u16)> = entries
            .chunks_exact(4)
            .map(|entry| {
                (
                    u16::from_be_bytes([entry[0], entry[1]]),
                    (u16::from(entry[2] & 0x1f) << 8) | u16::from(entry[3]),
                )
            })
            .filter(|(number, _)| *number != 0)
            .take(MAX_ELEMENTARY_STREAMS)
            .collect();
        self.programs = listed.iter().map(|(number, _)| *number).collect();
        let chosen = match self.program {
            Program::First => listed.iter().min_by_key(|(number, _)| *number).copied(),
            Program::Number(wanted) => listed.iter().find(|(n, _)| *n == wanted).copied(),
        };
        if chosen != self.pmt {
            // Another program (or none): its streams are not ours any more.
            self.streams.clear();
            self.skipped.clear();
            self.pmt = chosen;
        }
    }

    fn pmt(&mut self, payload: &[u8]) {
        let Some((program_number, body)) = psi_section(payload, 0x02) else {
            self.stats.bad_tables += 1;
            return;
        };
        if body.len() < 4 {
            self.stats.bad_tables += 1;
            return;
        }
        // Several programs may share a PMT PID, each in its own section.
        if self.pmt.is_none_or(|(number, _)| number != program_number) {
            return;
        }
        let info_length = (usize::from(body[2] & 0x0f) << 8) | usize::from(body[3]);
        let mut rest = body.get(4 + info_length..).unwrap_or_default();
        // (PID, stream type, codec, track, language) of the carried streams, in the PMT's
        // order: the first video is the video track, audio tracks follow.
        let mut listed: Vec<(u16, u8, Codec, u8, Option<Language>)> = Vec::new();
        let mut skipped = Vec::new();
        let mut next_audio = FIRST_AUDIO_TRACK;
        let mut entries = 0;
        while rest.len() >= 5 && entries < MAX_ELEMENTARY_STREAMS {
            entries += 1;
            let stream_type = rest[0];
            let pid = (u16::from(rest[1] & 0x1f) << 8) | u16::from(rest[2]);
            let es_info_length = (usize::from(rest[3] & 0x0f) << 8) | usize::from(rest[4]);
            let descriptors = rest.get(5..5 + es_info_length).unwrap_or_default();
            rest = rest.get(5 + es_info_length..).unwrap_or_default();
            let described = describe(descriptors);
            if !self.selected.is_empty() && !self.selected.contains(&pid) {
                skipped.push(format!("PID {pid:#06x}: not among pids="));
                continue;
            }
            let Some(codec) = codec_of(stream_type, &described) else {
                let why = not_carried(stream_type);
                skipped.push(format!(
                    "PID {pid:#06x}: {why} (stream type {stream_type:#04x})"
                ));
                continue;
            };
            let track = if codec.is_video() {
                if listed.iter().any(|entry| entry.2.is_video()) {
                    skipped.push(format!("PID {pid:#06x}: a second video stream ({codec})"));
                    continue;
                }
                VIDEO_TRACK
            } else {
                if usize::from(next_audio) >= MAX_TRACKS {
                    skipped.push(format!(
                        "PID {pid:#06x}: audio beyond the {} audio tracks carried ({codec})",
                        MAX_TRACKS - 1
                    ));
                    continue;
                }
                next_audio += 1;
                next_audio - 1
            };
            listed.push((pid, stream_type, codec, track, described.language));
        }
        self.skipped = skipped;
        // The streams are the ones this PMT lists: a stream it no longer lists is
        // dropped, one whose type, codec, track or language changed starts afresh, the
        // others keep their state.
        self.streams.retain(|pid, stream| {
            listed
                .iter()
                .any(|(listed_pid, stream_type, codec, track, language)| {
                    listed_pid == pid
                        && *stream_type == stream.stream_type
                        && *codec == stream.codec
                        && *track == stream.track
                        && *language == stream.language
                })
        });
        for (pid, stream_type, codec, track, language) in listed {
            self.streams.entry(pid).or_insert(Elementary {
                stream_type,
                codec,
                track,
                language,
                last_counter: None,
                assembly: None,
            });
        }
    }

    fn elementary(
        &mut self,
        pid: u16,
        unit_start: bool,
        counter: u8,
        random_access: bool,
        payload: &[u8],
        out: &mut Vec<Pes>,
    ) {
        let stream = self.streams.get_mut(&pid).expect("caller checked");
        let expected_counter = stream.last_counter.map(|last| (last + 1) & 0x0f);
        let duplicate = stream.last_counter == Some(counter);
        stream.last_counter = Some(counter);
        if duplicate && !unit_start {
            return; // A retransmitted packet (allowed once by the standard).
        }
        if expected_counter.is_some_and(|expected| expected != counter)
            && stream.assembly.take().is_some()
        {
            self.stats.dropped_pes += 1;
        }
        if unit_start {
            self.finish(pid, out);
            self.start_pes(pid, random_access, payload, out);
            return;
        }
        let stream = self.streams.get_mut(&pid).expect("caller checked");
        if let Some(assembly) = &mut stream.assembly {
            if assembly.data.len() + payload.len() > MAX_PES_BYTES {
                stream.assembly = None;
                self.stats.dropped_pes += 1;
                return;
            }
            assembly.data.extend_from_slice(payload);
            if assembly
                .expected
                .is_some_and(|expected| assembly.data.len() >= expected)
            {
                self.finish(pid, out);
            }
        }
    }

    fn start_pes(&mut self, pid: u16, random_access: bool, payload: &[u8], out: &mut Vec<Pes>) {
        // 00 00 01, stream id, length (2), flags (2), header length (1).
        if payload.len() < 9 || payload[..3] != [0, 0, 1] {
            self.stats.dropped_pes += 1;
            return;
        }
        let packet_length = usize::from(u16::from_be_bytes([payload[4], payload[5]]));
        let flags = payload[7] >> 6;
        let header_length = usize::from(payload[8]);
        let Some(data) = payload.get(9 + header_length..) else {
            self.stats.dropped_pes += 1;
            return;
        };
        let pts = (flags & 0x02 != 0 && header_length >= 5).then(|| timestamp(&payload[9..14]));
        let dts = (flags == 0x03 && header_length >= 10).then(|| timestamp(&payload[14..19]));
        let expected =
            (packet_length != 0).then(|| packet_length.saturating_sub(3 + header_length));
        let mut buffer = BytesMut::with_capacity(expected.unwrap_or(4096).min(MAX_PES_BYTES));
        buffer.extend_from_slice(data);
        let complete = expected.is_some_and(|expected| buffer.len() >= expected);
        let stream = self.streams.get_mut(&pid).expect("caller checked");
        stream.assembly = Some(Assembly {
            pts,
            dts,
            random_access,
            expected,
            data: buffer,
        });
        if complete {
            self.finish(pid, out);
        }
    }

    fn finish(&mut self, pid: u16, out: &mut Vec<Pes>) {
        let Some(stream) = self.streams.get_mut(&pid) else {
            return;
        };
        let Some(assembly) = stream.assembly.take() else {
            return;
        };
        let mut data = assembly.data;
        if let Some(expected) = assembly.expected {
            if data.len() < expected {
                self.stats.dropped_pes += 1;
                return;
            }
            data.truncate(expected);
        }
        if data.is_empty() {
            return;
        }
        out.push(Pes {
            pid,
            stream_type: stream.stream_type,
            codec: stream.codec,
            track: stream.track,
            pts: assembly.pts,
            dts: assembly.dts.or(assembly.pts),
            random_access: assembly.random_access,
            data: data.freeze(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::frame::{Codec, Frame};
    use crate::media::program::Tracks;
    use crate::media::ts::mux::Muxer;
    use crate::media::ts::{STREAM_TYPE_ADTS_AAC, STREAM_TYPE_H264};
    use proptest::prelude::*;

    fn frames() -> Vec<Frame> {
        (0..50u64)
            .map(|i| {
                let video = i % 2 == 0;
                Frame {
                    codec: if video { Codec::H264 } else { Codec::Aac },
                    track: if video { 0 } else { 1 },
                    dts: 90_000 + i * 1_800,
                    pts: 90_000 + i * 1_800 + if video { 3_600 } else { 0 },
                    keyframe: !video || i % 20 == 0,
                    data: Bytes::from(vec![(i % 251) as u8; 100 + (i as usize * 997) % 70_000]),
                }
            })
            .collect()
    }

    /// One 188-byte packet of `pid` carrying `payload` (stuffed with an adaptation field).
    fn packet(pid: u16, unit_start: bool, counter: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![
            SYNC_BYTE,
            (u8::from(unit_start) << 6) | (pid >> 8) as u8,
            pid as u8,
            0x30 | (counter & 0x0f),
        ];
        let stuffing = PACKET_BYTES - 4 - payload.len();
        out.push((stuffing - 1) as u8);
        if stuffing > 1 {
            out.push(0);
            out.extend(std::iter::repeat_n(0xff, stuffing - 2));
        }
        out.extend_from_slice(payload);
        out
    }

    /// A PSI section (pointer field first) of `table_id` with `extension` and `entries`.
    fn section(table_id: u8, extension: u16, entries: &[u8]) -> Vec<u8> {
        let length = 5 + entries.len() + 4;
        let mut section = vec![
            table_id,
            0xb0 | (length >> 8) as u8,
            length as u8,
            (extension >> 8) as u8,
            extension as u8,
            0xc1,
            0,
            0,
        ];
        section.extend_from_slice(entries);
        let crc = crc32_mpeg2(&section);
        section.extend_from_slice(&crc.to_be_bytes());
        let mut payload = vec![0];
        payload.extend(section);
        payload
    }

    /// A two-program stream: program 1's video on PID 0x100, program 2's on 0x200 (both
    /// PMTs on PID 0x1000, as some muxers share one), each PES carrying its program's
    /// number as payload.
    fn mpts() -> Vec<u8> {
        let mut bytes = Vec::new();
        let pat = section(0, 1, &[0, 1, 0xf0, 0x00, 0, 2, 0xf0, 0x00]);
        bytes.extend(packet(0, true, 0, &pat));
        for (number, video) in [(1u16, 0x100u16), (2, 0x200)] {
            let pmt_entries = [
                0xe1,
                0x00,
                0xf0,
                0x00, // PCR PID, program info length 0
                STREAM_TYPE_H264,
                0xe0 | (video >> 8) as u8,
                video as u8,
                0xf0,
                0x00,
            ];
            let pmt = section(2, number, &pmt_entries);
            bytes.extend(packet(0x1000, true, number as u8, &pmt));
        }
        for round in 0..3u8 {
            for (number, video) in [(1u8, 0x100u16), (2, 0x200)] {
                // PES: start code, video stream id, no length, PTS only.
                let mut pes = vec![0, 0, 1, 0xe0, 0, 0, 0x80, 0x80, 5];
                pes.extend_from_slice(&[0x21, 0, 1, 0, 1]);
                pes.extend_from_slice(&[0, 0, 0, 1, 9, number]);
                bytes.extend(packet(video, true, round, &pes));
            }
        }
        bytes
    }

    /// A source whose PMT changes between every packet (a broken headend): the PID's
    /// codec flips between H.264 and H.265 and a second audio stream comes and goes.
    /// Each change starts the stream afresh; nothing mixes, nothing grows.
    #[test]
    fn a_pmt_that_changes_every_packet_is_followed_without_mixing() {
        let pat = section(0, 1, &[0, 1, 0xf0, 0x00]);
        let pmt = |video_type: u8, with_audio: bool| {
            let mut entries = vec![0xe1, 0x00, 0xf0, 0x00, video_type, 0xe1, 0x00, 0xf0, 0x00];
            if with_audio {
                entries.extend_from_slice(&[0x0f, 0xe1, 0x01, 0xf0, 0x00]);
            }
            section(2, 1, &entries)
        };
        let mut bytes = packet(0, true, 0, &pat);
        for round in 0..200u16 {
            let flip = round % 2 == 0;
            let table = pmt(if flip { 0x1b } else { 0x24 }, flip);
            bytes.extend(packet(0x1000, true, round as u8, &table));
            let mut pes = vec![0, 0, 1, 0xe0, 0, 0, 0x80, 0x80, 5, 0x21, 0, 1, 0, 1];
            pes.extend_from_slice(&[0, 0, 0, 1, 9, round as u8]);
            bytes.extend(packet(0x100, true, round as u8, &pes));
        }
        let mut demuxer = Demuxer::new();
        let mut out = Vec::new();
        demuxer.push(&bytes, &mut out);
        demuxer.flush(&mut out);
        assert!(demuxer.streams.len() <= 2);
        for pes in &out {
            // A PES is reported with the codec its PMT gave when it started.
            assert!(matches!(pes.codec, Codec::H264 | Codec::H265));
            assert_eq!(pes.track, VIDEO_TRACK);
        }
        assert!(out.len() < 200, "changes drop the PES being assembled");
    }

    fn programs_seen(demuxer: &mut Demuxer) -> Vec<u8> {
        let mut out = Vec::new();
        demuxer.push(&mpts(), &mut out);
        demuxer.flush(&mut out);
        out.iter().map(|pes| *pes.data.last().unwrap()).collect()
    }

    #[test]
    fn one_program_of_a_multi_program_stream_is_demuxed_never_a_mix() {
        let mut first = Demuxer::new();
        let seen = programs_seen(&mut first);
        assert!(!seen.is_empty() && seen.iter().all(|p| *p == 1), "{seen:?}");
        assert_eq!(first.programs, [1, 2]);
        let mut second = Demuxer::for_program(Program::Number(2));
        let seen = programs_seen(&mut second);
        assert!(!seen.is_empty() && seen.iter().all(|p| *p == 2), "{seen:?}");
        assert_eq!(second.missing_program(), None);
        let mut absent = Demuxer::for_program(Program::Number(7));
        assert!(programs_seen(&mut absent).is_empty());
        assert_eq!(absent.missing_program(), Some((7, vec![1, 2])));
    }

    fn muxed(frames: &[Frame]) -> Vec<u8> {
        let mut muxer = Muxer::new(Tracks::SIMPLE_H264_AAC);
        frames
            .iter()
            .flat_map(|f| muxer.mux(f).bytes.to_vec())
            .collect()
    }

    #[test]
    fn round_trips_our_own_muxer_in_any_chunking() {
        let frames = frames();
        let bytes = muxed(&frames);
        for chunk_size in [1, 7, 188, 1316, bytes.len()] {
            let mut demuxer = Demuxer::new();
            let mut out = Vec::new();
            for chunk in bytes.chunks(chunk_size) {
                demuxer.push(chunk, &mut out);
            }
            demuxer.flush(&mut out);
            // Frame 0 is a keyframe (tables first), so everything comes back. Unbounded
            // (> 64 KiB) video PES end only at the next video PES, so compare per track.
            assert_eq!(out.len(), frames.len(), "chunk size {chunk_size}");
            let mut pairs = Vec::new();
            for video in [true, false] {
                let sent = frames.iter().filter(|f| f.codec.is_video() == video);
                let got = out
                    .iter()
                    .filter(|p| (p.stream_type == STREAM_TYPE_H264) == video);
                pairs.extend(got.zip(sent));
            }
            for (pes, frame) in pairs {
                assert_eq!(pes.data, frame.data);
                assert_eq!(pes.pts, Some(frame.pts));
                assert_eq!(pes.dts, Some(frame.dts));
                let expected_type = if frame.codec.is_video() {
                    STREAM_TYPE_H264
                } else {
                    STREAM_TYPE_ADTS_AAC
                };
                assert_eq!(pes.stream_type, expected_type);
            }
            assert_eq!(demuxer.stats.dropped_pes, 0);
        }
    }

    #[test]
    fn every_codec_and_language_round_trips_through_our_muxer() {
        use crate::media::program::{Language, Track};
        let mut tracks = Tracks::EMPTY.with(VIDEO_TRACK, Codec::H265);
        for (number, codec, language) in [
            (1, Codec::Ac3, *b"eng"),
            (2, Codec::MpegAudio, *b"fra"),
            (3, Codec::Eac3, *b"deu"),
            (4, Codec::Aac, *b"spa"),
        ] {
            let language = Language::new(language);
            tracks.set(number, Track { codec, language });
        }
        let mut muxer = Muxer::new(tracks);
        let frame = Frame {
            codec: Codec::H265,
            track: VIDEO_TRACK,
            dts: 0,
            pts: 0,
            keyframe: true,
            data: Bytes::from_static(&[0, 0, 0, 1, 0x26, 1, 0xaf]),
        };
        let bytes = muxer.mux(&frame).bytes;
        let mut demuxer = Demuxer::new();
        demuxer.push(&bytes, &mut Vec::new());
        assert_eq!(demuxer.announced_tracks(), tracks);
        assert!(demuxer.skipped().is_empty());
    }

    #[test]
    fn pids_select_elementary_streams_and_number_them_as_tracks() {
        let tracks = Tracks::SIMPLE_H264_AAC.with(2, Codec::Ac3);
        let mut muxer = Muxer::new(tracks);
        let keyframe = Frame {
            codec: Codec::H264,
            track: VIDEO_TRACK,
            dts: 0,
            pts: 0,
            keyframe: true,
            data: Bytes::from_static(&[0, 0, 0, 1, 0x65, 1]),
        };
        let bytes = muxer.mux(&keyframe).bytes;
        let mut demuxer = Demuxer::new().with_pids(vec![0x100, 0x102]);
        demuxer.push(&bytes, &mut Vec::new());
        assert_eq!(
            demuxer.announced_tracks(),
            Tracks::SIMPLE_H264.with(1, Codec::Ac3),
            "the AC-3 stream is the first audio track now"
        );
        assert_eq!(demuxer.skipped(), ["PID 0x0101: not among pids="]);
    }

    #[test]
    fn survives_garbage_and_resynchronises() {
        let frames = frames();
        let mut bytes = vec![0x47, 1, 2, 3, 0x47];
        bytes.extend(muxed(&frames));
        let mut demuxer = Demuxer::new();
        let mut out = Vec::new();
        demuxer.push(&bytes, &mut out);
        demuxer.flush(&mut out);
        assert_eq!(out.len(), frames.len());
        assert!(demuxer.stats.resyncs > 0);
    }

    #[test]
    fn a_lost_packet_drops_only_the_pes_it_belonged_to() {
        let frames = frames();
        let mut bytes = muxed(&frames);
        // Remove one continuation packet of a big frame in the middle.
        let packet = bytes.len() / 188 / 2;
        bytes.drain(packet * 188..(packet + 1) * 188);
        let mut demuxer = Demuxer::new();
        let mut out = Vec::new();
        demuxer.push(&bytes, &mut out);
        demuxer.flush(&mut out);
        assert_eq!(out.len(), frames.len() - 1);
        assert_eq!(demuxer.stats.dropped_pes, 1);
    }

    #[test]
    fn the_embedded_test_clip_demuxes() {
        let mut demuxer = Demuxer::new();
        let mut out = Vec::new();
        demuxer.push(crate::media::TEST_CLIP_TS, &mut out);
        demuxer.flush(&mut out);
        let video = out
            .iter()
            .filter(|p| p.stream_type == STREAM_TYPE_H264)
            .count();
        let audio = out
            .iter()
            .filter(|p| p.stream_type == STREAM_TYPE_ADTS_AAC)
            .count();
        assert_eq!(video, 100, "4 s at 25 fps");
        assert!(
            audio >= 10,
            "ffmpeg packs several ADTS frames per PES: {audio}"
        );
        assert_eq!(
            demuxer.stats,
            DemuxStats {
                packets: demuxer.stats.packets,
                ..DemuxStats::default()
            }
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096), split in 0usize..4096) {
            let mut demuxer = Demuxer::new();
            let mut out = Vec::new();
            let split = split.min(bytes.len());
            demuxer.push(&bytes[..split], &mut out);
            demuxer.push(&bytes[split..], &mut out);
            demuxer.flush(&mut out);
        }

        #[test]
        fn corrupted_streams_never_panic(flips in proptest::collection::vec((0usize..20_000, any::<u8>()), 0..50)) {
            let mut bytes = muxed(&frames()[..10]);
            for (index, value) in flips {
                let len = bytes.len();
                bytes[index % len] = value;
            }
            let mut demuxer = Demuxer::new();
            let mut out = Vec::new();
            demuxer.push(&bytes, &mut out);
            demuxer.flush(&mut out);
        }
    }
}
