//! Playing: a player follows the stream's live frames, starting with the current GOP
//! and its codec configuration; a player that falls behind is dropped. A stream that
//! only a peer has is relayed from its owner (or redirected, see `redirect`).

use rml_rtmp::sessions::StreamMetadata;
use rml_rtmp::time::RtmpTimestamp;

use std::time::Duration;

use super::carriage::RtmpTracks;
use super::error::RtmpError;
use super::flv;
use super::names::{is_redirected, stream_name};
use super::server::{Connection, Role};
use super::shared::SharedFrame;
use crate::sessions::{Protocol, Viewer};

/// What a play request finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PlayAsk {
    /// The stream runs on this node.
    local: bool,
    /// It is a cluster_ingest stream this node no longer captures, or a peer captures it
    /// under a higher epoch (see `ingest::superseded`).
    superseded: bool,
    /// `rtmp_redirect true;`.
    redirect_players: bool,
    /// The request already went through a redirect.
    redirected: bool,
}

/// Where a player's media comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PlaySource {
    /// This node's stream.
    Local,
    /// Another node's: the RTMP 302 to it (or a relay when none can be named).
    Redirect,
    /// Another node's, relayed through this node.
    Relay,
    /// This node's copy is superseded: never played (as over HTTP). The player is sent to
    /// the capturer when one can be named, or told to retry while the handover ends (a
    /// relay cannot stand beside the local stream under the same name).
    HandOver,
}

/// The rule, pure: local streams play here unless superseded; another node's stream is
/// redirected (with `rtmp_redirect`, once) or relayed.
fn play_source(ask: PlayAsk) -> PlaySource {
    match (ask.local, ask.superseded) {
        (true, false) => PlaySource::Local,
        (true, true) => PlaySource::HandOver,
        (false, _) if ask.redirect_players && !ask.redirected => PlaySource::Redirect,
        (false, _) => PlaySource::Relay,
    }
}

impl Connection {
    pub(super) async fn start_playing(
        &mut self,
        request_id: u32,
        app: &str,
        key: &str,
        stream_id: u32,
    ) -> Result<(), RtmpError> {
        let name = stream_name(app, key);
        if let Err(why) = crate::media::name::check(&name) {
            tracing::info!(stream = %crate::media::name::quoted(&name), %why, "rtmp play refused");
            return self
                .reject(
                    request_id,
                    "NetStream.Play.StreamNotFound",
                    &why.to_string(),
                )
                .await;
        }
        let local = self.context.directory.get(&name);
        // A relayed copy follows whoever captures the stream: never superseded.
        let superseded = local.as_ref().is_some_and(|live| {
            !live.relay
                && crate::ingest::superseded(
                    &self.context.ingest,
                    self.context.mesh.as_ref().map(|mesh| mesh.view()),
                    &live.name,
                    self.context.node.runtime.wall_clock_ms(),
                    &self.context.node.name,
                )
        });
        let source = play_source(PlayAsk {
            local: local.is_some(),
            superseded,
            redirect_players: self.context.redirect_players,
            redirected: is_redirected(app, key),
        });
        let redirect = match source {
            PlaySource::Redirect | PlaySource::HandOver if !is_redirected(app, key) => {
                self.redirect_target(&name, app)
            }
            _ => None,
        };
        if let Some(tc_url) = redirect.filter(|_| self.context.redirect_players || superseded) {
            return self.redirect(stream_id, &name, &tc_url, key).await;
        }
        let found = match source {
            PlaySource::Local => local,
            PlaySource::Redirect | PlaySource::Relay => self.relay_from_peer(&name).await,
            PlaySource::HandOver => {
                let description = format!(
                    "this node hands `{name}` over to the node that captures it now; retry"
                );
                return self
                    .reject(request_id, "NetStream.Play.StreamNotFound", &description)
                    .await;
            }
        };
        let Some(live) = found else {
            return self
                .reject(
                    request_id,
                    "NetStream.Play.StreamNotFound",
                    &format!("no stream `{name}`"),
                )
                .await;
        };
        let viewer = Viewer {
            stream: &name,
            protocol: Protocol::Rtmp,
            ip: Some(self.remote.ip()),
            user_agent: "rtmp",
            query: key.split_once('?').map(|(_, query)| query),
            referer: None,
        };
        let session = match self.context.sessions.admit_authorized(&viewer).await {
            Ok(session) => session,
            Err(refused) => {
                let reason = refused.to_string();
                return self
                    .reject(request_id, "NetStream.Play.Failed", &reason)
                    .await;
            }
        };
        // A starting stream (a relay that has its window but no live frame yet) is waited
        // for, bounded.
        live.wait_gop(Duration::from_millis(crate::defaults::STREAM_START_WAIT_MS))
            .await;
        let (gop, audio_tracks, frames) = live.subscribe_frames();
        let carried = match RtmpTracks::of(&live.program()) {
            Ok(carried) => carried,
            Err(reason) => {
                tracing::info!(stream = %name, %reason, "rtmp player refused");
                let reason = format!("`{name}`: {reason}");
                return self
                    .reject(request_id, "NetStream.Play.Failed", &reason)
                    .await;
            }
        };
        let audio = audio_tracks
            .into_iter()
            .find(|frame| Some(frame.track) == carried.audio);
        if gop.is_empty() {
            return self
                .reject(
                    request_id,
                    "NetStream.Play.StreamNotFound",
                    &format!("`{name}` has no media yet"),
                )
                .await;
        }
        let results = self.accept(request_id)?;
        self.handle_results(results).await?;
        let rendition = live.rendition();
        let mut metadata = StreamMetadata::new();
        metadata.video_width = rendition.width;
        metadata.video_height = rendition.height;
        metadata.video_codec_id = Some(7);
        metadata.audio_codec_id = audio.as_ref().map(|_| 10);
        let packet = self
            .session
            .send_metadata(stream_id, &metadata)
            .map_err(RtmpError::Play)?;
        self.write(&packet.bytes).await?;
        let (video_header, audio_header) =
            flv::sequence_headers(gop.first().map(|shared| &shared.frame), audio.as_ref());
        if let Some(header) = video_header {
            let packet = self
                .session
                .send_video_data(stream_id, header, RtmpTimestamp::new(0), false)
                .map_err(RtmpError::Play)?;
            self.write(&packet.bytes).await?;
        }
        if let Some(header) = audio_header {
            let packet = self
                .session
                .send_audio_data(stream_id, header, RtmpTimestamp::new(0), false)
                .map_err(RtmpError::Play)?;
            self.write(&packet.bytes).await?;
        }
        tracing::info!(stream = %name, "rtmp player attached");
        self.role = Role::Playing {
            stream_id,
            live,
            session,
            frames,
            carried,
            base_dts: None,
            last_ms: [0, 0],
        };
        for frame in gop {
            self.play_frame(&frame).await?;
        }
        // From here on the player gets a stream of messages, most of them small (audio
        // frames, the pictures between keyframes): the kernel may coalesce them while
        // earlier bytes are unacknowledged (Nagle), as nginx-rtmp's players get them —
        // a fraction of the segments, and of the CPU, per delivered bit. The commands
        // before this point went out at once (TCP_NODELAY), so nothing in the connect
        // and play exchange waits for a delayed ACK.
        let _ = self.socket.tcp().set_nodelay(false);
        Ok(())
    }

