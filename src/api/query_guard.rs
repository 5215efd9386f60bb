//! A query string on an endpoint that reads none is refused, as the README promises: a
//! parameter that is silently ignored (`GET /api/auth/me?role=ADMIN`) reads to a client as if
//! it had worked.

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use utoipa::openapi::path::ParameterIn;
use utoipa::openapi::OpenApi;

use super::error::ApiError;

/// The endpoints whose handlers read query parameters (through `ApiQuery`, which refuses the
/// unknown ones itself): those the OpenAPI document declares query parameters for, so the
/// guard and the document cannot disagree.
#[derive(Debug, Clone)]
pub struct QueryReaders(Arc<HashSet<(Method, String)>>);

impl QueryReaders {
    /// The operations of `document` with at least one `in: query` parameter.
    pub fn from_document(document: &OpenApi) -> Self {
        let mut readers = HashSet::new();
        for (path, item) in &document.paths.paths {
            for (method, operation) in super::openapi::operations(item) {
                let reads_query = operation
                    .parameters
                    .iter()
                    .flatten()
                    .any(|parameter| parameter.parameter_in == ParameterIn::Query);
                if reads_query {
                    readers.insert((method, path.clone()));
                }
            }
        }
        Self(Arc::new(readers))
    }

    fn reads(&self, method: &Method, path: &str) -> bool {
        self.0.contains(&(method.clone(), path.to_owned()))
    }
}

/// Longest parameter name echoed back in the refusal.
const NAME_SHOWN: usize = 64;

/// Middleware: 400 for any query parameter on an `/api/` endpoint not among the
/// [`QueryReaders`].
pub async fn refuse_unread_query(
    State(readers): State<QueryReaders>,
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
            !readers.reads(request.method(), path.as_str())
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
