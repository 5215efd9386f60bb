//! `crm-router bench`: measures the daemon on this machine, each variant on a database of its
//! own, and reports events/s, rows/s, event→effect latency and peak memory.
//!
//! Each variant runs in a child process (`crm-router bench --child`), so its peak RSS is its
//! own and a failed variant cannot disturb the next. Inside, the daemon is the real
//! [`Application`](crate::app::Application) on a real port; the bench watches its commits
//! through [`Engine::observe_commits`](crate::engine::Engine::observe_commits), which is how it
//! knows when a cascade's last effect committed without polling the database.

mod broker;
pub mod report;
mod rest;
mod scenario;
pub mod seed;
mod tracker;
mod workload;

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use report::{Outcome, VariantReport};
use scenario::{Backend, IsolatedDatabase, RunningDaemon, ScenarioSpec};
use tracker::{latency_histogram, Percentiles};
use workload::{Workload, EMIT_INPUT, EMIT_OUTPUT};

/// Cascades sent (and waited for) before the clock starts: connections, statements and, on
/// Kafka, the consumer group are ready by then.
const WARM_UP: usize = 50;

/// Customers the REST read variant lists from.
const REST_CUSTOMERS: usize = 1_000;

/// A measured configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    /// Embedded bus, SQLite: `USER_CREATED` through one insert route.
    SqliteInsert,
    /// Embedded bus, SQLite: the bundled cascade.
    SqliteCascade,
    /// Embedded bus, PostgreSQL: the bundled cascade.
    PostgresCascade,
    /// Kafka and SQLite: the bundled cascade.
    KafkaSqliteCascade,
    /// Kafka and PostgreSQL: the bundled cascade.
    KafkaPostgresCascade,
    /// Kafka and SQLite: one emit route (consume, template, produce), beside what the broker
    /// accepts from a bare producer.
    KafkaEmit,
    /// Authenticated `GET /api/customers` on SQLite.
    RestRead,
}

impl Variant {
    /// Every variant, in the order they run.
    pub const ALL: [Variant; 7] = [
        Self::SqliteInsert,
        Self::SqliteCascade,
        Self::PostgresCascade,
        Self::KafkaSqliteCascade,
        Self::KafkaPostgresCascade,
        Self::KafkaEmit,
        Self::RestRead,
    ];

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::SqliteInsert => "sqlite-insert",
            Self::SqliteCascade => "sqlite-cascade",
            Self::PostgresCascade => "postgres-cascade",
            Self::KafkaSqliteCascade => "kafka-sqlite-cascade",
            Self::KafkaPostgresCascade => "kafka-postgres-cascade",
            Self::KafkaEmit => "kafka-emit",
            Self::RestRead => "rest-read",
        }
    }

    fn backend(self) -> Backend {
        match self {
            Self::PostgresCascade | Self::KafkaPostgresCascade => Backend::Postgres,
            _ => Backend::Sqlite,
        }
    }

    fn uses_kafka(self) -> bool {
        matches!(
            self,
            Self::KafkaSqliteCascade | Self::KafkaPostgresCascade | Self::KafkaEmit
        )
    }

    fn workload(self) -> Workload {
        match self {
            Self::SqliteInsert => Workload::InsertRoute,
            Self::KafkaEmit => Workload::EmitOnly,
            _ => Workload::Cascade,
        }
    }
}

/// How much to run and against what.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchOptions {
    /// Events (cascades) in the throughput phase.
    pub events: usize,
    /// Cascades in the latency phase.
    pub latency_events: usize,
    /// Their rate, per second.
    pub latency_rate: u32,
    /// Length of the REST read load.
    #[serde(with = "humantime_serde")]
    pub rest_duration: Duration,
    /// Concurrent REST clients.
    pub rest_connections: usize,
    /// A PostgreSQL server where the bench may create and drop databases.
    pub postgres_url: String,
    /// Kafka bootstrap servers.
    pub kafka_brokers: String,
    /// The daemon's `batch_size`.
    pub batch_size: usize,
}

