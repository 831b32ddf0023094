//! The decisions of the state machine whose outcome depends on more than the status: how a
//! run ends ([`after_run`]), what a lost lease means ([`after_lost_lease`]) and what a new task
//! says ([`created_message`]). Their results go to the store as [`Finish`] rows.

use super::table::WAITING_TO_RUN;
use crate::clock::{now_ms, rfc3339};
use crate::model::TaskStatus;
use stask_plugin_api::protocol::RunOutcome;

/// Retry delays: `base * 2^(attempt-1)`, capped, with ±25 % jitter so that a burst of failures
/// does not come back as a burst.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// First delay (ms).
    pub base_ms: i64,
    /// Longest delay (ms).
    pub max_ms: i64,
}

impl Backoff {
    /// Delay before the attempt after `attempt` (1-based), with jitter drawn from `unit` in [0,1).
    pub fn delay_ms(&self, attempt: u32, unit: f64) -> i64 {
        let exp = attempt.saturating_sub(1).min(30);
        let raw = self.base_ms.saturating_mul(1i64 << exp).min(self.max_ms);
        let jitter = 0.75 + 0.5 * unit.clamp(0.0, 1.0);
        ((raw as f64) * jitter) as i64
    }
}

/// What the engine knows about a run that just ended.
#[derive(Debug, Clone)]
pub struct RunEnd {
    /// Task id.
    pub id: i64,
    /// Lease of the run.
    pub lease_token: i64,
    /// This attempt (1-based).
    pub attempt: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// A user asked to cancel while it ran.
    pub cancel_requested: bool,
    /// The host asked it to stop because the host is stopping (SIGTERM).
    pub host_stopping: bool,
    /// The worker's timeout fired (seconds), if it did.
    pub timed_out_after: Option<u64>,
    /// When the run began (UNIX ms).
    pub started_at: i64,
    /// Wall time of the run.
    pub duration_ms: i64,
    /// CPU time of the thread that ran it, if the platform tells.
    pub cpu_ms: Option<i64>,
    /// Peak heap growth while it ran, if it ran alone (see `engine::resources`).
    pub memory_bytes: Option<i64>,
    /// Worker version that ran it.
    pub worker_version: String,
    /// Result file relative to the results folder, already checked by the engine.
    pub result_file: Option<String>,
}

/// The end of one run (or a recovery decision), as decided by the state machine.
#[derive(Debug, Clone, PartialEq)]
pub struct Finish {
    /// Task id.
    pub id: i64,
    /// The lease the run held: the write applies only if it is still current.
    pub lease_token: i64,
    /// New status: completed, failed, cancelled, or pending for a retry.
    pub status: TaskStatus,
    /// Status message.
    pub message: String,
    /// Result text.
    pub result: Option<String>,
    /// Result file (relative to `storage/stask/results/`).
    pub result_file: Option<String>,
    /// Next due time when going back to pending.
    pub run_at: Option<i64>,
    /// Error of this attempt, if it failed.
    pub last_error: Option<String>,
    /// Wall time of the attempt.
    pub duration_ms: Option<i64>,
    /// When the attempt really began on a pool thread (a task claimed ahead waits in the
    /// host's ready queue after its claim set `started_at`), `None` to keep.
    pub started_at: Option<i64>,
    /// CPU time of the attempt (its pool thread), `None` to keep.
    pub cpu_ms: Option<i64>,
    /// Peak heap growth of the attempt when it ran alone. Written whenever `duration_ms` is
    /// (a run measured nothing → `NULL`, never an older attempt's figure).
    pub memory_bytes: Option<i64>,
    /// Final progress value (100 when completed), `None` to keep.
    pub progress: Option<i64>,
    /// Final items processed, `None` to keep.
    pub processed: Option<i64>,
    /// Final items total, `None` to keep.
    pub total: Option<i64>,
    /// Worker version that ran it.
    pub worker_version: Option<String>,
    /// When it happened.
    pub at: i64,
    /// The task's `attempts` after this finish, written as an absolute value (never an
    /// increment): the run's attempt number, known since the claim, or one less when the
    /// attempt is given back (the run ended because its host was stopping, not the task's
    /// fault: it runs again as the same attempt). Absolute because on SQLite the row of a
    /// started run may still be `preparing` with its attempt not yet counted (the start is in
    /// the start journal until the next flush, see the store's `TaskStore::start_runs`); every driver writes
    /// it the same way.
    pub attempts: u32,
    /// Recoveries only: apply only if the run had started (`Some(true)`) or had not
    /// (`Some(false)`), as [`ExpiredLease::started`] read it, since the decision depends on it.
    /// `None` for the finishes of runs.
    pub if_started: Option<bool>,
}

