//! Watching plugins.d/: exactly one load per completed file change.
//!
//! Measured behaviour this design answers (watching a folder with inotify on Linux):
//! - a file can be announced before it is complete (a slow copy that pauses): every event only
//!   re-arms a per-file timer, and an incomplete ELF is "not ready yet", not an error, as long
//!   as it keeps growing;
//! - `install` and cargo remove and re-create a file: the timer absorbs the flap, so the worker
//!   is not orphaned in between;
//! - the host's own reads produce access events: those are ignored, or every load would
//!   trigger the next;
//! - `touch` changes nothing: the content hash is compared before loading;
//! - nothing a file does can stall the watcher: files are read through [`super::read`]
//!   (regular files only, opened non-blocking, size-limited);
//! - the folder itself can be removed, or replaced (`mv plugins.d away; mkdir plugins.d`): an
//!   inotify watch follows the old folder's inode, so the parent folder is watched too (for
//!   the folder's own name) and the folder's identity (device, inode) is compared every
//!   second as a fallback. When it changed, the new folder is watched and scanned in full: its
//!   libraries load, and those of the old one are orphaned.

use super::elf;
use super::read::ReadError;
use super::registry::{is_plugin_file_name, Registry};
use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
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
/// How often the folder's identity is compared, in case no event announced its replacement
/// (the parent folder could not be watched, or was itself replaced).
const FOLDER_CHECK: Duration = Duration::from_secs(1);

/// A running watcher; stops when dropped.
pub struct PluginWatcher {
    stop: mpsc::Sender<Message>,
}

impl Drop for PluginWatcher {
    fn drop(&mut self) {
        let _ = self.stop.send(Message::Stop);
    }
}

/// What the watch thread receives.
enum Message {
    /// A file system event (or a watch error).
    Fs(notify::Result<notify::Event>),
    /// The [`PluginWatcher`] was dropped.
    Stop,
}

/// What a pending file is waiting for.
struct Pending {
    due: Instant,
    /// Size seen at the last check of an incomplete file.
    incomplete_size: Option<u64>,
}

/// A folder's identity: a replaced folder has another inode (or device).
type Identity = (u64, u64);

fn identity(dir: &Path) -> Option<Identity> {
    std::fs::metadata(dir)
        .ok()
        .filter(std::fs::Metadata::is_dir)
        .map(|m| (m.dev(), m.ino()))
}

/// The watched folder: what the inotify watch is on.
struct Folder {
    dir: PathBuf,
    /// The folder the watch is on; `None` while there is none (removed, or not watchable).
    watched: Option<Identity>,
    /// When to compare the identity again.
    check_due: Instant,
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
    let events = tx.clone();
    let mut watcher = notify::recommended_watcher(move |event| {
        let _ = events.send(Message::Fs(event));
    })?;
    let watched = identity(&dir);
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    // The parent, for events on the folder's own name (removed, moved away, created). Not
    // fatal: the periodic identity check covers a parent that cannot be watched.
    if let Some(parent) = dir.parent() {
        if let Err(e) = watcher.watch(parent, RecursiveMode::NonRecursive) {
            tracing::warn!(dir = %parent.display(), "cannot watch the plugins folder's parent (a replaced folder is noticed within {FOLDER_CHECK:?}): {e}");
        }
    }
    let folder = Folder {
        dir,
        watched,
        check_due: Instant::now() + FOLDER_CHECK,
    };
    std::thread::Builder::new()
        .name("stask-plugin-watch".into())
        .spawn(move || run(&registry, watcher, folder, &rx, &changed))
        .map_err(notify::Error::io)?;
    Ok(PluginWatcher { stop: tx })
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
    mut watcher: RecommendedWatcher,
    mut folder: Folder,
    rx: &mpsc::Receiver<Message>,
    changed: &dyn Fn(),
) {
    let mut pending: HashMap<String, Pending> = HashMap::new();
    loop {
        let now = Instant::now();
        let wait = pending
            .values()
            .map(|p| p.due)
            .chain(std::iter::once(folder.check_due))
            .min()
            .map_or(FOLDER_CHECK, |due| due.saturating_duration_since(now));
        match rx.recv_timeout(wait) {
            Ok(Message::Fs(Ok(event))) => {
                let Some(delay) = delay_for(&event.kind) else {
                    continue;
                };
                for path in &event.paths {
                    if *path == folder.dir {
                        // The folder itself was removed, moved or created: look once the
                        // events went quiet (a `mv` + `mkdir` is two events).
                        folder.check_due = folder.check_due.min(Instant::now() + QUIET);
                        continue;
                    }
                    if path.parent() != Some(folder.dir.as_path()) {
                        continue; // another entry of the parent folder
                    }
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
            Ok(Message::Fs(Err(e))) => tracing::warn!("plugin folder watch error: {e}"),
            Ok(Message::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        let now = Instant::now();
        if folder.check_due <= now {
            folder.check_due = now + FOLDER_CHECK;
            if check_folder(registry, &mut watcher, &mut folder) {
                changed();
            }
        }
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

/// Compares the folder with the one watched; when it was removed, replaced or recreated,
/// moves the watch to the folder now at the path (if any) and scans it in full. Returns
/// whether it scanned.
fn check_folder(
    registry: &Registry,
    watcher: &mut RecommendedWatcher,
    folder: &mut Folder,
) -> bool {
    let now = identity(&folder.dir);
    if now == folder.watched {
        return false;
    }
    // The old watch follows the old folder (or is gone with it): drop it. An error only says
    // notify already dropped it.
    let _ = watcher.unwatch(&folder.dir);
    folder.watched = None;
    if now.is_some() {
        match watcher.watch(&folder.dir, RecursiveMode::NonRecursive) {
            // Identity read before the watch: if the folder changed in between, the next check
            // sees a difference and moves the watch again.
            Ok(()) => folder.watched = now,
            Err(e) => {
                tracing::warn!(dir = %folder.dir.display(), "cannot watch the new plugins folder (retried every {FOLDER_CHECK:?}): {e}");
            }
        }
        tracing::warn!(dir = %folder.dir.display(), "the plugins folder was replaced: watching the new one and loading what it holds");
    } else {
        tracing::warn!(dir = %folder.dir.display(), "the plugins folder was removed: its workers are orphaned until it is back");
    }
    // After the watch moved, so no file arriving meanwhile is missed.
    if let Err(e) = registry.scan() {
        tracing::error!("cannot register the new plugins folder: {e}");
    }
    true
}

/// Acts on a file whose events went quiet. Returns `Some(size)` when the file is an incomplete
/// library still worth waiting for.
fn settle(registry: &Registry, name: &str, previous_size: Option<u64>) -> Option<u64> {
    let read = match registry.read_file(name) {
        Err(ReadError::NotFound(_)) => {
            log_failure(name, registry.remove_file(name));
            return None;
        }
        // Folders are ignored, as at a scan.
        Err(e) if e.is_directory() => return None,
        Err(_) => {
            // Refused by type or size (recorded with the reason), or unreadable.
            log_failure(name, registry.load_file(name).map(|_| ()));
            return None;
        }
        Ok(read) => read,
    };
    let size = read.bytes.len() as u64;
    let incomplete = matches!(
        elf::check_complete(&read.bytes),
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
    log_failure(name, registry.load_read(name, &read).map(|_| ()));
    None
}

fn log_failure(name: &str, result: stask_store::StoreResult<()>) {
    if let Err(e) = result {
        tracing::error!(file = name, "cannot register the plugin change: {e}");
    }
}
