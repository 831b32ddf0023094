//! What is wrong with the storage under the SQLite database, told once when it starts and
//! once when it ends.
//!
//! Two kinds of fault:
//! - **Refusals** (full, read-only, failing I/O): a write or a checkpoint failed with one of
//!   them. Each source (writes, checkpoints) is one fault: logged when its first failure comes,
//!   logged again when its next success comes, silent in between (the checkpointer retries
//!   four times a second; a log line each time would bury the log).
//! - **Files replaced**: the database file or its WAL, which this process holds open, is no
//!   longer what the path names (removed, or another file moved there). That does not heal:
//!   writes are refused until the daemon restarts, so nothing more is written into files
//!   nobody else sees, and no other process mixes our shared-memory index with a new WAL.

use crate::StoreError;
use parking_lot::Mutex;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Where a refusal came from: each is its own fault with its own start and end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    /// A write on the writer connection.
    Writes,
    /// The background WAL checkpoint.
    Checkpoints,
}

impl Source {
    fn what(self) -> &'static str {
        match self {
            Source::Writes => "database writes",
            Source::Checkpoints => "WAL checkpoints",
        }
    }
}

/// A file the store holds and the identity it had (device, inode).
#[derive(Debug)]
struct Held {
    path: PathBuf,
    identity: Option<(u64, u64)>,
}

/// A refusal that lasts.
#[derive(Debug, Clone)]
struct Fault {
    message: String,
    /// The storage was full: the fault ends only once there is room again, since on a full
    /// disk small writes still succeed now and then in WAL space already allocated.
    full: bool,
}

/// Free space below which a full storage is still full.
const ROOM_AGAIN: u64 = 1 << 20;

