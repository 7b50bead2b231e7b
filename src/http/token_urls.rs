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

/// `playlist` with `parameter=token` added to the query of every URI line, and of every
/// `URI="…"` attribute of its tags (LL-HLS parts, preload hints, maps, renditions).
pub fn with_token(playlist: &[u8], parameter: &str, token: &str) -> Bytes {
    let text = String::from_utf8_lossy(playlist);
    let mut out = String::with_capacity(playlist.len() + 64);
    for line in text.split_inclusive('\n') {
        let content = line.trim_end_matches(['\r', '\n']);
        let ending = &line[content.len()..];
        if content.starts_with('#') {
            tag_with_token(content, parameter, token, &mut out);
        } else {
            out.push_str(content);
            if !content.is_empty() {
                push_query(content, parameter, token, &mut out);
            }
        }
        out.push_str(ending);
    }
    Bytes::from(out)
}

fn push_query(uri: &str, parameter: &str, token: &str, out: &mut String) {
    out.push(if uri.contains('?') { '&' } else { '?' });
    out.push_str(parameter);
    out.push('=');
    out.push_str(token);
}

/// A tag line with the token in its `URI="…"` attributes.
fn tag_with_token(tag: &str, parameter: &str, token: &str, out: &mut String) {
    let mut rest = tag;
    while let Some(at) = rest.find("URI=\"") {
        let value_start = at + "URI=\"".len();
        let Some(length) = rest[value_start..].find('"') else {
            break;
        };
        let uri = &rest[value_start..value_start + length];
        out.push_str(&rest[..value_start + length]);
        push_query(uri, parameter, token, out);
        rest = &rest[value_start + length..];
    }
    out.push_str(rest);
}

/// A DASH manifest with `parameter=token` in its segment and init templates.
pub fn mpd_with_token(manifest: &[u8], parameter: &str, token: &str) -> Bytes {
    let text = String::from_utf8_lossy(manifest);
    let query = format!("?{parameter}={token}");
    let text = text
        .replace(".m4s\"", &format!(".m4s{query}\""))
        .replace(".mp4\"", &format!(".mp4{query}\""));
    Bytes::from(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ll_hls_tags_carry_the_token_in_their_uri_attributes() {
        let playlist = b"#EXT-X-MAP:URI=\"init-v1-0a0b0c0d.mp4\"\n#EXT-X-PART:DURATION=0.200,URI=\"v1-5.0.m4s\",INDEPENDENT=YES\n#EXT-X-RENDITION-REPORT:URI=\"a1.ll.m3u8\",LAST-MSN=5\n#EXTINF:1.000,\nv1-4.m4s\n";
        let out = with_token(playlist, "token", "abc");
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "#EXT-X-MAP:URI=\"init-v1-0a0b0c0d.mp4?token=abc\"\n#EXT-X-PART:DURATION=0.200,URI=\"v1-5.0.m4s?token=abc\",INDEPENDENT=YES\n#EXT-X-RENDITION-REPORT:URI=\"a1.ll.m3u8?token=abc\",LAST-MSN=5\n#EXTINF:1.000,\nv1-4.m4s?token=abc\n"
        );
        let mpd = mpd_with_token(
            b"initialization=\"init-v1-0a0b0c0d.mp4\" media=\"$RepresentationID$-$Number$.m4s\"",
            "token",
            "abc",
        );
        assert_eq!(
            &mpd[..],
            b"initialization=\"init-v1-0a0b0c0d.mp4?token=abc\" media=\"$RepresentationID$-$Number$.m4s?token=abc\""
        );
    }

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
