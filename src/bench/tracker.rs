//! Follows cascades through the engine's commit reports: a cascade is complete when its root
//! event and every event emitted from it (transitively) have been applied.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::Notify;

use crate::engine::commits::{Commit, CommitReceiver};

/// Latency percentiles, in milliseconds.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct Percentiles {
    /// How many measurements.
    pub samples: u64,
    /// Median.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

impl Percentiles {
    /// From a histogram of microseconds.
    pub fn of(histogram: &Histogram<u64>) -> Self {
        let ms = |micros: u64| micros as f64 / 1000.0;
        Self {
            samples: histogram.len(),
            p50_ms: ms(histogram.value_at_quantile(0.50)),
            p95_ms: ms(histogram.value_at_quantile(0.95)),
            p99_ms: ms(histogram.value_at_quantile(0.99)),
            max_ms: ms(histogram.max()),
        }
    }
}

/// A histogram of microseconds from 1 µs to 10 minutes, 3 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

#[derive(Debug)]
struct Cascade {
    started: Instant,
    /// Events of the cascade not applied yet (the root counts until it is applied).
    pending: usize,
}

#[derive(Debug, Default)]
struct State {
    /// Live cascades by root index.
    live: HashMap<usize, Cascade>,
    /// Every event id still expected, with its cascade.
    expected: HashMap<String, usize>,
    next_root: usize,
    /// Completion instants and latencies of cascades finished since the last `take`.
    completed: Vec<(Instant, Duration)>,
}

/// Tracks cascades started by the bench. Cheap to clone.
#[derive(Clone)]
pub struct CascadeTracker {
    state: Arc<Mutex<State>>,
    progress: Arc<Notify>,
    follow_emitted: bool,
}

impl CascadeTracker {
    /// Starts following `commits`. With `follow_emitted` false, a cascade ends when its root is
    /// applied (for routes whose emitted events go to topics nobody here consumes).
    pub fn spawn(mut commits: CommitReceiver, follow_emitted: bool) -> Self {
        let tracker = Self {
            state: Arc::default(),
            progress: Arc::new(Notify::new()),
            follow_emitted,
        };
        let applying = tracker.clone();
        tokio::spawn(async move {
            while let Some(commit) = commits.recv().await {
                applying.apply(commit);
            }
        });
        tracker
    }

    /// Expects the cascade of the event `event_id`, started at `started` (its commit, or just
    /// before its submission).
    pub fn start(&self, event_id: &str, started: Instant) {
        let mut state = self.state.lock().expect("tracker lock");
        let root = state.next_root;
        state.next_root += 1;
        state.live.insert(
            root,
            Cascade {
                started,
                pending: 1,
            },
        );
        state.expected.insert(event_id.to_owned(), root);
    }

    fn apply(&self, commit: Commit) {
        let mut state = self.state.lock().expect("tracker lock");
        let mut finished = false;
        for applied in commit.applied {
            let Some(root) = state.expected.remove(&applied.event_id) else {
                continue;
            };
            if self.follow_emitted {
                for child in &applied.emitted {
                    state.expected.insert(child.clone(), root);
                }
            }
            let Some(cascade) = state.live.get_mut(&root) else {
                continue;
            };
            cascade.pending -= 1;
            if self.follow_emitted {
                cascade.pending += applied.emitted.len();
            }
            if cascade.pending == 0 {
                let started = cascade.started;
                state.live.remove(&root);
                state
                    .completed
                    .push((commit.at, commit.at.saturating_duration_since(started)));
                finished = true;
            }
        }
        drop(state);
        if finished {
            self.progress.notify_waiters();
        }
    }

    /// Cascades not complete yet.
    pub fn live(&self) -> usize {
        self.state.lock().expect("tracker lock").live.len()
    }

    /// Waits until every cascade started so far is complete, or `limit` passes; then returns
    /// the completions since the last call.
    pub async fn wait_all(&self, limit: Duration) -> Result<Vec<(Instant, Duration)>, usize> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let progressed = self.progress.notified();
            let live = self.live();
            if live == 0 {
                let mut state = self.state.lock().expect("tracker lock");
                return Ok(std::mem::take(&mut state.completed));
            }
            // Woken by progress, or checked again at least every 100 ms.
            let step = (tokio::time::Instant::now() + Duration::from_millis(100)).min(deadline);
            tokio::select! {
                () = progressed => {}
                () = tokio::time::sleep_until(step) => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(self.live());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::commits::AppliedEvent;

    fn applied(id: &str, emitted: &[&str]) -> AppliedEvent {
        AppliedEvent {
            event_id: id.into(),
            emitted: emitted.iter().map(|id| (*id).to_owned()).collect(),
        }
    }

    #[tokio::test]
    async fn a_cascade_ends_with_its_last_descendant() {
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        let tracker = CascadeTracker::spawn(receiver, true);
        let started = Instant::now();
        tracker.start("root", started);
        let first = started + Duration::from_millis(3);
        let last = started + Duration::from_millis(9);
        sender
            .send(Commit {
                at: first,
                applied: vec![applied("root", &["a", "b"]), applied("other", &["x"])],
            })
            .unwrap();
        sender
            .send(Commit {
                at: first,
                applied: vec![applied("a", &[])],
            })
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(tracker.live(), 1, "b is still pending");
        sender
            .send(Commit {
                at: last,
                applied: vec![applied("b", &[])],
            })
            .unwrap();
        let done = tracker.wait_all(Duration::from_secs(5)).await.unwrap();
        assert_eq!(done, vec![(last, Duration::from_millis(9))]);
    }

    #[tokio::test]
    async fn without_following_a_cascade_ends_with_its_root() {
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        let tracker = CascadeTracker::spawn(receiver, false);
        let started = Instant::now();
        tracker.start("root", started);
        sender
            .send(Commit {
                at: started + Duration::from_millis(1),
                applied: vec![applied("root", &["never-consumed"])],
            })
            .unwrap();
        let done = tracker.wait_all(Duration::from_secs(5)).await.unwrap();
        assert_eq!(done.len(), 1);
    }

    #[tokio::test]
    async fn waiting_gives_up_with_the_cascades_left() {
        let (_sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        let tracker = CascadeTracker::spawn(receiver, true);
        tracker.start("root", Instant::now());
        assert_eq!(
            tracker
                .wait_all(Duration::from_millis(50))
                .await
                .unwrap_err(),
            1
        );
    }
}
