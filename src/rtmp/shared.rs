//! RTMP messages chunked once per stream and shared by every player.
//!
//! A media message in RTMP is split into chunks of the connection's chunk size; every
//! chunk after the first carries only a one-byte type-3 header naming its chunk stream.
//! The only bytes that differ between two players of the same frame are in the first
//! chunk's type-0 header: the message's timestamp (each player's starts at 0) and its
//! message stream id. So the payload is cut once — the first piece, then each further
//! piece behind its type-3 byte, in one buffer ([`SharedMessage::chunks`]) — and each
//! player writes its own 12-byte header followed by that shared buffer.
//!
//! The players' chunk streams ([`VIDEO_CSID`], [`AUDIO_CSID`]) are not the ones rml_rtmp's
//! session uses for anything, so its header compression state is never contradicted.
//! A timestamp past the 24-bit field needs the extended timestamp repeated in every
//! chunk, which a shared buffer cannot carry: such a player's chunks are cut for it alone
//! ([`SharedMessage::chunks_for`]), after 4.6 hours of one session.

use std::sync::{Arc, OnceLock};

use bytes::{BufMut, Bytes, BytesMut};

use crate::media::frame::Frame;

/// The chunk size players are sent media in: what rml_rtmp's server session announces
/// (`SetChunkSize`) to every connection.
pub const CHUNK_SIZE: usize = 4096;

/// The chunk stream of shared video messages.
pub const VIDEO_CSID: u8 = 7;
/// The chunk stream of shared audio messages.
pub const AUDIO_CSID: u8 = 8;

/// RTMP message types.
pub const VIDEO_MESSAGE: u8 = 9;
pub const AUDIO_MESSAGE: u8 = 8;

/// The largest timestamp a type-0 header holds without the extended field.
const MAX_PLAIN_TIMESTAMP: u32 = 0x00ff_ffff;

/// One FLV tag body as RTMP chunks, shared by every player of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedMessage {
    pub type_id: u8,
    pub length: u32,
    /// Milliseconds after the frame's decode time (several AAC frames in one frame).
    pub offset_ms: u32,
    /// The payload's chunks without the first chunk's header.
    pub chunks: Bytes,
}

impl SharedMessage {
    /// `body` (an FLV tag body) as a message of `type_id`.
    pub fn new(type_id: u8, body: Bytes, offset_ms: u32) -> SharedMessage {
        let csid = csid_of(type_id);
        let mut chunks = BytesMut::with_capacity(body.len() + body.len() / CHUNK_SIZE + 1);
        for (index, piece) in body.chunks(CHUNK_SIZE).enumerate() {
            if index > 0 {
                chunks.put_u8(0xc0 | csid);
            }
            chunks.put_slice(piece);
        }
        SharedMessage {
            type_id,
            length: body.len() as u32,
            offset_ms,
            chunks: chunks.freeze(),
        }
    }

    /// The first chunk's header for a player: timestamp `ms`, message stream `stream_id`.
    /// `None` when `ms` needs the extended timestamp (see [`SharedMessage::chunks_for`]).
    pub fn header(&self, ms: u32, stream_id: u32) -> Option<[u8; 12]> {
        if ms >= MAX_PLAIN_TIMESTAMP {
            return None;
        }
        let mut header = [0u8; 12];
        header[0] = csid_of(self.type_id); // format 0
        header[1..4].copy_from_slice(&ms.to_be_bytes()[1..]);
        header[4..7].copy_from_slice(&self.length.to_be_bytes()[1..]);
        header[7] = self.type_id;
        header[8..12].copy_from_slice(&stream_id.to_le_bytes());
        Some(header)
    }

    /// The whole message for one player whose timestamp needs the extended field: the
    /// 4-byte extended timestamp after the type-0 header and after every type-3 one.
    pub fn chunks_for(&self, ms: u32, stream_id: u32) -> Bytes {
        let csid = csid_of(self.type_id);
        let mut out = BytesMut::with_capacity(self.chunks.len() + 16 + self.chunks.len() / 1000);
        out.put_u8(csid);
        out.put_slice(&MAX_PLAIN_TIMESTAMP.to_be_bytes()[1..]);
        out.put_slice(&self.length.to_be_bytes()[1..]);
        out.put_u8(self.type_id);
        out.put_u32_le(stream_id);
        out.put_u32(ms);
        // The shared pieces, each after the first behind its type-3 byte, which is
        // followed here by the extended timestamp.
        let mut rest = &self.chunks[..];
        let mut first = true;
        while !rest.is_empty() {
            if !first {
                out.put_u8(0xc0 | csid);
                out.put_u32(ms);
                rest = &rest[1..];
            }
            let piece = rest.len().min(CHUNK_SIZE);
            out.put_slice(&rest[..piece]);
            rest = &rest[piece..];
            first = false;
        }
        out.freeze()
    }
}

