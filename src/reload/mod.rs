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

use crate::config::{Settings, SettingsSource};
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
    /// The names `env.*` may read.
    pub env_allow: Vec<String>,
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
            env_allow: settings.env_allow.clone(),
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
    /// The config file, read again, is not valid.
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
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
    /// The config file to read again on each reload, with the settings the daemon runs with.
    config: Option<Arc<(SettingsSource, Settings)>>,
    handle: RouteSetHandle,
    status: Arc<RwLock<ReloadStatus>>,
}

impl Reloader {
    /// A reloader that swaps into `handle`.
    pub fn new(store: Store, settings: LoadSettings, handle: RouteSetHandle) -> Self {
        Self {
            store,
            settings,
            config: None,
            handle,
            status: Arc::new(RwLock::new(ReloadStatus {
                ok: false,
                at: crate::template::now_rfc3339(),
                error: Some("routes not loaded yet".into()),
            })),
        }
    }

    /// Makes each reload read the config file of `source` again and apply its `env_allow` and
    /// `retry`; other settings that changed from `running` are named in a warning, since they
    /// take a restart.
    pub fn rereading(mut self, source: SettingsSource, running: Settings) -> Self {
        self.config = Some(Arc::new((source, running)));
        self
    }

    /// The config file reloads read, if any.
    pub fn config_file(&self) -> Option<&std::path::Path> {
        self.config.as_ref().and_then(|config| config.0.file())
    }

    /// What this reload loads: the config file's route-related settings when it is read again,
    /// the running directories always.
    fn load_settings(&self) -> Result<LoadSettings, ReloadError> {
        let Some(config) = &self.config else {
            return Ok(self.settings.clone());
        };
        let (source, running) = config.as_ref();
        let newer = source.resolve()?;
        let restart = running.needing_restart(&newer);
        if !restart.is_empty() {
            let file = source
                .file()
                .map_or(String::new(), |file| file.display().to_string());
            tracing::warn!(
                settings = %restart.join(", "),
                "{file} changes settings that apply only after a restart: {}; the daemon keeps running with their old values",
                restart.join(", ")
            );
        }
        Ok(LoadSettings {
            env: newer.template_env(),
            env_allow: newer.env_allow.clone(),
            retry: newer.retry,
            ..self.settings.clone()
        })
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
        let settings = self.load_settings()?;
        let catalog = self.store.catalog().await?;
        let loaded = tokio::task::spawn_blocking(move || {
            load::load(&LoadOptions {
                routes: &settings.routes,
                schemas: &settings.schemas,
                catalog: Some(&catalog),
                env: settings.env.clone(),
                env_allow: Some(&settings.env_allow),
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
        // How often the watched directories are checked for having been replaced, and the
        // config file for having been edited. The file is polled, not watched: its directory
        // is where the SQLite file and its WAL live (see `watcher`).
        let mut replacements = tokio::time::interval(REPLACEMENT_CHECK);
        replacements.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let config_file = self.config_file().map(std::path::Path::to_owned);
        let mut config_stamp = config_file.as_deref().and_then(stamp);
        loop {
            let signal = tokio::select! {
                signal = signals.recv() => signal,
                _ = replacements.tick(), if watcher.is_some() || config_file.is_some() => {
                    let replaced = watcher.as_mut().is_some_and(watcher::SourceWatcher::refresh);
                    let edited = config_file
                        .as_deref()
                        .is_some_and(|file| stamp(file) != config_stamp);
                    match (replaced, edited) {
                        (_, true) => Some(Signal::Reload("config")),
                        (true, false) => Some(Signal::Reload("watcher")),
                        (false, false) => continue,
                    }
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
            config_stamp = config_file.as_deref().and_then(stamp);
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

/// A digest of the config file's contents: a change is a reason to reload. Contents, not the
/// modification time, which a same-length edit within the file system's timestamp granularity
/// would leave unchanged; the file is small.
fn stamp(file: &std::path::Path) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let contents = std::fs::read(file).ok()?;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    contents.hash(&mut hasher);
    Some(hasher.finish())
}
