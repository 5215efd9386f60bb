//! Start-up and shutdown: the one path from settings to a running daemon.
//!
//! Order matters: open and migrate the database, load the routes (refusing to start on an
//! invalid set), bind the listener (so tests can use port 0 and read the address), then start
//! the consumer, the scheduler, the reload loop, the file watcher and the HTTP server.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use crate::api::{self, AppState};
use crate::config::Settings;
use crate::engine::schedule::Scheduler;
use crate::engine::{Engine, EngineOptions, RouteSetHandle};
use crate::reload::watcher::SourceWatcher;
use crate::reload::{LoadSettings, ReloadError, Reloader};
use crate::route::load::Source;
use crate::route::RouteSet;
use crate::store::exclusive::{ExclusiveLock, Job, Mode};
use crate::store::{Store, StoreError};

/// How long shutdown waits for the batch in flight and open requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(8);

/// Why the daemon could not start or stopped with an error.
#[derive(Debug, Error)]
pub enum AppError {
    /// Database problems.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The routes are invalid.
    #[error("the routes are invalid, not starting:\n{0}")]
    Routes(ReloadError),
    /// The listen address is taken or not ours.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// Address.
        address: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// The HTTP server failed.
    #[error("HTTP server failed: {0}")]
    Serve(std::io::Error),
    /// Kafka is misconfigured or lacks a topic.
    #[error("Kafka: {0}")]
    Kafka(String),
    /// Tokens cannot be signed.
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    /// The event consumer ended on its own (a bug: it retries every database failure), or
    /// another process took over the embedded bus.
    #[error("the event consumer stopped unexpectedly: {0}")]
    ConsumerStopped(String),
    /// Another daemon already runs on this database (the embedded bus, or instances on Kafka).
    #[error("another crm-router already runs the embedded event bus on {database}, or instances using Kafka run on it. The embedded bus is single-instance: its one consumer is what keeps events in order. Stop the other instance, give this one its own database (DATABASE_URL), or run several instances on one PostgreSQL database with Kafka as the bus (KAFKA_ENABLED=true)")]
    SecondEmbeddedInstance {
        /// The database, without credentials.
        database: String,
    },
    /// An embedded-bus daemon runs on the database this Kafka instance was given.
    #[error("a crm-router running the embedded event bus (without KAFKA_ENABLED) already uses {database}; instances on Kafka and an embedded bus cannot share a database, since both would consume the same events in different orders. Stop it and start it with KAFKA_ENABLED=true")]
    EmbeddedInstanceRunning {
        /// The database, without credentials.
        database: String,
    },
}

/// Where the consumer reads events from.
enum Bus {
    /// The event log in the database, consumed only by the process holding the lock.
    Embedded(ExclusiveLock),
    /// Kafka; the event log is the relay's outbox.
    Kafka {
        consumer: crate::kafka::consumer::RouteConsumer,
        relay: crate::kafka::relay::Relay,
        group: String,
        batch_size: usize,
        /// Shared with the other instances on Kafka; keeps an embedded bus off the database.
        lock: ExclusiveLock,
    },
}

/// A daemon ready to run: database migrated, routes loaded, listener bound.
pub struct Application {
    listener: TcpListener,
    http_limits: crate::server::ServerLimits,
    state: AppState,
    engine: Engine,
    bus: Bus,
    scheduler: Scheduler,
    reloader: Reloader,
    reload_signals: mpsc::Receiver<crate::reload::Signal>,
    watched: Vec<PathBuf>,
}

/// Connects to the database named in `settings` and applies all migrations.
pub async fn open_store(settings: &Settings) -> Result<Store, StoreError> {
    let store = Store::connect(&settings.database_url).await?;
    store.migrate(settings.migrations.as_deref()).await?;
    Ok(store)
}

