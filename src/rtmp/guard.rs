//! Limits on an inbound RTMP chunk stream, checked before rml_rtmp sees the bytes.
//!
//! rml_rtmp trusts its peer: it honours any SetChunkSize, reserves whatever message
//! length a header announces (up to 16 MiB each), and keeps one partial message, so
//! interleaved chunk streams corrupt it silently. This guard walks the chunk headers of
//! everything a peer sends (headers only, payload bytes are skipped, not copied) and
//! refuses, naming the peer as at fault:
//! - a SetChunkSize outside [`MIN_CHUNK_SIZE`, `MAX_CHUNK_SIZE`];
//! - a message longer than [`MAX_MESSAGE_BYTES`];
//! - a chunk of another message before the current one is complete (interleaving);
//! - more than [`MAX_CHUNK_STREAMS`] chunk stream ids in one connection.

use std::collections::HashMap;

/// The protocol's initial and smallest sane chunk size.
pub const MIN_CHUNK_SIZE: u32 = 128;
/// Largest chunk size accepted (encoders use 4096; 64 KiB leaves room).
pub const MAX_CHUNK_SIZE: u32 = 65_536;
/// Largest message: a 4K keyframe at a high bitrate is a few MiB.
pub const MAX_MESSAGE_BYTES: u32 = 8 * 1024 * 1024;
/// Chunk stream ids one connection may use (encoders use fewer than 10).
pub const MAX_CHUNK_STREAMS: usize = 64;

/// Why a peer's chunk stream was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("peer set chunk size {0}, outside [{MIN_CHUNK_SIZE}, {MAX_CHUNK_SIZE}]")]
    ChunkSize(u32),
    #[error("peer announced a {0}-byte message; the limit is {MAX_MESSAGE_BYTES}")]
    MessageTooLarge(u32),
    #[error("peer interleaved chunk streams {0} and {1} mid-message")]
    Interleaved(u32, u32),
    #[error("peer used more than {MAX_CHUNK_STREAMS} chunk streams")]
    TooManyChunkStreams,
    #[error("peer sent a malformed chunk header: {0}")]
    Malformed(&'static str),
}

#[derive(Debug, Clone, Copy, Default)]
struct ChunkStream {
    length: u32,
    type_id: u8,
    remaining: u32,
    extended_timestamp: bool,
}

/// The guard of one connection.
#[derive(Debug)]
pub struct ChunkGuard {
    chunk_size: u32,
    streams: HashMap<u32, ChunkStream>,
    /// Header bytes waiting for the rest of their header.
    header: Vec<u8>,
    /// Payload bytes of the current chunk still to skip, and its chunk stream.
    payload_left: u32,
    current: u32,
    /// The chunk stream whose message is incomplete.
    partial: Option<u32>,
    /// Bytes of a SetChunkSize payload being collected.
    control: Vec<u8>,
}

impl Default for ChunkGuard {
    fn default() -> ChunkGuard {
        ChunkGuard {
            chunk_size: MIN_CHUNK_SIZE,
            streams: HashMap::new(),
            header: Vec::with_capacity(18),
            payload_left: 0,
            current: 0,
            partial: None,
            control: Vec::new(),
        }
    }
}

impl ChunkGuard {
    /// Checks the next bytes from the peer (after the handshake).
    pub fn feed(&mut self, mut input: &[u8]) -> Result<(), LimitError> {
        while !input.is_empty() {
            if self.payload_left > 0 {
                let take = (self.payload_left as usize).min(input.len());
                self.payload(&input[..take])?;
                input = &input[take..];
                continue;
            }
            // Accumulate header bytes until a whole header parses.
            let before = self.header.len();
            let take = input.len().min(18 - before);
            self.header.extend_from_slice(&input[..take]);
            match self.parse_header()? {
                None => {
                    input = &input[take..];
                }
                Some(consumed) => {
                    let used = consumed - before;
                    self.header.clear();
                    input = &input[used..];
                    if self.payload_left == 0 {
                        self.complete_chunk()?;
                    }
                }
            }
        }
        Ok(())
    }

    fn payload(&mut self, bytes: &[u8]) -> Result<(), LimitError> {
        let stream = self.streams[&self.current];
        if stream.type_id == 1 && self.control.len() < 4 {
            self.control
                .extend(bytes.iter().take(4 - self.control.len()));
        }
        self.payload_left -= bytes.len() as u32;
        if self.payload_left == 0 {
            self.complete_chunk()?;
        }
        Ok(())
    }

