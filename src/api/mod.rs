//! HTTP: health, route listing, event submission. Only this module knows HTTP and JSON shapes
//! of requests; handlers call into `store`, `reload` and `route` for the work.

mod api_key;
pub mod error;
mod events;
mod health;
pub mod json;
mod routes;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::mpsc;
use tower_http::trace::TraceLayer;

use crate::engine::{EngineHealth, LogSignal, RouteSetHandle};
use crate::reload::{Reloader, Signal};
use crate::store::Store;
use error::ApiError;

/// Largest request body accepted, in bytes.
pub const BODY_LIMIT: usize = 1 << 20;

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    /// Database.
    pub store: Store,
    /// Live routes and schemas.
    pub routes: RouteSetHandle,
    /// Reload status and trigger.
    pub reloader: Reloader,
    /// Reload requests.
    pub reload_signals: mpsc::Sender<Signal>,
    /// Wakes the consumer after an append.
    pub log_signal: LogSignal,
    /// `CRM_ROUTER_API_KEY`.
    pub api_key: Option<Arc<str>>,
    /// Consumer health for `/readyz`.
    pub engine_health: Arc<EngineHealth>,
}

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/api/routes", get(routes::list))
        .route("/api/routes/reload", post(routes::reload))
        .route("/api/routes/{name}/trigger", post(routes::trigger))
        .route("/api/events/{topic}", post(events::submit))
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
