//! Unique tasks: a create whose `unique_key` is held by another task creates nothing and
//! answers that task's id (`Inserted { duplicate: true }`).
//!
//! **Design.** The holder of a key is one row of `s_unique_keys (unique_key PRIMARY KEY,
//! task_id, held_until)`, written in the transaction that inserts the task. Every driver runs,
//! per keyed task of a batch and in batch order:
//!
//! 1. [`FREE_STALE`]: delete the key's row if it no longer holds (`held_until` passed, or no
//!    `held_until` and its task is no longer pending, claimed or running, or gone);
//! 2. insert the task (in the batch's own statement);
//! 3. insert `(key, task id, held_until)`; the primary key refuses it when another row holds
//!    the key: then the task is a duplicate of that row's task, and the task row inserted in
//!    step 2 is deleted again in the same transaction (its id stays unused).
//!
//! SQLite has one writer connection, so nothing can take a key between two statements of its
//! transaction: it reads the key's holder after step 1 and inserts neither row for a
//! duplicate (no id is used).
//!
//! Why a table and a primary key rather than a partial unique index on `s_tasks`: the rule
//! "held while pending or running" could be a partial index in SQLite and PostgreSQL, but
//! MySQL has no partial indexes (it would need a generated column per rule), and `unique_for`
//! ("held N seconds after creation, whatever the status") depends on the time, which no index
//! predicate may read. One table serves both rules on every backend, and the database decides
//! who holds a key: two creates of one key on two hosts at once cannot both insert the row (the
//! second waits for the first's commit: PostgreSQL's `ON CONFLICT DO NOTHING` and InnoDB's
//! duplicate check wait on the uncommitted row; SQLite has one writer), so there is no read
//! then write to race. Within one batch the second create of a key conflicts with the first's
//! row and is its duplicate.

use crate::model::{NewTask, TaskStatus};
use crate::task_state::sql::status_in;
use std::sync::LazyLock;

/// Longest `unique_key`, in characters (an index key of MySQL's utf8mb4 fits 191).
pub const MAX_UNIQUE_KEY_CHARS: usize = 191;

/// Longest `unique_for`: a year, in seconds.
pub const MAX_UNIQUE_FOR_SECS: i64 = 366 * 24 * 3600;

/// The statuses in which a task holds its key when it was created without `unique_for`.
pub const HOLDING: &[TaskStatus] = &[
    TaskStatus::Pending,
    TaskStatus::Preparing,
    TaskStatus::Running,
];

/// Deletes the row of key `{key}` when it no longer holds at `{now}` (UNIX ms); formatted per
/// dialect with its placeholders by [`free_stale`].
pub fn free_stale(key: &str, now: &str) -> String {
    format!(
        "DELETE FROM s_unique_keys
          WHERE unique_key = {key}
            AND ((held_until IS NOT NULL AND held_until <= {now})
                 OR (held_until IS NULL
                     AND NOT EXISTS (SELECT 1 FROM s_tasks ht
                                      WHERE ht.id = s_unique_keys.task_id AND {holding})))",
        holding = status_in("ht.status", HOLDING),
    )
}

/// [`free_stale`] with `?` placeholders (key, now): SQLite and MySQL.
pub static FREE_STALE: LazyLock<String> = LazyLock::new(|| free_stale("?", "?"));

/// Deletes the key rows retention leaves behind (run after it deleted tasks): rows whose task
/// is gone and that no `held_until` after `{cutoff}` keeps. Without this, a key used once
/// (an order number) would keep its row forever; rows of live tasks are bounded by the tasks.
pub fn orphaned_keys(cutoff: &str) -> String {
    format!(
        "DELETE FROM s_unique_keys
          WHERE (held_until IS NULL OR held_until <= {cutoff})
            AND NOT EXISTS (SELECT 1 FROM s_tasks ot WHERE ot.id = s_unique_keys.task_id)"
    )
}

/// [`orphaned_keys`] with a `?` placeholder: SQLite and MySQL.
pub static ORPHANED_KEYS: LazyLock<String> = LazyLock::new(|| orphaned_keys("?"));

/// Until when (UNIX ms) a new task holds its key regardless of status: `now + unique_for`;
/// `None` for a task without `unique_for` (held by status) or without a key.
pub fn held_until(task: &NewTask, now: i64) -> Option<i64> {
    task.unique_key.as_ref()?;
    task.unique_for_secs
        .map(|secs| now.saturating_add(secs.saturating_mul(1_000)))
}

/// Why `key`/`unique_for` cannot be used, if they cannot (the API answers 422, the CLI 5).
pub fn check(key: Option<&str>, unique_for_secs: Option<i64>) -> Result<(), String> {
    match key {
        None if unique_for_secs.is_some() => {
            return Err("unique_for needs a unique_key".into());
        }
        None => return Ok(()),
        Some("") => return Err("unique_key must not be empty".into()),
        Some(k) if k.chars().count() > MAX_UNIQUE_KEY_CHARS => {
            return Err(format!(
                "unique_key is longer than {MAX_UNIQUE_KEY_CHARS} characters"
            ));
        }
        Some(k) if k.contains('\0') => {
            return Err("unique_key must not contain NUL".into());
        }
        Some(_) => {}
    }
    match unique_for_secs {
        Some(s) if !(1..=MAX_UNIQUE_FOR_SECS).contains(&s) => Err(format!(
            "unique_for must be 1 to {MAX_UNIQUE_FOR_SECS} seconds, got {s}"
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_durations_are_checked() {
        assert!(check(None, None).is_ok());
        assert!(check(Some("k"), Some(60)).is_ok());
        assert!(check(None, Some(60)).is_err());
        assert!(check(Some(""), None).is_err());
        assert!(check(Some(&"é".repeat(191)), None).is_ok());
        assert!(check(Some(&"é".repeat(192)), None).is_err());
        assert!(check(Some("k"), Some(0)).is_err());
        assert!(check(Some("k"), Some(MAX_UNIQUE_FOR_SECS + 1)).is_err());
    }

    #[test]
    fn a_key_is_held_by_status_in_the_claim_and_run_statuses() {
        assert!(
            FREE_STALE.contains("ht.status IN (10, 15, 20)"),
            "{}",
            *FREE_STALE
        );
    }
}