    /// Sends one frame: the stream's shared chunks of each of its messages behind this
    /// player's own header (its timestamps start at 0).
    pub(super) async fn play_frame(&mut self, frame: &SharedFrame) -> Result<(), RtmpError> {
        let Role::Playing {
            stream_id,
            live,
            session,
            carried,
            base_dts,
            last_ms,
            ..
        } = &mut self.role
        else {
            return Ok(());
        };
        match carried.plays(frame) {
            Ok(true) => {}
            Ok(false) => return Ok(()),
            Err(reason) => {
                let name = live.name.clone();
                return Err(RtmpError::NotCarried { name, reason });
            }
        }
        let base = *base_dts.get_or_insert(frame.dts);
        let track = usize::from(!frame.codec.is_video());
        let stream_id = *stream_id;
        let mut writes = Vec::with_capacity(1);
        for message in frame.messages() {
            // Timestamps never go back per track.
            let ms = (((frame.dts.saturating_sub(base)) / 90) as u32 + message.offset_ms)
                .max(last_ms[track]);
            last_ms[track] = ms;
            let length = u64::from(message.length);
            live.counters
                .bytes_out
                .fetch_add(length, std::sync::atomic::Ordering::Relaxed);
            session
                .bytes
                .fetch_add(length, std::sync::atomic::Ordering::Relaxed);
            writes.push(match message.header(ms, stream_id) {
                Some(header) => (Some(header), message.chunks.clone()),
                None => (None, message.chunks_for(ms, stream_id)),
            });
        }
        for (header, chunks) in writes {
            match header {
                Some(header) => self.write_message(&header, &chunks).await?,
                None => self.write(&chunks).await?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(local: bool, superseded: bool, redirect_players: bool, redirected: bool) -> PlayAsk {
        PlayAsk {
            local,
            superseded,
            redirect_players,
            redirected,
        }
    }

    #[test]
    fn a_superseded_local_copy_is_never_played_like_over_http() {
        for redirect_players in [false, true] {
            for redirected in [false, true] {
                assert_eq!(
                    play_source(ask(true, true, redirect_players, redirected)),
                    PlaySource::HandOver
                );
                assert_eq!(
                    play_source(ask(true, false, redirect_players, redirected)),
                    PlaySource::Local
                );
            }
        }
    }

    #[test]
    fn another_nodes_stream_is_redirected_once_or_relayed() {
        assert_eq!(
            play_source(ask(false, false, true, false)),
            PlaySource::Redirect
        );
        assert_eq!(
            play_source(ask(false, false, true, true)),
            PlaySource::Relay
        );
        assert_eq!(
            play_source(ask(false, false, false, false)),
            PlaySource::Relay
        );
    }
}
