//! HTTP: the CRM's REST resources, authentication, health, route listing and event
//! submission. Only this module knows HTTP and JSON shapes of requests; handlers call into
//! `crm`, `auth`, `store`, `reload` and `route` for the work.

mod answer;
mod api_key;
mod auth;
mod crm;
mod current_user;
mod dead_letters;
pub mod error;
mod events;
mod health;
pub mod json;
mod listing;
mod metrics;
mod openapi;
mod path;
mod query_guard;
mod routes;
mod users;

use std::sync::Arc;

use crate::store::db::Tx;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::{Json, Router};
use tokio::sync::mpsc;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{LoginLimiter, SignupLimiter, TokenKeys};
use crate::crm::Published;
use crate::engine::{log_committed, EngineHealth, LogSignal, RouteSetHandle};
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
    /// Commits submitted events in groups (`POST /api/events`).
    pub appender: crate::store::appender::Appender,
    /// `CRM_ROUTER_API_KEY`.
    pub api_key: Option<Arc<str>>,
    /// Consumer health for `/readyz`.
    pub engine_health: Arc<EngineHealth>,
    /// Signs and checks bearer tokens.
    pub tokens: TokenKeys,
    /// Login throttling.
    pub login_limiter: Arc<LoginLimiter>,
    /// Sign-up throttling.
    pub signup_limiter: Arc<SignupLimiter>,
    /// The Kafka relay's state; `None` on the embedded bus.
    pub relay_health: Option<Arc<crate::kafka::relay::RelayHealth>>,
    /// Browser origins allowed by CORS (checked by `config`); empty turns CORS off.
    pub cors_origins: Arc<[String]>,
    /// What `POST /api/events` does with an event no route reads.
    pub unrouted: crate::config::Unrouted,
    /// Whether the CRM's REST resources are served (`crm_api`).
    pub crm_api: bool,
    /// Renders `/metrics`.
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
}

impl AppState {
    /// Commits a write and then announces its events: wakes the consumer and logs
    /// its events (`engine::log_committed`). Nothing is announced for a write that did not commit.
    pub async fn commit(
        &self,
        transaction: Tx<'static>,
        published: Published,
    ) -> Result<(), sqlx::Error> {
        transaction.commit().await?;
        self.announce(&published);
        Ok(())
    }

    /// Wakes the consumer for committed events and logs each (`engine::log_committed`).
    pub fn announce(&self, published: &Published) {
        if !published.0.is_empty() {
            self.log_signal.notify_one();
            log_committed(&published.0);
        }
    }
}

/// Every documented endpoint, and the OpenAPI document describing them: the operator
/// endpoints, and the CRM's resources when `crm_api` is on.
fn documented(crm_api: bool) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let router = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(health::healthz))
        .routes(routes!(health::health))
        .routes(routes!(health::readyz))
        .routes(routes!(metrics::metrics))
        .routes(routes!(routes::list))
        .routes(routes!(routes::reload))
        .routes(routes!(routes::trigger))
        .routes(routes!(events::submit))
        .routes(routes!(dead_letters::list))
        .routes(routes!(dead_letters::replay_all))
        .routes(routes!(dead_letters::show))
        .routes(routes!(dead_letters::replay))
        .routes(routes!(dead_letters::discard));
    let router = if crm_api {
        router.merge(crm_resources())
    } else {
        router
    };
    let (router, mut document) = router.split_for_parts();
    openapi::add_edge_responses(&mut document);
    (router, document)
}

/// The CRM's REST resources: accounts, the records people keep, reports and the audit log.
fn crm_resources() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(auth::register))
        .routes(routes!(auth::login))
        .routes(routes!(auth::me))
        .routes(routes!(auth::logout))
        .routes(routes!(users::list))
        .routes(routes!(users::get, users::update, users::delete))
        .routes(routes!(crm::customers::list, crm::customers::create))
        .routes(routes!(
            crm::customers::get,
            crm::customers::update,
            crm::customers::delete
        ))
        .routes(routes!(crm::meetings::list, crm::meetings::create))
        .routes(routes!(
            crm::meetings::get,
            crm::meetings::update,
            crm::meetings::delete
        ))
        .routes(routes!(crm::tasks::list, crm::tasks::create))
        .routes(routes!(crm::tasks::overdue))
        .routes(routes!(crm::tasks::upcoming))
        .routes(routes!(crm::tasks::complete, crm::tasks::complete_put))
        .routes(routes!(
            crm::tasks::get,
            crm::tasks::update,
            crm::tasks::delete
        ))
        .routes(routes!(
            crm::opportunities::list,
            crm::opportunities::create
        ))
        .routes(routes!(crm::opportunities::get, crm::opportunities::update))
        .routes(routes!(crm::approvals::list, crm::approvals::create))
        .routes(routes!(crm::approvals::get, crm::approvals::update))
        .routes(routes!(crm::approvals::approve))
        .routes(routes!(crm::approvals::reject))
        .routes(routes!(crm::approvals::recall))
        .routes(routes!(crm::notifications::list))
        .routes(routes!(crm::notifications::unread_count))
        .routes(routes!(crm::notifications::delete))
        .routes(routes!(
            crm::notifications::read,
            crm::notifications::read_put
        ))
        .routes(routes!(
            crm::notifications::read_all,
            crm::notifications::read_all_put
        ))
        .routes(routes!(crm::analytics::summary))
        .routes(routes!(crm::audit::list))
        .routes(routes!(crm::audit::get))
        .routes(routes!(crm::reports::dashboard))
        .routes(routes!(crm::reports::sales_metrics))
        .routes(routes!(crm::reports::task_trends))
        .routes(routes!(crm::reports::export))
}

/// The OpenAPI document of the whole API (the CRM's resources included).
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    documented(true).1
}

/// CORS for the configured origins; `None` (no CORS headers, so browsers refuse cross-origin
/// calls) when there are none. Credentials are bearer tokens and API keys in headers, never
/// cookies, so no `Allow-Credentials`.
fn cors(origins: &[String]) -> Option<CorsLayer> {
    use axum::http::{header, HeaderName, HeaderValue, Method};
    if origins.is_empty() {
        return None;
    }
    let allowed = if origins.iter().any(|origin| origin == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|origin| HeaderValue::from_str(origin).ok()),
        )
    };
    Some(
        CorsLayer::new()
            .allow_origin(allowed)
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("x-api-key"),
            ])
            .expose_headers([HeaderName::from_static("x-total-count")])
            .max_age(std::time::Duration::from_secs(3600)),
    )
}

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    let cors = cors(&state.cors_origins);
    let (router, document) = documented(state.crm_api);
    let query_readers = query_guard::QueryReaders::from_document(&document);
    let document = Arc::new(document);
    let router = router
        .route(
            "/api/openapi.json",
            get(move || {
                let document = document.clone();
                async move { Json(document.as_ref().clone()) }
            }),
        )
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(TraceLayer::new_for_http())
        .route_layer(axum::middleware::from_fn_with_state(
            query_readers,
            query_guard::refuse_unread_query,
        ))
        .route_layer(axum::middleware::from_fn(metrics::track))
        .with_state(state);
    // Outermost, so preflight requests are answered before authentication sees them.
    match cors {
        Some(cors) => router.layer(cors),
        None => router,
    }
}