/// Why a variant could not be measured.
#[derive(Debug, Error)]
pub enum BenchError {
    /// The bench could not prepare the run.
    #[error("setup: {0}")]
    Setup(String),
    /// PostgreSQL is unreachable or refused.
    #[error("PostgreSQL: {0}")]
    Postgres(String),
    /// Kafka is unreachable or refused.
    #[error("Kafka: {0}")]
    Kafka(String),
    /// The daemon failed to start.
    #[error(transparent)]
    App(#[from] crate::app::AppError),
    /// A database query of the bench failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The daemon answered wrongly or stopped.
    #[error("daemon: {0}")]
    Daemon(String),
    /// Cascades did not complete in time.
    #[error("{left} of {started} cascades did not complete within {waited:?}")]
    Stalled {
        /// Not complete.
        left: usize,
        /// Started.
        started: usize,
        /// How long the bench waited.
        waited: Duration,
    },
    /// The run finished but left the wrong rows behind: the numbers would be meaningless.
    #[error("the run left wrong results: {0}")]
    WrongResult(String),
}

/// Runs `variants`, each in a child process, and returns their outcomes in order. `explicit`
/// says the user named them: a variant whose PostgreSQL or Kafka is unreachable then fails
/// instead of being skipped.
pub async fn run(variants: &[Variant], options: &BenchOptions, explicit: bool) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    for &variant in variants {
        if let Some(reason) = unavailable(variant, options).await {
            outcomes.push(if explicit {
                Outcome::Failed {
                    variant,
                    reason: reason.clone(),
                }
            } else {
                Outcome::Skipped { variant, reason }
            });
            continue;
        }
        eprintln!("bench: running {} …", variant.name());
        outcomes.push(run_child(variant, options).await);
    }
    outcomes
}

/// Why a variant's services are not there, if they are not.
async fn unavailable(variant: Variant, options: &BenchOptions) -> Option<String> {
    if variant.backend() == Backend::Postgres {
        let connect_options =
            match crate::store::postgres_tls::connect_options(&options.postgres_url) {
                Ok(connect_options) => connect_options,
                Err(error) => {
                    return Some(format!(
                        "cannot use PostgreSQL at {}: {error}",
                        crate::store::redact_url(&options.postgres_url)
                    ))
                }
            };
        let connected = tokio::time::timeout(
            Duration::from_secs(5),
            <sqlx::PgConnection as sqlx::Connection>::connect_with(&connect_options),
        )
        .await;
        match connected {
            Ok(Ok(connection)) => {
                let _ = sqlx::Connection::close(connection).await;
            }
            Ok(Err(error)) => {
                return Some(format!(
                    "PostgreSQL at {} is unreachable ({error}); set --postgres-url",
                    crate::store::redact_url(&options.postgres_url)
                ))
            }
            Err(_) => {
                return Some(format!(
                    "PostgreSQL at {} does not answer; set --postgres-url",
                    crate::store::redact_url(&options.postgres_url)
                ))
            }
        }
    }
    if variant.uses_kafka() {
        let broker = options
            .kafka_brokers
            .split(',')
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned();
        let connected = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::net::TcpStream::connect(&broker),
        )
        .await;
        if !matches!(connected, Ok(Ok(_))) {
            return Some(format!(
                "no Kafka broker at {broker}; start one (see BENCHMARKS.md) or set --kafka-brokers"
            ));
        }
    }
    None
}

/// What a child process receives on its command line.
#[derive(Debug, Serialize, Deserialize)]
pub struct ChildRequest {
    /// The variant to run.
    pub variant: Variant,
    /// The options.
    pub options: BenchOptions,
}

/// Runs `command` to its end and returns what it wrote to stdout, while its stderr goes to
/// ours. (`Command::output` pipes stderr too, whatever the command says, and the child's logs
/// and errors would be lost.)
pub(crate) async fn output_beside_stderr(
    command: &mut tokio::process::Command,
) -> std::io::Result<std::process::Output> {
    command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?
        .wait_with_output()
        .await
}