impl Application {
    /// Prepares everything; nothing runs until [`Application::run`]. With `source`, each reload
    /// reads its config file again (see [`Reloader::rereading`]).
    pub async fn build(
        settings: Settings,
        source: Option<crate::config::SettingsSource>,
    ) -> Result<Self, AppError> {
        // First, so the start's own reload is counted.
        let metrics = crate::telemetry::install();
        let store = Store::connect(&settings.database_url).await?;
        // Before anything else, migrations included: a second instance (perhaps a newer
        // version) must not change the schema under the running one before it is refused.
        let bus_lock = match &settings.kafka {
            // Instances on Kafka share the bus lock: any number of them, but no embedded bus.
            Some(_) => match store.lock_at_start(Job::EmbeddedBus, Mode::Shared).await? {
                Some(lock) => lock,
                None => {
                    return Err(AppError::EmbeddedInstanceRunning {
                        database: store.display_url().to_owned(),
                    })
                }
            },
            None => match store
                .lock_at_start(Job::EmbeddedBus, Mode::Exclusive)
                .await?
            {
                Some(lock) => lock,
                None => {
                    return Err(AppError::SecondEmbeddedInstance {
                        database: store.display_url().to_owned(),
                    })
                }
            },
        };
        store.migrate(settings.migrations.as_deref()).await?;
        tracing::info!(database = %store.display_url(), "database ready");
        warn_about_ephemeral_sqlite(&store);
        let handle: RouteSetHandle = Arc::new(ArcSwap::from_pointee(RouteSet::empty()));
        let reloader = Reloader::new(
            store.clone(),
            LoadSettings::from_settings(&settings),
            handle.clone(),
        );
        let reloader = match source {
            Some(source) => reloader.rereading(source, settings.clone()),
            None => reloader,
        };
        tracing::info!(routes = %settings.routes.describe(), schemas = %settings.schemas.describe(), "loading routes");
        reloader.reload().await.map_err(AppError::Routes)?;

        let listener =
            TcpListener::bind(settings.listen)
                .await
                .map_err(|source| AppError::Bind {
                    address: settings.listen,
                    source,
                })?;
        let log_signal = Arc::new(Notify::new());
        crate::engine::set_queued_for_kafka(settings.kafka.is_some());
        let (bus, relay_health) = match &settings.kafka {
            None => (Bus::Embedded(bus_lock), None),
            Some(kafka) => {
                retire_embedded_history(&store, &settings.consumer).await?;
                warn_about_unsubscribed_routes(&handle.load(), kafka);
                let (bus, health) =
                    connect_kafka(kafka, &store, &log_signal, settings.batch_size, bus_lock)
                        .await?;
                (bus, Some(health))
            }
        };
        let engine = Engine::new(
            store.clone(),
            handle.clone(),
            log_signal.clone(),
            EngineOptions {
                // With Kafka, positions are the consumer group's, per partition.
                consumer: match &settings.kafka {
                    Some(kafka) => kafka.group_id.clone(),
                    None => settings.consumer.clone(),
                },
                batch_size: settings.batch_size,
            },
        );
        let scheduler = Scheduler::new(store.clone(), handle.clone(), log_signal.clone());
        let (reload_sender, reload_signals) = mpsc::channel(8);
        let (secret, origin) =
            crate::auth::secret::resolve(&store, settings.jwt_secret.as_deref()).await?;
        if origin == crate::auth::secret::SecretOrigin::Database {
            tracing::warn!("JWT_SECRET is not set: signing tokens with a secret generated once and kept in the database; set JWT_SECRET (32+ bytes) to manage it yourself");
        }
        let state = AppState {
            appender: crate::store::appender::Appender::spawn(store.clone()),
            store,
            routes: handle,
            reloader: reloader.clone(),
            reload_signals: reload_sender,
            log_signal,
            api_key: settings.api_key.as_deref().map(Arc::from),
            unrouted: settings.unrouted,
            crm_api: settings.crm_api,
            engine_health: engine.health(),
            tokens: crate::auth::TokenKeys::new(&secret),
            login_limiter: Arc::new(crate::auth::LoginLimiter::new()),
            signup_limiter: Arc::new(crate::auth::SignupLimiter::new()),
            relay_health,
            cors_origins: settings.cors_origins.clone().into(),
            metrics,
        };
        let watched = [&settings.routes, &settings.schemas]
            .into_iter()
            .filter_map(|source| match source {
                Source::Directory(path) => Some(path.clone()),
                Source::Bundled => None,
            })
            .collect();
        Ok(Self {
            listener,
            http_limits: settings.http,
            state,
            engine,
            bus,
            scheduler,
            reloader,
            reload_signals,
            watched,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Reports every commit of the event consumer from now on (for `crm-router bench`).
    pub fn observe_commits(&mut self) -> crate::engine::commits::CommitReceiver {
        self.engine.observe_commits()
    }

    /// Wakes the consumer (embedded bus) or the outbox relay (Kafka) after events were appended
    /// to the log from outside the daemon's own code paths, so they need not wait for a poll.
    pub fn log_signal(&self) -> crate::engine::LogSignal {
        self.state.log_signal.clone()
    }

    /// Runs until `shutdown` is cancelled, then stops taking input, lets the batch in flight
    /// commit, and closes the database.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), AppError> {
        let address = self.local_addr();
        let watcher = match SourceWatcher::start(&self.watched, self.state.reload_signals.clone()) {
            Ok(watcher) => Some(watcher),
            Err(error) => {
                tracing::warn!(%error, "cannot watch route files; reload with SIGHUP or POST /api/routes/reload");
                None
            }
        };
        let _checkpointer = match self.state.store.checkpointer() {
            Some(Ok(checkpointer)) => Some(checkpointer),
            Some(Err(error)) => {
                tracing::warn!(%error, "cannot start the checkpoint thread; the writer will checkpoint");
                None
            }
            None => None,
        };
        spawn_sighup(self.state.reload_signals.clone(), shutdown.clone());
        spawn_limiter_cleanup(
            self.state.login_limiter.clone(),
            self.state.signup_limiter.clone(),
            shutdown.clone(),
        );
        spawn_metrics_upkeep(self.state.metrics.clone(), shutdown.clone());
        let reload_task = tokio::spawn(self.reloader.clone().run(
            self.reload_signals,
            watcher,
            shutdown.clone(),
        ));
        // The relay stops after the consumer, so it can publish what the last batch emitted.
        let relay_stop = CancellationToken::new();
        let mut relay_task = None;
        let store = self.state.store.clone();
        let engine_task = match self.bus {
            Bus::Embedded(lock) => tokio::spawn(consume_while_locked(
                self.engine.run(shutdown.clone()),
                lock,
                store,
                shutdown.clone(),
            )),
            Bus::Kafka {
                consumer,
                relay,
                group,
                batch_size,
                lock,
            } => {
                relay_task = Some(tokio::spawn(relay.run(relay_stop.clone())));
                let consumer = crate::kafka::consumer::run(
                    self.engine,
                    consumer,
                    group,
                    batch_size,
                    shutdown.clone(),
                );
                tokio::spawn(consume_while_locked(
                    consumer,
                    lock,
                    store,
                    shutdown.clone(),
                ))
            }
        };
        let scheduler_task = tokio::spawn(self.scheduler.run(shutdown.clone()));
        let scheduler_abort = scheduler_task.abort_handle();
        let engine_abort = engine_task.abort_handle();
        // A daemon whose consumer died must not keep answering as if healthy: stop, exit
        // non-zero and let the supervisor restart it.
        let engine_watch = {
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                let ended = engine_task.await;
                if shutdown.is_cancelled() {
                    return None;
                }
                let reason = match ended {
                    Ok(Ok(())) => "it returned".to_owned(),
                    Ok(Err(reason)) => reason,
                    Err(error) => error.to_string(),
                };
                tracing::error!(%reason, "the event consumer stopped unexpectedly; shutting down");
                shutdown.cancel();
                Some(reason)
            })
        };
        let store = self.state.store.clone();
        let server = crate::server::serve(
            self.listener,
            api::app(self.state),
            self.http_limits,
            shutdown.clone(),
        );
        tracing::info!("listening on http://{address}");
        let mut server_task = tokio::spawn(server);
        // The grace period starts at the stop signal, and covers open HTTP requests too: a slow
        // client or a long bulk replay cannot hold the process past it.
        let served = tokio::select! {
            served = &mut server_task => Some(served),
            () = shutdown.cancelled() => None,
        };
        shutdown.cancel();
        let server_abort = server_task.abort_handle();
        let relay_abort = relay_task.as_ref().map(|task| task.abort_handle());
        let stopped = tokio::time::timeout(SHUTDOWN_GRACE, async {
            let served = match served {
                Some(served) => served,
                None => server_task.await,
            };
            let _ = reload_task.await;
            let _ = scheduler_task.await;
            let failure = engine_watch.await.ok().flatten();
            relay_stop.cancel();
            if let Some(relay) = relay_task {
                let _ = relay.await;
            }
            (served, failure)
        })
        .await;
        let (served, consumer_failure) = match stopped {
            Ok((served, failure)) => {
                if failure.is_none() {
                    tracing::info!("stopped cleanly");
                }
                (served, failure)
            }
            Err(_) => {
                // Dropping the batch (or scheduled run) in flight rolls its transaction back; it is
                // redone on start. Requests still open are cut off.
                server_abort.abort();
                engine_abort.abort();
                scheduler_abort.abort();
                if let Some(relay) = relay_abort {
                    relay.abort();
                }
                tracing::warn!("the HTTP server, the event consumer, the scheduler or the outbox relay did not stop in time; what they had not committed will be redone on start");
                (Ok(()), None)
            }
        };
        store.close().await;
        if let Err(join) = served {
            return Err(AppError::Serve(std::io::Error::other(join.to_string())));
        }
        match consumer_failure {
            Some(reason) => Err(AppError::ConsumerStopped(reason)),
            None => Ok(()),
        }
    }
}

