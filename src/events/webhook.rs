//! One webhook POST: a JSON array of events to an `http://` receiver, over a short
//! HTTP/1.1 connection, within [`WEBHOOK_TIMEOUT`]. A 2xx answer delivers the batch;
//! anything else (another status — redirects are not followed —, a refused or dropped
//! connection, no answer in time) fails it and the sink retries.

use std::time::Duration;

use bytes::Bytes;
use flotilla_otp::rt::Runtime;

/// A webhook URL: `http://host[:port]/path[?query]` (parsed like an auth backend's).
pub type WebhookUrl = crate::auth::backend::BackendUrl;

/// Time a receiver has to take a batch, connection included.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// POSTs `body` to `url`.
pub async fn post(url: &WebhookUrl, body: Bytes, runtime: &Runtime) -> Result<(), String> {
    match tokio::time::timeout(WEBHOOK_TIMEOUT, exchange(url, body, runtime)).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {} s", WEBHOOK_TIMEOUT.as_secs())),
    }
}

async fn exchange(url: &WebhookUrl, body: Bytes, runtime: &Runtime) -> Result<(), String> {
    let mut sender =
        crate::http::client::connect(&url.authority, runtime, "event-webhook-connection").await?;
    let request = hyper::Request::post(&url.path_and_query)
        .header(hyper::header::HOST, &url.authority)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(
            hyper::header::USER_AGENT,
            concat!("flotilla/", env!("CARGO_PKG_VERSION")),
        )
        .body(http_body_util::Full::new(body))
        .map_err(|error| error.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|error| error.to_string())?;
    let status = response.status();
    match status.is_success() {
        true => Ok(()),
        false => Err(format!("answered {status}")),
    }
}
