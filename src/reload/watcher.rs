//! Watches route and schema directories and asks for a reload when something in them changes.
//!
//! Each directory is watched recursively, and its parent non-recursively so that replacing the
//! directory (a rename, or a symlink swapped to a new release) is noticed too; after such a
//! swap [`SourceWatcher::refresh`] re-attaches the recursive watch to the new target.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify::RecursiveMode;
use notify_debouncer_full::{new_debouncer, DebounceEventResult, Debouncer, RecommendedCache};
use tokio::sync::mpsc;

use super::Signal;

/// Quiet period before a burst of file events becomes one reload.
const DEBOUNCE: Duration = Duration::from_millis(150);

struct Watched {
    /// The directory as configured (absolute, may be a symlink).
    path: PathBuf,
    /// Where it pointed when the recursive watch was attached.
    target: Option<PathBuf>,
}

/// A running watcher; dropping it stops watching.
pub struct SourceWatcher {
    debouncer: Debouncer<notify::RecommendedWatcher, RecommendedCache>,
    watched: Vec<Watched>,
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

impl SourceWatcher {
    /// Starts watching `directories`; each relevant change sends `Signal::Reload("watcher")`.
    pub fn start(directories: &[PathBuf], signals: mpsc::Sender<Signal>) -> notify::Result<Self> {
        let roots: Arc<Mutex<Vec<PathBuf>>> = Arc::new(Mutex::new(
            directories.iter().map(|dir| absolute(dir)).collect(),
        ));
        let relevant = roots.clone();
        let mut debouncer = new_debouncer(DEBOUNCE, None, move |result: DebounceEventResult| {
            let Ok(events) = result else { return };
            let roots = relevant.lock().expect("watch roots lock");
            // Reading the files (as every reload does) raises access events; only changes count.
            let touches_sources = events
                .iter()
                .filter(|event| !matches!(event.kind, notify::EventKind::Access(_)))
                .flat_map(|event| event.paths.iter())
                .any(|path| roots.iter().any(|root| path.starts_with(root)));
            if touches_sources {
                // A full channel already holds a pending reload; dropping this one loses nothing.
                let _ = signals.try_send(Signal::Reload("watcher"));
            }
        })?;
        let mut watched = Vec::new();
        for directory in directories {
            let path = absolute(directory);
            if let Some(parent) = path.parent() {
                debouncer.watch(parent, RecursiveMode::NonRecursive)?;
            }
            let target = std::fs::canonicalize(&path).ok();
            debouncer.watch(&path, RecursiveMode::Recursive)?;
            watched.push(Watched { path, target });
        }
        Ok(Self { debouncer, watched })
    }

    /// Re-attaches recursive watches whose directory now resolves somewhere else.
    pub fn refresh(&mut self) {
        for watched in &mut self.watched {
            let target = std::fs::canonicalize(&watched.path).ok();
            if target == watched.target {
                continue;
            }
            let _ = self.debouncer.unwatch(&watched.path);
            if target.is_some() {
                if let Err(error) = self
                    .debouncer
                    .watch(&watched.path, RecursiveMode::Recursive)
                {
                    tracing::warn!(path = %watched.path.display(), %error, "cannot watch directory");
                }
            }
            tracing::info!(path = %watched.path.display(), "watched directory was replaced; watching the new one");
            watched.target = target;
        }
    }
}