/// Bytes an unprivileged user may still write on the file system holding `dir`.
fn free_bytes(dir: &Path) -> Option<u64> {
    let stat = rustix::fs::statvfs(dir).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// The storage's state, shared by the store and its checkpointer thread.
#[derive(Debug)]
pub(super) struct Health {
    dir: PathBuf,
    writes: Mutex<Option<Fault>>,
    checkpoints: Mutex<Option<Fault>>,
    replaced: Mutex<Option<String>>,
    held: Mutex<Vec<Held>>,
}

fn identity(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// `stask.db` → `stask.db-wal`.
pub(super) fn wal_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

impl Health {
    /// Watches the database file and its WAL (their identities are taken now, or for a WAL
    /// not created yet, when it first appears).
    pub(super) fn new(db: &Path) -> Health {
        let held = [db.to_owned(), wal_path(db)]
            .into_iter()
            .map(|path| Held {
                identity: identity(&path),
                path,
            })
            .collect();
        Health {
            dir: db.parent().map(ToOwned::to_owned).unwrap_or_default(),
            writes: Mutex::new(None),
            checkpoints: Mutex::new(None),
            replaced: Mutex::new(None),
            held: Mutex::new(held),
        }
    }

    fn slot(&self, source: Source) -> &Mutex<Option<Fault>> {
        match source {
            Source::Writes => &self.writes,
            Source::Checkpoints => &self.checkpoints,
        }
    }

    /// A call from `source` failed: a storage fault starts (logged) unless one lasts.
    pub(super) fn failed(&self, source: Source, error: &StoreError) {
        if !error.is_storage_fault() || matches!(error, StoreError::FilesReplaced(_)) {
            return;
        }
        let fault = Fault {
            message: error.to_string(),
            full: matches!(error, StoreError::StorageFull { .. }),
        };
        let was = self.slot(source).lock().replace(fault);
        if was.is_none() {
            tracing::error!(
                "storage fault: {} fail: {error} (logged again when it ends)",
                source.what()
            );
        }
    }

    /// A call from `source` succeeded: a fault that lasted ends (logged), a full storage
    /// once it has room again.
    pub(super) fn succeeded(&self, source: Source) {
        let mut slot = self.slot(source).lock();
        let Some(fault) = &*slot else {
            return;
        };
        if fault.full && free_bytes(&self.dir).is_some_and(|free| free < ROOM_AGAIN) {
            return;
        }
        if let Some(fault) = slot.take() {
            tracing::info!(
                "storage fault ended: {} work again (was: {})",
                source.what(),
                fault.message
            );
        }
    }

    /// Compares the held files with what their paths name now. The first time one differs,
    /// logs it loudly and returns the description (the store then refuses writes).
    pub(super) fn check_files(&self) -> Option<String> {
        if self.replaced.lock().is_some() {
            return None;
        }
        let mut changed = Vec::new();
        for held in self.held.lock().iter_mut() {
            let now = identity(&held.path);
            match (held.identity, now) {
                (None, now) => held.identity = now,
                (Some(_), None) => changed.push(format!("{} was removed", held.path.display())),
                (Some(was), Some(now)) if was != now => changed.push(format!(
                    "{} was replaced by another file",
                    held.path.display()
                )),
                _ => {}
            }
        }
        if changed.is_empty() {
            return None;
        }
        let what = changed.join(", ");
        // Refuse first, then tell: whoever reads the log line must already be refused.
        *self.replaced.lock() = Some(what.clone());
        tracing::error!(
            "the database files were removed or replaced while the daemon runs: {what}; \
             refusing every write from now on so as not to corrupt the database; restore the \
             files or restart the daemon"
        );
        Some(what)
    }

    /// `Err(FilesReplaced)` once the held files were found removed or replaced.
    pub(super) fn refuse_if_replaced(&self) -> Result<(), StoreError> {
        match &*self.replaced.lock() {
            Some(what) => Err(StoreError::FilesReplaced(what.clone())),
            None => Ok(()),
        }
    }

    /// Whether the WAL is gone while the database file is still ours: its committed pages
    /// can then still be copied into the database file (the process holds the WAL open).
    pub(super) fn wal_lost_database_kept(&self) -> bool {
        let held = self.held.lock();
        let ok = |i: usize| {
            held.get(i)
                .is_some_and(|h| h.identity.is_some() && identity(&h.path) == h.identity)
        };
        ok(0) && !ok(1)
    }

    /// The fault that lasts now, for the `storage_fault` alert.
    pub(super) fn current(&self) -> Option<String> {
        if let Some(what) = &*self.replaced.lock() {
            return Some(StoreError::FilesReplaced(what.clone()).to_string());
        }
        let writes = self.writes.lock().clone();
        writes
            .or_else(|| self.checkpoints.lock().clone())
            .map(|f| f.message)
    }
}

#[cfg(test)]
mod tests {
    use super::{Health, Source};
    use crate::StoreError;
    use std::path::{Path, PathBuf};

    /// A fresh folder, removed at the end of the test.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> TempDir {
            let dir = std::env::temp_dir().join(format!("stask-health-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn full() -> StoreError {
        StoreError::StorageFull {
            folder: None,
            source: crate::SharedError::new(std::io::Error::other("database or disk is full")),
        }
    }

    #[test]
    fn a_fault_lasts_from_its_first_failure_to_its_next_success() {
        let dir = TempDir::new();
        let health = Health::new(&dir.path().join("stask.db"));
        assert_eq!(health.current(), None);
        health.failed(Source::Checkpoints, &full());
        health.failed(Source::Checkpoints, &full());
        assert!(health.current().unwrap().contains("the storage is full"));
        // Errors of one request are no fault of the storage.
        health.failed(Source::Writes, &StoreError::conflict("duplicate"));
        health.succeeded(Source::Writes);
        assert!(health.current().is_some());
        health.succeeded(Source::Checkpoints);
        assert_eq!(health.current(), None);
    }

    #[test]
    fn removed_or_replaced_files_are_found_once_and_refuse_writes() {
        let dir = TempDir::new();
        let db = dir.path().join("stask.db");
        std::fs::write(&db, b"x").unwrap();
        let health = Health::new(&db);
        assert_eq!(health.check_files(), None);
        // A WAL that appears later is taken as it is then.
        std::fs::write(super::wal_path(&db), b"w").unwrap();
        assert_eq!(health.check_files(), None);
        assert!(health.refuse_if_replaced().is_ok());
        std::fs::remove_file(super::wal_path(&db)).unwrap();
        assert!(health.wal_lost_database_kept());
        let what = health.check_files().expect("found");
        assert!(what.contains("stask.db-wal was removed"), "{what}");
        assert_eq!(health.check_files(), None, "told once");
        assert!(matches!(
            health.refuse_if_replaced(),
            Err(StoreError::FilesReplaced(_))
        ));
        assert!(health.current().unwrap().contains("removed or replaced"));
    }

    #[test]
    fn a_database_file_moved_over_is_a_replacement() {
        let dir = TempDir::new();
        let db = dir.path().join("stask.db");
        std::fs::write(&db, b"x").unwrap();
        let health = Health::new(&db);
        let other = dir.path().join("other.db");
        std::fs::write(&other, b"y").unwrap();
        std::fs::rename(&other, &db).unwrap();
        let what = health.check_files().expect("found");
        assert!(what.contains("replaced by another file"), "{what}");
    }
}