async fn run_child(variant: Variant, options: &BenchOptions) -> Outcome {
    let failed = |reason: String| Outcome::Failed { variant, reason };
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(error) => return failed(format!("cannot find the crm-router binary: {error}")),
    };
    let request = serde_json::to_string(&ChildRequest {
        variant,
        options: options.clone(),
    })
    .expect("bench options serialise");
    let output = output_beside_stderr(
        tokio::process::Command::new(exe)
            .args(["bench", "--child", &request])
            .stdin(Stdio::null())
            .kill_on_drop(true),
    )
    .await;
    let output = match output {
        Ok(output) => output,
        Err(error) => return failed(format!("cannot start the bench process: {error}")),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    match stdout.lines().last().map(serde_json::from_str::<Outcome>) {
        Some(Ok(outcome)) => outcome,
        _ => failed(format!(
            "the bench process ended with {} and no report",
            output.status
        )),
    }
}

/// Runs one variant in this process (the child's side of [`run`]).
pub async fn run_variant(variant: Variant, options: &BenchOptions) -> Outcome {
    let dir = match tempfile::Builder::new()
        .prefix("crm-router-bench")
        .tempdir()
    {
        Ok(dir) => dir,
        Err(error) => {
            return Outcome::Failed {
                variant,
                reason: format!("cannot create a temporary directory: {error}"),
            }
        }
    };
    let database = match IsolatedDatabase::create(
        variant.backend(),
        dir.path(),
        &options.postgres_url,
        "crm_router_bench",
    )
    .await
    {
        Ok(database) => database,
        Err(error) => {
            return Outcome::Failed {
                variant,
                reason: error.to_string(),
            }
        }
    };
    let measured = match variant {
        Variant::RestRead => rest_variant(options, &database, dir.path()).await,
        Variant::KafkaEmit => emit_variant(options, &database, dir.path()).await,
        _ => routed_variant(variant, options, &database, dir.path()).await,
    };
    database.remove().await;
    match measured {
        Ok(mut report) => {
            report.peak_rss_mib = report::peak_rss_mib();
            Outcome::Measured(report)
        }
        Err(error) => Outcome::Failed {
            variant,
            reason: error.to_string(),
        },
    }
}

/// The topics the daemon consumes on Kafka.
fn kafka_topics(workload: Workload) -> Vec<String> {
    match workload {
        Workload::EmitOnly => vec![EMIT_INPUT.to_owned()],
        _ => crate::kafka::settings::TopicsConfig::default().names,
    }
}

/// Prepares the settings, and on Kafka the topics and the group's start.
async fn prepare(
    variant: Variant,
    options: &BenchOptions,
    database: &IsolatedDatabase,
    dir: &std::path::Path,
) -> Result<crate::config::Settings, BenchError> {
    let workload = variant.workload();
    let topics = kafka_topics(workload);
    let settings = scenario::settings(&ScenarioSpec {
        workload,
        database,
        kafka_brokers: variant
            .uses_kafka()
            .then_some(options.kafka_brokers.as_str()),
        topics: &topics,
        batch_size: options.batch_size,
        dir,
    })?;
    if let Some(kafka) = &settings.kafka {
        let mut created = topics.clone();
        if workload == Workload::EmitOnly {
            created.push(EMIT_OUTPUT.to_owned());
        }
        broker::create_topics(kafka, &created).await?;
        let store = crate::app::open_store(&settings).await?;
        broker::start_at_end(kafka, &store, &topics).await?;
        store.close().await;
    }
    Ok(settings)
}

