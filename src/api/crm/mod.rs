//! The CRM's REST resources. Handlers check the request's shape and the caller, then call
//! `crm` inside one transaction and announce the events it appended once that commits.

pub mod analytics;
pub mod approvals;
pub mod customers;
pub mod notifications;
pub mod opportunities;
pub mod tasks;

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use super::error::ApiError;
use crate::crm::{JsonPage, Paging};

/// Query parameters, with our error format for malformed ones.
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if parts.uri.query().is_some_and(|query| query.contains("%00")) {
            return Err(ApiError::bad_request(format!(
                "invalid query string: {}",
                crate::api::json::NUL_REFUSED
            )));
        }
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| Self(value))
            .map_err(|rejection| {
                ApiError::bad_request(format!("invalid query string: {}", rejection.body_text()))
            })
    }
}

/// `limit` and `offset`, shared by every list.
#[derive(Debug, Clone, Copy, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Rows per page (default 50, at most 500).
    pub limit: Option<i64>,
    /// Rows to skip (default 0).
    pub offset: Option<i64>,
}

impl PageParams {
    /// Checked paging.
    pub fn paging(self) -> Result<Paging, ApiError> {
        Ok(Paging::new(self.limit, self.offset)?)
    }
}

/// A list response: the rows as a JSON array, the total in `X-Total-Count`.
pub struct Listed<T>(pub JsonPage<T>);

impl<T> IntoResponse for Listed<T> {
    fn into_response(self) -> Response {
        let mut headers = HeaderMap::new();
        headers.insert("x-total-count", HeaderValue::from(self.0.total));
        headers.insert(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        (headers, self.0.json).into_response()
    }
}

/// For optional fields of an update: absent → `None` (unchanged), `null` → `Some(None)`
/// (cleared), a value → `Some(Some(value))`.
pub fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}
