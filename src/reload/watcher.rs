//! Watches route and schema directories and asks for a reload when something in them changes.
//!
//! Each directory is watched recursively. Replacing the directory itself (a rename over it, or
//! a symlink swapped to a new release) is found by [`SourceWatcher::refresh`], which the
//! reload loop calls every second: it compares what the path resolves to (file system and
//! inode) and re-attaches the watch to the new target. The parent directory is not watched:
//! the default SQLite file and its WAL sit there, and every commit woke the watcher's thread
//! (7% of a core under load, measured by `crm-router bench`).

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
    /// What it resolved to when the recursive watch was attached.
    target: Option<Identity>,
}

/// Which directory a path resolves to: a rename over it changes the inode even where the
/// canonical path stays the same.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Identity {
    canonical: PathBuf,
    #[cfg(unix)]
    inode: (u64, u64),
}

impl Identity {
    fn of(path: &Path) -> Option<Self> {
        let canonical = std::fs::canonicalize(path).ok()?;
        #[cfg(unix)]
        let inode = {
            use std::os::unix::fs::MetadataExt as _;
            let metadata = std::fs::metadata(&canonical).ok()?;
            (metadata.dev(), metadata.ino())
        };
        Some(Self {
            canonical,
            #[cfg(unix)]
            inode,
        })
    }
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
            let target = Identity::of(&path);
            debouncer.watch(&path, RecursiveMode::Recursive)?;
            watched.push(Watched { path, target });
        }
        Ok(Self { debouncer, watched })
    }

    /// Re-attaches recursive watches whose directory now resolves to another one, and says
    /// whether any did (the routes in it are then new to the daemon).
    pub fn refresh(&mut self) -> bool {
        let mut replaced = false;
        for watched in &mut self.watched {
            let target = Identity::of(&watched.path);
            if target == watched.target {
                continue;
            }
            replaced = true;
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
        replaced
    }
}
