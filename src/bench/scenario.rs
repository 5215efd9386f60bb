//! One variant's world: an isolated database, the settings, and the daemon running in this
//! process with its commits observed.

use crate::store::db;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::tracker::CascadeTracker;
use super::workload::Workload;
use super::BenchError;
use crate::app::{AppError, Application};
use crate::config::{ConfigFile, Overrides, Settings};
use crate::engine::LogSignal;
use crate::event::Event;
use crate::route::load::Source;
use crate::store::{log, Store};

pub use crate::store::isolated::{Backend, IsolatedDatabase};

/// What the daemon runs on.
pub struct ScenarioSpec<'a> {
    /// The events and routes.
    pub workload: Workload,
    /// The database.
    pub database: &'a IsolatedDatabase,
    /// `KAFKA_BROKERS` for a Kafka variant; `None` for the embedded bus.
    pub kafka_brokers: Option<&'a str>,
    /// Topics the daemon consumes on Kafka.
    pub topics: &'a [String],
    /// Most events per transaction.
    pub batch_size: usize,
    /// Scratch directory (route files).
    pub dir: &'a Path,
}

/// Builds the daemon's settings through the same resolution as `crm-router run`.
pub fn settings(spec: &ScenarioSpec<'_>) -> Result<Settings, BenchError> {
    let mut kafka_environment = BTreeMap::new();
    if let Some(brokers) = spec.kafka_brokers {
        kafka_environment.insert("KAFKA_ENABLED".to_owned(), "true".to_owned());
        kafka_environment.insert("KAFKA_BROKERS".to_owned(), brokers.to_owned());
        // A group of its own: nothing another run committed applies to this one.
        kafka_environment.insert(
            "KAFKA_GROUP_ID".to_owned(),
            format!("crm-router-bench-{}", uuid::Uuid::new_v4().simple()),
        );
        kafka_environment.insert("KAFKA_CLIENT_ID".to_owned(), "crm-router-bench".to_owned());
    }
    let overrides = Overrides {
        database_url: Some(spec.database.url.clone()),
        listen: Some("127.0.0.1:0".to_owned()),
        api_key: Some(random_secret()),
        jwt_secret: Some(random_secret()),
        kafka_environment,
        ..Overrides::default()
    };
    let topics = serde_json::to_string(spec.topics).expect("topic names serialise");
    let file: ConfigFile = serde_yaml::from_str(&format!(
        "batch_size: {}\nkafka:\n  topics:\n    names: {topics}\n",
        spec.batch_size
    ))
    .map_err(|error| BenchError::Setup(format!("bench config: {error}")))?;
    let mut settings =
        Settings::resolve(overrides, file).map_err(|error| BenchError::Setup(error.to_string()))?;
    // Never the working directory's routes or migrations: the bench measures known routes.
    settings.routes = match spec.workload.routes_yaml() {
        None => Source::Bundled,
        Some(yaml) => {
            let dir: PathBuf = spec.dir.join("routes");
            std::fs::create_dir_all(&dir)
                .and_then(|()| std::fs::write(dir.join("bench.yaml"), yaml))
                .map_err(|error| {
                    BenchError::Setup(format!("cannot write the bench routes: {error}"))
                })?;
            Source::Directory(dir)
        }
    };
    settings.schemas = Source::Bundled;
    settings.migrations = None;
    Ok(settings)
}

fn random_secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// The daemon, running in this process.
pub struct RunningDaemon {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Follows the cascades the bench starts.
    pub tracker: CascadeTracker,
    /// The bench's own connection to the daemon's database.
    pub store: Store,
    signal: LogSignal,
    api_key: String,
    http: reqwest::Client,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), AppError>>,
}

impl RunningDaemon {
    /// Builds and starts the daemon; `follow_emitted` as in [`CascadeTracker::spawn`].
    /// `expected` are cascades already on their way (in Kafka), timed from their first commit.
    pub async fn start(
        settings: Settings,
        follow_emitted: bool,
        expected: &[Event],
    ) -> Result<Self, BenchError> {
        let api_key = settings.api_key.clone().expect("the bench sets an API key");
        let store = Store::connect(&settings.database_url).await?;
        let mut application = Application::build(settings, None).await?;
        let tracker = CascadeTracker::spawn(application.observe_commits(), follow_emitted);
        let now = Instant::now();
        for event in expected {
            tracker.start(&event.envelope.event_id, now);
        }
        let signal = application.log_signal();
        let base = format!("http://{}", application.local_addr());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(application.run(shutdown.clone()));
        Ok(Self {
            base,
            tracker,
            store,
            signal,
            api_key,
            http: reqwest::Client::new(),
            shutdown,
            task,
        })
    }

    /// Submits an event through `POST /api/events/{topic}` and starts its cascade's clock just
    /// before sending, so the latency includes the request and the event's own commit.
    pub async fn submit(&self, event: &Event) -> Result<(), BenchError> {
        self.tracker.start(&event.envelope.event_id, Instant::now());
        let response = self
            .http
            .post(format!("{}/api/events/{}", self.base, event.topic))
            .header("X-API-Key", &self.api_key)
            .json(&serde_json::json!({
                "eventId": event.envelope.event_id,
                "eventType": event.envelope.event_type,
                "key": event.key,
                "data": event.envelope.data,
            }))
            .send()
            .await
            .map_err(|error| BenchError::Daemon(format!("POST /api/events failed: {error}")))?;
        if response.status() != reqwest::StatusCode::ACCEPTED {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            return Err(BenchError::Daemon(format!(
                "POST /api/events answered {status}: {body}"
            )));
        }
        Ok(())
    }

    /// Appends `events` to the log in one transaction, as if a producer had committed them all
    /// at once, and wakes the daemon. Returns the instant right after the commit.
    pub async fn append_at_once(&self, events: &[Event]) -> Result<Instant, BenchError> {
        // Registered before the commit, so no report can come before its cascade is known;
        // throughput is timed from the returned instant, not from these.
        let registered = Instant::now();
        for event in events {
            self.tracker.start(&event.envelope.event_id, registered);
        }
        let mut transaction = self.store.begin().await?;
        log::append_all(&mut transaction, events)
            .await
            .map_err(crate::store::StoreError::from)?;
        transaction
            .commit()
            .await
            .map_err(crate::store::StoreError::from)?;
        let committed = Instant::now();
        self.signal.notify_one();
        Ok(committed)
    }

    /// Runs `sql` (one integer column, one row) on the daemon's database.
    pub async fn count(&self, sql: &str) -> Result<i64, BenchError> {
        let row = db::query(sql)
            .fetch_one(self.store.reader())
            .await
            .map_err(crate::store::StoreError::from)?;
        Ok(row
            .try_get::<i64, _>(0)
            .map_err(crate::store::StoreError::from)?)
    }

    /// Stops the daemon the way SIGTERM does and waits for it.
    pub async fn stop(self) -> Result<(), BenchError> {
        self.shutdown.cancel();
        let ended = self
            .task
            .await
            .map_err(|error| BenchError::Daemon(error.to_string()))?;
        self.store.close().await;
        ended?;
        Ok(())
    }
}

/// How long the bench waits for `events` cascades before it calls the run failed.
pub fn patience(events: usize) -> Duration {
    // Far beyond any plausible rate (100 cascades/s), so only a stall trips it.
    Duration::from_secs(60 + events as u64 / 100)
}