    fn complete_chunk(&mut self) -> Result<(), LimitError> {
        let stream = self.streams.get(&self.current).copied().unwrap_or_default();
        if stream.remaining > 0 {
            self.partial = Some(self.current);
            return Ok(());
        }
        self.partial = None;
        if stream.type_id == 1 {
            let bytes: [u8; 4] = self
                .control
                .as_slice()
                .try_into()
                .map_err(|_| LimitError::Malformed("SetChunkSize"))?;
            let size = u32::from_be_bytes(bytes) & 0x7fff_ffff;
            if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&size) {
                return Err(LimitError::ChunkSize(size));
            }
            self.chunk_size = size;
        }
        self.control.clear();
        Ok(())
    }

    /// Parses the header in `self.header`; `Ok(None)` when more bytes are needed, else the
    /// header's length. Sets up the chunk's payload accounting.
    fn parse_header(&mut self) -> Result<Option<usize>, LimitError> {
        let buffer = &self.header;
        let Some(&first) = buffer.first() else {
            return Ok(None);
        };
        let format = first >> 6;
        let (csid, basic) = match first & 0x3f {
            0 => match buffer.get(1) {
                Some(b) => (64 + u32::from(*b), 2),
                None => return Ok(None),
            },
            1 => match (buffer.get(1), buffer.get(2)) {
                (Some(b1), Some(b2)) => (64 + u32::from(*b1) + 256 * u32::from(*b2), 3),
                _ => return Ok(None),
            },
            id => (u32::from(id), 1),
        };
        let message_header = [11, 7, 3, 0][usize::from(format)];
        if buffer.len() < basic + message_header {
            return Ok(None);
        }
        let header = &buffer[basic..basic + message_header];
        if let Some(partial) = self.partial
            && partial != csid
        {
            return Err(LimitError::Interleaved(partial, csid));
        }
        if !self.streams.contains_key(&csid) && self.streams.len() >= MAX_CHUNK_STREAMS {
            return Err(LimitError::TooManyChunkStreams);
        }
        let mut stream = self.streams.get(&csid).copied().unwrap_or_default();
        let timestamp_field = if format < 3 {
            u32::from_be_bytes([0, header[0], header[1], header[2]])
        } else {
            0
        };
        let extended = if format < 3 {
            timestamp_field == 0xff_ffff
        } else {
            stream.extended_timestamp
        };
        let total = basic + message_header + if extended { 4 } else { 0 };
        if buffer.len() < total {
            return Ok(None);
        }
        if format <= 1 {
            if stream.remaining > 0 {
                return Err(LimitError::Malformed(
                    "a new message header before the previous message ended",
                ));
            }
            let length = u32::from_be_bytes([0, header[3], header[4], header[5]]);
            if length > MAX_MESSAGE_BYTES {
                return Err(LimitError::MessageTooLarge(length));
            }
            stream.length = length;
            stream.type_id = header[6];
            if stream.type_id == 1 && length != 4 {
                return Err(LimitError::Malformed("SetChunkSize is not 4 bytes"));
            }
        } else if format == 2 && stream.remaining > 0 {
            return Err(LimitError::Malformed(
                "a type-2 header in the middle of a message",
            ));
        }
        if format < 3 {
            stream.extended_timestamp = extended;
        }
        if stream.remaining == 0 {
            stream.remaining = stream.length;
        }
        let chunk = stream.remaining.min(self.chunk_size);
        stream.remaining -= chunk;
        self.streams.insert(csid, stream);
        self.current = csid;
        self.payload_left = chunk;
        Ok(Some(total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A type-0 chunk header on csid 4 for a message of `length` bytes of `type_id`.
    fn header(length: u32, type_id: u8) -> Vec<u8> {
        let l = length.to_be_bytes();
        vec![0x04, 0, 0, 0, l[1], l[2], l[3], type_id, 1, 0, 0, 0]
    }

    fn set_chunk_size(size: u32) -> Vec<u8> {
        let mut bytes = vec![0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0];
        bytes.extend(size.to_be_bytes());
        bytes
    }

    #[test]
    fn follows_messages_split_into_chunks_in_any_read_size() {
        let mut stream = set_chunk_size(4096);
        stream.extend(header(10_000, 9));
        stream.extend(vec![7u8; 4096]);
        stream.push(0xc4); // type 3 continuation on csid 4
        stream.extend(vec![7u8; 4096]);
        stream.push(0xc4);
        stream.extend(vec![7u8; 10_000 - 8192]);
        stream.extend(header(5, 8));
        stream.extend([1, 2, 3, 4, 5]);
        for read in [1, 3, 100, stream.len()] {
            let mut guard = ChunkGuard::default();
            for piece in stream.chunks(read) {
                guard.feed(piece).unwrap();
            }
            assert_eq!(guard.chunk_size, 4096);
            assert!(guard.partial.is_none());
        }
    }

    #[test]
    fn refuses_chunk_sizes_outside_the_bounds() {
        assert_eq!(
            ChunkGuard::default().feed(&set_chunk_size(1)),
            Err(LimitError::ChunkSize(1))
        );
        assert_eq!(
            ChunkGuard::default().feed(&set_chunk_size(1 << 20)),
            Err(LimitError::ChunkSize(1 << 20))
        );
        assert!(ChunkGuard::default().feed(&set_chunk_size(65_536)).is_ok());
    }

    #[test]
    fn refuses_oversized_messages_before_any_payload() {
        let result = ChunkGuard::default().feed(&header(16_000_000, 9));
        assert_eq!(result, Err(LimitError::MessageTooLarge(16_000_000)));
    }

    #[test]
    fn refuses_interleaved_messages() {
        let mut stream = header(300, 9);
        stream.extend(vec![0u8; 128]);
        stream.extend([0x05, 0, 0, 0, 0, 0, 5, 8, 1, 0, 0, 0]);
        assert_eq!(
            ChunkGuard::default().feed(&stream),
            Err(LimitError::Interleaved(4, 5))
        );
    }

    #[test]
    fn refuses_too_many_chunk_streams() {
        let mut stream = Vec::new();
        for csid in 0..70u8 {
            stream.extend([0x00, csid, 0, 0, 0, 0, 0, 1, 9, 1, 0, 0, 0, 0xaa]);
        }
        assert_eq!(
            ChunkGuard::default().feed(&stream),
            Err(LimitError::TooManyChunkStreams)
        );
    }
}