/// A running task whose lease ran out: its host died or hung.
#[derive(Debug, Clone)]
pub struct ExpiredLease {
    /// Task id.
    pub id: i64,
    /// Its lease token.
    pub lease_token: i64,
    /// Attempts used (the interrupted run's included if it had started).
    pub attempts: u32,
    /// Whether a pool thread had started the run (`running`), or it was only claimed
    /// (`preparing`: waiting in its host's ready queue, no attempt counted).
    pub started: bool,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Host that held it.
    pub owner: Option<String>,
}

/// The message of a new task: when it is due, or that it waits to run.
pub fn created_message(start_at: Option<i64>, now: i64) -> String {
    match start_at {
        Some(at) if at > now => format!("Scheduled for {}", rfc3339(at)),
        _ => WAITING_TO_RUN.to_owned(),
    }
}

/// The message of a dependant cancelled because `parent`, a task it depends on, ended
/// `status` (failed or cancelled; `Event::CancelForParent`), e.g. "Cancelled: task 12 it
/// depends on failed".
pub fn parent_ended_message(parent: i64, status: TaskStatus) -> String {
    let how = match status {
        TaskStatus::Cancelled => "was cancelled",
        _ => "failed",
    };
    format!("Cancelled: task {parent} it depends on {how}")
}

/// What a waiting dependant says while it waits (derived when the task is read): "Waiting
/// for task 12", "Waiting for task 12 (and 2 more)".
pub fn waiting_for_message(first: i64, waiting: i64) -> String {
    match waiting {
        ..=1 => format!("Waiting for task {first}"),
        n => format!("Waiting for task {first} (and {} more)", n - 1),
    }
}

/// What a pending task of a paused worker says while it waits (derived when the task is read,
/// not stored: a pause changes one worker row, not every pending task of that worker).
pub fn paused_message(identifier: &str) -> String {
    format!("Waiting: worker {identifier} is paused")
}

/// Decides the next state after a run.
pub fn after_run(end: &RunEnd, outcome: RunOutcome, backoff: Backoff, now: i64) -> Finish {
    let mut finish = Finish {
        id: end.id,
        lease_token: end.lease_token,
        status: TaskStatus::Failed,
        message: String::new(),
        result: None,
        result_file: None,
        run_at: None,
        last_error: None,
        duration_ms: Some(end.duration_ms),
        started_at: Some(end.started_at),
        cpu_ms: end.cpu_ms,
        memory_bytes: end.memory_bytes,
        progress: None,
        processed: None,
        total: None,
        worker_version: Some(end.worker_version.clone()),
        at: now,
        attempts: end.attempt,
        if_started: None,
    };
    let error = match outcome {
        RunOutcome::Completed { result, .. } => {
            finish.status = TaskStatus::Completed;
            finish.message = format!("Completed in {}", seconds(end.duration_ms));
            finish.result = result;
            finish.result_file = end.result_file.clone();
            finish.progress = Some(100);
            return finish;
        }
        _ if end.timed_out_after.is_some() => Failure {
            message: format!(
                "timed out after {}s",
                end.timed_out_after.unwrap_or_default()
            ),
            retryable: true,
        },
        // A user's cancel wins over the host stopping: the user does not want it run again.
        _ if end.host_stopping && !end.cancel_requested => {
            interrupted_by_stop(&mut finish, end.attempt, now);
            return finish;
        }
        RunOutcome::Cancelled { message } => {
            finish.status = TaskStatus::Cancelled;
            finish.message = match message {
                Some(m) if m != "cancelled" => format!("Cancelled: {m}"),
                _ => "Cancelled".into(),
            };
            return finish;
        }
        _ if end.cancel_requested => {
            finish.status = TaskStatus::Cancelled;
            finish.message = "Cancelled".into();
            return finish;
        }
        RunOutcome::Failed { message, retryable } => Failure { message, retryable },
        RunOutcome::Panicked { message } => Failure {
            message: format!("worker panicked: {message}"),
            retryable: true,
        },
    };
    apply_failure(
        &mut finish,
        error,
        end.attempt,
        end.max_attempts,
        backoff,
        now,
    );
    finish
}

