//! The HTTP edge's one error type: user errors become 4xx with a JSON body
//! `{"success": false, "error", "message", "code", "fields"?}`; internal errors are logged and
//! shown as a bare 500.
//!
//! `error` and `message` carry the same text because the original CRM's clients read either:
//! its services answered `{"error": "…"}`, its frontend shows `message` and renders `error` as
//! text. `code` is for machines.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

/// A problem with one field of a request.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ToSchema)]
pub struct FieldError {
    /// JSON pointer or field name (`data/email`, `eventType`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// The body of every error answer; the OpenAPI document gives it to every 4xx and 5xx.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Always `false`.
    pub success: bool,
    /// What went wrong, for people (the same text as `message`).
    pub error: String,
    /// What went wrong, for people; for a 500 `internal` it says no more than that.
    pub message: String,
    /// Stable and machine-readable: `bad_request`, `unauthorized`, `not_found`, `internal`…
    pub code: &'static str,
    /// The fields at fault, when the request's fields were (400 and 422 only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldError>,
}

/// Every way a request can fail.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed or invalid input.
    #[error("{message}")]
    BadRequest {
        /// What is wrong.
        message: String,
        /// Per-field details.
        fields: Vec<FieldError>,
    },
    /// Missing or wrong credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// Valid credentials, not allowed (or the endpoint is disabled).
    #[error("{0}")]
    Forbidden(String),
    /// No such resource.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// Too many attempts; try again after the given number of seconds.
    #[error("{message}")]
    TooManyRequests {
        /// What was limited.
        message: String,
        /// Seconds until the next attempt is allowed (the `Retry-After` header).
        retry_after: u64,
    },
    /// A route run on request failed: its effects were rolled back and a dead letter written.
    /// Not an internal error, so the message (the route's failure) is shown.
    #[error("{0}")]
    RouteFailed(String),
    /// Wrong method for the path.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Body over the limit.
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// Wrong content type.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Well-formed but refused by validation (schema).
    #[error("{message}")]
    Unprocessable {
        /// Summary.
        message: String,
        /// The violations.
        fields: Vec<FieldError>,
    },
    /// A dependency (database) is down.
    #[error("{0}")]
    Unavailable(String),
    /// Overloaded for now; try again after the given number of seconds.
    #[error("{message}")]
    Busy {
        /// What is busy.
        message: String,
        /// Seconds until a retry may succeed (the `Retry-After` header).
        retry_after: u64,
    },
    /// A bug or an unexpected failure; details go to the log only.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// A 400 with one message.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest {
            message: message.into(),
            fields: Vec::new(),
        }
    }

    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest { .. } => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::TooManyRequests { .. } => (StatusCode::TOO_MANY_REQUESTS, "too_many_requests"),
            Self::RouteFailed(_) => (StatusCode::INTERNAL_SERVER_ERROR, "route_failed"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::PayloadTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            Self::Unprocessable { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, "unprocessable_entity")
            }
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Self::Busy { .. } => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl From<crate::auth::hashing::HashingError> for ApiError {
    fn from(error: crate::auth::hashing::HashingError) -> Self {
        match error {
            crate::auth::hashing::HashingError::Busy => Self::Busy {
                message: error.to_string(),
                retry_after: crate::auth::hashing::RETRY_AFTER_SECONDS,
            },
            crate::auth::hashing::HashingError::Failed => Self::Internal(error.to_string()),
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(error: crate::store::StoreError) -> Self {
        match error {
            // A failed query is judged like any other, so a lost connection is a 503 here too.
            crate::store::StoreError::Query(error) => error.into(),
            other => Self::Internal(other.to_string()),
        }
    }
}

/// PostgreSQL's SQLSTATEs for a connection the server ended or refused: connection exceptions
/// (class 08), and admin shutdown, crash shutdown and "cannot connect now" (57P01–57P03), as
/// when an administrator or a failover terminates the session.
fn connection_lost(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03")
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                Self::Unavailable("the database is not reachable; try again".into())
            }
            sqlx::Error::Database(database)
                if database.code().as_deref().is_some_and(connection_lost) =>
            {
                Self::Unavailable("the database is not reachable; try again".into())
            }
            // PostgreSQL's "character not in repertoire": NUL in text that reached the database
            // some way the extractors did not see. The caller's input, not our failure.
            sqlx::Error::Database(database) if database.code().as_deref() == Some("22021") => {
                Self::bad_request(super::json::NUL_REFUSED)
            }
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<crate::crm::CrmError> for ApiError {
    fn from(error: crate::crm::CrmError) -> Self {
        use crate::crm::CrmError;
        match error {
            CrmError::Invalid(problems) => Self::BadRequest {
                message: format!("invalid request: {}", problems.summary()),
                fields: problems
                    .0
                    .into_iter()
                    .map(|problem| FieldError {
                        field: problem.field,
                        message: problem.message,
                    })
                    .collect(),
            },
            CrmError::NotFound(what) => Self::NotFound(format!("{what} not found")),
            CrmError::Forbidden(message) => Self::Forbidden(message),
            CrmError::Conflict(message) => Self::Conflict(message),
            CrmError::Database(error) => error.into(),
            CrmError::Internal(detail) => Self::Internal(detail),
            CrmError::Busy(busy) => busy.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        if let Self::Internal(detail) = &self {
            tracing::error!(error = %detail, "request failed");
        }
        let message = self.to_string();
        let retry_after = match &self {
            Self::TooManyRequests { retry_after, .. } | Self::Busy { retry_after, .. } => {
                Some(*retry_after)
            }
            _ => None,
        };
        let fields = match self {
            Self::BadRequest { fields, .. } | Self::Unprocessable { fields, .. } => fields,
            _ => Vec::new(),
        };
        let body = ErrorBody {
            success: false,
            error: message.clone(),
            message,
            code,
            fields,
        };
        let mut response = (status, Json(body)).into_response();
        if let Some(retry_after) = retry_after {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(retry_after),
            );
        }
        response
    }
}
