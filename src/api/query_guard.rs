//! A query string on an endpoint that reads none is refused, as the README promises: a
//! parameter that is silently ignored (`GET /api/auth/me?role=ADMIN`) reads to a client as if
//! it had worked.

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// The endpoints whose handlers read query parameters, through `ApiQuery`, which refuses the
/// unknown ones itself.
const READS_QUERY: &[(Method, &str)] = &[
    (Method::GET, "/api/customers"),
    (Method::GET, "/api/tasks"),
    (Method::GET, "/api/opportunities"),
    (Method::GET, "/api/approvals"),
    (Method::GET, "/api/notifications"),
    (Method::GET, "/api/dlq"),
];

/// Longest parameter name echoed back in the refusal.
const NAME_SHOWN: usize = 64;

/// Middleware: 400 for any query parameter on an `/api/` endpoint not in [`READS_QUERY`].
pub async fn refuse_unread_query(
    matched: Option<MatchedPath>,
    request: Request,
    next: Next,
) -> Response {
    let unread = match (&matched, request.uri().query()) {
        // The OpenAPI document is fetched by tools that may add a cache-busting parameter.
        (Some(path), Some(query))
            if path.as_str().starts_with("/api/")
                && path.as_str() != "/api/openapi.json"
                && !query.is_empty() =>
        {
            !READS_QUERY
                .iter()
                .any(|(method, reads)| method == request.method() && *reads == path.as_str())
        }
        _ => false,
    };
    if !unread {
        return next.run(request).await;
    }
    let query = request.uri().query().unwrap_or_default();
    let name: String = url::form_urlencoded::parse(query.as_bytes())
        .next()
        .map(|(name, _)| name.chars().take(NAME_SHOWN).collect())
        .unwrap_or_default();
    ApiError::bad_request(format!(
        "invalid query string: unknown parameter `{name}`: this endpoint takes no query parameters"
    ))
    .into_response()
}
