//! The start journal: where SQLite records that a pool thread starts a run, without a database
//! write.
//!
//! A run's start must survive a `kill -9` of the process, so that recovery counts the attempt of
//! a run that started and gives a task only claimed ahead back without one (see
//! `state::after_lost_lease`). On SQLite exactly one process uses the database (the home lock)
//! and leases are recovered only at start, by the next process on the same files, so the start
//! need not be in the database: one `pwrite` into this file (the page cache) survives the kill
//! just as well, and it keeps the start off the single writer connection (a write transaction
//! per run halved the drain). The database learns of the start lazily: the ticker's
//! [`flush`](super::SqliteStore) moves started rows to `running` with their attempt, and a
//! finish writes the attempt too (`Finish::attempts`).
//!
//! **Layout.** A ring of [`SLOTS`] slots of 16 bytes (task id, lease token; little endian) in
//! `<database>-starts`, written at slot `seq % SLOTS`. Lease tokens are random per claim, so an
//! old entry never matches a newer lease of the same task: nothing is ever cleared.
//!
//! **Why the ring is big enough.** An entry is needed only until its row is `running` or
//! finished in the database: the next start flush (every 250 ms) or the run's finish. The ring
//! holds 2^18 starts, and every start follows a claim, which is a write on the same single
//! writer connection as the flush; so the ring can only wrap past a row still needing its entry
//! if 2^18 claims commit while the start flushes keep failing on that same connection.
//!
//! **Durability.** No fsync: like `synchronous = NORMAL`, a killed process loses nothing, a
//! power loss (or kernel crash) may lose the last starts; such a run is then recovered as
//! never started (pending again, no attempt used).

use crate::{Lease, StoreError, StoreResult};
use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Starts the ring holds.
pub const SLOTS: u64 = 1 << 18;
/// Bytes per start: task id and lease token.
const SLOT_BYTES: u64 = 16;

/// The ring file, shared by the pool threads (`pwrite` at disjoint offsets needs no lock).
pub struct StartJournal {
    file: File,
    path: PathBuf,
    seq: AtomicU64,
}

impl StartJournal {
    /// The journal's file beside the database: `stask.db-starts`, or `stask.db-evo_starts`
    /// for the table prefix `evo_` (each installation in one file has its own runs).
    pub fn path_for(db: &Path, prefix: &str) -> PathBuf {
        let mut name = db.as_os_str().to_owned();
        name.push(format!("-{prefix}starts"));
        PathBuf::from(name)
    }

    /// Opens (creating at full size if needed) the journal of the database at `db`. Entries
    /// of earlier processes stay until recovery has read them: this process starts runs only
    /// after its recovery at start (`Engine::recover_at_start`, before the pool starts).
    pub fn open(db: &Path, prefix: &str) -> StoreResult<StartJournal> {
        let path = Self::path_for(db, prefix);
        let fail = |what: &str, e: std::io::Error| {
            StoreError::database(
                format!("cannot {what} the start journal {}", path.display()),
                e,
            )
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| fail("open", e))?;
        let len = file.metadata().map_err(|e| fail("read", e))?.len();
        if len < SLOTS * SLOT_BYTES {
            file.set_len(SLOTS * SLOT_BYTES)
                .map_err(|e| fail("size", e))?;
        }
        Ok(StartJournal {
            file,
            path,
            seq: AtomicU64::new(0),
        })
    }

    /// Records that the run under `lease` starts: one `pwrite`, no fsync.
    pub fn record(&self, lease: Lease) -> StoreResult<()> {
        let slot = self.seq.fetch_add(1, Ordering::Relaxed) % SLOTS;
        let mut entry = [0u8; SLOT_BYTES as usize];
        entry[..8].copy_from_slice(&lease.task_id.to_le_bytes());
        entry[8..].copy_from_slice(&lease.token.to_le_bytes());
        self.file
            .write_all_at(&entry, slot * SLOT_BYTES)
            .map_err(|e| {
                StoreError::database(
                    format!("cannot write the start journal {}", self.path.display()),
                    e,
                )
            })
    }

    /// Every lease the ring holds a start of (read once, by recovery).
    pub fn read(&self) -> StoreResult<HashSet<Lease>> {
        let mut bytes = vec![0u8; (SLOTS * SLOT_BYTES) as usize];
        self.file.read_exact_at(&mut bytes, 0).map_err(|e| {
            StoreError::database(
                format!("cannot read the start journal {}", self.path.display()),
                e,
            )
        })?;
        Ok(bytes
            .chunks_exact(SLOT_BYTES as usize)
            .map(|e| {
                let task_id = i64::from_le_bytes(e[..8].try_into().expect("8 bytes"));
                let token = i64::from_le_bytes(e[8..].try_into().expect("8 bytes"));
                Lease { task_id, token }
            })
            // Never written (task ids start at 1).
            .filter(|lease| lease.task_id != 0)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_start_is_read_back_by_a_new_handle_and_the_ring_wraps() {
        let dir = std::env::temp_dir().join(format!("stask-starts-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("stask.db");
        let journal = StartJournal::open(&db, "").unwrap();
        let first = Lease {
            task_id: 7,
            token: 42,
        };
        journal.record(first).unwrap();
        drop(journal);
        let again = StartJournal::open(&db, "").unwrap();
        assert_eq!(
            std::fs::metadata(StartJournal::path_for(&db, ""))
                .unwrap()
                .len(),
            SLOTS * SLOT_BYTES
        );
        assert!(again.read().unwrap().contains(&first));
        // A new handle writes from slot 0: after a full ring the oldest entry is gone.
        for n in 0..SLOTS {
            again
                .record(Lease {
                    task_id: 1_000 + n as i64,
                    token: 1,
                })
                .unwrap();
        }
        let held = again.read().unwrap();
        assert!(!held.contains(&first));
        assert_eq!(held.len() as u64, SLOTS);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
