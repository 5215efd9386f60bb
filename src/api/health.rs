//! Liveness and readiness.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;

/// The answer of `/healthz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Liveness {
    /// Always `ok`.
    pub status: &'static str,
}

/// The answer of `/readyz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` (200) or `unavailable` (503).
    pub status: &'static str,
    /// Why the daemon is not ready (only when it is not).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    /// The Kafka relay's state (only with Kafka, and only when ready).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kafka: Option<KafkaState>,
}

/// How the Kafka relay is doing.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KafkaState {
    /// The broker answered the relay's last attempt.
    pub connected: bool,
    /// The broker's last error, while it is not connected.
    pub error: Option<String>,
    /// Events in the outbox not yet published.
    pub outbox_backlog: i64,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, body = Liveness)))]
pub async fn healthz() -> Json<Liveness> {
    Json(Liveness { status: "ok" })
}

/// The process is up: `/healthz` under the path the original CRM's services answered on, where
/// deployments' health checks (Render's among them) were pointed.
#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, body = Liveness)))]
pub async fn health() -> Json<Liveness> {
    healthz().await
}

/// The process can do its work: database reachable, consumer not failing.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, body = Readiness),
        (status = 503, body = Readiness, description = "not ready; `reasons` says why")))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let mut reasons = Vec::new();
    if let Err(error) = state.store.ping().await {
        reasons.push(format!("database: {error}"));
    }
    if let Some(error) = state.engine_health.last_error() {
        reasons.push(format!("event consumer: {error}"));
    }
    if !reasons.is_empty() {
        let body = Readiness {
            status: "unavailable",
            reasons,
            kafka: None,
        };
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body));
    }
    // Kafka being down does not make the daemon unready: REST and routes keep working and
    // events wait in the outbox. The state is reported for operators and alerts.
    let kafka = state.relay_health.as_ref().map(|health| KafkaState {
        connected: health.broker_error().is_none(),
        error: health.broker_error(),
        outbox_backlog: health.backlog(),
    });
    let body = Readiness {
        status: "ready",
        reasons,
        kafka,
    };
    (StatusCode::OK, Json(body))
}
