//! Replaying dead letters: the failed route runs again for the stored event, with the routes as
//! they are now, so a fixed route file heals its dead letters.
//!
//! A replay is one transaction: it moves the letter from `PENDING` to `REPLAYED` with a
//! compare-and-set, runs the route, appends what it emitted and commits, so a letter is
//! replayed once however many operators ask at once. If the route fails again, its effects roll
//! back and a new dead letter takes the old one's place in the same transaction. A letter with no
//! route (refused before routing, for instance by its schema) runs every matching route; one
//! Kafka refused goes back to the outbox for the relay.

use thiserror::Error;

use super::handle::{handle_delivery, Attempt};
use super::{log_committed, LogSignal, RouteSetHandle};
use crate::event::{Delivery, Envelope, Origin};
use crate::store::dead_letters::{self, DeadLetter, Status};
use crate::store::log;
use crate::store::{Conn, Store, StoreError};

/// What a replay did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayOutcome {
    /// The route(s) ran and committed; this many events were emitted.
    Applied {
        /// Events emitted.
        emitted: usize,
    },
    /// The route failed again; a new dead letter holds the failure.
    FailedAgain {
        /// The new failure.
        error: String,
    },
    /// Kafka refused the event; it is back in the outbox for the relay to publish.
    Requeued,
}

/// Why a dead letter was not replayed.
#[derive(Debug, Error)]
pub enum ReplayError {
    /// No dead letter has this id.
    #[error("no dead letter {0}")]
    NotFound(String),
    /// It was replayed or discarded already.
    #[error("dead letter {id} is {status}, not PENDING")]
    NotPending {
        /// The id.
        id: String,
        /// Its status.
        status: String,
    },
    /// Its route no longer exists, or no longer handles the event.
    #[error("route {route:?} no longer handles {event_type} events on {topic}; fix the route file and reload, or discard the dead letter")]
    RouteGone {
        /// The route.
        route: String,
        /// The event's type.
        event_type: String,
        /// The event's topic.
        topic: String,
    },
    /// The event was submitted again and accepted since; the letter is moot.
    #[error("event {0} is in the event log already (a later submission was accepted); discard this dead letter")]
    AlreadyInLog(String),
    /// Another dead letter of the same event was replayed already.
    #[error(
        "the routes of event {0} were replayed already from another dead letter; discard this one"
    )]
    AlreadyReplayed(String),
    /// The stored event cannot be turned back into an event (it never could).
    #[error("the stored event cannot be replayed: {0}")]
    Unreplayable(String),
    /// The route wants a retry, but the database failed around it.
    #[error("the database failed during the replay: {0}")]
    Interrupted(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for ReplayError {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(StoreError::from(error))
    }
}

/// Replays and discards dead letters.
#[derive(Clone)]
pub struct Replayer {
    store: Store,
    routes: RouteSetHandle,
    signal: LogSignal,
    http: reqwest::Client,
}

impl Replayer {
    /// A replayer over the live route set; `signal` wakes the consumer for emitted events.
    pub fn new(store: Store, routes: RouteSetHandle, signal: LogSignal) -> Self {
        Self {
            store,
            routes,
            signal,
            http: crate::action::http_client(),
        }
    }

