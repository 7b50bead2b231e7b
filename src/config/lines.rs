//! Line and column of a byte offset without rescanning the file.
//!
//! Diagnostics show `file:line:column` and the quoted line. Counting the newlines from the
//! start of the file for each one made `check-config` quadratic in the number of errors
//! (issue 30.10: 40,000 erroneous lines took 17 s, 200,000 did not finish in a minute).
//! The index is built in one pass when a file is added: where every line starts (a binary
//! search finds the line of an offset), and how many characters precede every block of
//! [`CHAR_BLOCK_BYTES`] (a column costs at most one block's scan, even in a 16 MiB file
//! written on a single line).

/// Bytes between two character-count checkpoints: a column is found by scanning at most
/// this much text. 4 KiB keeps the checkpoints at 1/1024 of the file's size (in `u32`s).
pub const CHAR_BLOCK_BYTES: usize = 4096;

/// Where the lines of one text start, and its character counts at block boundaries.
#[derive(Debug, Clone, Default)]
pub struct LineIndex {
    /// The byte offset of the first byte of every line; the first entry is 0. A line ends
    /// before its `\n` (and its `\r`, when the file has Windows line ends).
    line_starts: Vec<u32>,
    /// Characters in the text before byte `k * CHAR_BLOCK_BYTES`, for every block `k`.
    chars_before_block: Vec<u32>,
    /// The length of the text in bytes.
    len: u32,
}

/// A UTF-8 continuation byte (`10xxxxxx`) does not start a character.
fn starts_char(byte: u8) -> bool {
    byte & 0xC0 != 0x80
}

impl LineIndex {
    /// Indexes `text` in one pass. Offsets are `u32` like [`super::source::Span`]'s: config
    /// files are capped far below 4 GiB (`MAX_CONFIG_FILE_BYTES`).
    pub fn new(text: &str) -> LineIndex {
        let bytes = text.as_bytes();
        let mut line_starts = vec![0u32];
        line_starts.extend(
            bytes
                .iter()
                .enumerate()
                .filter(|(_, byte)| **byte == b'\n')
                .map(|(index, _)| (index + 1) as u32),
        );
        let mut chars_before_block = Vec::with_capacity(bytes.len() / CHAR_BLOCK_BYTES + 1);
        let mut chars = 0u32;
        for block in bytes.chunks(CHAR_BLOCK_BYTES) {
            chars_before_block.push(chars);
            chars += block.iter().filter(|byte| starts_char(**byte)).count() as u32;
        }
        chars_before_block.push(chars);
        LineIndex {
            line_starts,
            chars_before_block,
            len: bytes.len() as u32,
        }
    }

    /// How many lines the text has (a final line without `\n` counts; an empty text has one).
    pub fn line_count(&self) -> usize {
        self.line_starts.len()
    }

    /// The 0-based line holding byte `offset` (offsets past the end are on the last line).
    pub fn line_of(&self, offset: usize) -> usize {
        let offset = offset.min(self.len as usize) as u32;
        // The first entry is 0 <= offset, so the partition point is at least 1.
        self.line_starts.partition_point(|start| *start <= offset) - 1
    }

    /// The byte range of 0-based `line`, without its line end (`\n` or `\r\n`).
    pub fn line_range(&self, text: &str, line: usize) -> std::ops::Range<usize> {
        let start = self.line_starts[line] as usize;
        let end = self
            .line_starts
            .get(line + 1)
            .map_or(self.len as usize, |next| *next as usize - 1);
        let end = if end > start && text.as_bytes()[end - 1] == b'\r' {
            end - 1
        } else {
            end
        };
        start..end
    }

    /// Characters before byte `offset` (a character boundary of `text`), scanning at most
    /// one block.
    pub fn chars_before(&self, text: &str, offset: usize) -> usize {
        let offset = offset.min(self.len as usize);
        let block = offset / CHAR_BLOCK_BYTES;
        let scanned = text.as_bytes()[block * CHAR_BLOCK_BYTES..offset]
            .iter()
            .filter(|byte| starts_char(**byte))
            .count();
        self.chars_before_block[block] as usize + scanned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The slow, obviously right answer: 1-based line and column by counting from the start.
    fn naive(text: &str, offset: usize) -> (usize, usize) {
        let before = &text[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        (
            before.matches('\n').count() + 1,
            text[line_start..offset].chars().count() + 1,
        )
    }

    fn indexed(index: &LineIndex, text: &str, offset: usize) -> (usize, usize) {
        let line = index.line_of(offset);
        let start = index.line_range(text, line).start;
        (
            line + 1,
            index.chars_before(text, offset) - index.chars_before(text, start) + 1,
        )
    }

    #[test]
    fn agrees_with_counting_at_every_character_boundary() {
        let text = "stream a {\r\n  input test://; # é\n}\n\nbalancer ü { server h; }\nlast";
        let index = LineIndex::new(text);
        for offset in (0..=text.len()).filter(|o| text.is_char_boundary(*o)) {
            assert_eq!(
                indexed(&index, text, offset),
                naive(text, offset),
                "offset {offset}"
            );
        }
        assert_eq!(index.line_count(), 6);
        assert_eq!(&text[index.line_range(text, 0)], "stream a {");
        assert_eq!(&text[index.line_range(text, 3)], "");
        assert_eq!(&text[index.line_range(text, 5)], "last");
    }

    #[test]
    fn columns_cross_block_boundaries_with_multibyte_characters() {
        // One line of 3-byte characters spanning several blocks, so block boundaries fall
        // inside characters.
        let text = format!("{}x", "€".repeat(3 * CHAR_BLOCK_BYTES));
        let index = LineIndex::new(&text);
        let offset = text.len() - 1;
        assert_eq!(
            indexed(&index, &text, offset),
            (1, 3 * CHAR_BLOCK_BYTES + 1)
        );
        assert_eq!(
            index.chars_before(&text, text.len()),
            3 * CHAR_BLOCK_BYTES + 1
        );
    }

    #[test]
    fn the_last_of_200k_lines_is_found_by_search() {
        let text = "stream s { input test://; }\n".repeat(200_000);
        let index = LineIndex::new(&text);
        assert_eq!(index.line_count(), 200_001);
        let last = text.len() - "input test://; }\n".len();
        assert_eq!(indexed(&index, &text, last), (200_000, 12));
        // Past the end: the empty line after the final `\n`.
        assert_eq!(index.line_of(usize::MAX), 200_000);
    }

    #[test]
    fn empty_text_has_one_empty_line() {
        let index = LineIndex::new("");
        assert_eq!(index.line_count(), 1);
        assert_eq!(index.line_of(0), 0);
        assert_eq!(index.line_range("", 0), 0..0);
        assert_eq!(index.chars_before("", 0), 0);
    }
}
