//! The de-facto RTMP 302: with `rtmp_redirect true;`, a player asking for a stream that
//! only a peer has is sent there instead of relayed. RTMP names the stream only in
//! `play`, so that is where the redirect is answered; the target's tcUrl carries the hop
//! marker so the viewer is never sent on again.

use rml_rtmp::time::RtmpTimestamp;

use super::error::RtmpError;
use super::names::bare_app;
use super::server::{CHUNK_SIZE_BYTES, Connection, Role};

/// The de-facto "RTMP 302" (SRS origin clusters, Flash-era players): an error `onStatus`
/// with code NetConnection.Connect.Rejected whose `ex` object holds `code` 302,
/// `redirect` (the tcUrl to connect to; the player then plays the same key there) and
/// `redirect2` (the full URL with the key).
pub fn redirect_status(tc_url: &str, key: &str) -> rml_rtmp::rml_amf0::Amf0Value {
    use rml_rtmp::rml_amf0::Amf0Value;
    use std::collections::HashMap;
    let ex = HashMap::from([
        ("code".to_string(), Amf0Value::Number(302.0)),
        (
            "redirect".to_string(),
            Amf0Value::Utf8String(tc_url.to_string()),
        ),
        (
            "redirect2".to_string(),
            Amf0Value::Utf8String(format!("{tc_url}/{key}")),
        ),
    ]);
    Amf0Value::Object(HashMap::from([
        ("level".to_string(), Amf0Value::Utf8String("error".into())),
        (
            "code".to_string(),
            Amf0Value::Utf8String("NetConnection.Connect.Rejected".into()),
        ),
        (
            "description".to_string(),
            Amf0Value::Utf8String("RTMP 302 Redirect".into()),
        ),
        ("ex".to_string(), Amf0Value::Object(ex)),
    ]))
}

impl Connection {
    /// The tcUrl of an alive peer that has `name` and listens for RTMP, with the hop
    /// marker; `None` when there is none.
    pub(super) fn redirect_target(&self, name: &str, app: &str) -> Option<String> {
        let mesh = self.context.mesh.as_ref()?;
        let now_ms = self.context.node.runtime.wall_clock_ms();
        let view = mesh.view().read().unwrap_or_else(|p| p.into_inner());
        let peer = view
            .locate(name, now_ms)
            .into_iter()
            .find(|peer| !peer.rtmp_url.is_empty())?;
        let app = bare_app(app);
        Some(format!(
            "{}/{app}?{}=1",
            peer.rtmp_url.trim_end_matches('/'),
            crate::http::media::HOP_PARAMETER
        ))
    }

    /// Sends the RTMP 302 for the play on `stream_id`, then lingers until the player
    /// leaves. The status goes out through its own chunk serializer (rml_rtmp's session
    /// has no call for a custom `onStatus`): a type-0 chunk needs no earlier header, and
    /// nothing else is sent on this connection afterwards.
    pub(super) async fn redirect(
        &mut self,
        stream_id: u32,
        name: &str,
        tc_url: &str,
        key: &str,
    ) -> Result<(), RtmpError> {
        use rml_rtmp::chunk_io::ChunkSerializer;
        use rml_rtmp::messages::RtmpMessage;
        let message = RtmpMessage::Amf0Command {
            command_name: "onStatus".into(),
            transaction_id: 0.0,
            command_object: rml_rtmp::rml_amf0::Amf0Value::Null,
            additional_arguments: vec![redirect_status(tc_url, key)],
        };
        let payload = message
            .into_message_payload(RtmpTimestamp::new(0), stream_id)
            .map_err(RtmpError::RedirectMessage)?;
        let mut serializer = ChunkSerializer::new();
        serializer
            .set_max_chunk_size(CHUNK_SIZE_BYTES, RtmpTimestamp::new(0))
            .map_err(RtmpError::RedirectChunk)?;
        let packet = serializer
            .serialize(&payload, true, false)
            .map_err(RtmpError::RedirectChunk)?;
        self.write(&packet.bytes).await?;
        tracing::info!(stream = %name, to = %tc_url, "rtmp player redirected to a peer");
        self.role = Role::Redirected;
        Ok(())
    }
}
