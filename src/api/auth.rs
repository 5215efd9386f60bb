//! `POST /api/auth/register`, `POST /api/auth/login`, `GET /api/auth/me`.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::answer::Answer;
use super::current_user::{CurrentUser, MaybeUser};
use super::error::ApiError;
use super::json::ApiJson;
use super::AppState;
use crate::auth::{password, Role};
use crate::crm::users::{self, Registration, User};
use crate::crm::{CrmError, Published};

/// A registration.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegisterRequest {
    /// Email address (unique).
    pub email: String,
    /// At least 8 characters.
    pub password: String,
    /// Display name.
    pub name: String,
    /// USER (default) or SALES; COMPLIANCE, MANAGER and ADMIN need an ADMIN's token.
    #[serde(default)]
    pub role: Option<Role>,
    /// The new user's manager; only an ADMIN may set it.
    #[serde(default)]
    pub manager_id: Option<String>,
}

/// A registered user and their first token: the original API's `data: {user, token}`, and the
/// setup guide's `{id, email, name, role, token}` at the top level.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegisterResponse {
    /// Always `true`.
    pub success: bool,
    /// The user and their token.
    pub data: LoginResponse,
    /// User id.
    pub id: String,
    /// Email address.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Bearer token, valid for 24 hours.
    pub token: String,
}

/// Credentials.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoginRequest {
    /// Email address.
    pub email: String,
    /// Password.
    pub password: String,
}

/// The user as shown in a login response.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginUser {
    /// User id.
    pub id: String,
    /// Email address.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Role.
    pub role: Role,
}

/// A token and whose it is.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginResponse {
    /// Bearer token, valid for 24 hours.
    pub token: String,
    /// The user.
    pub user: LoginUser,
}

fn now_seconds() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Hashing is slow by design; keep it off the async worker threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    Ok(crate::auth::hashing::run(work).await?)
}

/// Registers a user; emits `USER_CREATED`, which the bundled routes turn into their customer.
#[utoipa::path(post, path = "/api/auth/register", tag = "auth",
    request_body = RegisterRequest,
    responses(
        (status = 201, body = RegisterResponse),
        (status = 429, description = "too many sign-ups from this address; see Retry-After"),
        (status = 503, description = "password hashing is at its bound; see Retry-After"),
        (status = 400, description = "invalid email, name or password (fields say which)"),
        (status = 401, description = "a bearer token was sent, and it is invalid or expired"),
        (status = 403, description = "COMPLIANCE/MANAGER/ADMIN or managerId without an ADMIN's token"),
        (status = 409, description = "the email is taken"),
    ))]
pub async fn register(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    MaybeUser(caller): MaybeUser,
    ApiJson(request): ApiJson<RegisterRequest>,
) -> Result<(StatusCode, Json<RegisterResponse>), ApiError> {
    let role = request.role.unwrap_or(Role::User);
    let caller_is_admin = caller
        .as_ref()
        .is_some_and(|caller| caller.viewer.role == Role::Admin);
    // An ADMIN adding a team is not a sign-up: it is authenticated and may need many at once.
    if !caller_is_admin {
        if let Err(wait) = state.signup_limiter.check(client.ip()) {
            return Err(ApiError::TooManyRequests {
                message: "too many sign-ups from this address; try again later".into(),
                // Rounded up: a client that waits exactly this long is let in.
                retry_after: (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1),
            });
        }
    }
    if !role.is_self_service() && !caller_is_admin {
        return Err(ApiError::Forbidden(format!(
            "registering a {role} needs an ADMIN's token; anyone may register as USER or SALES"
        )));
    }
    if request.manager_id.is_some() && !caller_is_admin {
        return Err(ApiError::Forbidden(
            "only an ADMIN may set managerId".into(),
        ));
    }
    if let Some(manager_id) = &request.manager_id {
        let manager = users::find(state.store.reader(), manager_id).await?;
        if !manager.is_some_and(|manager| manager.role().leads_a_team()) {
            return Err(CrmError::Invalid({
                let mut problems = crate::crm::Problems::default();
                problems.add("managerId", "no MANAGER or ADMIN with this id");
                problems
            })
            .into());
        }
    }
    let (user, published) = users::register(
        &state.store,
        Registration {
            email: request.email,
            password: request.password,
            name: request.name,
            role,
            manager_id: request.manager_id,
        },
        // Only an ADMIN's registration is theirs; anyone else's is a sign-up.
        caller
            .as_ref()
            .filter(|_| caller_is_admin)
            .map(|caller| &caller.viewer),
        Some(client.ip()),
    )
    .await?;
    state.announce(&published);
    // A new user's first session generation is the column's default.
    let token = state
        .tokens
        .issue(&user.id, &user.email, role, 0, now_seconds());
    let data = LoginResponse {
        token: token.clone(),
        user: LoginUser {
            id: user.id.clone(),
            email: user.email.clone(),
            name: user.name.clone(),
            role,
        },
    };
    Ok((
        StatusCode::CREATED,
        Json(RegisterResponse {
            success: true,
            data,
            id: user.id,
            email: user.email,
            name: user.name,
            role,
            token,
        }),
    ))
}

