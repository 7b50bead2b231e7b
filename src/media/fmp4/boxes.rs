//! ISO BMFF box writing (ISO/IEC 14496-12): a box is a 32-bit size, a four-character
//! type and its body; a full box adds a version byte and 24 bits of flags. Sizes are
//! patched in once a box's body is written, so builders nest like the boxes do.

use bytes::{BufMut, BytesMut};

/// Writes box `kind` whose body `body` writes into `out`.
pub fn write_box(out: &mut BytesMut, kind: &[u8; 4], body: impl FnOnce(&mut BytesMut)) {
    let start = out.len();
    out.put_u32(0);
    out.put_slice(kind);
    body(out);
    patch_size(out, start);
}

/// Writes full box `kind` (version, flags) whose body `body` writes into `out`.
pub fn write_full_box(
    out: &mut BytesMut,
    kind: &[u8; 4],
    version: u8,
    flags: u32,
    body: impl FnOnce(&mut BytesMut),
) {
    write_box(out, kind, |out| {
        out.put_u32((u32::from(version) << 24) | (flags & 0x00ff_ffff));
        body(out);
    });
}

/// Sets the size field of the box that starts at `start` to the bytes written since.
fn patch_size(out: &mut BytesMut, start: usize) {
    let size = u32::try_from(out.len() - start).expect("a box under 4 GiB");
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
}

/// The 3×3 unity matrix of `mvhd` and `tkhd` (16.16 and 2.30 fixed point).
pub const UNITY_MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_boxes_carry_their_sizes() {
        let mut out = BytesMut::new();
        write_box(&mut out, b"moov", |out| {
            write_full_box(out, b"mvhd", 1, 0x01, |out| out.put_u8(7));
        });
        assert_eq!(
            &out[..],
            &[
                0, 0, 0, 21, b'm', b'o', b'o', b'v', //
                0, 0, 0, 13, b'm', b'v', b'h', b'd', 1, 0, 0, 1, 7
            ]
        );
    }
}
