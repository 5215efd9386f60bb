//! Checkpoints of a SQLite file's write-ahead log, on a thread of their own.
//!
//! SQLite copies the WAL back into the database file (a checkpoint) from whichever connection
//! commits when the WAL has grown past `wal_autocheckpoint` pages: that is the writer, in the
//! middle of the engine's commit. The copy and its fsync then sat on the path of every event in
//! the batch, a few milliseconds every few batches. Here a connection of its own runs passive
//! checkpoints, which never wait for the writer nor make it wait, on another core; the writer
//! keeps a much higher `wal_autocheckpoint` ([`WRITER_AUTOCHECKPOINT`]) only as a bound on the
//! WAL should this thread fall behind (a reader holding an old snapshot can keep a passive
//! checkpoint from finishing).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::OpenFlags;

/// Pages of WAL past which the writer checkpoints itself (SQLite's default is 1,000; the
/// checkpointer normally keeps the WAL far below this).
pub const WRITER_AUTOCHECKPOINT: u32 = 16_000;

/// How often the checkpointer looks. A passive checkpoint with nothing new in the WAL reads
/// the WAL index and returns, so looking is cheap.
const INTERVAL: Duration = Duration::from_millis(100);

/// The checkpointing thread of one SQLite file; stopped and joined on drop.
#[derive(Debug)]
pub struct Checkpointer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts checkpointing `file`'s WAL.
    pub fn start(file: PathBuf) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || run(&file, &stopping))?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(file: &PathBuf, stop: &AtomicBool) {
    let connection = match rusqlite::Connection::open_with_flags(
        file,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    ) {
        Ok(connection) => connection,
        Err(error) => {
            // The writer still checkpoints past WRITER_AUTOCHECKPOINT: slower, never unbounded.
            tracing::warn!(%error, file = %file.display(), "cannot open the database for checkpoints; the writer will checkpoint");
            return;
        }
    };
    let mut failing = false;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(INTERVAL);
        let checkpointed = connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            Ok((row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
        });
        match checkpointed {
            Ok((wal_frames, copied)) => {
                failing = false;
                tracing::trace!(wal_frames, copied, "checkpoint");
            }
            // Logged once per run of failures, not every tick.
            Err(error) if !failing => {
                failing = true;
                tracing::warn!(%error, "checkpoint failed; trying again");
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wal_is_copied_into_the_database_file_while_the_writer_never_checkpoints() {
        let directory = tempfile::tempdir().unwrap();
        let file = directory.path().join("crm.db");
        let writer = rusqlite::Connection::open(&file).unwrap();
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0; \
                 CREATE TABLE t (x TEXT)",
            )
            .unwrap();
        for n in 0..200 {
            writer
                .execute("INSERT INTO t VALUES (?1)", [format!("{n:0>500}")])
                .unwrap();
        }
        // Everything is still in the WAL: the database file holds only its first pages.
        let database_bytes = || std::fs::metadata(&file).unwrap().len();
        assert!(database_bytes() < 20_000, "{}", database_bytes());

        let checkpointer = Checkpointer::start(file.clone()).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        // 200 rows of 500 bytes: about 25 pages of 4 KiB once copied back.
        while database_bytes() < 90_000 {
            assert!(
                std::time::Instant::now() < deadline,
                "not copied back: {} bytes",
                database_bytes()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(checkpointer);
        let rows: i64 = writer
            .query_row("SELECT count(*) FROM t", [], |row| row.get(0))
            .unwrap();
        assert_eq!(rows, 200);
    }
}
