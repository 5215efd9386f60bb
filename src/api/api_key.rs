//! `X-API-Key` checks for the operator endpoints (`/api/events`, `/api/routes`).

use axum::http::HeaderMap;
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::AppState;

/// Allows the request when it carries the configured key.
pub fn require(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = &state.api_key else {
        return Err(ApiError::Forbidden(
            "this endpoint is disabled: set CRM_ROUTER_API_KEY (16+ characters) and send it as the X-API-Key header".into(),
        ));
    };
    let given = headers
        .get("x-api-key")
        .map(|value| value.as_bytes())
        .unwrap_or_default();
    if given.is_empty() {
        return Err(ApiError::Unauthorized(
            "send the API key in the X-API-Key header".into(),
        ));
    }
    if bool::from(given.ct_eq(expected.as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized("invalid API key".into()))
    }
}
