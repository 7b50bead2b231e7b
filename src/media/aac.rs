//! AAC in ADTS framing: splitting frames and reading their headers.

/// An ADTS header's fields that matter here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdtsHeader {
    /// MPEG-4 audio object type (2 = AAC-LC).
    pub object_type: u8,
    pub sample_rate: u32,
    pub channels: u8,
    /// Header plus payload.
    pub frame_length: usize,
    pub header_length: usize,
}

const SAMPLE_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// Samples per AAC frame.
pub const SAMPLES_PER_FRAME: u64 = 1024;

/// Parses the ADTS header at the start of `data`.
pub fn parse_header(data: &[u8]) -> Option<AdtsHeader> {
    if data.len() < 7 || data[0] != 0xff || data[1] & 0xf0 != 0xf0 {
        return None;
    }
    let protection_absent = data[1] & 0x01 == 1;
    let object_type = (data[2] >> 6) + 1;
    let rate_index = usize::from((data[2] >> 2) & 0x0f);
    let channels = ((data[2] & 0x01) << 2) | (data[3] >> 6);
    let frame_length = (usize::from(data[3] & 0x03) << 11)
        | (usize::from(data[4]) << 3)
        | usize::from(data[5] >> 5);
    let header_length = if protection_absent { 7 } else { 9 };
    if frame_length < header_length {
        return None;
    }
    Some(AdtsHeader {
        object_type,
        sample_rate: *SAMPLE_RATES.get(rate_index)?,
        channels,
        frame_length,
        header_length,
    })
}

/// The ADTS frames of a buffer (stops at the first malformed or truncated one).
pub fn frames(mut data: &[u8]) -> impl Iterator<Item = (AdtsHeader, &[u8])> {
    std::iter::from_fn(move || {
        let header = parse_header(data)?;
        let frame = data.get(..header.frame_length)?;
        data = &data[header.frame_length..];
        Some((header, frame))
    })
}

/// RFC 6381 codec string of an ADTS stream (`mp4a.40.2` for AAC-LC).
pub fn codec_string(header: &AdtsHeader) -> &'static str {
    // ADTS's 2-bit profile gives object types 1 to 4 only.
    match header.object_type {
        1 => "mp4a.40.1",
        2 => "mp4a.40.2",
        3 => "mp4a.40.3",
        _ => "mp4a.40.4",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_clip_is_mono_48k_aac_lc() {
        let mut demuxer = crate::media::ts::demux::Demuxer::new();
        let mut out = Vec::new();
        demuxer.push(crate::media::TEST_CLIP_TS, &mut out);
        let audio = out
            .iter()
            .find(|p| p.stream_type == crate::media::ts::STREAM_TYPE_ADTS_AAC)
            .unwrap();
        let all: Vec<_> = frames(&audio.data).collect();
        assert!(all.len() > 1, "several ADTS frames per PES");
        let header = all[0].0;
        assert_eq!(
            (header.sample_rate, header.channels, header.object_type),
            (48_000, 1, 2)
        );
        assert_eq!(codec_string(&header), "mp4a.40.2");
        assert_eq!(
            all.iter().map(|(h, _)| h.frame_length).sum::<usize>(),
            audio.data.len()
        );
    }

    #[test]
    fn garbage_is_not_a_header() {
        assert!(parse_header(&[0xff, 0xf1, 0, 0, 0, 0]).is_none());
        assert!(parse_header(&[0, 0, 0, 0, 0, 0, 0]).is_none());
        assert_eq!(frames(&[0xff; 3]).count(), 0);
    }
}