/// A run that ended because its host was stopping: not the task's fault, so it goes back to
/// pending at once with its attempt given back, and runs again (as the same attempt) at the
/// next start or on another host.
fn interrupted_by_stop(finish: &mut Finish, attempt: u32, now: i64) {
    finish.status = TaskStatus::Pending;
    finish.run_at = Some(now);
    finish.attempts = attempt.saturating_sub(1);
    finish.message = format!(
        "Interrupted: the host was stopping, so attempt {attempt} stopped early; it runs again \
         (no attempt used)"
    );
}

struct Failure {
    message: String,
    retryable: bool,
}

fn apply_failure(
    finish: &mut Finish,
    failure: Failure,
    attempt: u32,
    max_attempts: u32,
    backoff: Backoff,
    now: i64,
) {
    finish.last_error = Some(failure.message.clone());
    if failure.retryable && attempt < max_attempts {
        let next = now + backoff.delay_ms(attempt, rand::random::<f64>());
        finish.status = TaskStatus::Pending;
        finish.run_at = Some(next);
        finish.message = format!(
            "Attempt {attempt} of {max_attempts} failed: {}; next attempt at {}",
            failure.message,
            rfc3339(next)
        );
    } else {
        finish.status = TaskStatus::Failed;
        finish.message = if failure.retryable && max_attempts > 1 {
            format!("{} (after {attempt} attempts)", failure.message)
        } else {
            failure.message
        };
    }
}

/// Decides what happens to a task whose host died (its lease expired). A run that had started
/// counts as an attempt; a task that was only claimed (waiting in the dead host's ready queue,
/// no pool thread started it) goes back to pending at once without using one.
pub fn after_lost_lease(lease: &ExpiredLease, backoff: Backoff) -> Finish {
    let now = now_ms();
    let mut finish = Finish {
        id: lease.id,
        lease_token: lease.lease_token,
        status: TaskStatus::Failed,
        message: String::new(),
        result: None,
        result_file: None,
        run_at: None,
        last_error: None,
        duration_ms: None,
        started_at: None,
        cpu_ms: None,
        memory_bytes: None,
        progress: None,
        processed: None,
        total: None,
        worker_version: None,
        at: now,
        // Unchanged for a claim that never started; for a started run, its attempt counted
        // (the driver includes it even if the row does not count it yet, see `ExpiredLease`).
        attempts: lease.attempts,
        // The decision depends on it: it applies only if the row still says the same.
        if_started: Some(lease.started),
    };
    if !lease.started {
        finish.status = TaskStatus::Pending;
        finish.run_at = Some(now);
        finish.message = "Its host stopped before starting it; waiting to run again (no \
                          attempt used)"
            .into();
        return finish;
    }
    let failure = Failure {
        message: format!(
            "attempt {} was interrupted: its host stopped before finishing",
            lease.attempts
        ),
        retryable: true,
    };
    // Recovery is not the task's fault: retry promptly rather than after a long backoff.
    let prompt = Backoff {
        base_ms: backoff.base_ms.min(1_000),
        max_ms: backoff.max_ms.min(1_000),
    };
    apply_failure(
        &mut finish,
        failure,
        lease.attempts,
        lease.max_attempts,
        prompt,
        now,
    );
    finish
}

