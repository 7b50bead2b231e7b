//! A bit reader over an H.26x RBSP: the NAL payload with its emulation-prevention bytes
//! (`00 00 03`) taken out, read MSB first, with Exp-Golomb codes. Bounded: reading past
//! the end gives `None`, never a panic.

/// Reads bits from a NAL unit's payload (emulation prevention removed on construction).
#[derive(Debug)]
pub struct BitReader {
    bytes: Vec<u8>,
    position_bits: usize,
}

impl BitReader {
    /// A reader of `nal_payload`, the bytes after the NAL header.
    pub fn rbsp(nal_payload: &[u8]) -> BitReader {
        let mut bytes = Vec::with_capacity(nal_payload.len());
        let mut zeros = 0;
        for byte in nal_payload {
            if zeros >= 2 && *byte == 3 {
                zeros = 0;
                continue;
            }
            zeros = if *byte == 0 { zeros + 1 } else { 0 };
            bytes.push(*byte);
        }
        BitReader {
            bytes,
            position_bits: 0,
        }
    }

    pub fn bit(&mut self) -> Option<bool> {
        let byte = self.bytes.get(self.position_bits / 8)?;
        let bit = byte >> (7 - self.position_bits % 8) & 1;
        self.position_bits += 1;
        Some(bit == 1)
    }

    /// `count` (≤ 32) bits as an unsigned number.
    pub fn bits(&mut self, count: u32) -> Option<u32> {
        debug_assert!(count <= 32);
        let mut value = 0u32;
        for _ in 0..count {
            value = (value << 1) | u32::from(self.bit()?);
        }
        Some(value)
    }

    pub fn skip(&mut self, count: usize) -> Option<()> {
        let end = self.position_bits.checked_add(count)?;
        (end <= self.bytes.len() * 8).then(|| self.position_bits = end)
    }

    /// An unsigned Exp-Golomb code (`ue(v)`), at most 32 bits of value.
    pub fn ue(&mut self) -> Option<u32> {
        let mut leading_zeros = 0;
        while !self.bit()? {
            leading_zeros += 1;
            if leading_zeros > 31 {
                return None;
            }
        }
        let rest = self.bits(leading_zeros)?;
        Some(((1u64 << leading_zeros) - 1 + u64::from(rest)).min(u64::from(u32::MAX)) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_bits_and_exp_golomb_codes_without_emulation_prevention() {
        // 1 | 010 | 011 | 00100 ... → ue: 0, 1, 2, 3
        let mut reader = BitReader::rbsp(&[0b1010_0110, 0b0100_0000]);
        assert_eq!(reader.ue(), Some(0));
        assert_eq!(reader.ue(), Some(1));
        assert_eq!(reader.ue(), Some(2));
        assert_eq!(reader.ue(), Some(3));
        let mut escaped = BitReader::rbsp(&[0, 0, 3, 1]);
        assert_eq!(escaped.bits(24), Some(1));
        assert_eq!(escaped.bit(), None, "the end is the end");
        let mut zeros = BitReader::rbsp(&[0; 8]);
        assert_eq!(zeros.ue(), None, "an endless prefix is refused");
    }
}