/// Runs `consumer` while this process holds its bus lock. If another process took the lock
/// (after this one's database session broke), the consumer stops and the caller's watchdog
/// shuts the daemon down. At shutdown the batch in flight still commits, and the lock is held
/// until it has, so a replacement cannot start consuming early.
async fn consume_while_locked(
    consumer: impl std::future::Future<Output = ()>,
    lock: ExclusiveLock,
    store: Store,
    shutdown: CancellationToken,
) -> Result<(), String> {
    tokio::pin!(consumer);
    tokio::select! {
        () = &mut consumer => Ok(()),
        kept = lock.keep(store, shutdown) => match kept {
            Ok(lock) => {
                consumer.await;
                drop(lock);
                Ok(())
            }
            Err(taken) => Err(taken.to_string()),
        },
    }
}

/// Warns when the SQLite file would be lost at the next deploy: on Render (which sets `RENDER`)
/// a service's filesystem is rebuilt from the image each time, and only a persistent disk, a
/// mount of its own, survives. The database holds the data, the outbox and the consumer
/// positions, so losing it is losing everything.
fn warn_about_ephemeral_sqlite(store: &Store) {
    if std::env::var_os("RENDER").is_none() {
        return;
    }
    let Some(file) = store.sqlite_file() else {
        return;
    };
    let directory = match file.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if on_a_persistent_disk(&directory) {
        return;
    }
    tracing::warn!(
        file = %file.display(),
        "the SQLite database is on Render's ephemeral filesystem and will be lost at the next deploy or restart, with every record and event in it: attach a persistent disk and put the file on it (DATABASE_URL=sqlite:///var/data/crm-router.db for a disk mounted at /var/data), or set DATABASE_URL to a PostgreSQL database"
    );
}

