//! The consumer: reads events in order, runs the matching routes, and commits their effects,
//! their emitted events and the new consumer position in one transaction per batch.
//!
//! Failure handling: a route that fails with a retryable error stops the batch just before its
//! event (everything earlier commits); that event is then retried alone with backoff, each
//! attempt in a fresh transaction, and the reloaded route set is used for each attempt. When a
//! route's attempts are used up (or its error is permanent), only that route's effects are
//! rolled back and a dead letter is written in their place, in the same transaction that
//! advances the position: the stream moves on and nothing is lost.

pub mod commits;
mod handle;
mod lockstep;
pub mod replay;
pub mod retry;
pub mod schedule;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::action::fold::Folds;
use crate::event::Event;
use crate::route::RouteSet;
use crate::store::log::{self, LogRecord, EMBEDDED_STREAM};
use crate::store::{Conn, Store, StoreError};
use commits::AppliedEvent;
pub use handle::{handle_record, Attempt, Handled, Retry};

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
    /// Kafka: positions are next offsets rather than log sequence numbers.
    pub kafka: bool,
}

impl Stream {
    /// The embedded event log.
    pub fn embedded() -> Self {
        Self {
            name: EMBEDDED_STREAM.to_owned(),
            partition: 0,
            kafka: false,
        }
    }

    /// One partition of a Kafka topic.
    pub fn kafka(topic: &str, partition: i32) -> Self {
        Self {
            name: topic.to_owned(),
            partition: i64::from(partition),
            kafka: true,
        }
    }

    /// The position to store once `record` is handled: the log's `seq`, or Kafka's next offset
    /// (what Kafka's own committed offsets mean too).
    pub fn position_after(&self, record: &LogRecord) -> i64 {
        if self.kafka {
            record.seq + 1
        } else {
            record.seq
        }
    }
}

