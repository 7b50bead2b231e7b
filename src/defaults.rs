//! The embedded default configuration and the defaults of individual directives.
//!
//! `flotilla run` without `-c` uses [`DEFAULT_CONFIG`], so a newcomer gets a working node
//! with one command. Per-directive defaults live here, in one place, with their reasons.

/// The configuration `flotilla run` uses when no `-c FILE` is given.
pub const DEFAULT_CONFIG: &str = include_str!("default.conf");

/// Name under which the embedded config appears in messages.
pub const DEFAULT_CONFIG_NAME: &str = "<embedded default config>";

/// Parameter that carries play tokens when `auth_token` is not set (Flussonic's default).
pub const AUTH_TOKEN_PARAMETER: &str = "token";

/// Certificate chain of the TLS listeners without `tls_certificate` (beside the config;
/// `flotilla dev-cert` writes this name).
pub const TLS_CERTIFICATE_FILE: &str = "flotilla.crt";
/// Private key of the TLS listeners without `tls_key`.
pub const TLS_KEY_FILE: &str = "flotilla.key";

/// Peer exchange period when a peer sets no `fetch_timeout` (the spec's recommendation).
pub const FETCH_TIMEOUT_MS: u64 = 3_000;

/// A peer is dead after this long without a good exchange, unless `stale_timeout` says.
pub const STALE_TIMEOUT_MS: u64 = 10_000;

/// A source that sends no frame for this long is lost (`source_timeout`). Flussonic marks
/// a stream dead after 12 s without frames; 10 s fails over a little before viewers notice.
pub const SOURCE_TIMEOUT_MS: u64 = 10_000;

/// HLS segment duration (`segment_duration`), Flussonic's default.
pub const SEGMENT_DURATION_MS: u64 = 5_000;

/// An on-demand stream outlives its last viewer by this long (`clients_timeout`).
pub const CLIENTS_TIMEOUT_MS: u64 = 30_000;

/// How long a viewer's first request waits for a starting stream's first segment.
pub const STREAM_START_WAIT_MS: u64 = 20_000;

/// LL-HLS part duration (`chunk_duration`) when the config names none: the longest
/// CMAF part. Low-latency configs set 200–500 ms.
pub const PART_DURATION_MS: u64 = 1_000;

/// Segments in the live window (`segment_count`), Flussonic's default.
pub const SEGMENT_COUNT: usize = 4;

#[cfg(test)]
mod tests {
    #[test]
    fn the_embedded_config_loads_without_errors() {
        let loaded =
            crate::config::load_str(super::DEFAULT_CONFIG_NAME, super::DEFAULT_CONFIG).unwrap();
        assert!(
            !loaded.config.http.is_empty(),
            "the default config must listen somewhere"
        );
        assert!(loaded.config.http[0].serves_api());
    }
}
