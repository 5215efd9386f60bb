//! The consumer: reads events in order, runs the matching routes, and commits their effects,
//! their emitted events and the new consumer position in one transaction per batch.
//!
//! Failure handling: a route that fails with a retryable error stops the batch just before its
//! event (everything earlier commits); that event is then retried alone with backoff, each
//! attempt in a fresh transaction, and the reloaded route set is used for each attempt. When a
//! route's attempts are used up (or its error is permanent), only that route's effects are
//! rolled back and a dead letter is written in their place, in the same transaction that
//! advances the position: the stream moves on and nothing is lost.

mod batch;
pub mod commits;
mod handle;
mod lockstep;
pub mod replay;
pub mod retry;
pub mod schedule;
pub mod simulate;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::event::{Delivery, Event};
use crate::route::RouteSet;
use crate::store::log::{self, EMBEDDED_STREAM};
use crate::store::{Store, StoreError};
pub use handle::{handle_delivery, Attempt, Handled, Interrupt, Retry};

/// The live route set; swapped whole on reload, read once per batch.
pub type RouteSetHandle = Arc<ArcSwap<RouteSet>>;

/// Wakes the consumer when an event is appended in this process, so there is no polling delay.
pub type LogSignal = Arc<Notify>;

/// Delay before retrying after the database itself failed (not a route).
const STORE_RETRY: Duration = Duration::from_millis(500);

/// A stream whose position the engine stores with the effects: the embedded log, or one Kafka
/// partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stream {
    /// `__event_log`, or the Kafka topic.
    pub name: String,
    /// 0 for the embedded log.
    pub partition: i64,
}

impl Stream {
    /// The embedded event log.
    pub fn embedded() -> Self {
        Self {
            name: EMBEDDED_STREAM.to_owned(),
            partition: 0,
        }
    }

    /// One partition of a Kafka topic.
    pub fn kafka(topic: &str, partition: i32) -> Self {
        Self {
            name: topic.to_owned(),
            partition: i64::from(partition),
        }
    }
}

/// What one batch achieved.
#[derive(Debug)]
pub enum BatchOutcome {
    /// Every record was handled; the stream is at this position.
    Done(i64),
    /// The stream moved to this position, and the event after it is to be retried alone.
    Retry(i64, Box<Delivery>, Retry),
}

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Consumer name under which positions are stored (`KAFKA_GROUP_ID` in Kafka mode).
    pub consumer: String,
    /// Most events per transaction.
    pub batch_size: usize,
}

/// Runs routes over the embedded event log.
pub struct Engine {
    store: Store,
    routes: RouteSetHandle,
    http: reqwest::Client,
    signal: LogSignal,
    options: EngineOptions,
    health: Arc<EngineHealth>,
    observer: Option<commits::CommitObserver>,
}

/// What `/readyz` needs to know about the engine.
#[derive(Debug, Default)]
pub struct EngineHealth {
    last_error: std::sync::Mutex<Option<String>>,
}

impl EngineHealth {
    /// The last database failure, cleared on the next successful commit or when the consumer
    /// reads the log and finds nothing left to do.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().expect("health lock").clone()
    }

    fn set(&self, error: Option<String>) {
        *self.last_error.lock().expect("health lock") = error;
    }
}

/// Whether committed events wait in the event log for Kafka (set once at start). The guide's
/// `📤 Event published` means the event is where consumers read it: on the embedded bus that is
/// the commit to the event log; on Kafka it is the broker's acknowledgement, which the relay
/// logs, so a commit only queues. A process-wide flag because only the wording of a log line
/// depends on it, at the seven places that commit events.
static QUEUED_FOR_KAFKA: AtomicBool = AtomicBool::new(false);

/// Says whether committed events are queued for Kafka from now on (see [`log_committed`]).
pub fn set_queued_for_kafka(queued: bool) {
    QUEUED_FOR_KAFKA.store(queued, Ordering::Relaxed);
}

