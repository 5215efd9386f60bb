//! Locks that let only one process on a database do a job: run the embedded bus, or publish the
//! outbox to Kafka.
//!
//! On PostgreSQL a lock is a session-level advisory lock held by a connection of its own, outside
//! the pools: the server releases it when the process dies or the connection drops. On SQLite it
//! is an advisory file lock on a file beside the database, which the kernel releases when the
//! process dies. Both are released by a SIGKILL, so a crashed instance never blocks its
//! replacement.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::PathBuf;

use std::time::Duration;

use sqlx::{AnyConnection, Connection};
use tokio_util::sync::CancellationToken;

use super::{Dialect, Store, StoreError};

/// The job a lock makes exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// Consuming the embedded event log. The embedded bus is single-instance: its one consumer
    /// is what makes the log's order the order of effects.
    EmbeddedBus,
    /// Publishing the outbox to Kafka. One publisher keeps each key's events in log order.
    Relay,
}

impl Job {
    /// The advisory lock key on PostgreSQL ("crmrbus" and "crmrrly" in ASCII).
    fn advisory_key(self) -> i64 {
        match self {
            Job::EmbeddedBus => 0x63_72_6d_72_62_75_73,
            Job::Relay => 0x63_72_6d_72_72_6c_79,
        }
    }

    /// How the job names itself in a PostgreSQL session's `application_name`.
    fn session_label(self) -> &'static str {
        match self {
            Job::EmbeddedBus => "bus",
            Job::Relay => "relay",
        }
    }

    /// The suffix of the lock file beside a SQLite database.
    fn file_suffix(self) -> &'static str {
        match self {
            Job::EmbeddedBus => "bus.lock",
            Job::Relay => "relay.lock",
        }
    }
}

/// A held lock; dropping it releases it.
#[derive(Debug)]
pub struct ExclusiveLock {
    job: Job,
    held: Held,
    /// The `application_name` of the PostgreSQL sessions this process takes the lock with,
    /// unique to the process, so that [`ExclusiveLock::keep`] can tell a stranded session of
    /// its own from another process's.
    owner: String,
}

#[derive(Debug)]
enum Held {
    /// The locked file (SQLite); kept open because closing it releases the lock.
    File(#[allow(dead_code)] File),
    /// The session holding the advisory lock (PostgreSQL).
    Session(AnyConnection),
    /// An in-memory SQLite database, which no other process can open.
    Private,
}

impl Store {
    /// Takes the lock for `job`, or returns `None` when another process holds it.
    pub async fn try_lock(&self, job: Job) -> Result<Option<ExclusiveLock>, StoreError> {
        let owner = format!(
            "crm-router {} {}",
            job.session_label(),
            uuid::Uuid::new_v4().simple()
        );
        self.try_lock_as(job, owner).await
    }

    async fn try_lock_as(
        &self,
        job: Job,
        owner: String,
    ) -> Result<Option<ExclusiveLock>, StoreError> {
        let held = match self.dialect {
            Dialect::Postgres => {
                let mut session = AnyConnection::connect(&self.url).await?;
                sqlx::query("SELECT set_config('application_name', $1, false)")
                    .bind(&owner)
                    .execute(&mut session)
                    .await?;
                let taken: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                    .bind(job.advisory_key())
                    .fetch_one(&mut session)
                    .await?;
                if !taken {
                    session.close().await?;
                    return Ok(None);
                }
                Held::Session(session)
            }
            Dialect::Sqlite => match sqlite_file(&self.url) {
                None => Held::Private,
                Some(database) => {
                    let mut name = database.into_os_string();
                    name.push(".");
                    name.push(job.file_suffix());
                    let path = PathBuf::from(name);
                    let file = OpenOptions::new()
                        .create(true)
                        .truncate(false)
                        .write(true)
                        .open(&path)
                        .map_err(|source| StoreError::LockFile {
                            path: path.clone(),
                            source,
                        })?;
                    match file.try_lock() {
                        Ok(()) => Held::File(file),
                        Err(TryLockError::WouldBlock) => return Ok(None),
                        Err(TryLockError::Error(source)) => {
                            return Err(StoreError::LockFile { path, source })
                        }
                    }
                }
            },
        };
        Ok(Some(ExclusiveLock { job, held, owner }))
    }

    /// Ends the sessions named `owner` that hold `job`'s lock, and waits until the server has
    /// let go of them; returns how many there were. They are this process's own, left behind
    /// when their connection broke in a way the server did not notice (a network partition):
    /// the server keeps such a session, and its lock, until TCP keepalive gives up on it, by
    /// default after more than two hours.
    async fn end_stranded_sessions(&self, job: Job, owner: &str) -> Result<usize, StoreError> {
        if self.dialect != Dialect::Postgres {
            return Ok(0);
        }
        const HOLDERS: &str = "FROM pg_locks AS locks \
             JOIN pg_stat_activity AS activity ON activity.pid = locks.pid \
             WHERE locks.locktype = 'advisory' AND locks.granted AND locks.objsubid = 1 \
             AND locks.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
             AND ((locks.classid::bigint << 32) | locks.objid::bigint) = $1 \
             AND activity.application_name = $2";
        let mut session = AnyConnection::connect(&self.url).await?;
        // In the select list, the call runs only for the rows the WHERE clause kept.
        let ended: Vec<bool> =
            sqlx::query_scalar(&format!("SELECT pg_terminate_backend(locks.pid) {HOLDERS}"))
                .bind(job.advisory_key())
                .bind(owner)
                .fetch_all(&mut session)
                .await?;
        // Termination is asynchronous: wait until the lock is no longer held by them, so that
        // a refusal on the next attempt means another process.
        for _ in 0..50 {
            let left: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) {HOLDERS}"))
                .bind(job.advisory_key())
                .bind(owner)
                .fetch_one(&mut session)
                .await?;
            if left == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        session.close().await?;
        Ok(ended.into_iter().filter(|&ended| ended).count())
    }
}

impl ExclusiveLock {
    /// The job this lock is for.
    pub fn job(&self) -> Job {
        self.job
    }

