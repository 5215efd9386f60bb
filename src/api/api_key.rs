//! `X-API-Key` checks for the operator endpoints (`/api/events`, `/api/routes`).
//!
//! An extractor, listed before the body extractor in handlers, so an unauthenticated caller is
//! refused before its body is read or judged.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::AppState;

/// Proof that the request carried the configured API key.
#[derive(Debug, Clone, Copy)]
pub struct ApiKey;

impl FromRequestParts<AppState> for ApiKey {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(expected) = &state.api_key else {
            return Err(ApiError::Forbidden(
                "this endpoint is disabled: set CRM_ROUTER_API_KEY (16+ characters) and send it as the X-API-Key header".into(),
            ));
        };
        let given = parts
            .headers
            .get("x-api-key")
            .map(|value| value.as_bytes())
            .unwrap_or_default();
        if given.is_empty() {
            return Err(ApiError::Unauthorized(
                "send the API key in the X-API-Key header".into(),
            ));
        }
        if bool::from(given.ct_eq(expected.as_bytes())) {
            Ok(Self)
        } else {
            Err(ApiError::Unauthorized("invalid API key".into()))
        }
    }
}
