//! A WHIP/WHEP client's SDP offer: bounded, checked, and refused with a reason that says
//! what the client sent wrong.
//!
//! str0m parses the SDP; what is checked here comes first (size, content type, text) and
//! after (the media the offer asks for), so a bad offer never reaches a peer connection.

use str0m::change::SdpOffer;

/// Longest offer accepted: a browser's offer with every codec and extension is 5–10 KB.
pub const MAX_OFFER_BYTES: usize = 64 * 1024;

/// Most media sections (m-lines) an offer may hold: WHIP/WHEP need one video and one
/// audio; simulcast and data channels add a few.
pub const MAX_MEDIA_SECTIONS: usize = 8;

/// Why an offer is refused. The client is at fault in every case; retrying the same offer
/// fails the same way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OfferError {
    #[error("the offer must be sent as Content-Type: application/sdp")]
    ContentType,
    #[error("the offer is {0} bytes; at most {MAX_OFFER_BYTES} are accepted")]
    TooLarge(usize),
    #[error("the offer is not UTF-8 text")]
    NotText,
    #[error("the offer has {0} media sections; at most {MAX_MEDIA_SECTIONS} are accepted")]
    TooManyMedia(usize),
    #[error("the offer is not valid SDP: {0}")]
    Sdp(String),
    #[error("the offer has no {0} media this node can take")]
    NoMedia(&'static str),
}

/// Whether a Content-Type header names SDP (parameters allowed).
pub fn is_sdp(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|value| {
        value
            .split(';')
            .next()
            .is_some_and(|kind| kind.trim().eq_ignore_ascii_case("application/sdp"))
    })
}

/// The offer in `body`, parsed.
pub fn parse(body: &[u8]) -> Result<SdpOffer, OfferError> {
    if body.len() > MAX_OFFER_BYTES {
        return Err(OfferError::TooLarge(body.len()));
    }
    let text = std::str::from_utf8(body).map_err(|_| OfferError::NotText)?;
    let sections = text.lines().filter(|line| line.starts_with("m=")).count();
    if sections > MAX_MEDIA_SECTIONS {
        return Err(OfferError::TooManyMedia(sections));
    }
    SdpOffer::from_sdp_string(text).map_err(|error| OfferError::Sdp(first_line(&error.to_string())))
}

/// The first line of a parser's message, bounded: it goes back to the client.
fn first_line(message: &str) -> String {
    message
        .lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn content_types_name_sdp_with_or_without_parameters() {
        assert!(is_sdp(Some("application/sdp")));
        assert!(is_sdp(Some("Application/SDP; charset=utf-8")));
        assert!(!is_sdp(Some("text/plain")));
        assert!(!is_sdp(None));
    }

    #[test]
    fn bad_offers_are_refused_with_the_reason() {
        assert_eq!(
            parse(&vec![b'v'; MAX_OFFER_BYTES + 1]).unwrap_err(),
            OfferError::TooLarge(MAX_OFFER_BYTES + 1)
        );
        assert_eq!(parse(&[0xff, 0xfe]).unwrap_err(), OfferError::NotText);
        assert!(matches!(
            parse(b"v=0\r\nthis is not sdp\r\n").unwrap_err(),
            OfferError::Sdp(_)
        ));
        let many = "v=0\r\n".to_string() + &"m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n".repeat(9);
        assert_eq!(
            parse(many.as_bytes()).unwrap_err(),
            OfferError::TooManyMedia(9)
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = parse(&body);
        }

        #[test]
        fn sdp_shaped_text_never_panics(lines in proptest::collection::vec("[vosctmab]=[ -~]{0,60}", 0..40)) {
            let _ = parse(lines.join("\r\n").as_bytes());
        }
    }
}
