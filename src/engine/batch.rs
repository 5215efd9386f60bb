//! One batch through the engine: decode → claim → match → run (in lockstep where it may) →
//! fold → append → position → commit → after the commit (count, log, report, wake).
//!
//! A pass either commits or is abandoned ([`Pass`]); an abandoned unguarded pass is followed
//! by a guarded one over the same records, which always commits.

use std::collections::HashSet;

use crate::action::fold::Folds;
use crate::event::{Delivery, Event};
use crate::route::RouteSet;
use crate::store::db::Conn;
use crate::store::log::{self, EMBEDDED_STREAM};
use crate::store::{Dialect, StoreError};

use super::commits::AppliedEvent;
use super::{
    handle_delivery, lockstep, log_committed, Attempt, BatchOutcome, Engine, Handled, Interrupt,
    Retry, Stream,
};

/// How a pass over a batch ended.
enum Pass {
    /// Its transaction committed.
    Committed(BatchOutcome),
    /// An unguarded pass met a failure: rolled back, nothing written or counted.
    Abandoned,
}

/// How one round of a pass ended.
enum RoundEnd {
    /// Every delivery of the round was handled or skipped.
    Finished,
    /// An unguarded attempt failed: the pass is to be rolled back.
    Abandoned,
    /// This delivery is to be retried alone; the pass commits what came before it.
    Retry(Box<Delivery>, Retry),
}

/// What a pass carries from one delivery and round to the next.
struct PassState {
    /// Routes run in savepoints from here on.
    guarded: bool,
    /// The ids of the round claimed and not yet handled.
    claimed: HashSet<String>,
    /// Increments summed per key, written once before the commit.
    folds: Folds,
    effects: PassEffects,
}

/// A pass going on with the events its own routes emitted, on SQLite's embedded log.
///
/// On the embedded log, what a pass emits is appended after everything the log holds. When
/// the pass has handled the log up to its end, those events are exactly the ones the next
/// batch would read, in the same order, so handling them in the same transaction leaves what
/// the next batch would, one commit (an fsync) sooner. Appending returns their `seq`s, and
/// they follow the pass's position without a gap because SQLite's one writer connection is
/// the pass's. A gap, a full batch or a Kafka stream (whose emitted events go out through the
/// relay) ends the cascade; whatever is left is read by the next batch as before.
///
/// Off on PostgreSQL: there the pass would have to hold the log's append lock from its first
/// append to its commit, and every API write appending an event waited that long. Measured
/// at 1,000 cascades/s, that cost more latency (median +50%) than the throughput it gained
/// (+11%); see BENCHMARKS.md.
struct Cascade {
    /// Only on SQLite's embedded log.
    enabled: bool,
    /// Deliveries the pass may still take up (a pass handles at most a batch).
    budget: usize,
    /// How many of the pass's published events are appended already.
    appended: usize,
    /// How many of those the pass took up itself.
    taken: usize,
}

impl Cascade {
    fn new(stream: &Stream, dialect: Dialect, batch_size: usize, records: usize) -> Self {
        Self {
            enabled: stream.name == EMBEDDED_STREAM && dialect == Dialect::Sqlite,
            budget: batch_size.saturating_sub(records),
            appended: 0,
            taken: 0,
        }
    }

    /// Appends what the pass emitted since the last call and returns the deliveries to
    /// handle next in the same pass: none when the cascade ends.
    async fn next_round(
        &mut self,
        connection: &mut Conn<'_>,
        effects: &PassEffects,
    ) -> Result<Vec<Delivery>, sqlx::Error> {
        let emitted = &effects.published[self.appended..];
        if !self.enabled || self.budget == 0 || emitted.is_empty() {
            return Ok(Vec::new());
        }
        let appended = log::append_delivered(connection, emitted).await?;
        self.appended = effects.published.len();
        let mut round = Vec::with_capacity(appended.len().min(self.budget));
        for (expected, delivery) in (effects.done + 1..).zip(appended) {
            if round.len() == self.budget || delivery.position_after() != Some(expected) {
                break;
            }
            round.push(delivery);
        }
        self.budget -= round.len();
        self.taken += round.len();
        Ok(round)
    }
}

