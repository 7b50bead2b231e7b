//! The CMAF/fMP4 initialization segment: `ftyp` and a `moov` that describes every track
//! (codec configuration, timescale, picture size or sample rate) and holds no samples —
//! those come in fragments ([`super::fragment`]).

use bytes::{BufMut, Bytes, BytesMut};

use super::boxes::{UNITY_MATRIX, write_box, write_full_box};

/// What a track is, as its sample entry describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackKind {
    /// H.264 (`avc1`): parameter sets in the `avcC` record, not in the samples.
    Avc {
        width: u16,
        height: u16,
        /// The AVCDecoderConfigurationRecord ([`super::avc::decoder_configuration`]).
        avcc: Bytes,
    },
    /// H.265 (`hvc1`): parameter sets in the `hvcC` record, not in the samples.
    Hevc {
        width: u16,
        height: u16,
        /// The HEVCDecoderConfigurationRecord ([`super::hevc::decoder_configuration`]).
        hvcc: Bytes,
    },
    /// AAC (`mp4a`).
    Aac {
        sample_rate: u32,
        channels: u16,
        /// The AudioSpecificConfig ([`super::aac::audio_specific_config`]).
        asc: Bytes,
    },
    /// Opus (`Opus` with its `dOps` box, "Encapsulation of Opus in ISO Base Media File
    /// Format"): always 48 kHz.
    Opus { channels: u8 },
}

/// One track of the init segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackConfig {
    /// 1-based, unique in the segment.
    pub id: u32,
    /// Ticks per second of the track's times.
    pub timescale: u32,
    pub kind: TrackKind,
}

/// `mvhd`'s timescale: the movie's own times are all zero (fragments carry the times).
const MOVIE_TIMESCALE: u32 = 1000;

/// The init segment of `tracks`.
pub fn init_segment(tracks: &[TrackConfig]) -> Bytes {
    let mut out = BytesMut::with_capacity(1024);
    write_box(&mut out, b"ftyp", |out| {
        out.put_slice(b"iso6");
        out.put_u32(0);
        for brand in [b"iso6", b"cmfc", b"mp41"] {
            out.put_slice(brand);
        }
    });
    write_box(&mut out, b"moov", |out| {
        write_full_box(out, b"mvhd", 0, 0, |out| {
            out.put_u32(0); // creation time
            out.put_u32(0); // modification time
            out.put_u32(MOVIE_TIMESCALE);
            out.put_u32(0); // duration: unknown (live)
            out.put_u32(0x0001_0000); // rate 1.0
            out.put_u16(0x0100); // volume 1.0
            out.put_bytes(0, 10);
            for value in UNITY_MATRIX {
                out.put_u32(value);
            }
            out.put_bytes(0, 24);
            out.put_u32(tracks.iter().map(|t| t.id).max().unwrap_or(0) + 1);
        });
        for track in tracks {
            trak(out, track);
        }
        write_box(out, b"mvex", |out| {
            for track in tracks {
                write_full_box(out, b"trex", 0, 0, |out| {
                    out.put_u32(track.id);
                    out.put_u32(1); // sample description index
                    out.put_u32(0); // default duration
                    out.put_u32(0); // default size
                    out.put_u32(0); // default flags
                });
            }
        });
    });
    out.freeze()
}

fn trak(out: &mut BytesMut, track: &TrackConfig) {
    let (width, height, audio) = match &track.kind {
        TrackKind::Avc { width, height, .. } | TrackKind::Hevc { width, height, .. } => {
            (*width, *height, false)
        }
        TrackKind::Aac { .. } | TrackKind::Opus { .. } => (0, 0, true),
    };
    write_box(out, b"trak", |out| {
        // Flags: enabled, in movie.
        write_full_box(out, b"tkhd", 0, 0x03, |out| {
            out.put_u32(0);
            out.put_u32(0);
            out.put_u32(track.id);
            out.put_u32(0);
            out.put_u32(0); // duration
            out.put_bytes(0, 8);
            out.put_u16(0); // layer
            out.put_u16(0); // alternate group
            out.put_u16(if audio { 0x0100 } else { 0 });
            out.put_u16(0);
            for value in UNITY_MATRIX {
                out.put_u32(value);
            }
            out.put_u32(u32::from(width) << 16);
            out.put_u32(u32::from(height) << 16);
        });
        write_box(out, b"mdia", |out| {
            write_full_box(out, b"mdhd", 0, 0, |out| {
                out.put_u32(0);
                out.put_u32(0);
                out.put_u32(track.timescale);
                out.put_u32(0);
                out.put_u16(0x55c4); // language: und
                out.put_u16(0);
            });
            write_full_box(out, b"hdlr", 0, 0, |out| {
                out.put_u32(0);
                out.put_slice(if audio { b"soun" } else { b"vide" });
                out.put_bytes(0, 12);
                out.put_slice(if audio {
                    b"SoundHandler\0"
                } else {
                    b"VideoHandler\0"
                });
            });
            write_box(out, b"minf", |out| {
                if audio {
                    write_full_box(out, b"smhd", 0, 0, |out| out.put_u32(0));
                } else {
                    write_full_box(out, b"vmhd", 0, 0x01, |out| out.put_bytes(0, 8));
                }
                write_box(out, b"dinf", |out| {
                    write_full_box(out, b"dref", 0, 0, |out| {
                        out.put_u32(1);
                        // Flag 1: the media is in this file.
                        write_full_box(out, b"url ", 0, 0x01, |_| {});
                    });
                });
                write_box(out, b"stbl", |out| {
                    write_full_box(out, b"stsd", 0, 0, |out| {
                        out.put_u32(1);
                        sample_entry(out, &track.kind);
                    });
                    write_full_box(out, b"stts", 0, 0, |out| out.put_u32(0));
                    write_full_box(out, b"stsc", 0, 0, |out| out.put_u32(0));
                    write_full_box(out, b"stsz", 0, 0, |out| {
                        out.put_u32(0);
                        out.put_u32(0);
                    });
                    write_full_box(out, b"stco", 0, 0, |out| out.put_u32(0));
                });
            });
        });
    });
}