fn seconds(ms: i64) -> String {
    format!("{:.2}s", ms as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task_state::{rule, Event, To};

    /// Whether a decided status is one the table lets `event` go to.
    fn table_allows(event: Event, status: TaskStatus) -> bool {
        match rule(event).to {
            To::OneOf(statuses) => statuses.contains(&status),
            other => panic!("{event:?} goes to {other:?}, not to a decided status"),
        }
    }

    const BACKOFF: Backoff = Backoff {
        base_ms: 1_000,
        max_ms: 60_000,
    };

    fn end(attempt: u32, max: u32) -> RunEnd {
        RunEnd {
            id: 7,
            lease_token: 42,
            attempt,
            max_attempts: max,
            cancel_requested: false,
            host_stopping: false,
            timed_out_after: None,
            started_at: 1_000,
            duration_ms: 1500,
            cpu_ms: Some(20),
            memory_bytes: None,
            worker_version: "1.0.0+abc".into(),
            result_file: None,
        }
    }

    fn failed(retryable: bool) -> RunOutcome {
        RunOutcome::Failed {
            message: "boom".into(),
            retryable,
        }
    }

    /// Every branch of the decisions lands on a status the transition table allows.
    #[test]
    fn decisions_stay_inside_the_table() {
        let outcomes = || {
            [
                RunOutcome::Completed {
                    result: None,
                    file: None,
                },
                RunOutcome::Cancelled { message: None },
                RunOutcome::Panicked {
                    message: "p".into(),
                },
                failed(true),
                failed(false),
            ]
        };
        for (attempt, cancel, stopping, timed_out) in [
            (1, false, false, None),
            (3, false, false, None),
            (1, true, false, None),
            (1, false, true, None),
            (1, false, false, Some(5)),
        ] {
            let mut e = end(attempt, 3);
            (e.cancel_requested, e.host_stopping, e.timed_out_after) =
                (cancel, stopping, timed_out);
            for outcome in outcomes() {
                let f = after_run(&e, outcome, BACKOFF, 0);
                assert!(table_allows(Event::Finish, f.status), "{:?}", f.status);
            }
        }
        for (attempts, started) in [(0, false), (1, true), (3, true)] {
            let lease = ExpiredLease {
                id: 1,
                lease_token: 9,
                attempts,
                max_attempts: 3,
                owner: None,
                started,
            };
            let f = after_lost_lease(&lease, BACKOFF);
            assert!(table_allows(Event::Recover, f.status), "{:?}", f.status);
        }
    }

    #[test]
    fn a_new_task_waits_or_says_when_it_is_due() {
        assert_eq!(created_message(None, 5_000), "Waiting to run");
        assert_eq!(created_message(Some(5_000), 5_000), "Waiting to run");
        assert_eq!(
            created_message(Some(86_400_000), 0),
            format!("Scheduled for {}", rfc3339(86_400_000))
        );
    }

    #[test]
    fn backoff_doubles_within_jitter_and_caps() {
        for attempt in 1..=5u32 {
            let nominal = 1_000i64 << (attempt - 1);
            let low = BACKOFF.delay_ms(attempt, 0.0);
            let high = BACKOFF.delay_ms(attempt, 0.999);
            assert_eq!(low, nominal * 3 / 4);
            assert!(high < nominal * 5 / 4 + 1 && high > nominal);
        }
        assert!(BACKOFF.delay_ms(40, 0.5) <= 60_000);
    }

    #[test]
    fn retryable_failure_with_attempts_left_goes_back_to_pending_later() {
        let f = after_run(&end(1, 3), failed(true), BACKOFF, 10_000);
        assert_eq!(f.status, TaskStatus::Pending);
        let at = f.run_at.unwrap();
        assert!((10_750..=11_250).contains(&at), "run_at {at}");
        assert!(f
            .message
            .starts_with("Attempt 1 of 3 failed: boom; next attempt at"));
        assert_eq!(f.last_error.as_deref(), Some("boom"));
    }

    #[test]
    fn last_attempt_or_permanent_error_fails() {
        let f = after_run(&end(3, 3), failed(true), BACKOFF, 0);
        assert_eq!(
            (f.status, f.message.as_str()),
            (TaskStatus::Failed, "boom (after 3 attempts)")
        );
        let f = after_run(&end(1, 3), failed(false), BACKOFF, 0);
        assert_eq!((f.status, f.message.as_str()), (TaskStatus::Failed, "boom"));
    }

    #[test]
    fn completion_wins_over_a_late_cancel_but_failure_does_not() {
        let mut e = end(1, 3);
        e.cancel_requested = true;
        let done = RunOutcome::Completed {
            result: Some("ok".into()),
            file: None,
        };
        assert_eq!(
            after_run(&e, done, BACKOFF, 0).status,
            TaskStatus::Completed
        );
        assert_eq!(
            after_run(&e, failed(true), BACKOFF, 0).status,
            TaskStatus::Cancelled
        );
    }

    #[test]
    fn timeout_fails_even_when_the_worker_says_cancelled() {
        let mut e = end(3, 3);
        e.timed_out_after = Some(5);
        let f = after_run(&e, RunOutcome::Cancelled { message: None }, BACKOFF, 0);
        assert_eq!(f.status, TaskStatus::Failed);
        assert!(f.message.starts_with("timed out after 5s"));
    }

    #[test]
    fn panic_is_a_failure_with_its_message() {
        let f = after_run(
            &end(1, 1),
            RunOutcome::Panicked {
                message: "oops (at x.rs:1:1)".into(),
            },
            BACKOFF,
            0,
        );
        assert_eq!(f.status, TaskStatus::Failed);
        assert_eq!(f.message, "worker panicked: oops (at x.rs:1:1)");
    }

    #[test]
    fn lost_lease_counts_the_attempt_of_a_started_run() {
        let lease = ExpiredLease {
            id: 1,
            lease_token: 9,
            attempts: 1,
            max_attempts: 3,
            owner: None,
            started: true,
        };
        let f = after_lost_lease(&lease, BACKOFF);
        assert_eq!((f.status, f.if_started), (TaskStatus::Pending, Some(true)));
        let lease = ExpiredLease {
            attempts: 3,
            ..lease
        };
        let f = after_lost_lease(&lease, BACKOFF);
        assert_eq!(f.status, TaskStatus::Failed);
        assert!(f.message.contains("interrupted"));
    }

    #[test]
    fn a_lost_claim_that_never_started_is_pending_again_without_an_attempt() {
        // max_attempts 1 and nothing started: not a failure, whatever `attempts` says.
        let lease = ExpiredLease {
            id: 1,
            lease_token: 9,
            attempts: 0,
            max_attempts: 1,
            owner: None,
            started: false,
        };
        let f = after_lost_lease(&lease, BACKOFF);
        assert_eq!(
            (f.status, f.attempts, f.if_started),
            (TaskStatus::Pending, 0, Some(false))
        );
        assert!(f.run_at.unwrap() <= now_ms());
        assert!(f.message.contains("no attempt used"), "{}", f.message);
        assert!(!f.message.contains("was interrupted"));
    }

    #[test]
    fn a_run_stopped_by_its_host_is_pending_again_with_its_attempt_given_back() {
        let mut e = end(1, 1);
        e.host_stopping = true;
        for outcome in [
            RunOutcome::Cancelled { message: None },
            failed(true),
            failed(false),
        ] {
            let f = after_run(&e, outcome, BACKOFF, 5_000);
            assert_eq!(
                (f.status, f.attempts, f.run_at),
                (TaskStatus::Pending, 0, Some(5_000))
            );
            assert!(f.message.contains("host was stopping"), "{}", f.message);
        }
        // Work that was done is kept, a timeout is still the task's failure, and a user's
        // cancel is still a cancel.
        let done = RunOutcome::Completed {
            result: None,
            file: None,
        };
        assert_eq!(
            after_run(&e, done, BACKOFF, 0).status,
            TaskStatus::Completed
        );
        let mut timed_out = e.clone();
        timed_out.timed_out_after = Some(5);
        let f = after_run(
            &timed_out,
            RunOutcome::Cancelled { message: None },
            BACKOFF,
            0,
        );
        assert_eq!((f.status, f.attempts), (TaskStatus::Failed, 1));
        let mut by_user = e.clone();
        by_user.cancel_requested = true;
        let f = after_run(
            &by_user,
            RunOutcome::Cancelled { message: None },
            BACKOFF,
            0,
        );
        assert_eq!((f.status, f.attempts), (TaskStatus::Cancelled, 1));
    }
}
