//! H.264 in MP4 (ISO/IEC 14496-15): the decoder configuration record (`avcC`) from an
//! access unit's SPS and PPS, and Annex B access units as length-prefixed samples.

use bytes::{BufMut, Bytes, BytesMut};

use crate::media::h264::{NAL_PPS, NAL_SPS, nal_type, nal_units};

/// Access unit delimiter: dropped from samples (MP4 frames samples itself).
const NAL_AUD: u8 = 9;

/// The `avcC` record of the parameter sets in `access_unit`; `None` without an SPS and
/// a PPS (a keyframe carries them in every source flotilla takes).
pub fn decoder_configuration(access_unit: &[u8]) -> Option<Bytes> {
    let sps: Vec<&[u8]> = nal_units(access_unit)
        .filter(|nal| nal_type(nal) == NAL_SPS && nal.len() >= 4)
        .collect();
    let pps: Vec<&[u8]> = nal_units(access_unit)
        .filter(|nal| nal_type(nal) == NAL_PPS)
        .collect();
    let first = sps.first()?;
    if pps.is_empty() || sps.len() > 31 || pps.len() > 255 {
        return None;
    }
    let mut out = BytesMut::new();
    out.put_u8(1); // configuration version
    out.put_u8(first[1]); // profile
    out.put_u8(first[2]); // profile compatibility
    out.put_u8(first[3]); // level
    out.put_u8(0xfc | 3); // 4-byte NAL lengths
    out.put_u8(0xe0 | sps.len() as u8);
    for set in &sps {
        out.put_u16(u16::try_from(set.len()).ok()?);
        out.put_slice(set);
    }
    out.put_u8(pps.len() as u8);
    for set in &pps {
        out.put_u16(u16::try_from(set.len()).ok()?);
        out.put_slice(set);
    }
    Some(out.freeze())
}

/// `access_unit`'s NAL units, each after its 4-byte length, without parameter sets and
/// delimiters (the `avcC` record has the sets: `avc1`).
pub fn length_prefixed(access_unit: &[u8], out: &mut BytesMut) {
    for nal in nal_units(access_unit) {
        if matches!(nal_type(nal), NAL_SPS | NAL_PPS | NAL_AUD) {
            continue;
        }
        out.put_u32(nal.len() as u32);
        out.put_slice(nal);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPS: &[u8] = &[0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9];
    const PPS: &[u8] = &[0x68, 0xeb, 0xe3];
    const IDR: &[u8] = &[0x65, 0x88, 0x84];

    fn annex_b(nals: &[&[u8]]) -> Vec<u8> {
        nals.iter()
            .flat_map(|nal| [&[0, 0, 0, 1][..], nal].concat())
            .collect()
    }

    #[test]
    fn the_record_carries_profile_level_and_both_sets() {
        let record = decoder_configuration(&annex_b(&[&[0x09, 0xf0], SPS, PPS, IDR])).unwrap();
        let mut expected = vec![1, 0x64, 0x00, 0x1f, 0xff, 0xe1, 0, 6];
        expected.extend_from_slice(SPS);
        expected.extend_from_slice(&[1, 0, 3]);
        expected.extend_from_slice(PPS);
        assert_eq!(&record[..], &expected[..]);
        assert!(decoder_configuration(&annex_b(&[IDR])).is_none());
    }

    #[test]
    fn samples_keep_only_slices_with_their_lengths() {
        let mut out = BytesMut::new();
        length_prefixed(&annex_b(&[&[0x09, 0xf0], SPS, PPS, IDR]), &mut out);
        assert_eq!(&out[..], &[0, 0, 0, 3, 0x65, 0x88, 0x84]);
    }
}