/// Logs the events a commit appended to the event log: `📤 Event published` on the embedded
/// bus, `📮 Event queued for Kafka` when the Kafka relay still has to publish them.
pub fn log_committed(events: &[Event]) {
    let said = if QUEUED_FOR_KAFKA.load(Ordering::Relaxed) {
        "📮 Event queued for Kafka"
    } else {
        "📤 Event published"
    };
    for event in events {
        tracing::info!(
            topic = %event.topic,
            event_id = %event.envelope.event_id,
            "{said}: {} to topic {}",
            event.envelope.event_type,
            event.topic
        );
    }
}

impl Engine {
    /// An engine over `store`'s event log.
    pub fn new(
        store: Store,
        routes: RouteSetHandle,
        signal: LogSignal,
        options: EngineOptions,
    ) -> Self {
        Self {
            store,
            routes,
            http: crate::action::http_client(),
            signal,
            options,
            health: Arc::default(),
            observer: None,
        }
    }

    /// From now on, reports every commit with the events it applied (for `crm-router bench`).
    pub fn observe_commits(&mut self) -> commits::CommitReceiver {
        let (observer, receiver) = commits::CommitObserver::channel();
        self.observer = Some(observer);
        receiver
    }

    /// Health shared with the HTTP layer.
    pub fn health(&self) -> Arc<EngineHealth> {
        self.health.clone()
    }

    /// Consumes until `shutdown` is cancelled; the batch in flight always finishes first.
    ///
    /// Database failures never end the loop: the position is read again from the database
    /// and the batch redone once it answers, with `/readyz` reporting the failure meanwhile.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut position: Option<i64> = None;
        while !shutdown.is_cancelled() {
            let from = match position {
                Some(from) => from,
                None => match log::position(
                    self.store.reader(),
                    &self.options.consumer,
                    EMBEDDED_STREAM,
                    0,
                )
                .await
                {
                    Ok(from) => {
                        tracing::info!(position = from, consumer = %self.options.consumer, "event consumer at position");
                        position = Some(from);
                        from
                    }
                    Err(error) => {
                        self.store_failed(&error);
                        sleep_or_cancel(STORE_RETRY, &shutdown).await;
                        continue;
                    }
                },
            };
            let records =
                match log::read_after(self.store.reader(), from, self.options.batch_size as i64)
                    .await
                {
                    Ok(records) => records,
                    Err(error) => {
                        self.store_failed(&error);
                        sleep_or_cancel(STORE_RETRY, &shutdown).await;
                        continue;
                    }
                };
            if records.is_empty() {
                // The database answered and nothing is waiting: a failure reported earlier is
                // over. (A failed batch is read again, so only its commit clears its failure.)
                self.health.set(None);
                tokio::select! {
                    _ = self.signal.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown.cancelled() => {}
                }
                continue;
            }
            let stream = Stream::embedded();
            match self.run_batch(&stream, from, &records).await {
                Ok(BatchOutcome::Done(done)) => position = Some(done),
                Ok(BatchOutcome::Retry(done, record, retry)) => {
                    position = self
                        .retry_alone(&stream, done, &record, retry, &shutdown)
                        .await;
                }
                Err(error) => {
                    self.store_failed(&error);
                    position = None;
                    sleep_or_cancel(STORE_RETRY, &shutdown).await;
                }
            }
        }
        tracing::info!(?position, "event consumer stopped");
    }

    /// The database (for consumers outside this module).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Reports a failed batch to the logs and `/readyz`.
    pub fn report_store_failure(&self, error: &StoreError) {
        self.store_failed(error);
    }

    fn store_failed(&self, error: &StoreError) {
        if let StoreError::PositionMoved { .. } = error {
            // Not an outage: the batch rolled back and is redone from the stored position.
            tracing::warn!(%error, "batch abandoned; re-reading the consumer position");
            return;
        }
        tracing::error!(%error, "event consumer cannot reach the database; retrying");
        self.health.set(Some(error.to_string()));
    }

    /// Logs emitted events and, on the embedded bus, wakes the consumer for them (they are
    /// in the log it reads); with Kafka the relay publishes them.
    fn announce(&self, published: &[Event]) {
        if !published.is_empty() {
            self.signal.notify_one();
        }
        log_committed(published);
    }
}

/// Sleeps; false when cancelled first.
async fn sleep_or_cancel(duration: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(duration) => true,
        _ = shutdown.cancelled() => false,
    }
}
