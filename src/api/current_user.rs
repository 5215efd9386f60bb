//! `Authorization: Bearer <token>` → the caller, for every CRM endpoint.
//!
//! The token proves who the caller is; their role is read from the database on each request,
//! so a demotion takes effect at once rather than when the token expires.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::error::ApiError;
use super::AppState;
use crate::crm::users::{self, User};
use crate::crm::Viewer;

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct CurrentUser {
    /// Their user record.
    pub user: User,
    /// What they may see.
    pub viewer: Viewer,
}

/// The bearer token of a request, if it has one.
pub fn bearer_token(parts: &Parts) -> Option<&str> {
    let header = parts.headers.get(axum::http::header::AUTHORIZATION)?;
    let text = header.to_str().ok()?;
    let (scheme, token) = text.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

/// The address of the connection a request came on (the server records it for every request).
pub fn peer_address(parts: &Parts) -> Option<std::net::IpAddr> {
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0.ip())
}

/// Resolves a bearer token, sent from `address`, to a current user.
pub async fn authenticate(
    state: &AppState,
    token: &str,
    address: Option<std::net::IpAddr>,
) -> Result<CurrentUser, ApiError> {
    let claims = state
        .tokens
        .verify(token)
        .map_err(|_| ApiError::Unauthorized("invalid or expired token; log in again".into()))?;
    let (user, generation) = users::find_session(state.store.reader(), &claims.sub)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("the token's user no longer exists".into()))?;
    if !user.active {
        return Err(ApiError::Unauthorized(
            "this account is deactivated; an ADMIN can reactivate it".into(),
        ));
    }
    if claims.generation != generation {
        return Err(ApiError::Unauthorized(
            "this token was ended by a logout; log in again".into(),
        ));
    }
    let viewer = Viewer {
        id: user.id.clone(),
        role: user.role(),
        address,
    };
    Ok(CurrentUser { user, viewer })
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer_token(parts).ok_or_else(|| {
            ApiError::Unauthorized(
                "log in first: send `Authorization: Bearer <token>` (POST /api/auth/login)".into(),
            )
        })?;
        authenticate(state, token, peer_address(parts)).await
    }
}

/// Like [`CurrentUser`], but absent when the request carries no token (registration).
#[derive(Debug, Clone)]
pub struct MaybeUser(pub Option<CurrentUser>);

impl FromRequestParts<AppState> for MaybeUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match bearer_token(parts) {
            None => Ok(Self(None)),
            Some(token) => authenticate(state, token, peer_address(parts))
                .await
                .map(|user| Self(Some(user))),
        }
    }
}
