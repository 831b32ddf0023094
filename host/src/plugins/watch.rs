//! Watching plugins.d/: exactly one load per completed file change.
//!
//! Measured behaviour this design answers (`shared/notes/plugin-host.md` §6):
//! - a file can be announced before it is complete (a slow copy that pauses): every event only
//!   re-arms a per-file timer, and an incomplete ELF is "not ready yet", not an error, as long
//!   as it keeps growing;
//! - `install` and cargo remove and re-create a file: the timer absorbs the flap, so the worker
//!   is not orphaned in between;
//! - the host's own reads produce access events: those are ignored, or every load would
//!   trigger the next;
//! - `touch` changes nothing: the content hash is compared before loading.

use super::elf;
use super::registry::{is_plugin_file_name, Registry};
use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Quiet time after an event that does not say the file is complete (data written, created,
/// removed): long enough to absorb remove-then-create flaps and write bursts.
const QUIET: Duration = Duration::from_millis(300);
/// Delay after an event that says the writer is done (closed after writing, renamed into place).
const SETTLE: Duration = Duration::from_millis(20);
/// How long an incomplete file may stay unchanged before it is reported as refused.
const STALLED: Duration = Duration::from_secs(2);

/// A running watcher; stops when dropped.
pub struct PluginWatcher {
    _watcher: RecommendedWatcher,
}

/// What a pending file is waiting for.
struct Pending {
    due: Instant,
    /// Size seen at the last check of an incomplete file.
    incomplete_size: Option<u64>,
}

/// Starts watching the registry's plugins folder. `changed` is called after every load or
/// removal (to wake the dispatcher).
pub fn watch(
    registry: Arc<Registry>,
    changed: impl Fn() + Send + 'static,
) -> notify::Result<PluginWatcher> {
    let dir = registry.plugins_dir().to_owned();
    std::fs::create_dir_all(&dir).map_err(notify::Error::io)?;
    let (tx, rx) = mpsc::channel();
    let mut watcher = notify::recommended_watcher(move |event| {
        let _ = tx.send(event);
    })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    std::thread::Builder::new()
        .name("stask-plugin-watch".into())
        .spawn(move || run(&registry, &rx, &changed))
        .map_err(notify::Error::io)?;
    Ok(PluginWatcher { _watcher: watcher })
}

/// The delay an event asks for, or `None` for events to ignore.
fn delay_for(kind: &EventKind) -> Option<Duration> {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => Some(SETTLE),
        EventKind::Access(_) => None, // our own reads, and anyone's
        EventKind::Modify(ModifyKind::Name(_)) => Some(SETTLE),
        _ => Some(QUIET),
    }
}

fn run(
    registry: &Registry,
    rx: &mpsc::Receiver<notify::Result<notify::Event>>,
    changed: &dyn Fn(),
) {
    let mut pending: HashMap<String, Pending> = HashMap::new();
    loop {
        let now = Instant::now();
        let wait = pending
            .values()
            .map(|p| p.due.saturating_duration_since(now))
            .min()
            .unwrap_or(Duration::from_secs(3600));
        match rx.recv_timeout(wait) {
            Ok(Ok(event)) => {
                let Some(delay) = delay_for(&event.kind) else {
                    continue;
                };
                for path in &event.paths {
                    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                        continue;
                    };
                    if !is_plugin_file_name(name) {
                        continue;
                    }
                    let due = Instant::now() + delay;
                    pending
                        .entry(name.to_owned())
                        .and_modify(|p| p.due = due)
                        .or_insert(Pending {
                            due,
                            incomplete_size: None,
                        });
                }
            }
            Ok(Err(e)) => tracing::warn!("plugin folder watch error: {e}"),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        let now = Instant::now();
        let due: Vec<String> = pending
            .iter()
            .filter(|(_, p)| p.due <= now)
            .map(|(n, _)| n.clone())
            .collect();
        for name in due {
            let previous = pending.remove(&name).and_then(|p| p.incomplete_size);
            if let Some(size) = settle(registry, &name, previous) {
                pending.insert(
                    name,
                    Pending {
                        due: Instant::now() + STALLED,
                        incomplete_size: Some(size),
                    },
                );
                continue;
            }
            changed();
        }
    }
}

/// Acts on a file whose events went quiet. Returns `Some(size)` when the file is an incomplete
/// library still worth waiting for.
fn settle(registry: &Registry, name: &str, previous_size: Option<u64>) -> Option<u64> {
    let path = registry.plugins_dir().join(name);
    let result = match std::fs::read(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => registry.remove_file(name),
        Err(e) => {
            tracing::warn!(file = name, "cannot read: {e}");
            return None;
        }
        Ok(bytes) => {
            let size = bytes.len() as u64;
            let incomplete = matches!(
                elf::check_complete(&bytes),
                Err(elf::ElfError::Truncated { .. } | elf::ElfError::TooShort(_))
            );
            if incomplete && previous_size != Some(size) {
                tracing::info!(
                    file = name,
                    size,
                    "library not complete yet; waiting for the copy to finish"
                );
                return Some(size);
            }
            registry.load_bytes(name, &bytes).map(|_| ())
        }
    };
    if let Err(e) = result {
        tracing::error!(file = name, "cannot register the plugin change: {e}");
    }
    None
}