/// Whether `directory` survives a redeploy: on a filesystem of its own (a mounted disk), and
/// not one held in memory (tmpfs), which is gone at every restart.
fn on_a_persistent_disk(directory: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let separate = match (std::fs::metadata(directory), std::fs::metadata("/")) {
            (Ok(directory), Ok(root)) => directory.dev() != root.dev(),
            _ => false,
        };
        #[cfg(target_os = "linux")]
        let in_memory = nix::sys::statfs::statfs(directory)
            .is_ok_and(|filesystem| filesystem.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC);
        #[cfg(not(target_os = "linux"))]
        let in_memory = false;
        separate && !in_memory
    }
    #[cfg(not(unix))]
    {
        let _ = directory;
        false
    }
}

/// On Kafka only the configured topics are consumed; a route waiting on any other topic would
/// silently never run.
fn warn_about_unsubscribed_routes(routes: &RouteSet, kafka: &crate::kafka::KafkaSettings) {
    use crate::route::trigger::TriggerKind;
    for route in &routes.routes {
        if let TriggerKind::Events { topic, .. } = &route.trigger.kind {
            if !kafka.topics.names.iter().any(|name| topic.matches(name)) {
                tracing::warn!(
                    route = %route.name,
                    topic = topic.as_str(),
                    "this route's topic is not in kafka.topics.names, so it will not run on Kafka; add the topic there"
                );
            }
        }
    }
}

/// A database that ran on the embedded bus holds events its consumer already applied; sending
/// them to Kafka now would apply them again.
async fn retire_embedded_history(store: &Store, consumer: &str) -> Result<(), AppError> {
    let mut transaction = store.begin().await?;
    let retired = crate::store::log::retire_consumed(
        &mut transaction,
        consumer,
        &crate::template::now_rfc3339(),
    )
    .await
    .map_err(StoreError::from)?;
    transaction.commit().await.map_err(StoreError::from)?;
    if retired > 0 {
        tracing::info!(
            retired,
            "events already handled on the embedded bus are not published to Kafka"
        );
    }
    Ok(())
}

