//! One webhook POST: a JSON array of events to an `http://` or `https://` receiver, over
//! a short HTTP/1.1 connection, within [`WEBHOOK_TIMEOUT`]. A 2xx answer delivers the batch;
//! anything else (another status — redirects are not followed —, a refused or dropped
//! connection, no answer in time) fails it and the sink retries.

use std::time::Duration;

use crate::http::client::Outbound;
use bytes::Bytes;

/// A webhook URL: `http(s)://host[:port]/path[?query]`.
pub type WebhookUrl = crate::http::client::OutboundUrl;

/// Time a receiver has to take a batch, connection included.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// POSTs `body` to `url`.
pub async fn post(url: &WebhookUrl, body: Bytes, outbound: &Outbound) -> Result<(), String> {
    match tokio::time::timeout(WEBHOOK_TIMEOUT, exchange(url, body, outbound)).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {} s", WEBHOOK_TIMEOUT.as_secs())),
    }
}

async fn exchange(url: &WebhookUrl, body: Bytes, outbound: &Outbound) -> Result<(), String> {
    let mut sender = outbound.connect(url, "event-webhook-connection").await?;
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
