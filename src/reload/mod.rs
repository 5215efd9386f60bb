//! The one place that replaces the live route set. Start-up is a reload from the empty set.
//!
//! Reload = read catalog → load and validate everything → diff → swap. The swap is a single
//! pointer store: a batch in flight keeps the set it started with, the next batch gets the new
//! one, so no event is lost or handled twice. An invalid set changes nothing and is reported
//! (log + `/api/routes`). The file watcher, SIGHUP and the API all send [`Signal::Reload`].

pub mod watcher;

use std::sync::{Arc, RwLock};

use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::engine::retry::RetryPolicy;
use crate::engine::RouteSetHandle;
use crate::route::load::{self, LoadOptions, Source};
use crate::route::{Diagnostic, RouteDiff};
use crate::store::Store;
use crate::template::{TemplateLimits, TemplateValue};

/// How often the reload loop checks whether a watched directory was replaced (a rename or a
/// symlink swap over it), which the file watcher itself does not see.
const REPLACEMENT_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// Requests to the reload loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Load the routes again; the string says who asked (`watcher`, `SIGHUP`, `api`).
    Reload(&'static str),
}

/// Outcome of the last reload, as `/api/routes` reports it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReloadStatus {
    /// Whether the last reload succeeded.
    pub ok: bool,
    /// When it finished (RFC 3339).
    pub at: String,
    /// The problems, `file:line:col: message` joined by newlines, when it failed.
    pub error: Option<String>,
}

/// Everything needed to load a route set.
#[derive(Debug, Clone)]
pub struct LoadSettings {
    /// Route files.
    pub routes: Source,
    /// Schema files.
    pub schemas: Source,
    /// `env` template variable.
    pub env: TemplateValue,
    /// Default retry policy.
    pub retry: RetryPolicy,
    /// Template limits.
    pub limits: TemplateLimits,
}

impl LoadSettings {
    /// What the resolved settings say to load.
    pub fn from_settings(settings: &crate::config::Settings) -> Self {
        Self {
            routes: settings.routes.clone(),
            schemas: settings.schemas.clone(),
            env: settings.template_env(),
            retry: settings.retry,
            limits: TemplateLimits::default(),
        }
    }
}

/// Why a reload failed.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The route set is invalid.
    #[error("{}", render_diagnostics(.0))]
    Invalid(Vec<Diagnostic>),
    /// The database catalog could not be read.
    #[error("cannot read the database schema: {0}")]
    Catalog(#[from] crate::store::StoreError),
}

/// Diagnostics one per line.
pub fn render_diagnostics(diagnostics: &[Diagnostic]) -> String {
    diagnostics
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Owns the live route set.
#[derive(Clone)]
pub struct Reloader {
    store: Store,
    settings: LoadSettings,
    handle: RouteSetHandle,
    status: Arc<RwLock<ReloadStatus>>,
}

impl Reloader {
    /// A reloader that swaps into `handle`.
    pub fn new(store: Store, settings: LoadSettings, handle: RouteSetHandle) -> Self {
        Self {
            store,
            settings,
            handle,
            status: Arc::new(RwLock::new(ReloadStatus {
                ok: false,
                at: crate::template::now_rfc3339(),
                error: Some("routes not loaded yet".into()),
            })),
        }
    }

    /// The last reload's outcome.
    pub fn status(&self) -> ReloadStatus {
        self.status.read().expect("status lock").clone()
    }

    /// Loads, validates and swaps in the route set.
    pub async fn reload(&self) -> Result<RouteDiff, ReloadError> {
        let result = self.try_reload().await;
        crate::telemetry::reload(match &result {
            Ok(_) => "ok",
            Err(ReloadError::Invalid(_)) => "invalid",
            Err(_) => "error",
        });
        let status = ReloadStatus {
            ok: result.is_ok(),
            at: crate::template::now_rfc3339(),
            error: result.as_ref().err().map(ToString::to_string),
        };
        *self.status.write().expect("status lock") = status;
        result
    }

    async fn try_reload(&self) -> Result<RouteDiff, ReloadError> {
        let catalog = self.store.catalog().await?;
        let settings = self.settings.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            load::load(&LoadOptions {
                routes: &settings.routes,
                schemas: &settings.schemas,
                catalog: Some(&catalog),
                env: settings.env.clone(),
                default_retry: settings.retry,
                limits: settings.limits,
            })
        })
        .await
        .expect("route loading does not panic")
        .map_err(ReloadError::Invalid)?;
        let old = self.handle.load_full();
        let diff = RouteDiff::between(&old, &loaded);
        let count = loaded.routes.len();
        let origin = loaded.origin.clone();
        self.handle.store(Arc::new(loaded));
        tracing::info!(
            routes = count,
            origin = %origin,
            "🔁 Routes reloaded: {count} routes (+{} ~{} -{})",
            diff.added.len(),
            diff.changed.len(),
            diff.removed.len()
        );
        Ok(diff)
    }

    /// Serves reload signals until shutdown.
    pub async fn run(
        self,
        mut signals: mpsc::Receiver<Signal>,
        mut watcher: Option<watcher::SourceWatcher>,
        shutdown: CancellationToken,
    ) {
        // How often the watched directories are checked for having been replaced.
        let mut replacements = tokio::time::interval(REPLACEMENT_CHECK);
        replacements.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let signal = tokio::select! {
                signal = signals.recv() => signal,
                _ = replacements.tick(), if watcher.is_some() => {
                    if !watcher.as_mut().is_some_and(watcher::SourceWatcher::refresh) {
                        continue;
                    }
                    Some(Signal::Reload("watcher"))
                }
                _ = shutdown.cancelled() => None,
            };
            let Some(Signal::Reload(origin)) = signal else {
                break;
            };
            // Coalesce a burst of signals into one reload.
            while signals.try_recv().is_ok() {}
            if let Some(watcher) = watcher.as_mut() {
                watcher.refresh();
            }
            tracing::debug!(origin, "reloading routes");
            if let Err(error) = self.reload().await {
                tracing::error!(
                    origin,
                    "route reload failed; the previous routes keep running:\n{error}"
                );
            }
        }
    }
}
