//! Segment bytes in sealed memory files, so that viewers' sockets are fed by `sendfile`.
//!
//! A segment is written once and sent to every viewer. Sent from the node's memory, each
//! response makes the kernel copy the segment into socket buffers: with thousands of
//! viewers that copy is a third of the node's CPU, and what nginx, serving files with
//! `sendfile`, does not pay. So a sealed segment is kept in a memory file (`memfd`)
//! sealed against any change, and mapped read-only: its [`Bytes`] point into the mapping,
//! every reader of the window uses them as before, and the HTTP writer
//! (`crate::http::sendfile`) asks [`file_behind`] for the file under a slice it is about
//! to write and lets the kernel send the file's pages instead of copying.
//!
//! The table of mappings is process-wide on purpose: what it maps, addresses of this
//! process's memory to the files behind them, is a fact of the address space, shared by
//! every node a process runs. When a memory file cannot be made (out of descriptors, a
//! kernel without memfd), the segment stays in ordinary memory and is served by copy.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::sync::{Arc, RwLock};

use bytes::Bytes;

use super::cmaf::TrackSegment;

/// Below this, a segment stays in ordinary memory: its copy costs less than the calls
/// that make, map and unmap a file (and a file takes at least a page).
pub const SEAL_MIN_BYTES: usize = 32 * 1024;

/// At most this share (1/N) of the process's descriptor limit (`RLIMIT_NOFILE`) is held
/// by sealed files: each holds a descriptor for as long as its segment is in a window,
/// and connections must still find descriptors (1,024 under a default `ulimit -n` is
/// 256 files; the systemd unit's 1,048,576 is never reached). Beyond it, segments stay
/// in ordinary memory and are served by copy.
pub const SEALED_SHARE_OF_DESCRIPTORS: u64 = 4;

/// How many sealed files may be open at once now (see [`SEALED_SHARE_OF_DESCRIPTORS`]).
fn sealed_files_allowed() -> usize {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    usize::try_from(limit / SEALED_SHARE_OF_DESCRIPTORS).unwrap_or(usize::MAX)
}

/// A mapped sealed file: the owner of the bytes handed out.
struct SealedFile {
    map: memmap2::Mmap,
}

impl AsRef<[u8]> for SealedFile {
    fn as_ref(&self) -> &[u8] {
        &self.map
    }
}

impl Drop for SealedFile {
    fn drop(&mut self) {
        // Out of the table before the mapping goes: no writer may find a dead address.
        mappings()
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(self.map.as_ptr() as usize));
    }
}

/// A registered mapping: its length and the file behind it.
struct Mapping {
    len: usize,
    file: Arc<OwnedFd>,
}

/// Start address of every live mapping → the mapping.
fn mappings() -> &'static RwLock<BTreeMap<usize, Mapping>> {
    static MAPPINGS: std::sync::OnceLock<RwLock<BTreeMap<usize, Mapping>>> =
        std::sync::OnceLock::new();
    MAPPINGS.get_or_init(|| RwLock::new(BTreeMap::new()))
}

/// `pieces`, one after the other, in one sealed mapped file; `None` (nothing sealed)
/// when they are too small or no file can be made.
pub fn seal(pieces: &[&[u8]]) -> Option<Bytes> {
    let len: usize = pieces.iter().map(|piece| piece.len()).sum();
    if len < SEAL_MIN_BYTES {
        return None;
    }
    if mappings().read().unwrap_or_else(|p| p.into_inner()).len() >= sealed_files_allowed() {
        tracing::debug!(
            len,
            "segment kept in memory: sealed files at their share of descriptors"
        );
        return None;
    }
    match sealed_file(pieces, len) {
        Ok(bytes) => Some(bytes),
        Err(error) => {
            tracing::debug!(%error, len, "segment kept in memory: no sealed file");
            None
        }
    }
}