/// A frame as a stream's followers get it: the frame, and its RTMP messages, chunked by
/// the first RTMP player that needs them and then shared by all.
#[derive(Debug)]
pub struct PlayedFrame {
    pub frame: Frame,
    messages: OnceLock<Vec<SharedMessage>>,
}

/// What a stream's frame followers receive.
pub type SharedFrame = Arc<PlayedFrame>;

impl PlayedFrame {
    pub fn shared(frame: Frame) -> SharedFrame {
        Arc::new(PlayedFrame {
            frame,
            messages: OnceLock::new(),
        })
    }

    /// The frame's RTMP messages (none for a codec FLV does not carry).
    pub fn messages(&self) -> &[SharedMessage] {
        self.messages.get_or_init(|| {
            let type_id = if self.frame.codec.is_video() {
                VIDEO_MESSAGE
            } else {
                AUDIO_MESSAGE
            };
            super::flv::packetize(&self.frame)
                .into_iter()
                .map(|(body, offset_ms)| SharedMessage::new(type_id, body, offset_ms))
                .collect()
        })
    }
}

impl std::ops::Deref for PlayedFrame {
    type Target = Frame;

    fn deref(&self) -> &Frame {
        &self.frame
    }
}

fn csid_of(type_id: u8) -> u8 {
    if type_id == VIDEO_MESSAGE {
        VIDEO_CSID
    } else {
        AUDIO_CSID
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rml_rtmp::chunk_io::ChunkDeserializer;

    /// What rml_rtmp's client-side deserializer (as a player reads) makes of `bytes`.
    fn read_back(bytes: &[u8]) -> Vec<(u32, u8, u32, Vec<u8>)> {
        let mut reader = ChunkDeserializer::new();
        reader.set_max_chunk_size(CHUNK_SIZE).unwrap();
        let mut out = Vec::new();
        let mut next = reader.get_next_message(bytes).unwrap();
        while let Some(message) = next {
            out.push((
                message.timestamp.value,
                message.type_id,
                message.message_stream_id,
                message.data.to_vec(),
            ));
            next = reader.get_next_message(&[]).unwrap();
        }
        out
    }

    #[test]
    fn a_players_header_and_the_shared_chunks_read_back_as_the_message() {
        let body: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let video = SharedMessage::new(VIDEO_MESSAGE, Bytes::from(body.clone()), 0);
        let audio = SharedMessage::new(AUDIO_MESSAGE, Bytes::from_static(&[0xaf, 1, 2, 3]), 23);
        let mut stream = Vec::new();
        for (message, ms) in [(&video, 40), (&audio, 63), (&video, 80)] {
            stream.extend_from_slice(&message.header(ms, 1).unwrap());
            stream.extend_from_slice(&message.chunks);
        }
        let read = read_back(&stream);
        assert_eq!(read.len(), 3);
        assert_eq!(read[0], (40, VIDEO_MESSAGE, 1, body.clone()));
        assert_eq!(read[1], (63, AUDIO_MESSAGE, 1, vec![0xaf, 1, 2, 3]));
        assert_eq!(read[2], (80, VIDEO_MESSAGE, 1, body));
    }

    #[test]
    fn extended_timestamps_are_cut_for_the_player_alone() {
        let body: Vec<u8> = (0..9_000u32).map(|i| i as u8).collect();
        let video = SharedMessage::new(VIDEO_MESSAGE, Bytes::from(body.clone()), 0);
        let late = 0x0100_0000;
        assert!(video.header(late, 1).is_none());
        let read = read_back(&video.chunks_for(late, 1));
        assert_eq!(read, vec![(late, VIDEO_MESSAGE, 1, body)]);
    }
}