fn sample_entry(out: &mut BytesMut, kind: &TrackKind) {
    match kind {
        TrackKind::Avc {
            width,
            height,
            avcc,
        } => visual_entry(out, (b"avc1", b"avcC"), (*width, *height), avcc),
        TrackKind::Hevc {
            width,
            height,
            hvcc,
        } => visual_entry(out, (b"hvc1", b"hvcC"), (*width, *height), hvcc),
        TrackKind::Aac {
            sample_rate,
            channels,
            asc,
        } => write_box(out, b"mp4a", |out| {
            out.put_bytes(0, 6);
            out.put_u16(1);
            out.put_bytes(0, 8);
            out.put_u16(*channels);
            out.put_u16(16); // sample size
            out.put_u32(0);
            // 16.16 fixed point; rates above 65535 Hz keep their low 16 bits here, the
            // decoder reads the AudioSpecificConfig.
            out.put_u32((sample_rate & 0xffff) << 16);
            write_full_box(out, b"esds", 0, 0, |out| esds(out, asc));
        }),
        TrackKind::Opus { channels } => write_box(out, b"Opus", |out| {
            out.put_bytes(0, 6);
            out.put_u16(1); // data reference index
            out.put_bytes(0, 8);
            out.put_u16(u16::from(*channels));
            out.put_u16(16); // sample size
            out.put_u32(0);
            out.put_u32(48_000 << 16);
            write_box(out, b"dOps", |out| {
                out.put_u8(0); // version
                out.put_u8(*channels);
                // Pre-skip: a WebRTC sender does not say its encoder's; none is trimmed.
                out.put_u16(0);
                out.put_u32(48_000); // input sample rate
                out.put_i16(0); // output gain
                out.put_u8(0); // channel mapping family 0: mono or stereo
            });
        }),
    }
}

/// A video sample entry (`kind`) with its decoder configuration box (`config_box`).
fn visual_entry(
    out: &mut BytesMut,
    (kind, config_box): (&[u8; 4], &[u8; 4]),
    (width, height): (u16, u16),
    config: &[u8],
) {
    write_box(out, kind, |out| {
        out.put_bytes(0, 6);
        out.put_u16(1); // data reference index
        out.put_bytes(0, 16);
        out.put_u16(width);
        out.put_u16(height);
        out.put_u32(0x0048_0000); // 72 dpi
        out.put_u32(0x0048_0000);
        out.put_u32(0);
        out.put_u16(1); // frames per sample
        out.put_bytes(0, 32); // compressor name
        out.put_u16(0x0018); // depth
        out.put_i16(-1);
        write_box(out, config_box, |out| out.put_slice(config));
    });
}

/// The MPEG-4 elementary stream descriptor of an AAC track (ISO/IEC 14496-1 §7.2.6).
fn esds(out: &mut BytesMut, asc: &[u8]) {
    let decoder_specific = 5 + asc.len();
    let decoder_config = 5 + 13 + decoder_specific;
    let sl_config = 5 + 1;
    descriptor(out, 0x03, 3 + decoder_config + sl_config);
    out.put_u16(0); // ES_ID
    out.put_u8(0); // no dependencies, URL or OCR
    descriptor(out, 0x04, 13 + decoder_specific);
    out.put_u8(0x40); // MPEG-4 audio
    out.put_u8(0x15); // audio stream, upstream 0, reserved 1
    out.put_bytes(0, 3); // buffer size
    out.put_u32(0); // max bitrate
    out.put_u32(0); // average bitrate
    descriptor(out, 0x05, asc.len());
    out.put_slice(asc);
    descriptor(out, 0x06, 1);
    out.put_u8(0x02); // SL predefined: MP4
}

/// A descriptor's tag and its length in the four-byte form.
fn descriptor(out: &mut BytesMut, tag: u8, length: usize) {
    out.put_u8(tag);
    let length = u32::try_from(length).expect("a small descriptor");
    out.put_u8(0x80 | ((length >> 21) & 0x7f) as u8);
    out.put_u8(0x80 | ((length >> 14) & 0x7f) as u8);
    out.put_u8(0x80 | ((length >> 7) & 0x7f) as u8);
    out.put_u8((length & 0x7f) as u8);
}