/// Insert route and cascades: warm up, then the throughput phase, then the latency phase.
async fn routed_variant(
    variant: Variant,
    options: &BenchOptions,
    database: &IsolatedDatabase,
    dir: &std::path::Path,
) -> Result<VariantReport, BenchError> {
    let workload = variant.workload();
    let settings = prepare(variant, options, database, dir).await?;
    let daemon = RunningDaemon::start(settings, workload.follows_emitted(), &[]).await?;
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let warm_up: Vec<_> = (0..WARM_UP)
        .map(|n| workload.event(&format!("{run}w"), n))
        .collect();
    for event in &warm_up {
        daemon.submit(event).await?;
    }
    wait(&daemon, WARM_UP).await?;

    let before = row_counts(&daemon, workload).await?;
    let events: Vec<_> = (0..options.events)
        .map(|n| workload.event(&run, n))
        .collect();
    let started = daemon.append_at_once(&events).await?;
    let completed = wait(&daemon, options.events).await?;
    let finished = completed.iter().map(|(at, _)| *at).max().unwrap_or(started);
    let elapsed = finished.saturating_duration_since(started);
    let after = row_counts(&daemon, workload).await?;
    let rows: i64 = after.iter().zip(&before).map(|(a, b)| a - b).sum();

    let (daemon, latency, achieved_rate) = latency_phase(daemon, workload, &run, options).await?;

    let total = (WARM_UP + options.events + options.latency_events) as i64;
    check_rows(&daemon, workload, total).await?;
    daemon.stop().await?;
    let seconds = elapsed.as_secs_f64().max(1e-9);
    Ok(VariantReport {
        variant,
        events: options.events as u64,
        seconds,
        events_per_second: options.events as f64 / seconds,
        rows_written: rows.max(0) as u64,
        rows_per_second: rows.max(0) as f64 / seconds,
        latency,
        latency_rate: achieved_rate,
        broker_events_per_second: None,
        peak_rss_mib: None,
    })
}

/// Sends `latency_events` cascades at `latency_rate` through `POST /api/events`, each timed
/// from just before its request to its cascade's last commit.
async fn latency_phase(
    daemon: RunningDaemon,
    workload: Workload,
    run: &str,
    options: &BenchOptions,
) -> Result<(RunningDaemon, Option<Percentiles>, Option<f64>), BenchError> {
    if options.latency_events == 0 || options.latency_rate == 0 {
        return Ok((daemon, None, None));
    }
    let daemon = Arc::new(daemon);
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(
        1.0 / f64::from(options.latency_rate),
    ));
    let mut sent = tokio::task::JoinSet::new();
    let started = Instant::now();
    for n in 0..options.latency_events {
        ticks.tick().await;
        let (daemon, event) = (daemon.clone(), workload.event(&format!("{run}l"), n));
        sent.spawn(async move { daemon.submit(&event).await });
    }
    while let Some(result) = sent.join_next().await {
        result.map_err(|error| BenchError::Daemon(error.to_string()))??;
    }
    let achieved = options.latency_events as f64 / started.elapsed().as_secs_f64();
    let completed = wait(&daemon, options.latency_events).await?;
    let mut histogram = latency_histogram();
    for (_, latency) in &completed {
        histogram.saturating_record(latency.as_micros() as u64);
    }
    let daemon = Arc::into_inner(daemon).expect("every submission finished");
    Ok((daemon, Some(Percentiles::of(&histogram)), Some(achieved)))
}