/// What one batch achieved.
#[derive(Debug)]
pub enum BatchOutcome {
    /// Every record was handled; the stream is at this position.
    Done(i64),
    /// The stream moved to this position, and the record after it is to be retried alone.
    Retry(i64, LogRecord, Retry),
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

/// Logs what an event's commit published.
pub fn log_published(events: &[Event]) {
    for event in events {
        tracing::info!(
            topic = %event.topic,
            event_id = %event.envelope.event_id,
            "📤 Event published: {} to topic {}",
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

    /// Handles records of `stream` in one transaction, starting from the stored `position`.
    /// Everything before a record that needs a retry commits.
    ///
    /// The first pass runs routes without savepoints (two round trips fewer per route and
    /// event, and two per event). If any route fails in it, or anything would be
    /// dead-lettered, the whole transaction is rolled back and the batch is handled again
    /// guarded: each event in a savepoint and each route in one of its own, which is what
    /// undoes one route alone and dead-letters or retries it. The first pass turns guarded at
    /// the first event with an `http` route, so nothing after a request can abandon the pass
    /// and send it again.
    pub async fn run_batch(
        &self,
        stream: &Stream,
        position: i64,
        records: &[LogRecord],
    ) -> Result<BatchOutcome, StoreError> {
        let routes = self.routes.load_full();
        if let Ok(outcome) = self
            .apply_batch(stream, position, records, &routes, false)
            .await?
        {
            return Ok(outcome);
        }
        tracing::debug!("a route failed in the batch; handling it again route by route");
        Ok(self
            .apply_batch(stream, position, records, &routes, true)
            .await?
            .expect("a guarded pass is never abandoned"))
    }

    /// One pass of [`Engine::run_batch`]. An unguarded pass is abandoned (rolled back) at the
    /// first failure, returning that record's index.
    async fn apply_batch(
        &self,
        stream: &Stream,
        position: i64,
        records: &[LogRecord],
        routes: &RouteSet,
        mut guarded: bool,
    ) -> Result<Result<BatchOutcome, usize>, StoreError> {
        let mut transaction = self.store.begin().await?;
        // The whole pass runs on the transaction's connection without a round trip per
        // statement to another thread (see store::db::Inline); it goes back before the commit.
        let mut lock = transaction.lock().await?;
        let mut connection = lock.conn();
        let mut effects = PassEffects::from(position, self.observer.is_some());
        let mut pending_retry = None;
        // Every event id claimed for this database in one go; an id that does not come back
        // was handled before (a copy the Kafka relay published twice, or an event that went
        // through the other bus before a switch). A malformed envelope has no id to claim:
        // handle_record dead-letters it.
        let mut envelopes: Vec<Option<crate::event::Envelope>> = records
            .iter()
            .map(|record| log::decode_envelope(&record.envelope).ok())
            .collect();
        let claimable: Vec<&str> = envelopes
            .iter()
            .flatten()
            .map(|envelope| envelope.event_id.as_str())
            .collect();
        let mut claimed =
            log::claim_events(&mut connection, &self.options.consumer, &claimable).await?;
        // The unguarded pass sums foldable increments here and writes them before it turns
        // guarded and before the commit (see action::fold).
        let mut folds = Folds::default();
        let mut index = 0;
        while index < records.len() {
            let record = &records[index];
            if let Some(envelope) = &envelopes[index] {
                // Removed once applied, so a second copy in the same batch is skipped too.
                if !claimed.remove(&envelope.event_id) {
                    effects.skip(stream, record);
                    index += 1;
                    continue;
                }
                let event_type = envelope.event_type.clone();
                let matching: Vec<&crate::route::Route> =
                    routes.matching(&record.topic, &event_type).collect();
                guarded = guarded
                    || matching
                        .iter()
                        .any(|route| crate::action::calls_http(&route.steps));
                if !guarded && lockstep::allows(&matching) {
                    let end = lockstep_end(records, &envelopes, index, &claimed);
                    if end - index >= lockstep::MIN_RUN {
                        let mut members = Vec::with_capacity(end - index);
                        for at in index..end {
                            let envelope = envelopes[at].take().expect("decoded");
                            if at > index {
                                claimed.remove(&envelope.event_id);
                            }
                            members.push(lockstep::Member {
                                record: &records[at],
                                envelope,
                            });
                        }
                        let ran = lockstep::run(
                            &mut connection,
                            members,
                            &matching,
                            routes,
                            &self.http,
                            &mut folds,
                        )
                        .await;
                        match ran {
                            Ok(handled) => {
                                for (record, handled) in records[index..end].iter().zip(handled) {
                                    effects.add(stream, record, handled);
                                }
                                index = end;
                                continue;
                            }
                            Err(lockstep::Abandoned(error)) => {
                                tracing::debug!(%error, "a run of events failed in lockstep; the batch runs again event by event");
                                drop(connection);
                                drop(lock);
                                transaction.rollback().await?;
                                return Ok(Err(index));
                            }
                        }
                    }
                }
            }
            if guarded && !folds.is_empty() {
                if let Err(error) = folds.write(&mut connection).await {
                    tracing::debug!(%error, "a folded increment failed; the batch runs again event by event");
                    drop(connection);
                    drop(lock);
                    transaction.rollback().await?;
                    return Ok(Err(index));
                }
            }
            let attempt = Attempt {
                guarded,
                ..Attempt::first()
            };
            let result = if guarded {
                let mut savepoint = connection.begin().await?;
                let result = handle_record(
                    &mut savepoint,
                    record,
                    routes,
                    &self.http,
                    attempt,
                    None,
                    None,
                )
                .await;
                match result {
                    Ok(_) => savepoint.commit().await?,
                    Err(_) => savepoint.rollback().await?,
                }
                result
            } else {
                let folds = Some(&mut folds);
                handle_record(
                    &mut connection,
                    record,
                    routes,
                    &self.http,
                    attempt,
                    None,
                    folds,
                )
                .await
            };
            match result {
                Ok(handled) => effects.add(stream, record, handled),
                Err(retry) if retry.unguarded => {
                    drop(connection);
                    drop(lock);
                    transaction.rollback().await?;
                    return Ok(Err(index));
                }
                Err(retry) => {
                    // The record's savepoint is rolled back; the claims of it and of the
                    // records after it go back too.
                    let mut unused: Vec<&str> = claimed.iter().map(String::as_str).collect();
                    unused.extend(
                        envelopes[index]
                            .as_ref()
                            .map(|envelope| envelope.event_id.as_str()),
                    );
                    log::release_claims(&mut connection, &unused).await?;
                    pending_retry = Some((record.clone(), retry));
                    break;
                }
            }
            index += 1;
        }
        // A folded statement that fails abandons the first pass like any failing route; the
        // guarded pass then finds the event it belongs to, one by one.
        if !folds.is_empty() {
            if let Err(error) = folds.write(&mut connection).await {
                tracing::debug!(%error, "a folded increment failed; the batch runs again event by event");
                drop(connection);
                drop(lock);
                transaction.rollback().await?;
                return Ok(Err(records.len()));
            }
        }
        log::append_all(&mut connection, &effects.published).await?;
        let done = effects.done;
        if done != position {
            log::advance_position(
                &mut connection,
                &self.options.consumer,
                &stream.name,
                stream.partition,
                position,
                done,
            )
            .await?;
        }
        drop(connection);
        drop(lock);
        transaction.commit().await?;
        self.after_commit(effects);
        Ok(Ok(match pending_retry {
            None => BatchOutcome::Done(done),
            Some((record, retry)) => BatchOutcome::Retry(done, record, retry),
        }))
    }

    /// What follows a pass's commit: counting and logging what it applied (only now, so an
    /// abandoned pass counts nothing), reporting it, and announcing what it published.
    fn after_commit(&self, effects: PassEffects) {
        for (topic, event_type, event_id) in &effects.received {
            crate::telemetry::event_received(topic, event_type);
            crate::telemetry::event_routed(topic, event_type);
            tracing::info!(topic = %topic, event_id = %event_id, "📥 Event received: {event_type} from topic {topic}");
        }
        for route in &effects.applied_routes {
            crate::telemetry::route_executed(route.as_str(), "applied");
        }
        if let Some(observer) = &self.observer {
            observer.report(effects.applied);
        }
        self.health.set(None);
        self.announce(&effects.published);
    }

    /// Logs emitted events and, on the embedded bus, wakes the consumer for them (they are
    /// in the log it reads); with Kafka the relay publishes them.
    fn announce(&self, published: &[Event]) {
        if !published.is_empty() {
            self.signal.notify_one();
        }
        log_published(published);
    }

    /// Claims the record's event id for this database, inside the record's savepoint. False
    /// when it was handled before: a copy the Kafka relay published twice, or an event that
    /// went through the other bus before a switch between the embedded bus and Kafka.
    async fn claim(
        &self,
        connection: &mut Conn<'_>,
        record: &LogRecord,
    ) -> Result<bool, StoreError> {
        let Ok(envelope) = log::decode_envelope(&record.envelope) else {
            // Not an envelope: handle_record dead-letters it.
            return Ok(true);
        };
        Ok(log::claim_event(connection, &self.options.consumer, &envelope.event_id).await?)
    }

    /// Retries one record (the one after position `from`) until it succeeds or its failing
    /// routes are dead-lettered. Returns the new position, or `None` when shutting down first or
    /// when the stored position must be read again.
    pub async fn retry_alone(
        &self,
        stream: &Stream,
        from: i64,
        record: &LogRecord,
        mut retry: Retry,
        shutdown: &CancellationToken,
    ) -> Option<i64> {
        let first_failed_at = crate::template::now_rfc3339();
        let mut attempt = 1;
        loop {
            tracing::warn!(
                seq = record.seq,
                route = %retry.route,
                attempt,
                error = %retry.error,
                "route failed; retrying in {:?}",
                retry.delay
            );
            if !sleep_or_cancel(retry.delay, shutdown).await {
                return None;
            }
            attempt += 1;
            let routes = self.routes.load_full();
            let outcome = async {
                let mut transaction = self.store.begin().await?;
                let result = if !self.claim(&mut transaction, record).await? {
                    Ok(None)
                } else {
                    let attempt = Attempt {
                        number: attempt,
                        first_failed_at: Some(&first_failed_at),
                        may_retry: true,
                        guarded: true,
                    };
                    handle_record(
                        &mut transaction,
                        record,
                        &routes,
                        &self.http,
                        attempt,
                        None,
                        None,
                    )
                    .await
                    .map(Some)
                };
                match result {
                    Ok(handled) => {
                        let handled = handled.unwrap_or_default();
                        let emitted = &handled.emitted;
                        log::append_all(&mut transaction, emitted).await?;
                        log::advance_position(
                            &mut transaction,
                            &self.options.consumer,
                            &stream.name,
                            stream.partition,
                            from,
                            stream.position_after(record),
                        )
                        .await?;
                        transaction.commit().await?;
                        handled.count_applied();
                        if let Some(observer) = &self.observer {
                            if !handled.event_id.is_empty() {
                                observer.report(vec![AppliedEvent::new(
                                    handled.event_id,
                                    &handled.emitted,
                                )]);
                            }
                        }
                        Ok(Ok(handled.emitted))
                    }
                    Err(retry) => {
                        transaction.rollback().await?;
                        Ok::<_, StoreError>(Err(retry))
                    }
                }
            }
            .await;
            match outcome {
                Ok(Ok(emitted)) => {
                    self.health.set(None);
                    self.announce(&emitted);
                    return Some(stream.position_after(record));
                }
                Ok(Err(next)) => retry = next,
                Err(error @ StoreError::PositionMoved { .. }) => {
                    self.store_failed(&error);
                    return None;
                }
                Err(error) => {
                    self.store_failed(&error);
                    attempt -= 1;
                    retry.delay = STORE_RETRY;
                }
            }
        }
    }
}

/// What a pass did, kept until its commit.
struct PassEffects {
    /// The stream position once the handled records are.
    done: i64,
    /// Emitted events, appended to the log before the commit.
    published: Vec<Event>,
    /// Reported to the commit observer, when there is one.
    applied: Vec<AppliedEvent>,
    observed: bool,
    /// Routes applied, counted after the commit.
    applied_routes: Vec<crate::route::RouteName>,
    /// Events of the unguarded pass to log and count as received: topic, type, id.
    received: Vec<(String, String, String)>,
}

impl PassEffects {
    fn from(position: i64, observed: bool) -> Self {
        Self {
            done: position,
            published: Vec::new(),
            applied: Vec::new(),
            observed,
            applied_routes: Vec::new(),
            received: Vec::new(),
        }
    }

    /// A record handled before (its claim did not come back): only the position moves.
    fn skip(&mut self, stream: &Stream, record: &LogRecord) {
        self.done = self.done.max(stream.position_after(record));
    }

    fn add(&mut self, stream: &Stream, record: &LogRecord, mut handled: Handled) {
        // Never backwards, even if a rebalance repeated a record in the batch.
        self.skip(stream, record);
        self.applied_routes.append(&mut handled.applied);
        if let Some((topic, event_type)) = handled.unannounced.take() {
            self.received
                .push((topic, event_type, handled.event_id.clone()));
        }
        if self.observed {
            self.applied
                .push(AppliedEvent::new(handled.event_id, &handled.emitted));
        }
        self.published.extend(handled.emitted);
    }
}

/// Where a lockstep run that starts at `start` ends: the records after it of the same topic
/// and type, with envelopes and claimed (not yet handled), up to the first that is not.
fn lockstep_end(
    records: &[LogRecord],
    envelopes: &[Option<crate::event::Envelope>],
    start: usize,
    claimed: &std::collections::HashSet<String>,
) -> usize {
    let Some(first) = &envelopes[start] else {
        return start;
    };
    let mut seen = std::collections::HashSet::new();
    let mut end = start + 1;
    while let Some(Some(envelope)) = envelopes.get(end) {
        let same = records[end].topic == records[start].topic
            && envelope.event_type == first.event_type
            && claimed.contains(&envelope.event_id)
            // A second copy of an event is skipped one by one, after the run.
            && seen.insert(envelope.event_id.as_str());
        if !same {
            break;
        }
        end += 1;
    }
    end
}

/// Sleeps; false when cancelled first.
async fn sleep_or_cancel(duration: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(duration) => true,
        _ = shutdown.cancelled() => false,
    }
}
