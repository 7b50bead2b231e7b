//! RTMP names (spec §6): the app and the stream key are joined (`live` + `news` →
//! `live/news`), the reserved app `static` is dropped (`static` + `cam` → `cam`), and a
//! `?query` on the key is not part of the name. A query may carry the hop marker of a
//! redirect already made (`flotilla_hop`), so a viewer is never sent on again.

/// Whether an RTMP app or stream key carries the hop marker of a redirect already made.
pub(super) fn is_redirected(app: &str, key: &str) -> bool {
    [app, key].iter().any(|part| {
        part.split_once('?').is_some_and(|(_, query)| {
            query
                .split('&')
                .any(|pair| pair.split('=').next() == Some(crate::http::media::HOP_PARAMETER))
        })
    })
}

/// An RTMP app without its query and surrounding slashes.
pub(super) fn bare_app(app: &str) -> &str {
    app.split('?').next().unwrap_or_default().trim_matches('/')
}

/// The stream name for an RTMP app and stream key (spec §6).
pub fn stream_name(app: &str, key: &str) -> String {
    let key = key.split('?').next().unwrap_or_default();
    let app = bare_app(app);
    // `static` is reserved and dropped, also as the first part of a longer app (players
    // split `rtmp://host/static/live/news` as app `static/live`, key `news`).
    let app = app.strip_prefix("static/").unwrap_or(app);
    let joined = match app {
        "" | "static" => key.to_string(),
        app => format!("{app}/{key}"),
    };
    joined.trim_matches('/').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_join_app_and_key_like_flussonic() {
        assert_eq!(stream_name("static", "cam01"), "cam01");
        assert_eq!(stream_name("live", "news"), "live/news");
        assert_eq!(stream_name("chats/my", "chat-15"), "chats/my/chat-15");
        assert_eq!(stream_name("chats", "my/chat-15"), "chats/my/chat-15");
        assert_eq!(stream_name("live", "news?token=abc"), "live/news");
        assert_eq!(stream_name("", "solo"), "solo");
        assert_eq!(stream_name("static/live", "news"), "live/news");
        assert_eq!(stream_name("live?flotilla_hop=1", "news"), "live/news");
    }

    #[test]
    fn a_hop_marker_in_the_app_or_the_key_means_already_redirected() {
        assert!(is_redirected("live?flotilla_hop=1", "news"));
        assert!(is_redirected("live", "news?token=a&flotilla_hop=1"));
        assert!(!is_redirected("live", "news?token=a"));
        assert!(!is_redirected("flotilla_hop", "news"));
    }
}
