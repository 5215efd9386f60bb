//! `GET /metrics`: Prometheus text, and the layer that times every HTTP request.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::AppState;
use crate::store::log;

/// Prometheus text exposition of every metric (see `telemetry`). Public like `/healthz`:
/// scrapers rarely carry credentials, and it holds counts, not data.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain"),
        (status = 500, description = "an internal failure reading the consumer's lag"),
        (status = 503, description = "the database is not reachable; try again")))]
pub async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    if state.relay_health.is_none() {
        // On the embedded bus the lag is the log's head minus the consumer's position, read
        // when scraped rather than after every batch.
        let lag = log::embedded_lag(state.store.reader()).await?;
        crate::telemetry::consumer_lag(log::EMBEDDED_STREAM, 0, lag);
    }
    let body = state.metrics.render();
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response())
}

/// Times a request and records it by method, matched route template and status. Unmatched
/// paths count as `unmatched` and methods outside HTTP's own as `OTHER`, so a client cannot
/// create a label per path or made-up method it tries.
pub async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let response = next.run(request).await;
    crate::telemetry::http_request(
        method,
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// The method as a metric label: one of HTTP's standard methods, or `OTHER`.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "OTHER",
    }
}
