//! One batch through the engine: decode → claim → match → run (in lockstep where it may) →
//! fold → append → position → commit → after the commit (count, log, report, wake).
//!
//! A pass either commits or is abandoned ([`Pass`]); an abandoned unguarded pass is followed
//! by a guarded one over the same records, which always commits.

use crate::action::fold::Folds;
use crate::event::{Delivery, Event};
use crate::route::RouteSet;
use crate::store::log;
use crate::store::StoreError;

use super::commits::AppliedEvent;
use super::{handle_delivery, lockstep, Attempt, BatchOutcome, Engine, Handled, Interrupt, Stream};

/// How a pass over a batch ended.
enum Pass {
    /// Its transaction committed.
    Committed(BatchOutcome),
    /// An unguarded pass met a failure: rolled back, nothing written or counted.
    Abandoned,
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
    async fn pass(
        &self,
        stream: &Stream,
        position: i64,
        records: &[Delivery],
        routes: &RouteSet,
        mut guarded: bool,
    ) -> Result<Pass, StoreError> {
        let mut transaction = self.store.begin().await?;
        // The whole pass runs on the transaction's connection without a round trip per
        // statement to another thread (see store::db::Inline); it goes back before the commit.
        let mut lock = transaction.lock().await?;
        let mut connection = lock.conn();
        let mut effects = PassEffects::from(position, self.observer.is_some());
        let mut pending_retry = None;
        // Every event id claimed for this database in one go; an id that does not come back
        // was handled before (a copy the Kafka relay published twice, or an event that went
        // through the other bus before a switch). What did not decode has no id to claim:
        // handle_delivery dead-letters it.
        let claimable: Vec<&str> = records
            .iter()
            .filter_map(|record| record.decoded.as_ref().ok())
            .map(|event| event.envelope.event_id.as_str())
            .collect();
        let mut claimed =
            log::claim_events(&mut connection, &self.options.consumer, &claimable).await?;
        // The unguarded pass sums foldable increments here and writes them before it turns
        // guarded and before the commit (see action::fold).
        let mut folds = Folds::default();
        // True when the pass is abandoned: the caller then rolls back and runs it guarded.
        let abandoned: Result<bool, StoreError> = async {
            let mut index = 0;
            while index < records.len() {
                let record = &records[index];
                if let Ok(event) = &record.decoded {
                    // Removed once applied, so a second copy in the same batch is skipped too.
                    if !claimed.remove(&event.envelope.event_id) {
                        effects.skip(record);
                        index += 1;
                        continue;
                    }
                    let matching: Vec<&crate::route::Route> = routes
                        .matching(event.topic.as_str(), &event.envelope.event_type)
                        .collect();
                    guarded = guarded
                        || matching
                            .iter()
                            .any(|route| crate::action::calls_http(&route.steps));
                    if !guarded && lockstep::allows(&matching) {
                        let end = lockstep_end(records, index, &claimed);
                        if end - index >= lockstep::MIN_RUN {
                            let mut members = Vec::with_capacity(end - index);
                            for member in &records[index..end] {
                                let Ok(event) = &member.decoded else {
                                    unreachable!("lockstep_end stops at what did not decode")
                                };
                                claimed.remove(&event.envelope.event_id);
                                members.push(event);
                            }
                            let ran = lockstep::run(
                                &mut connection,
                                &members,
                                &matching,
                                routes,
                                &self.http,
                                &mut folds,
                            )
                            .await;
                            match ran {
                                Ok(handled) => {
                                    for (record, handled) in records[index..end].iter().zip(handled) {
                                        effects.add(record, handled);
                                    }
                                    index = end;
                                    continue;
                                }
                                Err(lockstep::Abandoned(error)) => {
                                    tracing::debug!(%error, "a run of events failed in lockstep; the batch runs again event by event");
                                    return Ok(true);
                                }
                            }
                        }
                    }
                }
                if guarded && !folds.is_empty() {
                    if let Err(error) = folds.write(&mut connection).await {
                        tracing::debug!(%error, "a folded increment failed; the batch runs again event by event");
                        return Ok(true);
                    }
                }
                let attempt = Attempt {
                    guarded,
                    ..Attempt::first()
                };
                let result = if guarded {
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
                    let folds = Some(&mut folds);
                    handle_delivery(
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
                    Ok(handled) => effects.add(record, handled),
                    Err(Interrupt::Abandon { .. }) => {
                        return Ok(true);
                    }
                    Err(Interrupt::Retry(retry)) => {
                        // The record's savepoint is rolled back; the claims of it and of the
                        // records after it go back too.
                        let mut unused: Vec<&str> = claimed.iter().map(String::as_str).collect();
                        unused.extend(record.event_id());
                        log::release_claims(&mut connection, &unused).await?;
                        // Received now, whatever its retries do.
                        effects.handled.push(Handled::received(record));
                        pending_retry = Some((Box::new(record.clone()), retry));
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
                    return Ok(true);
                }
            }
            Ok(false)
        }
        .await;
        if abandoned? {
            drop(connection);
            drop(lock);
            transaction.rollback().await?;
            return Ok(Pass::Abandoned);
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
        Ok(Pass::Committed(match pending_retry {
            None => BatchOutcome::Done(done),
            Some((record, retry)) => BatchOutcome::Retry(done, record, retry),
        }))
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
        self.announce(&effects.published);
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
}

impl PassEffects {
    fn from(position: i64, observed: bool) -> Self {
        Self {
            done: position,
            published: Vec::new(),
            applied: Vec::new(),
            observed,
            handled: Vec::new(),
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
fn lockstep_end(
    records: &[Delivery],
    start: usize,
    claimed: &std::collections::HashSet<String>,
) -> usize {
    let Ok(first) = &records[start].decoded else {
        return start;
    };
    let mut seen = std::collections::HashSet::new();
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
