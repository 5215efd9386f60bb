//! The CRM's REST resources. Handlers check the request's shape and the caller, then call
//! `crm` inside one transaction and announce the events it appended once that commits.

pub mod analytics;
pub mod approvals;
pub mod audit;
pub mod customers;
pub mod meetings;
pub mod notifications;
pub mod opportunities;
pub mod reports;
pub mod tasks;

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use super::error::ApiError;

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

/// For optional fields of an update: absent → `None` (unchanged), `null` → `Some(None)`
/// (cleared), a value → `Some(Some(value))`.
pub fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}