    /// Replays dead letter `id`.
    pub async fn replay(&self, id: &str) -> Result<ReplayOutcome, ReplayError> {
        let routes = self.routes.load_full();
        let mut transaction = self.store.begin().await?;
        let letter = settle(&mut transaction, id, Status::Replayed).await?;
        match (letter.route.as_deref(), letter.action_kind.as_deref()) {
            // Kafka refused it: back into the outbox.
            (None, Some(dead_letters::STAGE_PUBLISH)) => {
                log::unpublish(&mut transaction, &letter.event_id).await?;
                transaction.commit().await?;
                self.signal.notify_one();
                return Ok(ReplayOutcome::Requeued);
            }
            // Refused at submission (its schema): it enters the log now, and from there goes the
            // way of every event, claims and all. A later accepted submission of the same
            // event wins, as a re-submission would.
            (None, Some(dead_letters::STAGE_SUBMIT)) => {
                let event = crate::event::Event {
                    topic: crate::event::TopicName::parse(&letter.topic)
                        .map_err(|error| ReplayError::Unreplayable(error.to_string()))?,
                    key: letter.key.clone(),
                    envelope: Envelope::decode(&letter.envelope)
                        .map_err(|error| ReplayError::Unreplayable(error.to_string()))?,
                };
                if !log::append(&mut transaction, &event).await? {
                    return Err(ReplayError::AlreadyInLog(letter.event_id));
                }
                transaction.commit().await?;
                self.signal.notify_one();
                log_committed(std::slice::from_ref(&event));
                return Ok(ReplayOutcome::Requeued);
            }
            // Refused by the consumer before any route ran: its routes run now, once. The
            // claim makes a second letter of the same event (there should be none) a no-op.
            (None, _) => {
                let key = format!("replay:{}", letter.event_id);
                if !log::claim_event(&mut transaction, "replay", &key).await? {
                    return Err(ReplayError::AlreadyReplayed(letter.event_id));
                }
            }
            (Some(_), _) => {}
        }
        let delivery = Delivery::new(
            Origin::Replay,
            letter.topic.clone(),
            letter.key.clone(),
            letter.envelope.clone(),
        );
        let attempt = Attempt {
            number: u32::try_from(letter.attempts)
                .unwrap_or(u32::MAX)
                .saturating_add(1),
            first_failed_at: Some(&letter.first_failed_at),
            may_retry: false,
            guarded: true,
        };
        let handled = handle_delivery(
            &mut transaction,
            &delivery,
            &routes,
            &self.http,
            attempt,
            letter.route.as_deref(),
            None,
        )
        .await
        .map_err(|interrupt| ReplayError::Interrupted(interrupt.into_retry().error))?;
        if let Some(route) = &letter.route {
            if handled.routes_run == 0 && handled.dead_lettered.is_empty() {
                return Err(ReplayError::RouteGone {
                    route: route.clone(),
                    event_type: letter.event_type,
                    topic: letter.topic,
                });
            }
        }
        log::append_all(&mut transaction, &handled.emitted).await?;
        transaction.commit().await?;
        handled.count();
        if !handled.emitted.is_empty() {
            self.signal.notify_one();
            log_committed(&handled.emitted);
        }
        tracing::info!(dead_letter = id, event_id = %letter.event_id, route = letter.route.as_deref().unwrap_or("-"), failed_again = !handled.dead_lettered.is_empty(), "dead letter replayed");
        Ok(match handled.dead_lettered.into_iter().next() {
            Some(error) => ReplayOutcome::FailedAgain { error },
            None => ReplayOutcome::Applied {
                emitted: handled.emitted.len(),
            },
        })
    }

    /// Discards dead letter `id` (kept, marked `DISCARDED`).
    pub async fn discard(&self, id: &str) -> Result<(), ReplayError> {
        let mut transaction = self.store.begin().await?;
        settle(&mut transaction, id, Status::Discarded).await?;
        transaction.commit().await?;
        tracing::info!(dead_letter = id, "dead letter discarded");
        Ok(())
    }
}

/// Moves letter `id` from `PENDING` to `to` in the caller's transaction and returns it, or says
/// why not. The compare-and-set comes first: on PostgreSQL a second transaction settling the
/// same letter waits for the first, then finds it no longer pending, and runs nothing.
async fn settle(
    connection: &mut Conn<'_>,
    id: &str,
    to: Status,
) -> Result<DeadLetter, ReplayError> {
    let settled = dead_letters::settle(&mut *connection, id, to).await?;
    let letter = dead_letters::get(&mut *connection, id)
        .await?
        .ok_or_else(|| ReplayError::NotFound(id.to_owned()))?;
    if !settled {
        return Err(ReplayError::NotPending {
            id: id.to_owned(),
            status: letter.status,
        });
    }
    Ok(letter)
}
