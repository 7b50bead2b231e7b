//! The shell's frames over one QUIC bidirectional stream per command: a 4-byte big-endian
//! length, then a JSON body. The client sends one [`Request`], the node answers one
//! [`Reply`]. Lengths are checked before anything is allocated.

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::{Classified, Fault};

/// Longest command line accepted (a command, a path and a reason fit easily).
pub const MAX_REQUEST_BYTES: usize = 4 * 1024;
/// Longest reply (a tree of 100,000 actors is ~20 MB; the node bounds its lists first).
pub const MAX_REPLY_BYTES: usize = 16 * 1024 * 1024;

/// One command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The command line as typed (`tree node/streams`, `@b peers`, …).
    pub line: String,
}

/// The node's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// The outcome in HTTP terms: 200 done, 400 a bad command, 403 not allowed, 404 no
    /// such thing, 502 a peer did not answer, …
    pub status: u16,
    /// What the command returned (the HTTP API's JSON), or `{"error": "…"}`.
    pub body: serde_json::Value,
}

impl Reply {
    /// A failed command with a message for the operator.
    pub fn error(status: u16, message: impl Into<String>) -> Reply {
        Reply {
            status,
            body: serde_json::json!({ "error": message.into() }),
        }
    }

    /// The error message, if the command failed.
    pub fn error_message(&self) -> Option<String> {
        (self.status >= 400).then(|| {
            self.body["error"]
                .as_str()
                .map_or_else(|| self.body.to_string(), str::to_string)
        })
    }
}

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// Over the limit of its direction (the sender is at fault: the other side for a
    /// frame read, this side for one written).
    #[error("frame of {0} bytes is over the {1}-byte limit")]
    TooLarge(usize, usize),
    /// Not the JSON of the expected frame (peer), or a value that does not encode.
    #[error("malformed frame: {0}")]
    Malformed(#[from] serde_json::Error),
    /// The stream failed under the frame (transport).
    #[error("transport: {0}")]
    Transport(#[from] std::io::Error),
}

impl Classified for FrameError {
    fn fault(&self) -> Fault {
        match self {
            FrameError::TooLarge(..) | FrameError::Malformed(_) => Fault::Peer,
            FrameError::Transport(_) => Fault::Transport,
        }
    }
}

/// Writes `value` as one frame.
pub async fn write<T: Serialize>(
    stream: &mut (impl AsyncWrite + Unpin),
    value: &T,
    limit: usize,
) -> Result<(), FrameError> {
    let body = serde_json::to_vec(value)?;
    if body.len() > limit {
        return Err(FrameError::TooLarge(body.len(), limit));
    }
    let length = u32::try_from(body.len()).map_err(|_| FrameError::TooLarge(body.len(), limit))?;
    stream.write_all(&length.to_be_bytes()).await?;
    Ok(stream.write_all(&body).await?)
}

/// Reads one frame of at most `limit` bytes.
pub async fn read<T: for<'de> Deserialize<'de>>(
    stream: &mut (impl AsyncRead + Unpin),
    limit: usize,
) -> Result<T, FrameError> {
    let mut header = [0u8; 4];
    stream.read_exact(&mut header).await?;
    let length = u32::from_be_bytes(header) as usize;
    if length > limit {
        return Err(FrameError::TooLarge(length, limit));
    }
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await?;
    Ok(serde_json::from_slice(&body)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_oversized_ones_are_refused_before_reading() {
        let request = Request {
            line: "tree node/streams".into(),
        };
        let mut buffer = Vec::new();
        write(&mut buffer, &request, MAX_REQUEST_BYTES)
            .await
            .unwrap();
        let back: Request = read(&mut buffer.as_slice(), MAX_REQUEST_BYTES)
            .await
            .unwrap();
        assert_eq!(back, request);
        // A header announcing 4 GiB is refused from the header alone.
        let huge = [0xff, 0xff, 0xff, 0xff];
        let error = read::<Request>(&mut huge.as_slice(), MAX_REQUEST_BYTES)
            .await
            .unwrap_err();
        assert!(matches!(error, FrameError::TooLarge(_, MAX_REQUEST_BYTES)));
        let long = Request {
            line: "x".repeat(MAX_REQUEST_BYTES),
        };
        assert!(
            write(&mut Vec::new(), &long, MAX_REQUEST_BYTES)
                .await
                .is_err()
        );
        // Garbage is a clear error, not a panic.
        let mut garbage = 3u32.to_be_bytes().to_vec();
        garbage.extend_from_slice(b"{{{");
        assert!(matches!(
            read::<Request>(&mut garbage.as_slice(), MAX_REQUEST_BYTES).await,
            Err(FrameError::Malformed(_))
        ));
    }
}