/// Word for word the original CRM's, which its frontend's login spec expects.
const BAD_CREDENTIALS: &str = "Invalid email or password";

/// Exchanges credentials for a token; emits `USER_LOGGED_IN`.
#[utoipa::path(post, path = "/api/auth/login", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, body = Answer<LoginResponse>),
        (status = 401, description = "unknown email or wrong password (one message for both)"),
        (status = 429, description = "too many attempts; see Retry-After"),
        (status = 503, description = "password hashing is at its bound; see Retry-After"),
    ))]
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    ApiJson(request): ApiJson<LoginRequest>,
) -> Result<Answer<LoginResponse>, ApiError> {
    if let Err(wait) = state.login_limiter.check(&request.email, client.ip()) {
        return Err(ApiError::TooManyRequests {
            message: "too many login attempts; try again later".into(),
            retry_after: wait.as_secs().max(1),
        });
    }
    let found = users::find_for_login(state.store.reader(), &request.email).await?;
    let (record, verified, rehashed) = blocking(move || match found {
        Some(record) => {
            let verified = password::verify(&request.password, &record.password_hash);
            // An imported user's bcrypt hash is replaced by Argon2id at their first login,
            // the one moment the password is known.
            let rehashed = (verified && password::is_outdated(&record.password_hash))
                .then(|| password::hash(&request.password))
                .transpose();
            (Some(record), verified, rehashed)
        }
        None => {
            // Same work as a wrong password, so response time does not reveal accounts.
            password::verify(&request.password, password::decoy_hash());
            (None, false, Ok(None))
        }
    })
    .await?;
    // Only an upgrade: the right password still logs in if it fails.
    let rehashed = rehashed.unwrap_or_else(|error| {
        tracing::warn!(%error, "cannot rehash an imported password; it stays bcrypt until the next login");
        None
    });
    let outdated_hash = record
        .as_ref()
        .map(|record| record.password_hash.clone())
        .unwrap_or_default();
    let (user, generation): (User, i64) = match (record, verified) {
        // Said only to whoever knows the password, so it reveals nothing to a guesser.
        (Some(record), true) if !record.user.active => {
            return Err(ApiError::Forbidden(
                "this account is deactivated; an ADMIN can reactivate it".into(),
            ))
        }
        (Some(record), true) => (record.user, record.generation),
        _ => return Err(ApiError::Unauthorized(BAD_CREDENTIALS.into())),
    };
    let mut transaction = state.store.begin().await?;
    let mut published = Published::default();
    if let Some(rehashed) = &rehashed {
        users::replace_password_hash(&mut transaction, &user.id, &outdated_hash, rehashed).await?;
    }
    users::logged_in(&mut transaction, &mut published, &user, Some(client.ip())).await?;
    state.commit(transaction, published).await?;
    let role = user.role();
    let token = state
        .tokens
        .issue(&user.id, &user.email, role, generation, now_seconds());
    Ok(Answer::new(LoginResponse {
        token,
        user: LoginUser {
            id: user.id,
            email: user.email,
            name: user.name,
            role,
        },
    }))
}

/// What a logout answers.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LoggedOut {
    /// For people.
    pub message: &'static str,
}

/// Ends the caller's sessions: this token and every other one issued to them stop working
/// at once (a token cannot be called back alone, and a logout that left a copied token
/// working would not be one).
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth",
    security(("bearer" = [])),
    responses((status = 200, body = Answer<LoggedOut>), (status = 401)))]
pub async fn logout(
    State(state): State<AppState>,
    caller: CurrentUser,
) -> Result<Answer<LoggedOut>, ApiError> {
    let mut transaction = state.store.begin().await?;
    users::log_out(&mut transaction, &caller.viewer).await?;
    transaction.commit().await?;
    Ok(Answer::new(LoggedOut {
        message: "logged out: every token of this user has ended",
    }))
}

/// The caller.
#[utoipa::path(get, path = "/api/auth/me", tag = "auth",
    security(("bearer" = [])),
    responses((status = 200, body = Answer<User>), (status = 401)))]
pub async fn me(caller: CurrentUser) -> Answer<User> {
    Answer::new(caller.user)
}
