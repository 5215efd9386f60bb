//! The outbox relay: publishes the event log's unpublished rows to Kafka, in `seq` order, with
//! the idempotent producer, and marks each row published only on its delivery report.
//!
//! `message.timeout.ms` is 0 (never give up): while Kafka is down, librdkafka keeps the batch
//! in flight and retries it in order, the rows stay unpublished in the database, and the REST
//! layer and routes keep appending behind them. When Kafka returns, the backlog drains by
//! itself. A crash between delivery and marking re-sends those events; consumers claim event
//! ids, so the copy is a no-op.
//!
//! Several instances may share one database; only the one holding the relay's exclusive lock
//! publishes, the others stand by and take over when it stops. One publisher at a time is what
//! keeps each key's events in log order on Kafka (rows split between publishers, as with
//! `FOR UPDATE SKIP LOCKED`, could overtake each other).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio_util::sync::CancellationToken;

use super::connect;
use super::settings::KafkaSettings;
use crate::engine::LogSignal;
use crate::event::{Delivery, Origin};
use crate::store::dead_letters;
use crate::store::exclusive::{ExclusiveLock, Job};
use crate::store::log;
use crate::store::{Store, StoreError};
use crate::template::now_rfc3339;

/// Rows published per round.
const BATCH: i64 = 500;

/// How often a standing-by relay tries the lock, and a publishing one checks it still holds it.
const LOCK_CHECK: Duration = Duration::from_secs(1);

/// Sleeps for `duration` or until shutdown.
async fn wait(duration: Duration, shutdown: &CancellationToken) {
    tokio::select! {
        _ = tokio::time::sleep(duration) => {}
        _ = shutdown.cancelled() => {}
    }
}

/// What `/readyz` and the logs need to know about publishing.
#[derive(Debug, Default)]
pub struct RelayHealth {
    backlog: AtomicI64,
    broker_error: Mutex<Option<String>>,
}

impl RelayHealth {
    /// Events in the outbox not yet acknowledged by Kafka (as of the last round).
    pub fn backlog(&self) -> i64 {
        self.backlog.load(Ordering::Relaxed)
    }

    /// The broker problem reported since the last successful delivery.
    pub fn broker_error(&self) -> Option<String> {
        self.broker_error.lock().expect("health lock").clone()
    }

    fn set_error(&self, error: Option<String>) {
        *self.broker_error.lock().expect("health lock") = error;
    }
}

/// Reports librdkafka's connection errors as the guide's log line and into the health.
#[derive(Clone)]
pub struct ReportingContext {
    /// Where broker errors go.
    pub health: Arc<RelayHealth>,
}

impl ClientContext for ReportingContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        // Connection trouble also arrives through `error`, which logs it once with a hint;
        // librdkafka's own lines stay at debug so an outage does not flood the log.
        tracing::debug!(facility = fac, ?level, "librdkafka: {log_message}");
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let first = self.health.broker_error().is_none();
        self.health.set_error(Some(reason.to_owned()));
        if first {
            connect::log_failure(reason);
        } else {
            tracing::debug!(%error, "Kafka still unreachable: {reason}");
        }
    }
}

/// The producer the relay uses.
pub type RelayProducer = FutureProducer<ReportingContext>;

/// Builds the idempotent producer.
pub fn producer(
    settings: &KafkaSettings,
    health: Arc<RelayHealth>,
) -> Result<RelayProducer, KafkaError> {
    let mut config = settings.client_config();
    config
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("message.timeout.ms", "0")
        .set(
            "message.max.bytes",
            settings.topics.max_message_bytes.to_string(),
        )
        // The partitioner of the Java and KafkaJS clients, so one key lands in one partition
        // whoever produced it.
        .set("partitioner", "murmur2_random");
    if config.get("linger.ms").is_none() {
        config.set("linger.ms", "5");
    }
    config.create_with_context(ReportingContext { health })
}

/// Publishes the outbox.
pub struct Relay {
    store: Store,
    producer: RelayProducer,
    signal: LogSignal,
    health: Arc<RelayHealth>,
    max_message_bytes: usize,
}

impl Relay {
    /// A relay over `store`'s event log.
    pub fn new(
        store: Store,
        producer: RelayProducer,
        signal: LogSignal,
        health: Arc<RelayHealth>,
        max_message_bytes: usize,
    ) -> Self {
        Self {
            store,
            producer,
            signal,
            health,
            max_message_bytes,
        }
    }

    /// Publishes until `shutdown` while this process holds the relay lock, standing by while
    /// another holds it. Then, if it was publishing, it flushes the outbox: rounds run until
    /// nothing is left or Kafka stops taking events. The caller cancels `shutdown` once the
    /// consumer has stopped, so that includes what the last batch emitted, and bounds the flush
    /// with its own deadline; what is left then is published on the next start.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut lock: Option<(ExclusiveLock, Instant)> = None;
        let mut standing_by = false;
        while !shutdown.is_cancelled() {
            match &mut lock {
                None => match self.store.try_lock(Job::Relay).await {
                    Ok(Some(taken)) => {
                        tracing::info!("this instance publishes the outbox to Kafka");
                        lock = Some((taken, Instant::now()));
                        standing_by = false;
                    }
                    Ok(None) => {
                        if !standing_by {
                            tracing::info!(
                                "another instance publishes the outbox to Kafka; standing by"
                            );
                            standing_by = true;
                        }
                        wait(LOCK_CHECK, &shutdown).await;
                        continue;
                    }
                    Err(error) => {
                        tracing::error!(%error, "outbox relay cannot reach the database; retrying");
                        wait(LOCK_CHECK, &shutdown).await;
                        continue;
                    }
                },
                // A PostgreSQL lock lasts as long as its session: if the session broke,
                // another instance may be publishing already.
                Some((held, checked)) if checked.elapsed() >= LOCK_CHECK => {
                    if let Err(error) = held.check().await {
                        tracing::warn!(%error, "the outbox lock's database session broke; taking the lock again before publishing");
                        lock = None;
                        continue;
                    }
                    *checked = Instant::now();
                }
                Some(_) => {}
            }
            match self.round(&shutdown).await {
                Ok(0) => {
                    tokio::select! {
                        _ = self.signal.notified() => {}
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = shutdown.cancelled() => {}
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::error!(%error, "outbox relay cannot reach the database; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                        _ = shutdown.cancelled() => {}
                    }
                }
            }
        }
        if lock.is_some() {
            self.flush().await;
        }
    }

