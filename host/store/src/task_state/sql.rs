//! SQL fragments built from the transition table, for the drivers' statements.
//!
//! Status codes go into the statement text as literals, never as bound parameters: the claim
//! and lease indexes are partial indexes with literal predicates (`WHERE status = 10`,
//! `WHERE status IN (15, 20)`), and SQLite uses a partial index only when the query's `WHERE`
//! has the same literal term. Drivers format each statement once (a `LazyLock<String>`), so
//! its text is stable for the prepared-statement caches.

use super::table::{rule, Event};
use crate::model::TaskStatus;

/// `expr = 10` for one status, `expr IN (15, 20)` for several (the codes in the given order).
/// One status is written with `=`: that is the form the partial indexes' predicates use.
///
/// # Panics
/// If `statuses` is empty (no SQL says "in no status"; a programming error caught by the
/// first test that builds the statement).
pub fn status_in(expr: &str, statuses: &[TaskStatus]) -> String {
    match statuses {
        [] => panic!("status_in({expr}) needs at least one status"),
        [one] => format!("{expr} = {}", one.code()),
        many => {
            let codes: Vec<String> = many.iter().map(|s| s.code().to_string()).collect();
            format!("{expr} IN ({})", codes.join(", "))
        }
    }
}

/// `expr <> 10`: any status but `status` (e.g. every task that was claimed at least once).
pub fn status_not(expr: &str, status: TaskStatus) -> String {
    format!("{expr} <> {}", status.code())
}

/// The guard of `event` on the `status` column, e.g. `status IN (15, 20)`.
pub fn guard_sql(event: Event) -> String {
    guard_on("status", event)
}

/// The guard of `event` on a qualified column, e.g. `t.status IN (15, 20)`.
pub fn guard_on(column: &str, event: Event) -> String {
    status_in(column, rule(event).from)
}

/// The code of the one status `event` goes to, e.g. `15` for a claim.
///
/// # Panics
/// If the event does not always go to one status (a finish, a recovery: their status is a
/// decision, bound per row).
pub fn target(event: Event) -> i64 {
    match rule(event).target() {
        Some(status) => status.code(),
        None => panic!("{event:?} has no fixed target status"),
    }
}

/// The fixed message of `event` as an SQL string literal, e.g. `'Starting'`.
///
/// # Panics
/// If the event's message is not fixed.
pub fn message(event: Event) -> String {
    match rule(event).fixed_message() {
        Some(text) => quoted(text),
        None => panic!("{event:?} has no fixed message"),
    }
}

/// The claim's pause guard: true for a task whose worker is not paused, e.g.
/// `NOT EXISTS (SELECT 1 FROM s_workers pw WHERE pw.identifier = s_tasks.identifier AND
/// pw.paused)` for `identifier` = `s_tasks.identifier` (the claimed table's column, qualified:
/// the subquery is correlated with it).
///
/// Every driver's claim adds it to the `WHERE` of each priority's range, before the `LIMIT`:
/// a paused worker's tasks are skipped, not waited on, so other workers' tasks behind them are
/// still claimed (no head-of-line blocking), and the check reads the worker row as the claim
/// runs, so a pause holds on every host at once, whatever a host has cached. The bare
/// `pw.paused` is a truth value in all three dialects (an integer in SQLite, a boolean in
/// PostgreSQL and MySQL). A task whose worker has no row is not held (nothing paused it).
pub fn worker_not_paused(identifier: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM s_workers pw WHERE pw.identifier = {identifier} AND pw.paused)"
    )
}

/// `column < 253402300799999`: a due time that is not the sentinel of a task waiting for its
/// parents ([`crate::dependencies::WAITING_RUN_AT`]). `next_due` adds it to each priority's
/// range, so the dispatcher never sleeps until year 9999 because of a waiting task.
pub fn not_waiting(column: &str) -> String {
    format!("{column} < {}", crate::dependencies::WAITING_RUN_AT)
}

/// `text` as an SQL string literal (standard SQL quoting, which SQLite and PostgreSQL share).
pub fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragments_have_the_codes_of_the_table() {
        assert_eq!(guard_sql(Event::Claim), "status = 10");
        assert_eq!(guard_on("t.status", Event::Finish), "t.status IN (15, 20)");
        assert_eq!(guard_sql(Event::Retry), "status IN (40, 50)");
        assert_eq!(guard_sql(Event::Delete), "status IN (30, 40, 50)");
        assert_eq!((target(Event::Claim), target(Event::Retry)), (15, 10));
        assert_eq!(
            message(Event::CancelPending),
            "'Cancelled before it started'"
        );
        assert_eq!(quoted("it's"), "'it''s'");
        assert_eq!(status_not("status", TaskStatus::Pending), "status <> 10");
        assert!(worker_not_paused("s_tasks.identifier")
            .contains("pw.identifier = s_tasks.identifier AND pw.paused"));
    }

    #[test]
    #[should_panic(expected = "no fixed target")]
    fn a_decided_status_has_no_fixed_target() {
        target(Event::Finish);
    }
}