/// Creates topics when asked, checks that they exist, and builds the relay and the consumer.
/// An unreachable cluster is not fatal (events wait in the outbox); a missing topic is.
async fn connect_kafka(
    kafka: &crate::kafka::KafkaSettings,
    store: &Store,
    log_signal: &crate::engine::LogSignal,
    batch_size: usize,
    lock: ExclusiveLock,
) -> Result<(Bus, Arc<crate::kafka::relay::RelayHealth>), AppError> {
    use crate::kafka::{connect, consumer, relay, topics};
    use rdkafka::producer::Producer;
    if kafka.create_topics {
        match topics::create(kafka).await {
            Ok(results) => {
                for (topic, outcome) in results {
                    tracing::info!(%topic, ?outcome, "Kafka topic");
                }
            }
            Err(error) => connect::log_failure(&error.to_string()),
        }
    }
    let health = Arc::new(relay::RelayHealth::default());
    let producer = relay::producer(kafka, health.clone())
        .map_err(|error| AppError::Kafka(format!("cannot create the producer: {error}")))?;
    let probe = producer.clone();
    let metadata = tokio::task::spawn_blocking(move || {
        probe.client().fetch_metadata(None, Duration::from_secs(10))
    })
    .await
    .map_err(|error| AppError::Kafka(error.to_string()))?;
    match metadata {
        Ok(metadata) => {
            let present: Vec<&str> = metadata
                .topics()
                .iter()
                .filter(|topic| topic.error().is_none())
                .map(|topic| topic.name())
                .collect();
            let missing: Vec<&str> = kafka
                .topics
                .names
                .iter()
                .map(String::as_str)
                .filter(|name| !present.contains(name))
                .collect();
            if !missing.is_empty() {
                return Err(AppError::Kafka(format!(
                    "topic(s) {} do not exist; run `crm-router topics create` or set kafka.create_topics: true",
                    missing.join(", ")
                )));
            }
            tracing::info!(brokers = %kafka.brokers, "✅ Kafka Producer connected");
        }
        Err(error) => connect::log_failure(&error.to_string()),
    }
    let consumer = consumer::subscribe(kafka)
        .map_err(|error| AppError::Kafka(format!("cannot create the consumer: {error}")))?;
    let relay = relay::Relay::new(
        store.clone(),
        producer,
        log_signal.clone(),
        health.clone(),
        usize::try_from(kafka.topics.max_message_bytes).unwrap_or(usize::MAX),
    );
    Ok((
        Bus::Kafka {
            consumer,
            relay,
            group: kafka.group_id.clone(),
            batch_size,
            lock,
        },
        health,
    ))
}

/// Histograms keep their samples until drained; without a scrape they would grow without bound.
fn spawn_metrics_upkeep(
    handle: metrics_exporter_prometheus::PrometheusHandle,
    shutdown: CancellationToken,
) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                _ = every.tick() => handle.run_upkeep(),
                _ = shutdown.cancelled() => break,
            }
        }
    });
}

/// Keeps the login and sign-up limiters' memory bounded by forgetting idle keys every minute.
fn spawn_limiter_cleanup(
    login: Arc<crate::auth::LoginLimiter>,
    signup: Arc<crate::auth::SignupLimiter>,
    shutdown: CancellationToken,
) {
    tokio::spawn(async move {
        let mut every_minute = tokio::time::interval(Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = every_minute.tick() => {
                    login.forget_idle();
                    signup.forget_idle();
                }
                _ = shutdown.cancelled() => break,
            }
        }
    });
}

#[cfg(unix)]
fn spawn_sighup(signals: mpsc::Sender<crate::reload::Signal>, shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP");
        return;
    };
    tokio::spawn(async move {
        loop {
            tokio::select! {
                received = hangups.recv() => {
                    if received.is_none() { break }
                    tracing::info!("SIGHUP received; reloading routes");
                    let _ = signals.try_send(crate::reload::Signal::Reload("SIGHUP"));
                }
                _ = shutdown.cancelled() => break,
            }
        }
    });
}

#[cfg(not(unix))]
fn spawn_sighup(_signals: mpsc::Sender<crate::reload::Signal>, _shutdown: CancellationToken) {}