impl Engine {
    /// Handles deliveries of `stream` in one transaction, starting from the stored `position`.
    /// Everything before an event that needs a retry commits.
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
        records: &[Delivery],
    ) -> Result<BatchOutcome, StoreError> {
        let routes = self.routes.load_full();
        if let Pass::Committed(outcome) =
            self.pass(stream, position, records, &routes, false).await?
        {
            return Ok(outcome);
        }
        tracing::debug!("a route failed in the batch; handling it again route by route");
        match self.pass(stream, position, records, &routes, true).await? {
            Pass::Committed(outcome) => Ok(outcome),
            Pass::Abandoned => unreachable!("a guarded pass is never abandoned"),
        }
    }

    /// One pass of [`Engine::run_batch`]. An unguarded pass is abandoned (rolled back) at the
    /// first failure.
    ///
    /// On SQLite's embedded log, a pass that reaches the log's end goes on with the events its
    /// own routes emitted (see [`Cascade`]), so a cascade takes one commit instead of one per
    /// hop.
    async fn pass(
        &self,
        stream: &Stream,
        position: i64,
        records: &[Delivery],
        routes: &RouteSet,
        guarded: bool,
    ) -> Result<Pass, StoreError> {
        let mut transaction = self.store.begin().await?;
        // The whole pass runs on the transaction's connection without a round trip per
        // statement to another thread (see store::db::Inline); it goes back before the commit.
        let mut lock = transaction.lock().await?;
        let mut connection = lock.conn();
        let mut state = PassState {
            guarded,
            claimed: HashSet::new(),
            // The unguarded pass sums foldable increments here and writes them before it turns
            // guarded and before the commit (see action::fold).
            folds: Folds::default(),
            effects: PassEffects::from(position, self.observer.is_some()),
        };
        let mut cascade = Cascade::new(
            stream,
            self.store.dialect(),
            self.options.batch_size,
            records.len(),
        );
        let mut pending_retry = None;
        let mut taken_up = Vec::new();
        loop {
            // The first round is the batch; each later one is what the round before emitted.
            let round: &[Delivery] = if taken_up.is_empty() {
                records
            } else {
                &taken_up
            };
            // Every event id of the round claimed for this database in one go; an id that
            // does not come back was handled before (a copy the Kafka relay published twice,
            // or an event that went through the other bus before a switch). What did not
            // decode has no id to claim: handle_delivery dead-letters it.
            let claimable: Vec<&str> = round
                .iter()
                .filter_map(|record| record.decoded.as_ref().ok())
                .map(|event| event.envelope.event_id.as_str())
                .collect();
            state.claimed =
                log::claim_events(&mut connection, &self.options.consumer, &claimable).await?;
            match self
                .run_round(&mut connection, round, routes, &mut state)
                .await?
            {
                RoundEnd::Finished => {}
                RoundEnd::Abandoned => {
                    drop(connection);
                    drop(lock);
                    transaction.rollback().await?;
                    return Ok(Pass::Abandoned);
                }
                RoundEnd::Retry(record, retry) => {
                    pending_retry = Some((record, retry));
                    break;
                }
            }
            taken_up = cascade.next_round(&mut connection, &state.effects).await?;
            if taken_up.is_empty() {
                break;
            }
        }
        // A folded statement that fails abandons the first pass like any failing route; the
        // guarded pass then finds the event it belongs to, one by one.
        if !state.folds.is_empty() {
            if let Err(error) = state.folds.write(&mut connection).await {
                tracing::debug!(%error, "a folded increment failed; the batch runs again event by event");
                drop(connection);
                drop(lock);
                transaction.rollback().await?;
                return Ok(Pass::Abandoned);
            }
        }
        let mut effects = state.effects;
        log::append_all(&mut connection, &effects.published[cascade.appended..]).await?;
        effects.wake = effects.published.len() > cascade.taken;
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
        Ok(Pass::Committed(match pending_retry {
            None => BatchOutcome::Done(done),
            Some((record, retry)) => BatchOutcome::Retry(done, record, retry),
        }))
    }

    /// Handles the deliveries of one round of a pass, whose ids `state.claimed` holds.
    async fn run_round(
        &self,
        connection: &mut Conn<'_>,
        round: &[Delivery],
        routes: &RouteSet,
        state: &mut PassState,
    ) -> Result<RoundEnd, StoreError> {
        let mut index = 0;
        while index < round.len() {
            let record = &round[index];
            if let Ok(event) = &record.decoded {
                // Removed once applied, so a second copy in the same batch is skipped too.
                if !state.claimed.remove(&event.envelope.event_id) {
                    state.effects.skip(record);
                    index += 1;
                    continue;
                }
                let matching: Vec<&crate::route::Route> = routes
                    .matching(event.topic.as_str(), &event.envelope.event_type)
                    .collect();
                state.guarded = state.guarded
                    || matching
                        .iter()
                        .any(|route| crate::action::calls_http(&route.steps));
                if !state.guarded && lockstep::allows(&matching) {
                    let end = lockstep_end(round, index, &state.claimed);
                    if end - index >= lockstep::MIN_RUN {
                        let mut members = Vec::with_capacity(end - index);
                        for member in &round[index..end] {
                            let Ok(event) = &member.decoded else {
                                unreachable!("lockstep_end stops at what did not decode")
                            };
                            state.claimed.remove(&event.envelope.event_id);
                            members.push(event);
                        }
                        let ran = lockstep::run(
                            connection,
                            &members,
                            &matching,
                            routes,
                            &self.http,
                            &mut state.folds,
                        )
                        .await;
                        match ran {
                            Ok(handled) => {
                                for (record, handled) in round[index..end].iter().zip(handled) {
                                    state.effects.add(record, handled);
                                }
                                index = end;
                                continue;
                            }
                            Err(lockstep::Abandoned(error)) => {
                                tracing::debug!(%error, "a run of events failed in lockstep; the batch runs again event by event");
                                return Ok(RoundEnd::Abandoned);
                            }
                        }
                    }
                }
            }
            if state.guarded && !state.folds.is_empty() {
                if let Err(error) = state.folds.write(connection).await {
                    tracing::debug!(%error, "a folded increment failed; the batch runs again event by event");
                    return Ok(RoundEnd::Abandoned);
                }
            }
            let attempt = Attempt {
                guarded: state.guarded,
                ..Attempt::first()
            };
            let result = if state.guarded {
                let mut savepoint = connection.begin().await?;
                let result = handle_delivery(
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
                let folds = Some(&mut state.folds);
                handle_delivery(connection, record, routes, &self.http, attempt, None, folds).await
            };
            match result {
                Ok(handled) => state.effects.add(record, handled),
                Err(Interrupt::Abandon { .. }) => return Ok(RoundEnd::Abandoned),
                Err(Interrupt::Retry(retry)) => {
                    // The record's savepoint is rolled back; the claims of it and of the
                    // records after it go back too.
                    let mut unused: Vec<&str> = state.claimed.iter().map(String::as_str).collect();
                    unused.extend(record.event_id());
                    log::release_claims(connection, &unused).await?;
                    // Received now, whatever its retries do.
                    state.effects.handled.push(Handled::received(record));
                    return Ok(RoundEnd::Retry(Box::new(record.clone()), retry));
                }
            }
            index += 1;
        }
        Ok(RoundEnd::Finished)
    }

    /// What follows a pass's commit: counting and logging what it applied (only now, so an
    /// abandoned pass counts nothing), reporting it, and announcing what it published.
    fn after_commit(&self, effects: PassEffects) {
        for handled in &effects.handled {
            handled.count();
        }
        if let Some(observer) = &self.observer {
            observer.report(effects.applied);
        }
        self.health.set(None);
        // Only what the pass left in the log needs the consumer woken; what it took up
        // itself is applied already.
        if effects.wake {
            self.signal.notify_one();
        }
        log_committed(&effects.published);
    }
}

