//! Append-only line logs written off the request path: the access log (`logrequests`)
//! and the session log (`session_log`).
//!
//! A request or a closing session formats its line and hands it to the file's writer
//! thread through a bounded queue: it never waits on the disk. A full queue (the disk
//! stalled) drops the line and counts it, so a slow disk costs log lines, never viewers.
//! The writer flushes at least every [`FLUSH_INTERVAL`], rotates the file past
//! [`ROTATE_AT_BYTES`] (`NAME` → `NAME.1` → … → `NAME.KEEP_ROTATED`), re-opens it when it
//! was moved away (an external logrotate), and flushes everything queued when the node
//! stops ([`LineLog::close`]).

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::Duration;

/// Lines waiting for the writer; past it lines are dropped and counted.
pub const MAX_QUEUED_LINES: usize = 65_536;
/// A log file is rotated once it grows past this.
pub const ROTATE_AT_BYTES: u64 = 100 * 1024 * 1024;
/// Rotated files kept (`NAME.1` … `NAME.5`); the oldest is deleted.
pub const KEEP_ROTATED: usize = 5;
/// Lines reach the file within this, however few arrive.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// Lines between two checks that the file is still at its path (logrotate moved it);
/// an idle writer checks at every flush.
const REOPEN_CHECK_LINES: u64 = 10_000;

/// One line log: cheap to clone, shared by every writer of the node.
#[derive(Clone, Debug)]
pub struct LineLog {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    queue: std::sync::RwLock<Option<SyncSender<String>>>,
    dropped: AtomicU64,
    writer: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl LineLog {
    /// Opens (creates, appends to) `path` and starts its writer thread.
    pub fn open(path: &Path) -> std::io::Result<LineLog> {
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = append(path)?;
        let (queue, lines) = sync_channel(MAX_QUEUED_LINES);
        let writer_path = path.to_path_buf();
        let writer = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || write_lines(writer_path, file, lines))?;
        Ok(LineLog {
            inner: Arc::new(Inner {
                queue: std::sync::RwLock::new(Some(queue)),
                dropped: AtomicU64::new(0),
                writer: std::sync::Mutex::new(Some(writer)),
            }),
        })
    }

    /// Queues `line` (a newline is added); never blocks.
    pub fn write(&self, line: String) {
        let queue = self.inner.queue.read().unwrap_or_else(|p| p.into_inner());
        let Some(queue) = queue.as_ref() else {
            self.inner.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        match queue.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.inner.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Lines dropped because the writer fell behind.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// Writes out every queued line, flushes and stops the writer (later lines are
    /// dropped). Waits for the disk: call it when the node stops, not on a request.
    pub fn close(&self) {
        self.inner
            .queue
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let writer = self
            .inner
            .writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(writer) = writer {
            let _ = writer.join();
        }
    }
}

fn append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// The writer thread: lines to the file until the queue closes.
fn write_lines(path: PathBuf, file: File, lines: Receiver<String>) {
    let mut written = file.metadata().map_or(0, |m| m.len());
    let mut out = BufWriter::new(file);
    let mut since_check = 0u64;
    loop {
        let check;
        match lines.recv_timeout(FLUSH_INTERVAL) {
            Ok(line) => {
                since_check += 1;
                check = since_check >= REOPEN_CHECK_LINES;
                if let Err(error) = out
                    .write_all(line.as_bytes())
                    .and_then(|()| out.write_all(b"\n"))
                {
                    tracing::warn!(path = %path.display(), %error, "cannot write a log line");
                }
                written += line.len() as u64 + 1;
            }
            Err(RecvTimeoutError::Timeout) => {
                let _ = out.flush();
                check = true;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
        let rotate = written >= ROTATE_AT_BYTES;
        if check {
            since_check = 0;
        }
        let moved = check && !path.exists();
        if rotate || moved {
            let _ = out.flush();
            if rotate {
                rotate_files(&path);
            }
            match append(&path) {
                Ok(file) => {
                    written = file.metadata().map_or(0, |m| m.len());
                    out = BufWriter::new(file);
                }
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "cannot reopen the log file")
                }
            }
        }
    }
    let _ = out.flush();
}

/// `NAME.4` → `NAME.5` … `NAME` → `NAME.1`; the oldest is overwritten.
fn rotate_files(path: &Path) {
    let numbered = |n: usize| {
        let mut name = path.as_os_str().to_owned();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    };
    for n in (1..KEEP_ROTATED).rev() {
        let _ = std::fs::rename(numbered(n), numbered(n + 1));
    }
    let _ = std::fs::rename(path, numbered(1));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_reach_the_file_by_close_and_later_ones_are_dropped() {
        let dir = std::env::temp_dir().join(format!("flotilla-logfile-{}", std::process::id()));
        let path = dir.join("sub").join("access.log");
        let log = LineLog::open(&path).expect("opens");
        log.write("one".into());
        log.write("two".into());
        log.close();
        log.write("late".into());
        assert_eq!(
            std::fs::read_to_string(&path).expect("written"),
            "one\ntwo\n"
        );
        assert_eq!(log.dropped(), 1);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn rotation_shifts_the_numbered_files() {
        let dir = std::env::temp_dir().join(format!("flotilla-rotate-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("sessions.log");
        std::fs::write(&path, "current").expect("write");
        std::fs::write(dir.join("sessions.log.1"), "older").expect("write");
        rotate_files(&path);
        assert!(!path.exists());
        assert_eq!(
            std::fs::read_to_string(dir.join("sessions.log.1")).unwrap(),
            "current"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("sessions.log.2")).unwrap(),
            "older"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
