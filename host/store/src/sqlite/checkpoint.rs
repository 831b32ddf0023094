//! The WAL checkpointer: its own connection and thread, so no commit of the single writer
//! waits for a checkpoint's fsync (inside a commit they made the latency tail).
//!
//! Every 250 ms a PASSIVE checkpoint copies what it can of the WAL into the database file
//! without blocking anyone. That alone never shrinks the WAL: SQLite only starts writing it
//! from the beginning again when a writer begins while every frame is copied and no reader
//! still reads from the WAL, which a busy daemon (readers and the writer always at work)
//! almost never sees; 20,000 tasks left a 686 MB WAL that stayed at that size for good. So:
//! - when the WAL holds more than [`RESTART_ABOVE`] bytes of frames, a RESTART checkpoint
//!   waits (at most [`WAIT`]) for the writer and the readers to let go, so the next commit
//!   writes the WAL from its start, and `journal_size_limit` ([`KEEP_WAL_BYTES`]) makes that
//!   commit cut the file down;
//! - when nothing was written for a round and every frame is copied (idle), a TRUNCATE
//!   checkpoint empties the file;
//! - at a clean stop, [`truncate`] empties it too.
//!
//! The passive copy keeps the work of a RESTART small (the frames are mostly copied already),
//! so the writer waits only for the last pages and one fsync, a few times per 32 MB written.
//!
//! Each round also checks that the database files are still the ones the process holds
//! ([`Health::check_files`]), and failures are told once when they start and once when they
//! end ([`Health`]).

use super::health::{Health, Source};
use crate::{StoreError, StoreResult};
use rusqlite::Connection;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How often a round runs.
const EVERY: Duration = Duration::from_millis(250);

/// WAL content (frames not yet reset) above which a round resets the WAL with RESTART.
pub const RESTART_ABOVE: i64 = 32 << 20;

/// `journal_size_limit`: what a reset WAL file is cut down to (kept, not emptied, so that
/// the next commits overwrite allocated space instead of growing the file).
pub const KEEP_WAL_BYTES: i64 = 8 << 20;

/// Longest a RESTART or TRUNCATE waits for the writer and the readers (the checkpointer
/// connection's busy timeout). Short, because commits wait while it holds the write lock;
/// a round that could not finish in time is tried again at the next.
const WAIT: Duration = Duration::from_millis(100);

/// What `PRAGMA wal_checkpoint` answers: whether it was blocked, frames in the WAL, frames
/// copied into the database file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Round {
    busy: bool,
    log: i64,
    copied: i64,
}

fn checkpoint(conn: &Connection, mode: &str) -> StoreResult<Round> {
    Ok(
        conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
            Ok(Round {
                busy: r.get::<_, i64>(0)? != 0,
                log: r.get(1)?,
                copied: r.get(2)?,
            })
        })?,
    )
}

/// Empties the WAL (everything copied into the database file, the file cut to 0 bytes), on
/// `conn` with its own busy timeout. Used at a clean stop.
pub fn truncate(conn: &Connection) -> StoreResult<()> {
    let round = checkpoint(conn, "TRUNCATE")?;
    if round.busy {
        tracing::warn!("the final WAL checkpoint was blocked by a reader; the WAL is kept");
    }
    Ok(())
}

/// The checkpointer's state between rounds.
struct Checkpointer {
    conn: Connection,
    dir: PathBuf,
    health: Arc<Health>,
    frame_bytes: i64,
    last_log: i64,
}

impl Checkpointer {
    /// One round: a passive copy, then a reset when the WAL is large or idle. Answers whether
    /// the whole WAL is copied (what ends a checkpoint fault: a round with nothing to copy
    /// proves nothing).
    fn round(&mut self) -> StoreResult<bool> {
        let passive = checkpoint(&self.conn, "PASSIVE")?;
        let idle = passive.log > 0 && passive.log == passive.copied && passive.log == self.last_log;
        self.last_log = passive.log;
        if idle {
            checkpoint(&self.conn, "TRUNCATE")?;
        } else if passive.log * self.frame_bytes > RESTART_ABOVE {
            checkpoint(&self.conn, "RESTART")?;
        }
        Ok(passive.log == passive.copied)
    }

    fn run(mut self, stop: &AtomicBool) {
        let mut rescued = false;
        while !stop.load(Ordering::Relaxed) {
            if self.health.check_files().is_some() && self.health.wal_lost_database_kept() {
                self.rescue();
                rescued = true;
            }
            // Files replaced: no more checkpoints, they would write into a file nobody sees.
            if !rescued && self.health.refuse_if_replaced().is_ok() {
                match self.round() {
                    Ok(true) => self.health.succeeded(Source::Checkpoints),
                    Ok(false) => {}
                    Err(e) => self
                        .health
                        .failed(Source::Checkpoints, &e.in_folder(&self.dir)),
                }
            }
            // Parked rather than asleep, so that a clean stop (`SqliteStore::close`) can wake
            // it and wait for it at once.
            std::thread::park_timeout(EVERY);
        }
    }

    /// The WAL was removed, but the process still holds it open and the database file is
    /// still the real one: copy every committed frame into the database file once, so that
    /// nothing committed is lost when the daemon restarts on it.
    fn rescue(&self) {
        match checkpoint(&self.conn, "FULL") {
            Ok(r) if !r.busy && r.log == r.copied => tracing::error!(
                "the removed WAL's {} committed pages were copied into the database file; \
                 nothing committed is lost if the daemon restarts now",
                r.copied
            ),
            Ok(r) => tracing::error!(
                "could copy only {} of the removed WAL's {} pages into the database file",
                r.copied,
                r.log
            ),
            Err(e) => tracing::error!("could not copy the removed WAL into the database: {e}"),
        }
    }
}

/// Starts the checkpointer on `conn` until `stop` (then unpark the thread and join it: a
/// checkpoint of its own still running would make the final TRUNCATE find the WAL busy).
pub fn spawn(
    conn: Connection,
    db: PathBuf,
    health: Arc<Health>,
    stop: Arc<AtomicBool>,
) -> StoreResult<JoinHandle<()>> {
    conn.busy_timeout(WAIT)?;
    let page: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    let checkpointer = Checkpointer {
        conn,
        dir: db.parent().map(ToOwned::to_owned).unwrap_or_default(),
        health,
        // A frame is a page and its 24-byte header.
        frame_bytes: page + 24,
        last_log: 0,
    };
    std::thread::Builder::new()
        .name("stask-checkpoint".into())
        .spawn(move || checkpointer.run(&stop))
        .map_err(|e| StoreError::database("cannot start the WAL checkpointer", e))
}