/// What a pass did, kept until its commit.
struct PassEffects {
    /// The stream position once the handled deliveries are.
    done: i64,
    /// Emitted events, appended to the log before the commit.
    published: Vec<Event>,
    /// Reported to the commit observer, when there is one.
    applied: Vec<AppliedEvent>,
    observed: bool,
    /// What each event's handling counts after the commit (its emitted events moved out).
    handled: Vec<Handled>,
    /// The pass left published events for the consumer to read.
    wake: bool,
}

impl PassEffects {
    fn from(position: i64, observed: bool) -> Self {
        Self {
            done: position,
            published: Vec::new(),
            applied: Vec::new(),
            observed,
            handled: Vec::new(),
            wake: false,
        }
    }

    /// An event handled before (its claim did not come back): only the position moves.
    fn skip(&mut self, delivery: &Delivery) {
        // Never backwards, even if a rebalance repeated a delivery in the batch. A batch
        // holds only deliveries from a stream, which all have a position.
        if let Some(after) = delivery.position_after() {
            self.done = self.done.max(after);
        }
    }

    fn add(&mut self, delivery: &Delivery, mut handled: Handled) {
        self.skip(delivery);
        let emitted = std::mem::take(&mut handled.emitted);
        if self.observed {
            self.applied
                .push(AppliedEvent::new(handled.event_id.clone(), &emitted));
        }
        self.published.extend(emitted);
        self.handled.push(handled);
    }
}

/// Where a lockstep run that starts at `start` ends: the deliveries after it of the same topic
/// and type, decoded and claimed (not yet handled), up to the first that is not.
fn lockstep_end(records: &[Delivery], start: usize, claimed: &HashSet<String>) -> usize {
    let Ok(first) = &records[start].decoded else {
        return start;
    };
    let mut seen = HashSet::new();
    let mut end = start + 1;
    while let Some(Ok(event)) = records.get(end).map(|record| &record.decoded) {
        let same = event.topic == first.topic
            && event.envelope.event_type == first.envelope.event_type
            && claimed.contains(&event.envelope.event_id)
            // A second copy of an event is skipped one by one, after the run.
            && seen.insert(event.envelope.event_id.as_str());
        if !same {
            break;
        }
        end += 1;
    }
    end
}