    /// Checks that the lock is still held. A file lock lasts as long as the process; a
    /// PostgreSQL lock lasts as long as its session, so this asks the session to answer. An
    /// error means the lock is lost (the server restarted or the connection broke) and another
    /// process may hold it now.
    pub async fn check(&mut self) -> Result<(), StoreError> {
        match &mut self.held {
            Held::Session(session) => {
                sqlx::query("SELECT 1").execute(&mut *session).await?;
                Ok(())
            }
            Held::File(_) | Held::Private => Ok(()),
        }
    }
}

/// How often a held lock is checked, and a lost one retaken.
const CHECK_EVERY: Duration = Duration::from_secs(2);

/// A lock was lost and another process holds it now.
#[derive(Debug, thiserror::Error)]
#[error("lost the {job:?} lock on the database and another process took it; stopping so that only one process does the job")]
pub struct LockTaken {
    /// The job.
    pub job: Job,
}

impl ExclusiveLock {
    /// Holds the lock until `shutdown`, checking it every few seconds. A lost session (the
    /// database restarted or the connection broke) is retaken as soon as the database answers;
    /// if the server still keeps the lost session, which holds the lock, it is ended first. If
    /// another process took the lock meanwhile, returns [`LockTaken`] and the caller must stop
    /// the job.
    pub async fn keep(
        mut self,
        store: Store,
        shutdown: CancellationToken,
    ) -> Result<(), LockTaken> {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(CHECK_EVERY) => {}
                _ = shutdown.cancelled() => return Ok(()),
            }
            let Err(error) = self.check().await else {
                continue;
            };
            tracing::warn!(%error, job = ?self.job, "the database session holding an exclusive lock broke; taking the lock again");
            loop {
                match store.try_lock_as(self.job, self.owner.clone()).await {
                    Ok(Some(lock)) => {
                        self = lock;
                        break;
                    }
                    Ok(None) => match store.end_stranded_sessions(self.job, &self.owner).await {
                        Ok(0) => return Err(LockTaken { job: self.job }),
                        Ok(ended) => {
                            tracing::warn!(ended, job = ?self.job, "ended this process's own database session, which still held the exclusive lock after its connection broke");
                        }
                        Err(error) => {
                            tracing::warn!(%error, job = ?self.job, "cannot take the exclusive lock again yet");
                            tokio::select! {
                                _ = tokio::time::sleep(CHECK_EVERY) => {}
                                _ = shutdown.cancelled() => return Ok(()),
                            }
                        }
                    },
                    Err(error) => {
                        tracing::warn!(%error, job = ?self.job, "cannot take the exclusive lock again yet");
                        tokio::select! {
                            _ = tokio::time::sleep(CHECK_EVERY) => {}
                            _ = shutdown.cancelled() => return Ok(()),
                        }
                    }
                }
            }
        }
    }
}

/// The file behind a normalised SQLite URL, or `None` for an in-memory database.
fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite://").unwrap_or(url);
    let path = rest.split('?').next().unwrap_or(rest);
    if path.is_empty() || path == ":memory:" || rest.contains("mode=memory") {
        return None;
    }
    Some(PathBuf::from(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_files_sit_beside_the_database() {
        assert_eq!(
            sqlite_file("sqlite:///var/lib/crm.db?mode=rwc"),
            Some(PathBuf::from("/var/lib/crm.db"))
        );
        assert_eq!(
            sqlite_file("sqlite://crm.db?mode=rwc"),
            Some(PathBuf::from("crm.db"))
        );
        assert_eq!(sqlite_file("sqlite://:memory:"), None);
        assert_eq!(sqlite_file("sqlite://file?mode=memory"), None);
    }

    #[tokio::test]
    async fn a_second_holder_is_refused_until_the_first_lets_go() {
        let directory = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", directory.path().join("crm.db").display());
        let store = Store::connect(&url).await.unwrap();
        let mut first = store.try_lock(Job::EmbeddedBus).await.unwrap().unwrap();
        first.check().await.unwrap();
        assert!(store.try_lock(Job::EmbeddedBus).await.unwrap().is_none());
        // Another job's lock is independent.
        assert!(store.try_lock(Job::Relay).await.unwrap().is_some());
        drop(first);
        assert!(store.try_lock(Job::EmbeddedBus).await.unwrap().is_some());
    }
}