/// `pieces`, `len` bytes in all, in a new sealed file, mapped and registered.
fn sealed_file(pieces: &[&[u8]], len: usize) -> std::io::Result<Bytes> {
    use rustix::fs::{MemfdFlags, SealFlags};
    let fd = rustix::fs::memfd_create(
        "flotilla-segment",
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )?;
    let mut file = std::fs::File::from(fd);
    // Sized before it is written: a kernel allowed to back memory files with large
    // pages (`shmem_enabled` `within_size`) uses them only within the file's size, and
    // large pages make fewer, larger pieces for `sendfile` to hand to the socket.
    file.set_len(len as u64)?;
    for piece in pieces {
        file.write_all(piece)?;
    }
    rustix::fs::fcntl_add_seals(
        &file,
        SealFlags::WRITE | SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL,
    )?;
    // SAFETY: the file is a memfd of this process sealed against writes, shrinking and
    // growing (and against removing those seals): no one can change or truncate it, so
    // the mapping's bytes stay valid and unchanged for as long as it exists.
    #[allow(unsafe_code)]
    let map = unsafe { memmap2::Mmap::map(&file)? };
    let file = Arc::new(OwnedFd::from(file));
    mappings()
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .insert(
            map.as_ptr() as usize,
            Mapping {
                len: map.len(),
                file,
            },
        );
    Ok(Bytes::from_owner(SealedFile { map }))
}

/// A sealed segment's TS bytes and CMAF fragments, all in one sealed file (one
/// descriptor per segment); unchanged when they are not sealed.
pub fn seal_segment(data: Bytes, cmaf: Vec<TrackSegment>) -> (Bytes, Vec<TrackSegment>) {
    let mut pieces: Vec<&[u8]> = Vec::with_capacity(1 + cmaf.len());
    pieces.push(&data);
    pieces.extend(cmaf.iter().map(|track| &track.data[..]));
    let Some(sealed) = seal(&pieces) else {
        return (data, cmaf);
    };
    let mut start = data.len();
    let cmaf = cmaf
        .into_iter()
        .map(|track| {
            let end = start + track.data.len();
            let data = sealed.slice(start..end);
            start = end;
            TrackSegment { data, ..track }
        })
        .collect();
    (sealed.slice(..data.len()), cmaf)
}

/// The sealed file holding all of `slice`, and where in it `slice` starts; `None` for
/// bytes that are not (wholly) in one.
pub fn file_behind(slice: &[u8]) -> Option<(Arc<OwnedFd>, u64)> {
    let start = slice.as_ptr() as usize;
    let table = mappings().read().unwrap_or_else(|p| p.into_inner());
    let (&base, mapping) = table.range(..=start).next_back()?;
    let offset = start - base;
    (offset + slice.len() <= mapping.len).then(|| (mapping.file.clone(), offset as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_pieces_read_back_and_are_found_with_their_offsets() {
        let first = vec![1u8; SEAL_MIN_BYTES];
        let second = vec![2u8; 1000];
        let bytes = seal(&[&first, &second]).expect("a sealed file");
        assert_eq!(bytes.len(), SEAL_MIN_BYTES + 1000);
        assert_eq!(&bytes[..SEAL_MIN_BYTES], &first[..]);
        assert_eq!(&bytes[SEAL_MIN_BYTES..], &second[..]);
        let tail = bytes.slice(SEAL_MIN_BYTES..);
        let (_, offset) = file_behind(&tail).expect("found");
        assert_eq!(offset, SEAL_MIN_BYTES as u64);
        assert!(file_behind(&first).is_none(), "ordinary memory");
    }

    #[test]
    fn sealed_files_take_a_quarter_of_the_descriptor_limit_at_most() {
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .current
            .expect("a finite limit under test");
        assert_eq!(sealed_files_allowed() as u64, limit / 4);
    }

    #[test]
    fn small_pieces_stay_in_memory() {
        assert!(seal(&[&[0u8; 100]]).is_none());
    }

    #[test]
    fn the_sealed_file_cannot_be_written() {
        let bytes = seal(&[&vec![7u8; SEAL_MIN_BYTES]]).expect("a sealed file");
        let (file, _) = file_behind(&bytes).expect("found");
        let error = rustix::io::pwrite(&*file, b"x", 0).expect_err("sealed");
        assert_eq!(error, rustix::io::Errno::PERM);
    }
}
