//! Publishing: into a configured stream's publish point (`input publish://`), or into a
//! stream started for the publisher when its name matches a template prefix (stopped
//! when it leaves). The publisher's declared tracks (metadata codec ids, sequence
//! headers) go to the stream before its frames, so its first segment names them all.

use std::time::Duration;

use bytes::Bytes;
use rml_rtmp::time::RtmpTimestamp;

use super::error::RtmpError;
use super::flv::{Depacketizer, Inbound};
use super::server::{Connection, Role, RtmpContext, TEMPLATE_START_TIMEOUT};
use crate::config::model::Template;
use crate::media::directory::{AttachError, Published, Publisher};
use crate::media::program::Tracks;

impl RtmpContext {
    /// Attaches a publisher of `name` (RTMP or SRT): to its stream's publish point, or
    /// to the stream its template starts for it (then `true`: the stream is the
    /// publisher's, see [`RtmpContext::release_publisher`]).
    pub async fn attach_publisher(&self, name: &str) -> (Result<Publisher, AttachError>, bool) {
        let attached = self.directory.attach_publisher(name);
        if attached.as_ref().err() == Some(&AttachError::NoSuchStream)
            && let Some(template) = self.template_for(name)
        {
            self.start_template_stream(name, &template).await;
            return (self.wait_for_publish_point(name).await, true);
        }
        (attached, false)
    }

    /// Lets a publisher go: a template's stream started for it stops; a configured
    /// stream's ingest is told why its publisher left.
    pub async fn release_publisher(
        &self,
        name: &str,
        publisher: Publisher,
        dynamic: bool,
        reason: String,
    ) {
        if dynamic {
            self.stop_template_stream(name).await;
        } else {
            let _ = publisher.sender.try_send(Published::End(reason));
        }
    }

    /// The template whose prefix `name` is under, if any.
    pub fn template_for(&self, name: &str) -> Option<Template> {
        self.templates
            .get()
            .iter()
            .find(|t| {
                t.prefixes
                    .iter()
                    .any(|p| p.is_empty() || name.starts_with(&format!("{p}/")))
            })
            .cloned()
    }

    /// Starts a template's stream for a publisher of `name` (logged when it fails).
    pub async fn start_template_stream(&self, name: &str, template: &Template) {
        let options = &template.options;
        let packaging = crate::media::live::Packaging {
            segment_duration_ms: options
                .segment_duration
                .map_or(crate::defaults::SEGMENT_DURATION_MS, |d| d.millis),
            segment_count: options
                .segment_count
                .map_or(crate::defaults::SEGMENT_COUNT, |c| c as usize),
            part_duration_ms: options
                .chunk_duration
                .map_or(crate::defaults::PART_DURATION_MS, u64::from),
        };
        match self
            .start_ephemeral_stream(name, "publish://", packaging, false)
            .await
        {
            Ok(()) => {
                tracing::info!(stream = %name, template = %template.name, "published stream started")
            }
            Err(error) => tracing::warn!(stream = %name, %error, "published stream not started"),
        }
    }

    /// Attaches to `name`'s publish point once its just-started stream opened it.
    pub async fn wait_for_publish_point(&self, name: &str) -> Result<Publisher, AttachError> {
        let deadline = self.node.runtime.now() + TEMPLATE_START_TIMEOUT;
        loop {
            match self.directory.attach_publisher(name) {
                Err(AttachError::NoSuchStream) if self.node.runtime.now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                other => return other,
            }
        }
    }
}

impl Connection {
    pub(super) async fn start_publishing(
        &mut self,
        request_id: u32,
        name: String,
        query: Option<&str>,
    ) -> Result<(), RtmpError> {
        if let Err(why) = crate::media::name::check(&name) {
            tracing::info!(stream = %crate::media::name::quoted(&name), %why, "rtmp publish refused");
            return self
                .reject(request_id, "NetStream.Publish.BadName", &why.to_string())
                .await;
        }
        if !matches!(self.role, Role::Idle) {
            return self
                .reject(
                    request_id,
                    "NetStream.Publish.BadName",
                    "this connection is busy",
                )
                .await;
        }
        // Password and publish policy before anything starts for the publisher.
        let gate = self.context.sessions.gate().clone();
        if let Err(denied) = gate
            .authorize_publish(&name, "rtmp", Some(self.remote.ip()), query)
            .await
        {
            tracing::info!(stream = %name, client = %self.remote, reason = %denied.log_reason(), "rtmp publisher refused");
            return self
                .reject(
                    request_id,
                    "NetStream.Publish.Rejected",
                    &denied.to_string(),
                )
                .await;
        }
        let (attached, dynamic) = self.context.attach_publisher(&name).await;
        let publisher = match attached {
            Ok(publisher) => publisher,
            Err(AttachError::Busy) => {
                return self
                    .reject(
                        request_id,
                        "NetStream.Publish.BadName",
                        "another publisher holds this stream",
                    )
                    .await;
            }
            Err(AttachError::NoSuchStream) => {
                let description = format!(
                    "no stream `{name}` accepts publishing (input publish:// or a template prefix)"
                );
                return self
                    .reject(request_id, "NetStream.Publish.BadName", &description)
                    .await;
            }
        };
        tracing::info!(stream = %name, "rtmp publisher attached");
        self.role = Role::Publishing {
            name,
            publisher,
            depacketizer: Depacketizer::new(),
            metadata_tracks: Tracks::EMPTY,
            declared: Tracks::EMPTY,
            dynamic,
        };
        let results = self.accept(request_id)?;
        self.handle_results(results).await
    }

    pub(super) async fn published(
        &mut self,
        data: Bytes,
        timestamp: RtmpTimestamp,
        video: bool,
    ) -> Result<(), RtmpError> {
        let Role::Publishing {
            name, depacketizer, ..
        } = &mut self.role
        else {
            return Ok(());
        };
        let inbound = if video {
            depacketizer.video(&data, timestamp.value)
        } else {
            depacketizer.audio(&data, timestamp.value)
        }
        .map_err(|source| RtmpError::Publisher {
            name: name.clone(),
            source,
        })?;
        self.declare_tracks()?;
        let Role::Publishing {
            name, publisher, ..
        } = &mut self.role
        else {
            return Ok(());
        };
        if let Inbound::Frame(frame) = inbound
            && publisher.sender.try_send(Published::Frame(frame)).is_err()
        {
            if publisher.sender.is_closed() {
                return Err(RtmpError::StreamStopped(name.clone()));
            }
            tracing::warn!(stream = %name, "publisher outruns its stream; frame dropped");
        }
        Ok(())
    }

    /// Tells the stream which tracks the publisher declared (metadata and sequence
    /// headers), when that changed: its first segment waits for each of them.
    pub(super) fn declare_tracks(&mut self) -> Result<(), RtmpError> {
        let Role::Publishing {
            name,
            publisher,
            depacketizer,
            metadata_tracks,
            declared,
            ..
        } = &mut self.role
        else {
            return Ok(());
        };
        let now = metadata_tracks.union(&depacketizer.declared_tracks());
        if now == *declared {
            return Ok(());
        }
        match publisher.sender.try_send(Published::Tracks(now)) {
            Ok(()) => *declared = now,
            // A full queue: declared again with the next tag.
            Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => {}
            Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => {
                return Err(RtmpError::StreamStopped(name.clone()));
            }
        }
        Ok(())
    }
}
