//! Reports of what each commit applied, for observers that time the engine from the outside
//! (`crm-router bench`). Without an observer the engine builds none of this.

use std::time::Instant;

use tokio::sync::mpsc;

use crate::event::Event;

/// One event the engine applied, and the events its routes emitted.
#[derive(Debug, Clone)]
pub struct AppliedEvent {
    /// The applied event's `eventId`.
    pub event_id: String,
    /// `eventId`s of the events its routes emitted (committed with it).
    pub emitted: Vec<String>,
}

impl AppliedEvent {
    pub(super) fn new(event_id: String, emitted: &[Event]) -> Self {
        Self {
            event_id,
            emitted: emitted
                .iter()
                .map(|event| event.envelope.event_id.clone())
                .collect(),
        }
    }
}

/// One committed transaction of the engine.
#[derive(Debug)]
pub struct Commit {
    /// Taken right after the commit returned.
    pub at: Instant,
    /// The events it applied, in order.
    pub applied: Vec<AppliedEvent>,
}

/// Receives a [`Commit`] for every transaction the engine commits.
pub type CommitReceiver = mpsc::UnboundedReceiver<Commit>;

/// The sending half, held by the engine.
#[derive(Debug, Clone)]
pub(super) struct CommitObserver(mpsc::UnboundedSender<Commit>);

impl CommitObserver {
    pub(super) fn channel() -> (Self, CommitReceiver) {
        let (sender, receiver) = mpsc::unbounded_channel();
        (Self(sender), receiver)
    }

    pub(super) fn report(&self, applied: Vec<AppliedEvent>) {
        if applied.is_empty() {
            return;
        }
        // A dropped receiver means nobody watches any more; the engine goes on regardless.
        let _ = self.0.send(Commit {
            at: Instant::now(),
            applied,
        });
    }
}
