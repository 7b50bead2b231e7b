//! A CMAF/fMP4 fragment: `moof` (per track: its decode time and one `trun` of sample
//! durations, sizes, flags and composition offsets) and the `mdat` with the samples, the
//! tracks' data one after the other.

use bytes::{BufMut, Bytes, BytesMut};

use super::boxes::{write_box, write_full_box};

/// One sample of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// In the track's timescale.
    pub duration: u32,
    /// Bytes in the run's data.
    pub size: u32,
    /// A sync sample (video keyframe; every audio frame).
    pub sync: bool,
    /// Presentation minus decode time, in the track's timescale.
    pub composition_offset: u32,
}

/// One track's samples in a fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackRun {
    pub track_id: u32,
    /// The first sample's decode time, in the track's timescale.
    pub base_decode_time: u64,
    pub samples: Vec<Sample>,
    /// The samples' bytes, in order (their sizes add up to its length).
    pub data: Bytes,
}

/// `trun` flags: data offset, and per sample duration, size, flags, composition offset.
const TRUN_FLAGS: u32 = 0x000001 | 0x000100 | 0x000200 | 0x000400 | 0x000800;
/// `tfhd` flag: data offsets are counted from the start of the `moof`.
const DEFAULT_BASE_IS_MOOF: u32 = 0x020000;
/// Sample flags: depends on no other sample (a sync sample).
const SYNC_SAMPLE: u32 = 0x0200_0000;
/// Sample flags: depends on others, not a sync sample.
const NON_SYNC_SAMPLE: u32 = 0x0101_0000;

/// The fragment numbered `sequence` (1, 2, 3… per stream) of `runs`.
pub fn fragment(sequence: u32, runs: &[TrackRun]) -> Bytes {
    let data_bytes: usize = runs.iter().map(|run| run.data.len()).sum();
    let mut out = BytesMut::with_capacity(256 + 16 * runs.len() + data_bytes);
    // Where each trun's data offset goes, patched once the moof's size is known.
    let mut offsets = Vec::with_capacity(runs.len());
    write_box(&mut out, b"moof", |out| {
        write_full_box(out, b"mfhd", 0, 0, |out| out.put_u32(sequence));
        for run in runs {
            write_box(out, b"traf", |out| {
                write_full_box(out, b"tfhd", 0, DEFAULT_BASE_IS_MOOF, |out| {
                    out.put_u32(run.track_id);
                });
                write_full_box(out, b"tfdt", 1, 0, |out| out.put_u64(run.base_decode_time));
                write_full_box(out, b"trun", 0, TRUN_FLAGS, |out| {
                    out.put_u32(run.samples.len() as u32);
                    offsets.push(out.len());
                    out.put_i32(0);
                    for sample in &run.samples {
                        out.put_u32(sample.duration);
                        out.put_u32(sample.size);
                        out.put_u32(if sample.sync {
                            SYNC_SAMPLE
                        } else {
                            NON_SYNC_SAMPLE
                        });
                        out.put_u32(sample.composition_offset);
                    }
                });
            });
        }
    });
    // Data starts after the moof and the mdat's 8-byte header.
    let mut data_at = out.len() + 8;
    for (at, run) in offsets.into_iter().zip(runs) {
        let offset = i32::try_from(data_at).expect("a fragment under 2 GiB");
        out[at..at + 4].copy_from_slice(&offset.to_be_bytes());
        data_at += run.data.len();
    }
    write_box(&mut out, b"mdat", |out| {
        for run in runs {
            out.put_slice(&run.data);
        }
    });
    out.freeze()
}
