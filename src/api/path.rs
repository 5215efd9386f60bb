//! A path-parameter extractor whose rejections use our error format.

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// Like `axum::extract::Path`, but a malformed segment (invalid UTF-8, say) is a JSON 400.
#[derive(Debug, Clone)]
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        // No record, route or dead letter can have NUL in its id (the databases cannot store
        // it), so such a path names nothing; PostgreSQL would refuse the lookup itself.
        if parts.uri.path().contains("%00") {
            return Err(ApiError::NotFound("no such resource".into()));
        }
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| Self(value))
            .map_err(|rejection| {
                ApiError::bad_request(format!("invalid path: {}", rejection.body_text()))
            })
    }
}
