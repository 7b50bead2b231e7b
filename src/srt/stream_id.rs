//! What a publisher's SRT stream id names: the stream, and that it publishes.
//!
//! Encoders send either SRT's access-control syntax (`#!::r=live/cam,m=publish`: keys
//! `r` resource, `m` mode, `u` user, `s` session, `t` type; what OBS, SRS and Flussonic
//! document) or the bare name (`live/cam`). A stream id that asks to play (`m=request`)
//! is refused: the node takes SRT publishers; viewers play HLS, HTTP-MPEG-TS or RTMP.

/// Longest stream id libsrt carries.
pub const MAX_STREAM_ID_BYTES: usize = 512;

/// Why a stream id names no stream to publish into (the caller is at fault).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamIdError {
    #[error(
        "empty stream id: name the stream (`streamid=#!::r=NAME,m=publish` or `streamid=NAME`)"
    )]
    Empty,
    #[error("stream id longer than {MAX_STREAM_ID_BYTES} bytes")]
    TooLong,
    #[error("stream id `{0}` has no `r=NAME`")]
    NoResource(String),
    #[error("stream id mode `{0}`: the node takes SRT publishers only (m=publish)")]
    Mode(String),
    #[error("`{name}`: {why}")]
    Name { name: String, why: String },
}

/// What a publisher's stream id says for the stream's publish rules, as the query an RTMP
/// publisher would put on its key: the SRT session key `s` as `token`, and a `password`
/// key (`#!::r=cam,m=publish,password=…` or the bare `cam?password=…&token=…`).
pub fn publish_query(stream_id: &str) -> Option<String> {
    if let Some(keys) = stream_id.strip_prefix("#!::") {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        let mut any = false;
        for pair in keys.split(',') {
            match pair.split_once('=') {
                Some(("s", value)) => {
                    query.append_pair("token", value);
                    any = true;
                }
                Some(("password", value)) => {
                    query.append_pair("password", value);
                    any = true;
                }
                _ => {}
            }
        }
        return any.then(|| query.finish());
    }
    stream_id
        .split_once('?')
        .map(|(_, query)| query.to_string())
}

/// The stream a publisher's stream id names.
pub fn publish_name(stream_id: &str) -> Result<String, StreamIdError> {
    if stream_id.len() > MAX_STREAM_ID_BYTES {
        return Err(StreamIdError::TooLong);
    }
    let name = match stream_id.strip_prefix("#!::") {
        Some(keys) => {
            let mut resource = None;
            for pair in keys.split(',') {
                match pair.split_once('=') {
                    Some(("r", value)) => resource = Some(value),
                    Some(("m", "publish")) => {}
                    Some(("m", other)) => return Err(StreamIdError::Mode(other.to_string())),
                    _ => {}
                }
            }
            resource.ok_or_else(|| StreamIdError::NoResource(stream_id.to_string()))?
        }
        None => stream_id.split('?').next().unwrap_or_default(),
    };
    let name = name.trim_matches('/');
    if name.is_empty() {
        return Err(StreamIdError::Empty);
    }
    crate::media::name::check(name).map_err(|why| StreamIdError::Name {
        name: crate::media::name::quoted(name),
        why: why.to_string(),
    })?;
    Ok(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn passwords_and_session_keys_become_the_publish_query() {
        assert_eq!(
            publish_query("#!::r=cam,m=publish,s=t1,password=a b").as_deref(),
            Some("token=t1&password=a+b")
        );
        assert_eq!(publish_query("#!::r=cam,m=publish"), None);
        assert_eq!(
            publish_query("cam?password=x").as_deref(),
            Some("password=x")
        );
        assert_eq!(publish_name("cam?password=x").unwrap(), "cam");
    }

    #[test]
    fn access_control_syntax_and_bare_names() {
        assert_eq!(
            publish_name("#!::r=live/cam,m=publish").unwrap(),
            "live/cam"
        );
        assert_eq!(publish_name("#!::u=alice,r=news").unwrap(), "news");
        assert_eq!(publish_name("live/cam").unwrap(), "live/cam");
        assert_eq!(publish_name(""), Err(StreamIdError::Empty));
        assert!(
            matches!(publish_name("#!::r=news,m=request"), Err(StreamIdError::Mode(m)) if m == "request")
        );
        assert!(matches!(
            publish_name("#!::m=publish"),
            Err(StreamIdError::NoResource(_))
        ));
        assert!(matches!(
            publish_name("../etc"),
            Err(StreamIdError::Name { .. })
        ));
        assert_eq!(publish_name(&"a".repeat(600)), Err(StreamIdError::TooLong));
    }

    proptest! {
        #[test]
        fn arbitrary_stream_ids_never_panic(text in ".{0,600}") {
            let _ = publish_name(&text);
        }
    }
}
