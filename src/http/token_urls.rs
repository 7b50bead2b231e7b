//! Play tokens carried into playlists: every URI of a playlist served to a session with a
//! token gets `?token=…` (the `auth_token` parameter), so the player's next requests —
//! which resolve the playlist's relative URIs and drop the query they came with — name
//! the same session. Without this, an HLS viewer's segment requests would be sessions of
//! their own, without a token, and a play policy would refuse them.
//!
//! Playlists are shared bytes, muxed once per stream; the copy made here is per request
//! and small (a media playlist is a few hundred bytes per segment), and only for sessions
//! with a token.

use bytes::Bytes;

/// `playlist` with `parameter=token` added to the query of every URI line.
pub fn with_token(playlist: &[u8], parameter: &str, token: &str) -> Bytes {
    let text = String::from_utf8_lossy(playlist);
    let mut out = String::with_capacity(playlist.len() + 64);
    for line in text.split_inclusive('\n') {
        let content = line.trim_end_matches(['\r', '\n']);
        let ending = &line[content.len()..];
        out.push_str(content);
        if !content.is_empty() && !content.starts_with('#') {
            out.push(if content.contains('?') { '&' } else { '?' });
            out.push_str(parameter);
            out.push('=');
            out.push_str(token);
        }
        out.push_str(ending);
    }
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_lines_get_the_token_and_tags_do_not() {
        let playlist = b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.000,\n2026/12/07/13/00/00-02000.ts\n#EXTINF:2.000,\nseg.ts?x=1\n";
        let out = with_token(playlist, "token", "abc");
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.000,\n2026/12/07/13/00/00-02000.ts?token=abc\n#EXTINF:2.000,\nseg.ts?x=1&token=abc\n"
        );
    }

    #[test]
    fn crlf_endings_and_a_last_line_without_ending_are_kept() {
        let out = with_token(b"#EXTM3U\r\nmono.m3u8\r\nlast.ts", "t", "1");
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "#EXTM3U\r\nmono.m3u8?t=1\r\nlast.ts?t=1"
        );
    }
}
