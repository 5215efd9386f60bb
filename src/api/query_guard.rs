//! A query parameter an endpoint does not read is refused, as docs/operations.md ("The CRM's
//! REST API") promises: a parameter that is silently ignored (`GET /api/auth/me?role=ADMIN`,
//! `?serach=`) reads to a client as if it had worked.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use utoipa::openapi::path::ParameterIn;
use utoipa::openapi::OpenApi;

use super::error::ApiError;

/// The query parameters each endpoint reads: those the OpenAPI document declares, so the
/// guard and the document cannot disagree.
#[derive(Debug, Clone)]
pub struct QueryReaders(Arc<HashMap<(Method, String), BTreeSet<String>>>);

impl QueryReaders {
    /// The `in: query` parameters of each operation of `document`.
    pub fn from_document(document: &OpenApi) -> Self {
        let mut readers = HashMap::new();
        for (path, item) in &document.paths.paths {
            for (method, operation) in super::openapi::operations(item) {
                let names: BTreeSet<String> = operation
                    .parameters
                    .iter()
                    .flatten()
                    .filter(|parameter| parameter.parameter_in == ParameterIn::Query)
                    .map(|parameter| parameter.name.clone())
                    .collect();
                readers.insert((method, path.clone()), names);
            }
        }
        Self(Arc::new(readers))
    }

    fn reads(&self, method: &Method, path: &str) -> Option<&BTreeSet<String>> {
        self.0.get(&(method.clone(), path.to_owned()))
    }
}

/// Longest parameter name echoed back in the refusal.
const NAME_SHOWN: usize = 64;

/// Middleware: 400 for any query parameter on an `/api/` endpoint that the endpoint's
/// [`QueryReaders`] entry does not name.
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
            let known = readers.reads(request.method(), path.as_str());
            url::form_urlencoded::parse(query.as_bytes())
                .map(|(name, _)| name)
                .find(|name| !known.is_some_and(|known| known.contains::<str>(name)))
                .map(|name| (name.chars().take(NAME_SHOWN).collect::<String>(), known))
        }
        _ => None,
    };
    let Some((name, known)) = unread else {
        return next.run(request).await;
    };
    let takes = match known {
        Some(known) if !known.is_empty() => {
            let names: Vec<String> = known.iter().map(|name| format!("`{name}`")).collect();
            format!("this endpoint takes {}", names.join(", "))
        }
        _ => "this endpoint takes no query parameters".to_owned(),
    };
    ApiError::bad_request(format!(
        "invalid query string: unknown parameter `{name}`: {takes}"
    ))
    .into_response()
}
