//! Prometheus/OpenMetrics: what a node exposes to a scraper.
//!
//! - `GET /streamer/api/v3/streams?format=openmetrics` (or the same path with `Accept:
//!   application/openmetrics-text`, also under `/flussonic/api/v3`): Flussonic's metric
//!   names and labels (`server_*`, `stream_*` with `server_id` and `name`), so dashboards
//!   and scrape configs made for Flussonic work unchanged.
//! - `GET /flotilla/api/metrics`: those, and flotilla's own `flotilla_*` families (viewers
//!   by protocol, stream liveness and frames, peers, cluster_ingest, balancer decisions,
//!   actors by kind).
//!
//! Both sit behind `view_auth` like the rest of the API. A scrape reads shared state
//! (`collect`) and encodes it with prometheus-client (`family`); nothing is kept between
//! scrapes, so a metric cannot drift from what the JSON APIs say.

pub mod collect;
pub mod family;

pub use family::{Family, Kind, encode};

/// The content type of OpenMetrics text.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
