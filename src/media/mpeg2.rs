//! MPEG-2 video (ISO/IEC 13818-2; MPEG-1 video is its subset): keyframes and picture
//! size, from the start codes of a picture's PES payload.

use super::h264::VideoInfo;

const PICTURE_START: u8 = 0x00;
const SEQUENCE_HEADER: u8 = 0xb3;
/// picture_coding_type of an intra-coded picture.
const I_PICTURE: u8 = 1;

/// The start codes (the byte after `00 00 01`) and the bytes after each.
fn start_codes(data: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    let mut index = 0;
    std::iter::from_fn(move || {
        while index + 4 <= data.len() {
            if data[index] == 0 && data[index + 1] == 0 && data[index + 2] == 1 {
                let code = data[index + 3];
                index += 4;
                return Some((code, &data[index..]));
            }
            index += 1;
        }
        None
    })
}

/// Whether the picture is one a decoder can start from: an I-picture with the sequence
/// header before it (decoders need the header's size and quantiser matrices).
pub fn is_keyframe(data: &[u8]) -> bool {
    let mut sequence_header = false;
    for (code, rest) in start_codes(data) {
        match code {
            SEQUENCE_HEADER => sequence_header = true,
            PICTURE_START => {
                let coding_type = rest.get(1).map_or(0, |byte| (byte >> 3) & 0x07);
                return sequence_header && coding_type == I_PICTURE;
            }
            _ => {}
        }
    }
    false
}

/// The picture size from a sequence header, if the data has one. MPEG-2 video has no
/// codec string HLS players recognise, so `codec` is `None`.
pub fn video_info(data: &[u8]) -> Option<VideoInfo> {
    let (_, header) = start_codes(data).find(|(code, _)| *code == SEQUENCE_HEADER)?;
    let [a, b, c, ..] = *header else {
        return None;
    };
    let width = (u32::from(a) << 4) | u32::from(b >> 4);
    let height = (u32::from(b & 0x0f) << 8) | u32::from(c);
    (width > 0 && height > 0).then_some(VideoInfo {
        width,
        height,
        codec: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sequence header of 720x576, then an I-picture (temporal reference 0).
    const I_FRAME: &[u8] = &[
        0, 0, 1, 0xb3, 0x2d, 0x02, 0x40, 0x33, 0xff, 0xff, 0xe0, 0x18, //
        0, 0, 1, 0xb8, 0x00, 0x08, 0x00, 0x00, //
        0, 0, 1, 0x00, 0x00, 0x0f, 0xff, 0xf8,
    ];

    #[test]
    fn an_i_picture_after_a_sequence_header_is_a_keyframe_with_its_size() {
        assert!(is_keyframe(I_FRAME));
        let info = video_info(I_FRAME).unwrap();
        assert_eq!((info.width, info.height), (720, 576));
        // A P-picture (coding type 2), and an I-picture without the sequence header.
        assert!(!is_keyframe(&[0, 0, 1, 0x00, 0x00, 0x10, 0, 0]));
        assert!(!is_keyframe(&I_FRAME[12..]));
        assert!(video_info(&I_FRAME[12..]).is_none());
    }
}
