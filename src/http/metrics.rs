//! The metrics endpoints (see `crate::metrics`): the node-wide scrape, and the streams
//! list answered as OpenMetrics when asked so, as Flussonic answers it.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::api::ApiState;
use crate::metrics::{OPENMETRICS_CONTENT_TYPE, collect, encode};

/// `GET /flotilla/api/metrics`: every family.
pub async fn all(State(state): State<ApiState>) -> Response {
    let mut families = collect::flussonic(&state);
    families.extend(collect::flotilla(&state));
    respond(&families)
}

/// Flussonic's families alone (the streams list's OpenMetrics form).
pub fn streams(state: &ApiState) -> Response {
    respond(&collect::flussonic(state))
}

/// Whether a streams-list request asks for OpenMetrics: `?format=openmetrics` or an
/// `Accept` naming `application/openmetrics-text` (Prometheus sends it).
pub fn wants_openmetrics(headers: &HeaderMap, query: Option<&str>) -> bool {
    let by_query = query.is_some_and(|query| {
        query
            .split('&')
            .any(|pair| pair.eq_ignore_ascii_case("format=openmetrics"))
    });
    let by_accept = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|accept| accept.contains("application/openmetrics-text"));
    by_query || by_accept
}

fn respond(families: &[crate::metrics::Family]) -> Response {
    match encode(families) {
        Ok(text) => {
            let mut response = text.into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(OPENMETRICS_CONTENT_TYPE),
            );
            response
        }
        Err(_) => super::api::error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the metrics could not be encoded",
        ),
    }
}
