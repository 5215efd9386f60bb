//! A JSON body extractor whose rejections use our error format.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::error::{ApiError, FieldError};
use super::BODY_LIMIT;

/// Like `axum::Json`, but malformed bodies produce [`ApiError`]s.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(reject(rejection)),
        }
    }
}

fn reject(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType(
            "send the body as JSON with `Content-Type: application/json`".into(),
        ),
        JsonRejection::JsonDataError(error) => {
            // serde's message names the field path; keep it, drop axum's prefix.
            let detail = std::error::Error::source(&error)
                .map(ToString::to_string)
                .unwrap_or_else(|| error.body_text());
            let (field, message) = match detail.split_once(": ") {
                Some((field, message)) if !field.contains(' ') => {
                    (field.to_owned(), message.to_owned())
                }
                _ => (String::new(), detail.clone()),
            };
            ApiError::BadRequest {
                message: format!("invalid request body: {detail}"),
                fields: if field.is_empty() {
                    Vec::new()
                } else {
                    vec![FieldError { field, message }]
                },
            }
        }
        JsonRejection::JsonSyntaxError(error) => {
            let detail = std::error::Error::source(&error)
                .map(ToString::to_string)
                .unwrap_or_else(|| error.body_text());
            ApiError::bad_request(format!("malformed JSON: {detail}"))
        }
        JsonRejection::BytesRejection(error) if error.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::PayloadTooLarge { limit: BODY_LIMIT }
        }
        other => ApiError::bad_request(other.body_text()),
    }
}
