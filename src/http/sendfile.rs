//! A plain TCP connection whose writes of sealed segment bytes become `sendfile`.
//!
//! hyper writes a response as slices of memory: the head it built, then the body's
//! bytes. A segment's bytes live in a sealed file (`crate::media::sealed`), so when a
//! slice hyper hands over lies in one, [`SendfileTcp`] asks the kernel to send it from
//! the file's pages (`sendfile`) instead of copying it from the node's memory into the
//! socket: the copy that made serving thousands of HLS viewers cost more CPU than
//! nginx. Everything else is written as before. The head before a file's bytes goes out
//! with `MSG_MORE`, so head and body still share packets on a `TCP_NODELAY` socket.
//!
//! hyper keeps the bytes it is writing until the write says they are sent, so a file
//! found behind a slice outlives the call that sends from it. TLS connections never see
//! this type: their bytes are encrypted in user space anyway.

use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

use crate::media::sealed;

/// Slices shorter than this are copied even from a sealed file: one call to write them
/// with what comes before costs less than a call of their own (an HTTP/2 DATA frame,
/// 16 KiB, is always copied with its frame header).
pub const SENDFILE_MIN_BYTES: usize = 64 * 1024;

/// A plain TCP connection that sends sealed segment bytes with `sendfile`.
#[derive(Debug)]
pub struct SendfileTcp {
    stream: TcpStream,
}

impl SendfileTcp {
    pub fn new(stream: TcpStream) -> SendfileTcp {
        SendfileTcp { stream }
    }

    /// Runs `write` once the socket may take bytes, until it does not answer WouldBlock.
    fn poll_write_with(
        &self,
        cx: &mut Context<'_>,
        mut write: impl FnMut(&TcpStream) -> std::io::Result<usize>,
    ) -> Poll<std::io::Result<usize>> {
        loop {
            ready!(self.stream.poll_write_ready(cx))?;
            match self
                .stream
                .try_io(Interest::WRITABLE, || write(&self.stream))
            {
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => continue,
                written => return Poll::Ready(written),
            }
        }
    }
}

/// Where the first slice worth sending from its file is, and that file with the offset.
fn first_sealed(
    bufs: &[IoSlice<'_>],
) -> Option<(usize, std::sync::Arc<std::os::fd::OwnedFd>, u64)> {
    bufs.iter().enumerate().find_map(|(index, buf)| {
        if buf.len() < SENDFILE_MIN_BYTES {
            return None;
        }
        sealed::file_behind(buf).map(|(file, offset)| (index, file, offset))
    })
}

impl AsyncRead for SendfileTcp {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for SendfileTcp {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match first_sealed(bufs) {
            None => Pin::new(&mut self.stream).poll_write_vectored(cx, bufs),
            // Nothing before the file's bytes (empty slices aside): send them from it.
            Some((index, file, offset)) if bufs[..index].iter().all(|buf| buf.is_empty()) => {
                let len = bufs[index].len();
                self.poll_write_with(cx, |stream| {
                    let mut at = offset;
                    Ok(rustix::fs::sendfile(stream, &*file, Some(&mut at), len)?)
                })
            }
            Some((index, _, _)) => {
                // What comes before the file's bytes (a response head): held back by the
                // kernel until they follow, so they leave in the same packets.
                let before = &bufs[..index];
                self.poll_write_with(cx, |stream| {
                    let flags = rustix::net::SendFlags::MORE | rustix::net::SendFlags::NOSIGNAL;
                    Ok(rustix::net::sendmsg(
                        stream,
                        before,
                        &mut rustix::net::SendAncillaryBuffer::default(),
                        flags,
                    )?)
                })
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn pair() -> (SendfileTcp, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let connecting = TcpStream::connect(listener.local_addr().unwrap());
        let (accepted, connected) = tokio::join!(listener.accept(), connecting);
        let (server, _) = accepted.unwrap();
        server.set_nodelay(true).unwrap();
        (SendfileTcp::new(server), connected.unwrap())
    }

    /// A head then a body of several MiB from a sealed file, written as hyper writes them
    /// (vectored, partial writes resumed), arrive whole and in order.
    #[tokio::test]
    async fn a_head_and_a_sealed_body_arrive_whole_and_in_order() {
        let (mut server, mut client) = pair().await;
        let body: Vec<u8> = (0..4 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
        let sealed = sealed::seal(&[&body]).expect("a sealed file");
        let head = b"HTTP/1.1 200 OK\r\ncontent-length: 4194304\r\n\r\n".to_vec();
        let reading = async move {
            let mut got = Vec::new();
            client.read_to_end(&mut got).await.unwrap();
            got
        };
        let writing = async {
            let mut head_left = &head[..];
            let mut body_left = &sealed[..];
            while !head_left.is_empty() || !body_left.is_empty() {
                let bufs = [IoSlice::new(head_left), IoSlice::new(body_left)];
                let mut written = server.write_vectored(&bufs).await.unwrap();
                assert!(written > 0);
                let from_head = written.min(head_left.len());
                head_left = &head_left[from_head..];
                written -= from_head;
                body_left = &body_left[written..];
            }
            server.shutdown().await.unwrap();
            drop(server);
        };
        let (got, ()) = tokio::join!(reading, writing);
        assert_eq!(got.len(), head.len() + body.len());
        assert_eq!(&got[..head.len()], &head[..]);
        assert!(got[head.len()..] == body[..], "the body arrives unchanged");
    }

    #[test]
    fn only_large_sealed_slices_are_sent_from_their_file() {
        let body = vec![3u8; 2 * SENDFILE_MIN_BYTES];
        let sealed = sealed::seal(&[&body]).expect("a sealed file");
        let head = [0u8; 100];
        let found = first_sealed(&[IoSlice::new(&head), IoSlice::new(&sealed[..])]);
        assert_eq!(
            found.map(|(index, _, offset)| (index, offset)),
            Some((1, 0))
        );
        let small = &sealed[1000..1000 + SENDFILE_MIN_BYTES - 1];
        assert!(first_sealed(&[IoSlice::new(small)]).is_none());
        assert!(
            first_sealed(&[IoSlice::new(&body)]).is_none(),
            "ordinary memory"
        );
    }
}