/// The emit-only route on Kafka, beside a bare producer's rate.
async fn emit_variant(
    options: &BenchOptions,
    database: &IsolatedDatabase,
    dir: &std::path::Path,
) -> Result<VariantReport, BenchError> {
    let variant = Variant::KafkaEmit;
    let workload = variant.workload();
    let settings = prepare(variant, options, database, dir).await?;
    let kafka = settings.kafka.clone().expect("a Kafka variant");
    let events: Vec<_> = (0..options.events)
        .map(|n| workload.event("emit", n))
        .collect();
    // What the broker takes from the relay's producer settings, with nothing else running;
    // these messages are then the route's input.
    let produced_in = broker::produce_all(&kafka, &events).await?;
    let daemon = RunningDaemon::start(settings, false, &events).await?;
    let completed = wait(&daemon, options.events).await?;
    // Published too: the outbox is empty once Kafka acknowledged every PONG.
    let deadline = Instant::now() + scenario::patience(options.events);
    let drained = loop {
        let left = crate::store::log::unpublished_count(daemon.store.reader()).await?;
        if left == 0 {
            break Instant::now();
        }
        if Instant::now() > deadline {
            return Err(BenchError::Stalled {
                left: left as usize,
                started: options.events,
                waited: scenario::patience(options.events),
            });
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    // The clock starts at the first commit, which leaves the consumer group's join out; the
    // events that commit applied are left out of the count with it.
    let first = completed
        .iter()
        .map(|(at, _)| *at)
        .min()
        .expect("events completed");
    let in_first = completed.iter().filter(|(at, _)| *at == first).count();
    let counted = options.events - in_first;
    let seconds = drained
        .saturating_duration_since(first)
        .as_secs_f64()
        .max(1e-9);
    check_rows(&daemon, workload, options.events as i64).await?;
    daemon.stop().await?;
    Ok(VariantReport {
        variant,
        events: counted as u64,
        seconds,
        events_per_second: counted as f64 / seconds,
        rows_written: counted as u64,
        rows_per_second: counted as f64 / seconds,
        latency: None,
        latency_rate: None,
        broker_events_per_second: Some(options.events as f64 / produced_in.as_secs_f64().max(1e-9)),
        peak_rss_mib: None,
    })
}

/// Authenticated reads of the customer list.
async fn rest_variant(
    options: &BenchOptions,
    database: &IsolatedDatabase,
    dir: &std::path::Path,
) -> Result<VariantReport, BenchError> {
    let variant = Variant::RestRead;
    let settings = prepare(variant, options, database, dir).await?;
    let store = crate::app::open_store(&settings).await?;
    rest::register_admin(&store).await?;
    store.close().await;
    let daemon = RunningDaemon::start(settings, true, &[]).await?;
    let customers: Vec<_> = (0..REST_CUSTOMERS)
        .map(|n| Workload::Cascade.event("rest", n))
        .collect();
    daemon.append_at_once(&customers).await?;
    wait(&daemon, REST_CUSTOMERS).await?;
    let token = rest::log_in(&daemon).await?;
    let load = rest::read_load(
        &daemon,
        &token,
        options.rest_connections,
        options.rest_duration,
    )
    .await?;
    daemon.stop().await?;
    let seconds = load.elapsed.as_secs_f64();
    Ok(VariantReport {
        variant,
        events: load.requests,
        seconds,
        events_per_second: load.requests as f64 / seconds,
        rows_written: 0,
        rows_per_second: 0.0,
        latency: Some(Percentiles::of(&load.latencies)),
        latency_rate: None,
        broker_events_per_second: None,
        peak_rss_mib: None,
    })
}

async fn wait(
    daemon: &RunningDaemon,
    started: usize,
) -> Result<Vec<(Instant, Duration)>, BenchError> {
    let waited = scenario::patience(started);
    daemon
        .tracker
        .wait_all(waited)
        .await
        .map_err(|left| BenchError::Stalled {
            left,
            started,
            waited,
        })
}

async fn row_counts(daemon: &RunningDaemon, workload: Workload) -> Result<Vec<i64>, BenchError> {
    let mut counts = Vec::new();
    for (_, sql) in workload.row_counts() {
        counts.push(daemon.count(sql).await?);
    }
    Ok(counts)
}

/// Every cascade left exactly its rows, and nothing was dead-lettered.
async fn check_rows(
    daemon: &RunningDaemon,
    workload: Workload,
    cascades: i64,
) -> Result<(), BenchError> {
    let letters = daemon.count("SELECT COUNT(*) FROM dead_letters").await?;
    if letters != 0 {
        return Err(BenchError::WrongResult(format!(
            "{letters} dead letters; see `crm-router dlq list`"
        )));
    }
    let counts = row_counts(daemon, workload).await?;
    for (((what, _), found), expected) in workload
        .row_counts()
        .iter()
        .zip(counts)
        .zip(workload.expected_rows(cascades))
    {
        if found != expected {
            return Err(BenchError::WrongResult(format!(
                "{found} {what}, expected {expected}"
            )));
        }
    }
    Ok(())
}