    /// Publishes until the outbox is empty or a round moves nothing.
    async fn flush(&self) {
        let uninterrupted = CancellationToken::new();
        let mut flushed = 0;
        loop {
            match self.round(&uninterrupted).await {
                Ok(0) => break,
                Ok(settled) => flushed += settled,
                Err(error) => {
                    tracing::warn!(%error, "cannot flush the outbox; the rest is published on the next start");
                    return;
                }
            }
        }
        let left = self.health.backlog();
        if left == 0 {
            tracing::info!(flushed, "outbox flushed to Kafka");
        } else {
            tracing::warn!(
                flushed,
                left,
                "Kafka took no more events; the rest of the outbox is published on the next start"
            );
        }
    }

    /// Sends one batch and waits for its delivery reports. Returns how many rows it settled.
    async fn round(&self, shutdown: &CancellationToken) -> Result<usize, StoreError> {
        let backlog = log::unpublished_count(self.store.reader()).await?;
        self.health.backlog.store(backlog, Ordering::Relaxed);
        crate::telemetry::outbox_backlog(backlog);
        if backlog == 0 {
            return Ok(0);
        }
        let rows = log::unpublished(self.store.reader(), BATCH).await?;
        let mut deliveries = Vec::with_capacity(rows.len());
        let mut refused = Vec::new();
        let mut stalled: Option<KafkaError> = None;
        for row in &rows {
            if row.envelope.len() > self.max_message_bytes {
                refused.push((row, format!(
                    "the event is {} bytes, over the topic's max.message.bytes of {}; it was not published",
                    row.envelope.len(),
                    self.max_message_bytes
                )));
                continue;
            }
            let record = FutureRecord::to(&row.topic)
                .key(row.key.as_bytes())
                .payload(row.envelope.as_bytes());
            match self.producer.send_result(record) {
                Ok(delivery) => deliveries.push((row, delivery)),
                Err((error, _)) if connect::is_message_error(&error) => {
                    refused.push((row, format!("Kafka refused the event: {error}")));
                }
                Err((error, _)) => {
                    // A full local queue (or a broken producer): wait for what is in flight,
                    // and continue from this row in order next round.
                    stalled = Some(error);
                    break;
                }
            }
        }
        // Every delivery is awaited, so rows after a failed one are not re-sent ahead of it.
        let mut published = Vec::new();
        for (row, delivery) in deliveries {
            // Not cut short at shutdown: a delivery in flight that is not marked would be sent
            // again by the flush. The daemon's grace period bounds the wait.
            let outcome = delivery.await;
            match outcome {
                Ok(Ok(delivered)) => {
                    // The guide's line means Kafka has the event (with Kafka on, a commit only
                    // queues it: `engine::log_committed`).
                    tracing::info!(
                        topic = %row.topic,
                        partition = delivered.partition,
                        offset = delivered.offset,
                        "📤 Event published: {} to topic {}",
                        row.event_type,
                        row.topic
                    );
                    published.push(row.seq);
                }
                Ok(Err((error, _))) if connect::is_message_error(&error) => {
                    refused.push((row, format!("Kafka refused the event: {error}")));
                }
                Ok(Err((error, _))) => {
                    // Only cluster-wide errors reach here (timeouts are disabled): keep the row
                    // for the next round and report it.
                    tracing::error!(%error, seq = row.seq, topic = %row.topic, "publishing failed; will retry");
                    stalled = Some(error);
                }
                Err(_) => stalled = Some(KafkaError::Canceled),
            }
        }
        if let Some(error) = &stalled {
            // A full local queue is back-pressure, not a broker problem.
            if error.rdkafka_error_code() != Some(RDKafkaErrorCode::QueueFull) {
                self.health.set_error(Some(error.to_string()));
            }
        }
        if !published.is_empty() {
            self.health.set_error(None);
        }
        let settled = published.len() + refused.len();
        let mut transaction = self.store.begin().await?;
        for (row, reason) in &refused {
            let delivery = Delivery::new(
                Origin::Log(row.seq),
                row.topic.clone(),
                row.key.clone(),
                row.envelope.clone(),
            );
            dead_letters::refuse(
                &mut transaction,
                &delivery,
                Some(dead_letters::STAGE_PUBLISH),
                reason,
            )
            .await?;
            tracing::warn!(seq = row.seq, topic = %row.topic, "{reason}");
            published.push(row.seq);
        }
        log::mark_published(&mut transaction, &published, &now_rfc3339()).await?;
        transaction.commit().await?;
        if stalled.is_some() && settled == 0 {
            // Nothing moved: back off instead of spinning on the same rows.
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.cancelled() => {}
            }
        }
        Ok(settled)
    }
}
