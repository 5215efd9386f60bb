//! Group commit for events submitted one by one (`POST /api/events`): submissions that arrive
//! while a commit is in flight share the next transaction, so a burst costs one commit (one
//! fsync on SQLite) instead of one each. An idle appender adds no delay: a lone submission is
//! committed at once.

use tokio::sync::{mpsc, oneshot};

use super::{log, Store, StoreError};
use crate::event::Event;

/// Most submissions per transaction.
const GROUP_LIMIT: usize = 500;

struct Submission {
    event: Event,
    appended: oneshot::Sender<Result<bool, StoreError>>,
}

/// The sending side; cheap to clone. The task ends when every clone is dropped.
#[derive(Clone)]
pub struct Appender {
    submissions: mpsc::Sender<Submission>,
}

impl Appender {
    /// Starts the task that commits submissions to `store`'s event log.
    pub fn spawn(store: Store) -> Self {
        let (submissions, received) = mpsc::channel(4 * GROUP_LIMIT);
        tokio::spawn(commit_groups(store, received));
        Self { submissions }
    }

    /// Appends `event` and returns once it is committed: true when it is new, false when an
    /// event with its id was already in the log.
    pub async fn append(&self, event: Event) -> Result<bool, StoreError> {
        let (appended, answer) = oneshot::channel();
        self.submissions
            .send(Submission { event, appended })
            .await
            .map_err(|_| StoreError::Query(sqlx::Error::PoolClosed))?;
        answer
            .await
            .map_err(|_| StoreError::Query(sqlx::Error::PoolClosed))?
    }
}

async fn commit_groups(store: Store, mut received: mpsc::Receiver<Submission>) {
    let mut group = Vec::with_capacity(GROUP_LIMIT);
    while received.recv_many(&mut group, GROUP_LIMIT).await > 0 {
        match append_together(&store, &group).await {
            Ok(appended) => {
                for (submission, appended) in group.drain(..).zip(appended) {
                    let _ = submission.appended.send(Ok(appended));
                }
            }
            // A statement refused one event: each alone, so each caller gets its own event's
            // answer and one bad event does not fail the others.
            Err(StoreError::Query(sqlx::Error::Database(_))) => {
                for submission in group.drain(..) {
                    let appended = append_together(&store, std::slice::from_ref(&submission))
                        .await
                        .map(|appended| appended[0]);
                    let _ = submission.appended.send(appended);
                }
            }
            // The database itself failed (unreachable, or the commit): the same for everyone,
            // at once, rather than one timeout after another.
            Err(error) => {
                let reason = error.to_string();
                for submission in group.drain(..) {
                    let failed = sqlx::Error::Io(std::io::Error::other(reason.clone()));
                    let _ = submission.appended.send(Err(StoreError::Query(failed)));
                }
            }
        }
    }
}

async fn append_together(store: &Store, group: &[Submission]) -> Result<Vec<bool>, StoreError> {
    let mut transaction = store.begin().await?;
    let mut appended = Vec::with_capacity(group.len());
    for submission in group {
        appended.push(log::append(&mut transaction, &submission.event).await?);
    }
    transaction.commit().await?;
    Ok(appended)
}
