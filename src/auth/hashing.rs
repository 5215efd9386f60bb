//! The bound on password hashing. One Argon2id hash holds about 19 MiB for tens of
//! milliseconds; unbounded, a flood of unauthenticated sign-ups or logins grew the daemon by a
//! gigabyte and kept much of it.
//!
//! Hashes run on a fixed set of threads of their own, one per core, fed by a short queue; a
//! caller who finds the queue full is refused at once with [`HashingError::Busy`]. Fixed threads
//! matter as much as the count: tokio's blocking pool would run each hash on whichever thread
//! is free, and the allocator keeps a freed 19 MiB block in that thread's arena, so memory grew
//! with the number of threads ever used; here each thread reuses its own.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, LazyLock, Mutex};

/// Hashes waiting per hashing thread before callers are refused. A waiting hash costs only its
/// closure (the memory is in the threads), so the queue is sized for latency: on two cores,
/// 64 waiting logins are answered within about two seconds.
const QUEUE_PER_THREAD: usize = 32;

/// Seconds a refused caller is told to wait (`Retry-After`).
pub const RETRY_AFTER_SECONDS: u64 = 1;

/// Most hashing threads, whatever the machine: each keeps about 19 MiB of working memory.
const MAX_THREADS: usize = 4;

/// Why a hash did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HashingError {
    /// Every hashing thread is busy and the queue is full.
    #[error("the server is busy hashing passwords; try again in a second")]
    Busy,
    /// The hash panicked (a bug; the panic is logged).
    #[error("password hashing failed")]
    Failed,
}

/// The number of hashing threads: one per core, at most [`MAX_THREADS`].
pub fn threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(MAX_THREADS)
}

/// How many hashes may be running or waiting before callers are refused.
pub fn capacity() -> usize {
    threads() * (1 + QUEUE_PER_THREAD)
}

type Job = Box<dyn FnOnce() + Send>;

static QUEUE: LazyLock<SyncSender<Job>> = LazyLock::new(|| {
    let (sender, receiver) = sync_channel::<Job>(threads() * QUEUE_PER_THREAD);
    let receiver = Arc::new(Mutex::new(receiver));
    for index in 0..threads() {
        let receiver = receiver.clone();
        std::thread::Builder::new()
            .name(format!("password-hash-{index}"))
            .spawn(move || work(&receiver))
            .expect("the hashing threads start with the daemon");
    }
    sender
});

fn work(receiver: &Mutex<Receiver<Job>>) {
    loop {
        // The lock is held while waiting, so one idle thread waits on the queue and the others
        // on the lock; a job frees the lock as soon as it is taken.
        let job = match receiver.lock() {
            Ok(receiver) => receiver.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        // A panic in a hash is a bug; it must not take a hashing thread with it. The caller
        // sees its answer dropped: `HashingError::Failed`.
        if std::panic::catch_unwind(AssertUnwindSafe(job)).is_err() {
            tracing::error!("a password hash panicked");
        }
    }
}

/// Runs `work` (a password hash or verification) on a hashing thread; refuses at once when
/// the queue is full.
pub async fn run<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, HashingError> {
    let (answer, answered) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        // A caller who went away (the client hung up) needs no hash.
        if !answer.is_closed() {
            let _ = answer.send(work());
        }
    });
    QUEUE.try_send(job).map_err(|_| HashingError::Busy)?;
    answered.await.map_err(|_| HashingError::Failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn past_the_queue_callers_are_refused_and_the_threads_stay() {
        let capacity = capacity();
        let mut calls = Vec::new();
        for _ in 0..capacity * 3 {
            calls.push(tokio::spawn(run(|| {
                std::thread::sleep(std::time::Duration::from_millis(50));
            })));
        }
        let mut refused = 0;
        for call in calls {
            if call.await.unwrap().is_err() {
                refused += 1;
            }
        }
        assert!(refused >= capacity, "{refused} of {} refused", capacity * 3);
        assert_eq!(run(|| panic!("a bug")).await, Err(HashingError::Failed));
        assert_eq!(run(|| 7).await, Ok(7));
    }
}
