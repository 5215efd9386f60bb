//! Access to the operator endpoints (`/api/events`, `/api/routes`): the `X-API-Key` from
//! `CRM_ROUTER_API_KEY`, or an ADMIN's bearer token.
//!
//! An extractor, listed before the body extractor in handlers, so an unauthenticated caller is
//! refused before its body is read or judged.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use subtle::ConstantTimeEq;

use super::current_user::{authenticate, bearer_token, peer_address};
use super::error::ApiError;
use super::AppState;
use crate::auth::Role;

/// Proof that the request carried the configured API key or an ADMIN's token.
#[derive(Debug, Clone, Copy)]
pub struct ApiKey;

impl FromRequestParts<AppState> for ApiKey {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if parts.headers.get("x-api-key").is_none() {
            if let Some(token) = bearer_token(parts) {
                let caller = authenticate(state, token, peer_address(parts)).await?;
                if caller.viewer.role == Role::Admin {
                    return Ok(Self);
                }
                return Err(ApiError::Forbidden(
                    "operator endpoints need an ADMIN token or the X-API-Key".into(),
                ));
            }
        }
        let Some(expected) = &state.api_key else {
            return Err(ApiError::Forbidden(
                "this endpoint needs an ADMIN's bearer token, or set CRM_ROUTER_API_KEY (16+ characters) and send it as the X-API-Key header".into(),
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
